package daemon

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/policy"
	"github.com/edgefw/edgefw/wg"

	"github.com/edgefw/edgefw/internal/netnstest"
)

var updateMetrics = flag.Bool("update-metrics", false, "rewrite the expected scrapes in testdata/metrics")

// fakeKernel is a KernelSource with fixed answers. Counters and Tunnels
// count their calls, so tests can check every scrape reads the kernel.
type fakeKernel struct {
	counters    map[string]nft.Counter
	countersErr error
	rules       []nft.RuleInfo
	tunnels     []wg.TunnelStatus
	tunnelsErr  error

	counterReads, tunnelReads int
}

func (f *fakeKernel) Counters() (map[string]nft.Counter, error) {
	f.counterReads++
	if f.countersErr != nil {
		return nil, f.countersErr
	}
	return f.counters, nil
}

func (f *fakeKernel) Rules() []nft.RuleInfo { return f.rules }

func (f *fakeKernel) Tunnels(ctx context.Context) ([]wg.TunnelStatus, error) {
	f.tunnelReads++
	if _, ok := ctx.Deadline(); !ok {
		return nil, errors.New("fake: Tunnels called without a deadline")
	}
	if f.tunnelsErr != nil {
		return nil, f.tunnelsErr
	}
	return f.tunnels, nil
}

var scrapeTime = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func fixedClock() time.Time { return scrapeTime }

// hostKernel is a host with user rules of every action, a rate-limited
// rule, a rate-limited rule in audit mode, implicit rules, default policies and two tunnels whose peers are
// up, stale, at exactly RejectAfterTime (still up, as wg decides), never
// connected, not configured and undeclared.
func hostKernel() *fakeKernel {
	in, out, fwd := policy.Input, policy.Output, policy.Forward
	return &fakeKernel{
		rules: []nft.RuleInfo{
			{Name: "edgefw-established-input", Direction: in, Action: policy.Accept, Kind: nft.KindImplicit},
			{Name: "edgefw-invalid-input", Direction: in, Action: policy.Drop, Kind: nft.KindImplicit},
			{Name: nft.TunnelCounter("wg0"), Direction: in, Action: policy.Accept, Kind: nft.KindImplicit},
			{Name: nft.LimitedCounter("ssh"), Direction: in, Action: policy.Drop, Kind: nft.KindLimited, Rule: "ssh"},
			{Name: "ssh", Direction: in, Action: policy.Accept, Kind: nft.KindUser},
			{Name: "block-telnet", Direction: in, Action: policy.Drop, Kind: nft.KindUser},
			{Name: "smtp-out", Direction: out, Action: policy.Reject, Kind: nft.KindUser},
			{Name: "watch-smb", Direction: in, Action: policy.Drop, Kind: nft.KindUser, Mode: policy.Audit},
			{Name: nft.LimitedCounter("watch-smb"), Direction: in, Action: policy.Drop, Kind: nft.KindLimited, Rule: "watch-smb", Mode: policy.Audit},
			{Name: nft.DefaultCounter(in), Direction: in, Action: policy.Drop, Kind: nft.KindDefault},
			{Name: nft.DefaultCounter(fwd), Direction: fwd, Action: policy.Drop, Kind: nft.KindDefault},
			{Name: nft.DefaultCounter(out), Direction: out, Action: policy.Accept, Kind: nft.KindDefault},
		},
		counters: map[string]nft.Counter{
			"edgefw-established-input":      {Packets: 120000, Bytes: 98000000},
			"edgefw-invalid-input":          {Packets: 3, Bytes: 180},
			nft.TunnelCounter("wg0"):        {Packets: 800, Bytes: 120000},
			nft.LimitedCounter("ssh"):       {Packets: 42, Bytes: 2520},
			"ssh":                           {Packets: 1500, Bytes: 90000},
			"block-telnet":                  {Packets: 77, Bytes: 4620},
			"smtp-out":                      {Packets: 0, Bytes: 0},
			"watch-smb":                     {Packets: 12, Bytes: 720},
			nft.LimitedCounter("watch-smb"): {Packets: 2, Bytes: 120},
			nft.DefaultCounter(in):          {Packets: 9001, Bytes: 540060},
			nft.DefaultCounter(fwd):         {Packets: 0, Bytes: 0},
			nft.DefaultCounter(out):         {Packets: 130000, Bytes: 12000000},
			"counter-of-another-policy":     {Packets: 1, Bytes: 1},
		},
		tunnels: []wg.TunnelStatus{
			{
				Name: "wg0", Backend: "kernel", ListenPort: 51820, PublicKey: "pub-wg0",
				Peers: []wg.PeerStatus{
					{Name: "office", PublicKey: "k1", LastHandshake: scrapeTime.Add(-95 * time.Second), Up: true, ReceiveBytes: 1048576, TransmitBytes: 524288},
					{Name: "laptop", PublicKey: "k2", LastHandshake: scrapeTime.Add(-wg.RejectAfterTime - time.Second), ReceiveBytes: 2048, TransmitBytes: 4096},
					{Name: "edge", PublicKey: "k3", LastHandshake: scrapeTime.Add(-wg.RejectAfterTime), Up: true, ReceiveBytes: 10, TransmitBytes: 20},
					{Name: "backup", PublicKey: "k4"},
					{PublicKey: "k-undeclared", LastHandshake: scrapeTime.Add(-time.Second), Up: true, ReceiveBytes: 1},
				},
			},
			{
				Name: "wg-site", Backend: "userspace", ListenPort: 51821, PublicKey: "pub-site",
				Peers: []wg.PeerStatus{
					{Name: "branch", PublicKey: "k5", Error: "not configured on the interface"},
				},
			},
		},
	}
}

func TestCollector(t *testing.T) {
	tests := []struct {
		name   string
		kernel func() *fakeKernel
		// logged is a message a failed read must log, empty if none.
		logged string
	}{
		{"host", hostKernel, ""},
		{"counters-read-fails", func() *fakeKernel {
			k := hostKernel()
			k.countersErr = errors.New("netlink receive: operation not permitted")
			return k
		}, "read nftables counters"},
		{"tunnels-read-fails", func() *fakeKernel {
			k := hostKernel()
			k.tunnelsErr = context.DeadlineExceeded
			return k
		}, "read WireGuard tunnels"},
		{"device-read-fails", func() *fakeKernel {
			k := hostKernel()
			k.tunnels[1] = wg.TunnelStatus{Name: "wg-site", Backend: "userspace", Error: "read WireGuard device: no such device"}
			return k
		}, "read WireGuard device"},
		{"counter-missing", func() *fakeKernel {
			k := hostKernel()
			delete(k.counters, "block-telnet")
			delete(k.counters, nft.LimitedCounter("ssh"))
			return k
		}, ""},
		{"table-deleted", func() *fakeKernel {
			k := hostKernel()
			k.countersErr = nft.ErrNoTable
			return k
		}, ""},
		{"nothing-applied-yet", func() *fakeKernel {
			return &fakeKernel{countersErr: fmt.Errorf("read: %w", nft.ErrNoTable)}
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(NewCollector(tt.kernel(), log, fixedClock))

			golden := filepath.Join("testdata", "metrics", tt.name+".prom")
			if *updateMetrics {
				writeScrape(t, reg, golden)
			}
			f, err := os.Open(golden)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := testutil.GatherAndCompare(reg, f); err != nil {
				t.Error(err)
			}
			if tt.logged == "" && logs.Len() > 0 {
				t.Errorf("unexpected log:\n%s", logs.String())
			}
			if tt.logged != "" && !strings.Contains(logs.String(), tt.logged) {
				t.Errorf("log does not say %q:\n%s", tt.logged, logs.String())
			}
		})
	}
}

// writeScrape writes what reg gathers in the text format, for -update-metrics.
func writeScrape(t *testing.T, reg prometheus.Gatherer, path string) {
	t.Helper()
	rec := httptest.NewRecorder()
	NewMetricsHandler(reg, nil).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if err := os.WriteFile(path, rec.Body.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCollectorReadsEveryScrape checks that nothing is cached: each
// scrape reads the kernel and reports its current values.
func TestCollectorReadsEveryScrape(t *testing.T) {
	k := hostKernel()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(k, nil, fixedClock))

	packets := func() float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "edgefw_rule_packets_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "rule" && l.GetValue() == "block-telnet" {
						return m.GetCounter().GetValue()
					}
				}
			}
		}
		t.Fatal("no edgefw_rule_packets_total{rule=\"block-telnet\"}")
		return 0
	}
	if got := packets(); got != 77 {
		t.Fatalf("first scrape: block-telnet packets = %v, want 77", got)
	}
	k.counters["block-telnet"] = nft.Counter{Packets: 80, Bytes: 4800}
	if got := packets(); got != 80 {
		t.Fatalf("second scrape: block-telnet packets = %v, want 80", got)
	}
	if k.counterReads != 2 || k.tunnelReads != 2 {
		t.Errorf("2 scrapes read counters %d and tunnels %d times, want 2 and 2", k.counterReads, k.tunnelReads)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := NewMetrics(reg, "1.2.3", "abc1234")
	m.ObserveApply(3*time.Millisecond, nil, time.Unix(1767225600, 500_000_000))
	m.ObserveApply(2*time.Second, errors.New("netlink: file exists"), time.Unix(1767225700, 0))
	m.ObserveApply(40*time.Second, nil, time.Unix(1767225800, 0))
	m.DriftRepaired()
	m.DriftRepairFailed()
	m.DriftRepairFailed()
	m.JournalAppended(41)
	m.JournalAppended(42)
	m.JournalAppendFailed()

	want := fmt.Sprintf(`
# HELP edgefw_build_info Always 1; the labels identify the running edgefwd build.
# TYPE edgefw_build_info gauge
edgefw_build_info{goversion=%q,revision="abc1234",version="1.2.3"} 1
# HELP edgefw_drift_repair_failures_total Drift checks that could not read table inet edgefw or restore it; each is retried after a backoff of 1 s doubling to 1 min.
# TYPE edgefw_drift_repair_failures_total counter
edgefw_drift_repair_failures_total 2
# HELP edgefw_drift_repairs_total Times table inet edgefw was found changed or deleted outside edgefwd and restored.
# TYPE edgefw_drift_repairs_total counter
edgefw_drift_repairs_total 1
# HELP edgefw_journal_append_errors_total Events that could not be appended to the audit journal (they are logged); the daemon carries on.
# TYPE edgefw_journal_append_errors_total counter
edgefw_journal_append_errors_total 1
# HELP edgefw_journal_entries Sequence number of the audit journal's last entry: entries ever appended, rotated ones included. It never goes down; a lower value later means entries were cut from the journal's end.
# TYPE edgefw_journal_entries gauge
edgefw_journal_entries 42
# HELP edgefw_policy_apply_duration_seconds Time taken by policy apply attempts, successful or not: compiling the policy, writing the nftables transaction and configuring the tunnels.
# TYPE edgefw_policy_apply_duration_seconds histogram
edgefw_policy_apply_duration_seconds_bucket{le="0.001"} 0
edgefw_policy_apply_duration_seconds_bucket{le="0.0025"} 0
edgefw_policy_apply_duration_seconds_bucket{le="0.005"} 1
edgefw_policy_apply_duration_seconds_bucket{le="0.01"} 1
edgefw_policy_apply_duration_seconds_bucket{le="0.025"} 1
edgefw_policy_apply_duration_seconds_bucket{le="0.05"} 1
edgefw_policy_apply_duration_seconds_bucket{le="0.1"} 1
edgefw_policy_apply_duration_seconds_bucket{le="0.25"} 1
edgefw_policy_apply_duration_seconds_bucket{le="0.5"} 1
edgefw_policy_apply_duration_seconds_bucket{le="1"} 1
edgefw_policy_apply_duration_seconds_bucket{le="2.5"} 2
edgefw_policy_apply_duration_seconds_bucket{le="5"} 2
edgefw_policy_apply_duration_seconds_bucket{le="10"} 2
edgefw_policy_apply_duration_seconds_bucket{le="30"} 2
edgefw_policy_apply_duration_seconds_bucket{le="+Inf"} 3
edgefw_policy_apply_duration_seconds_sum 42.003
edgefw_policy_apply_duration_seconds_count 3
# HELP edgefw_policy_apply_errors_total Policy apply attempts that failed; the previous ruleset and tunnels stayed in place.
# TYPE edgefw_policy_apply_errors_total counter
edgefw_policy_apply_errors_total 1
# HELP edgefw_policy_last_apply_success_timestamp_seconds Unix time of the last successful policy apply, 0 if none since the daemon started.
# TYPE edgefw_policy_last_apply_success_timestamp_seconds gauge
edgefw_policy_last_apply_success_timestamp_seconds 1.7672258e+09
`, runtime.Version())
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

// TestMetricsBeforeAnyApply checks that every series exists from the start,
// so alerts on increase() and on the timestamp see a defined value.
func TestMetricsBeforeAnyApply(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	NewMetrics(reg, "dev", "unknown")
	for _, name := range []string{
		"edgefw_policy_apply_errors_total",
		"edgefw_policy_last_apply_success_timestamp_seconds",
		"edgefw_drift_repairs_total",
		"edgefw_drift_repair_failures_total",
		"edgefw_journal_entries",
		"edgefw_journal_append_errors_total",
		"edgefw_build_info",
		"edgefw_policy_apply_duration_seconds",
	} {
		if n, err := testutil.GatherAndCount(reg, name); err != nil || n != 1 {
			t.Errorf("%s: %d series, err %v; want 1", name, n, err)
		}
	}
}

// fullRegistry is what edgefwd serves: runtime, process, daemon and kernel
// metrics on one registry.
func fullRegistry() *prometheus.Registry {
	reg := NewRegistry()
	m := NewMetrics(reg, "1.2.3", "abc1234")
	m.ObserveApply(12*time.Millisecond, nil, scrapeTime)
	reg.MustRegister(NewCollector(hostKernel(), nil, fixedClock))
	return reg
}

func TestMetricsLint(t *testing.T) {
	problems, err := testutil.GatherAndLint(fullRegistry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

func TestMetricsHandler(t *testing.T) {
	notReady := errors.New("first apply has not finished")
	var readyErr error
	srv := httptest.NewServer(NewMetricsHandler(fullRegistry(), func() error { return readyErr }))
	defer srv.Close()

	get := func(method, path string) (int, http.Header, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, resp.Header, string(body)
	}

	tests := []struct {
		name       string
		method     string
		path       string
		readyErr   error
		wantStatus int
		wantBody   string // substring
	}{
		{"healthz", "GET", "/healthz", nil, 200, "ok\n"},
		{"healthz while not ready", "GET", "/healthz", notReady, 200, "ok\n"},
		{"readyz ready", "GET", "/readyz", nil, 200, "ok\n"},
		{"readyz not ready", "GET", "/readyz", notReady, 503, "not ready: first apply has not finished"},
		{"metrics", "GET", "/metrics", nil, 200, `edgefw_rule_packets_total{action="drop",direction="input",mode="enforce",rule="block-telnet"} 77`},
		{"metrics while not ready", "GET", "/metrics", notReady, 200, "edgefw_kernel_read_up"},
		{"healthz rejects POST", "POST", "/healthz", nil, 405, ""},
		{"unknown path", "GET", "/", nil, 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			readyErr = tt.readyErr
			status, header, body := get(tt.method, tt.path)
			if status != tt.wantStatus {
				t.Errorf("status %d, want %d; body:\n%s", status, tt.wantStatus, body)
			}
			if !strings.Contains(body, tt.wantBody) {
				t.Errorf("body does not contain %q:\n%s", tt.wantBody, body)
			}
			ct := header.Get("Content-Type")
			switch {
			case tt.path == "/metrics":
				// The Prometheus text exposition format, version 0.0.4.
				if !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
					t.Errorf("Content-Type %q, want the text exposition format", ct)
				}
			case status != 404 && status != 405 && ct != "text/plain; charset=utf-8":
				t.Errorf("Content-Type %q, want text/plain; charset=utf-8", ct)
			}
		})
	}
}

func TestNewMetricsHandlerNilReady(t *testing.T) {
	rec := httptest.NewRecorder()
	NewMetricsHandler(prometheus.NewRegistry(), nil).ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	if rec.Code != 200 {
		t.Errorf("/readyz without a ready func: %d, want 200", rec.Code)
	}
}

// TestPromtoolCheckMetrics runs Prometheus's own checker on what the
// handler serves. make test installs promtool; without it the test is
// skipped, or fails in CI.
func TestPromtoolCheckMetrics(t *testing.T) {
	netnstest.RequireTool(t, "promtool")
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	NewMetricsHandler(fullRegistry(), nil).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = rec.Body
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestCollectorCacheFollowsChanges scrapes one collector while rules and
// peers come and go, and compares each scrape with that of a collector
// that never scraped before: the series cached from earlier scrapes must
// be exactly those a fresh build reports.
func TestCollectorCacheFollowsChanges(t *testing.T) {
	k := hostKernel()
	cached := prometheus.NewPedanticRegistry()
	c := NewCollector(k, nil, fixedClock)
	cached.MustRegister(c)
	// The same collector, and cache, served beside a registry.
	served := WithKernelMetrics(prometheus.NewPedanticRegistry(), c)
	steps := []struct {
		name   string
		change func(k *fakeKernel)
	}{
		{"as applied", func(*fakeKernel) {}},
		{"rule added", func(k *fakeKernel) {
			k.rules = append(k.rules, nft.RuleInfo{Name: "new-rule", Direction: policy.Forward, Action: policy.Accept, Kind: nft.KindUser})
			k.counters["new-rule"] = nft.Counter{Packets: 5, Bytes: 500}
		}},
		{"rule removed", func(k *fakeKernel) {
			k.rules = slices.DeleteFunc(slices.Clone(k.rules), func(r nft.RuleInfo) bool { return r.Name == "block-telnet" })
		}},
		{"rule changed action and mode", func(k *fakeKernel) {
			k.rules = slices.Clone(k.rules)
			for i := range k.rules {
				if k.rules[i].Name == "ssh" {
					k.rules[i].Action, k.rules[i].Mode = policy.Drop, policy.Audit
				}
			}
		}},
		{"counters moved", func(k *fakeKernel) { k.counters["ssh"] = nft.Counter{Packets: 1501, Bytes: 90060} }},
		{"peer added", func(k *fakeKernel) {
			k.tunnels[1].Peers = append(k.tunnels[1].Peers, wg.PeerStatus{Name: "depot", PublicKey: "k6", Up: true, LastHandshake: scrapeTime})
		}},
		{"peer removed", func(k *fakeKernel) { k.tunnels[0].Peers = k.tunnels[0].Peers[1:] }},
		{"tunnel removed", func(k *fakeKernel) { k.tunnels = k.tunnels[1:] }},
		{"nothing applied", func(k *fakeKernel) { k.rules, k.tunnels = nil, nil }},
		{"applied again", func(k *fakeKernel) { *k = *hostKernel() }},
	}
	for _, s := range steps {
		s.change(k)
		fresh := prometheus.NewPedanticRegistry()
		fresh.MustRegister(NewCollector(k, nil, fixedClock))
		rec := httptest.NewRecorder()
		NewMetricsHandler(fresh, nil).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		want := rec.Body.String()
		if err := testutil.GatherAndCompare(cached, strings.NewReader(want)); err != nil {
			t.Errorf("%s: the cached collector differs from a fresh one: %v", s.name, err)
		}
		if got := scrapeText(t, served, ""); got != want {
			t.Errorf("%s: the cached collector served by WithKernelMetrics differs from a fresh one:\n%s", s.name, cmp.Diff(want, got))
		}
	}
}
