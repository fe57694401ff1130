package daemon

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/policy"
	"github.com/edgefw/edgefw/wg"
)

// scrapeText is the body of GET /metrics served from g, in the encoding
// accept asks for.
func scrapeText(t *testing.T, g prometheus.Gatherer, accept string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/metrics", nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	NewMetricsHandler(g, nil).ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// TestKernelMetricsMatchRegistry serves the collector's families through
// WithKernelMetrics, which skips the registry's checks and sorting, and
// through a pedantic registry it is registered on: byte for byte the same
// scrape, in the text format, in OpenMetrics and in protobuf, for every
// state of the kernel the goldens hold, at scale, with peers read out of
// order and with a label value the client library rejects.
func TestKernelMetricsMatchRegistry(t *testing.T) {
	kernels := map[string]func() *fakeKernel{
		"host": hostKernel,
		"counters-read-fails": func() *fakeKernel {
			k := hostKernel()
			k.countersErr = errors.New("netlink receive: operation not permitted")
			return k
		},
		"tunnels-read-fails": func() *fakeKernel {
			k := hostKernel()
			k.tunnelsErr = errors.New("timeout")
			return k
		},
		"device-read-fails": func() *fakeKernel {
			k := hostKernel()
			k.tunnels[1] = wg.TunnelStatus{Name: "wg-site", Backend: "userspace", Error: "no such device"}
			return k
		},
		"counter-missing": func() *fakeKernel {
			k := hostKernel()
			delete(k.counters, "block-telnet")
			delete(k.counters, nft.LimitedCounter("ssh"))
			return k
		},
		"table-deleted": func() *fakeKernel {
			k := hostKernel()
			k.countersErr = nft.ErrNoTable
			return k
		},
		"nothing-applied-yet":      func() *fakeKernel { return &fakeKernel{countersErr: nft.ErrNoTable} },
		"1000 rules and 100 peers": func() *fakeKernel { return scaleKernel(1000, 100) },
		"peers read in reverse": func() *fakeKernel {
			k := scaleKernel(10, 30)
			for i, j := 0, len(k.tunnels[0].Peers)-1; i < j; i, j = i+1, j-1 {
				k.tunnels[0].Peers[i], k.tunnels[0].Peers[j] = k.tunnels[0].Peers[j], k.tunnels[0].Peers[i]
			}
			k.tunnels = append([]wg.TunnelStatus{{Name: "wg1", Backend: "userspace", PublicKey: "p1",
				Peers: []wg.PeerStatus{{Name: "b"}, {Name: "a"}}}}, k.tunnels...)
			return k
		},
		"label not UTF-8": func() *fakeKernel {
			k := hostKernel()
			k.rules = append(k.rules, nft.RuleInfo{Name: "bad\xff", Direction: policy.Input, Action: policy.Accept, Kind: nft.KindUser})
			k.counters["bad\xff"] = nft.Counter{Packets: 1, Bytes: 1}
			k.tunnels[0].Peers[0].Name = "peer\xfe"
			return k
		},
	}
	for name, kernel := range kernels {
		t.Run(name, func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(NewCollector(kernel(), nil, fixedClock))
			served := WithKernelMetrics(prometheus.NewPedanticRegistry(), NewCollector(kernel(), nil, fixedClock))
			for _, accept := range []string{"", "application/openmetrics-text; version=1.0.0",
				"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"} {
				if d := cmp.Diff(scrapeText(t, reg, accept), scrapeText(t, served, accept)); d != "" {
					t.Errorf("Accept %q: WithKernelMetrics differs from the registry (-registry +WithKernelMetrics):\n%s", accept, d)
				}
			}
		})
	}
}

func TestKernelMetricsInvalidAndTwice(t *testing.T) {
	k := hostKernel()
	k.tunnels[0].Peers[0].Name = "peer\xfe"
	_, err := WithKernelMetrics(prometheus.NewRegistry(), NewCollector(k, nil, fixedClock)).Gather()
	if err == nil || !strings.Contains(err.Error(), "UTF-8") {
		t.Errorf("gathering a label that is not UTF-8: %v", err)
	}

	// Also registered: its families come once, with an error.
	reg := prometheus.NewRegistry()
	c := NewCollector(hostKernel(), nil, fixedClock)
	reg.MustRegister(c)
	mfs, err := WithKernelMetrics(reg, c).Gather()
	if err == nil || !strings.Contains(err.Error(), "gathered twice") {
		t.Errorf("gathering a registered collector: %v", err)
	}
	seen := map[string]bool{}
	for _, mf := range mfs {
		if seen[mf.GetName()] {
			t.Errorf("family %s gathered twice", mf.GetName())
		}
		seen[mf.GetName()] = true
	}
}
