package daemon

import (
	"bytes"
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/policy"
	"github.com/edgefw/edgefw/wg"
)

// TestMetricsTextMatchesExpfmt writes scrapes with the pre-rendered
// series lines (writeText) and compares them byte for byte with expfmt's
// encoding of the same families gathered through a registry the
// collector is registered on, in every text format Negotiate picks: the
// daemon's event metrics sort among the collector's families, values at
// the edges of float formatting, label values that need escaping.
func TestMetricsTextMatchesExpfmt(t *testing.T) {
	kernels := map[string]func() *fakeKernel{
		"host":                     hostKernel,
		"1000 rules and 100 peers": func() *fakeKernel { return scaleKernel(1000, 100) },
		"nothing applied yet":      func() *fakeKernel { return &fakeKernel{countersErr: nft.ErrNoTable} },
		"values at the edges": func() *fakeKernel {
			k := hostKernel()
			k.counters["ssh"] = nft.Counter{Packets: 1<<53 + 1, Bytes: math.MaxUint64}
			k.counters["block-telnet"] = nft.Counter{Packets: 1, Bytes: 999_999}
			k.counters["smtp-out"] = nft.Counter{Packets: 1_000_000, Bytes: 123_456_789_012}
			k.tunnels[0].Peers[0].ReceiveBytes = math.MaxInt64
			return k
		},
		"labels to escape": func() *fakeKernel {
			k := hostKernel()
			k.rules = append(k.rules, nft.RuleInfo{Name: "quote\"back\\slash\nnewline", Direction: policy.Input, Action: policy.Accept, Kind: nft.KindUser})
			k.counters["quote\"back\\slash\nnewline"] = nft.Counter{Packets: 5, Bytes: 6}
			k.tunnels[0].Peers[0].Name = `peer "a" \ b`
			return k
		},
		"label not UTF-8": func() *fakeKernel {
			k := hostKernel()
			k.tunnels[0].Peers[0].Name = "peer\xfe"
			return k
		},
	}
	// Accept headers: none (curl), the text format with each escaping
	// scheme, and Prometheus 3's default.
	var formats []expfmt.Format
	for _, accept := range []string{"", "text/plain;version=0.0.4",
		"text/plain;version=0.0.4;escaping=allow-utf-8", "text/plain;version=0.0.4;escaping=values",
		"text/plain;version=0.0.4;escaping=dots", "text/plain;version=0.0.4;escaping=underscores",
		"application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5," +
			"text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
	} {
		formats = append(formats, expfmt.Negotiate(http.Header{"Accept": {accept}}))
	}
	for name, kernel := range kernels {
		t.Run(name, func(t *testing.T) {
			events := func() *prometheus.Registry {
				reg := prometheus.NewPedanticRegistry()
				m := NewMetrics(reg, "1.2.3", "abc")
				m.ObserveApply(3*time.Millisecond, nil, scrapeTime)
				m.DriftRepaired()
				return reg
			}
			registered := events()
			registered.MustRegister(NewCollector(kernel(), nil, fixedClock))
			served := WithKernelMetrics(events(), NewCollector(kernel(), nil, fixedClock)).(kernelGatherer)
			for _, format := range formats {
				mfs, _ := registered.Gather()
				var want bytes.Buffer
				enc := expfmt.NewEncoder(&want, format)
				for _, mf := range mfs {
					if err := enc.Encode(mf); err != nil {
						t.Fatal(err)
					}
				}
				var got bytes.Buffer
				if !served.writeText(&got, format) {
					t.Fatalf("format %s: writeText left the scrape to promhttp", format)
				}
				if d := cmp.Diff(want.String(), got.String()); d != "" {
					t.Errorf("format %s: writeText differs from expfmt (-expfmt +writeText):\n%s", format, d)
				}
			}
		})
	}
}

// TestMetricsTextReusedBuffer serves scrapes of changing kernels through
// one handler, whose buffer is reused: each is what a fresh handler
// serves.
func TestMetricsTextReusedBuffer(t *testing.T) {
	k := scaleKernel(50, 20)
	h := NewMetricsHandler(WithKernelMetrics(prometheus.NewRegistry(), NewCollector(k, nil, fixedClock)), nil)
	for _, change := range []func(){
		func() {},
		func() { k.rules, k.tunnels = k.rules[:3], nil },
		func() { *k = *scaleKernel(60, 5) },
		func() { k.counters["rule-0001"] = nft.Counter{Packets: 7, Bytes: 8} },
	} {
		change()
		fresh := NewMetricsHandler(WithKernelMetrics(prometheus.NewRegistry(), NewCollector(k, nil, fixedClock)), nil)
		want, got := httptest.NewRecorder(), httptest.NewRecorder()
		fresh.ServeHTTP(want, httptest.NewRequest("GET", "/metrics", nil))
		h.ServeHTTP(got, httptest.NewRequest("GET", "/metrics", nil))
		if d := cmp.Diff(want.Body.String(), got.Body.String()); d != "" {
			t.Errorf("reused handler differs from a fresh one (-fresh +reused):\n%s", d)
		}
	}
}

// TestMetricsTextConcurrentScrapes scrapes one handler from several
// goroutines at once (as many as it serves in parallel): each gets the
// whole scrape, none another's buffer. Run with -race.
func TestMetricsTextConcurrentScrapes(t *testing.T) {
	k := &lockedKernel{k: scaleKernel(100, 20)}
	h := NewMetricsHandler(WithKernelMetrics(prometheus.NewRegistry(), NewCollector(k, nil, fixedClock)), nil)
	want := httptest.NewRecorder()
	h.ServeHTTP(want, httptest.NewRequest("GET", "/metrics", nil))
	bodies := make([]string, metricsInFlight)
	var scrapers sync.WaitGroup
	for i := range bodies {
		scrapers.Go(func() {
			for range 20 {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
				if rec.Code == http.StatusServiceUnavailable {
					continue // over the limit: another scrape was still running
				}
				bodies[i] = rec.Body.String()
				if bodies[i] != want.Body.String() {
					return
				}
			}
		})
	}
	scrapers.Wait()
	for i, body := range bodies {
		if body != "" && body != want.Body.String() {
			t.Errorf("scrape %d differs from a lone scrape:\n%s", i, cmp.Diff(want.Body.String(), body))
		}
	}
}

// lockedKernel is a fakeKernel safe for concurrent scrapes.
type lockedKernel struct {
	mu sync.Mutex
	k  *fakeKernel
}

func (l *lockedKernel) Counters() (map[string]nft.Counter, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.k.Counters()
}

func (l *lockedKernel) Rules() []nft.RuleInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.k.Rules()
}

func (l *lockedKernel) Tunnels(ctx context.Context) ([]wg.TunnelStatus, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.k.Tunnels(ctx)
}
