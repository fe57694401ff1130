package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/edgefw/edgefw/daemon"
	"github.com/edgefw/edgefw/internal/netnstest"
)

// monitoringDir holds the alert rules and the dashboard shipped for edgefw.
const monitoringDir = "../packaging/monitoring"

// metricsPolicy accepts web (8080), drops 9100 by a rule of its own, lets
// 9200 fall to the default drop, rate-limits api (6443) and declares a
// userspace tunnel whose one peer never handshakes.
const metricsPolicy = `version: 1
defaults:
  input: drop
  forward: accept
  output: accept
failsafe:
  - {protocol: tcp, port: 22}
rules:
  - name: web
    direction: input
    ports: [{protocol: tcp, port: 8080}]
    action: accept
  - name: deny-9100
    direction: input
    ports: [{protocol: tcp, port: 9100}]
    action: drop
  - name: api
    direction: input
    ports: [{protocol: tcp, port: 6443}]
    limit: {rate: 1/minute, burst: 1}
    action: accept
tunnels:
  - name: efwm0
    backend: userspace
    privateKeyFile: %s
    listenPort: 51899
    addresses: [10.99.0.1/24]
    peers:
      - name: never-peer
        publicKey: %q
        allowedIPs: [10.99.0.2/32]
`

// TestMetricsEndToEnd runs edgefwd with --metrics-address in a namespace,
// sends traffic from a second namespace, and scrapes /metrics: the
// counters of the rules the traffic hit move and no others, the scrape
// passes promtool, and every metric the alert rules and the dashboard use
// is there.
func TestMetricsEndToEnd(t *testing.T) {
	netnstest.RequireRoot(t)
	host := netnstest.New(t, "metrics")
	client := netnstest.New(t, "mcli")
	netnstest.Link(t, host, []string{"192.0.2.1/24"}, client, []string{"192.0.2.2/24"})
	for _, port := range []string{"8080", "9100", "9200", "6443"} {
		metricsServeTCP(t, host, "192.0.2.1:"+port)
	}
	keys := daemonShortDir(t, "keys")
	pol := fmt.Sprintf(metricsPolicy, filepath.Join(keys, "efwm0.key"), metricsPublicKey(t))
	p := startEdgefwdReady(t, edgefwdSetup{NS: host, Policy: pol,
		Args: []string{"--metrics-address", daemon.DefaultMetricsAddress}})
	scraper := newMetricsScraper(t, host, daemon.DefaultMetricsAddress)
	scraper.WaitUp(t, p)

	web := `edgefw_rule_packets_total{action="accept",direction="input",mode="enforce",rule="web"}`
	webBytes := `edgefw_rule_bytes_total{action="accept",direction="input",mode="enforce",rule="web"}`
	deny := `edgefw_rule_packets_total{action="drop",direction="input",mode="enforce",rule="deny-9100"}`
	dflt := `edgefw_rule_packets_total{action="drop",direction="input",mode="enforce",rule="edgefw-default-input"}`
	api := `edgefw_rule_packets_total{action="accept",direction="input",mode="enforce",rule="api"}`
	limited := `edgefw_rule_limited_packets_total{mode="enforce",rule="api"}`
	// The default drop is left out of the series that must stay put: it
	// also sees stray packets (IPv6 multicast listener reports of the new
	// link), so it is only checked to grow when the test sends to it.
	watched := []string{web, webBytes, deny, api, limited}
	dial := func(port string, timeout time.Duration) error {
		var c net.Conn
		err := client.Do(func() (err error) { c, err = net.DialTimeout("tcp", "192.0.2.1:"+port, timeout); return err })
		if err != nil {
			return err
		}
		_, err = c.Write([]byte("hello edgefw metrics\n"))
		c.Close()
		return err
	}

	s0 := scraper.Scrape(t)
	for range 3 {
		if err := dial("8080", 5*time.Second); err != nil {
			t.Fatalf("connect to the accepted port 8080: %v", err)
		}
	}
	s1 := scraper.Scrape(t)
	metricsMoved(t, "traffic to 8080", s0, s1, watched, web, webBytes)

	if err := dial("9100", 500*time.Millisecond); err == nil {
		t.Fatal("connected to port 9100, which rule deny-9100 drops")
	}
	s2 := scraper.Scrape(t)
	metricsMoved(t, "traffic to 9100", s1, s2, watched, deny)

	if err := dial("9200", 500*time.Millisecond); err == nil {
		t.Fatal("connected to port 9200, which the default policy drops")
	}
	s3 := scraper.Scrape(t)
	metricsMoved(t, "traffic to 9200", s2, s3, watched, dflt)

	// 1/minute with a burst of 1: the first SYN passes, the next ones are
	// over the limit and dropped (and a dropped SYN is retransmitted).
	for range 4 {
		_ = dial("6443", 300*time.Millisecond)
	}
	s4 := scraper.Scrape(t)
	metricsMoved(t, "traffic to 6443", s3, s4, watched, api, limited)
	t.Logf("web %v packets %v bytes, deny-9100 %v, default-input %v, api %v, api limited %v",
		s4.Value(web), s4.Value(webBytes), s4.Value(deny), s4.Value(dflt), s4.Value(api), s4.Value(limited))

	for series, want := range map[string]float64{
		`edgefw_kernel_read_up{part="nftables"}`:                                                      1,
		`edgefw_kernel_read_up{part="wireguard"}`:                                                     1,
		`edgefw_rule_counters_missing`:                                                                0,
		`edgefw_wireguard_peer_up{interface="efwm0",peer="never-peer"}`:                               0,
		`edgefw_wireguard_peer_last_handshake_timestamp_seconds{interface="efwm0",peer="never-peer"}`: 0,
		`edgefw_policy_apply_errors_total`:                                                            0,
	} {
		if got, ok := s4.Lookup(series); !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	if n := s4.Value("edgefw_policy_apply_duration_seconds_count"); n < 1 {
		t.Errorf("edgefw_policy_apply_duration_seconds_count = %v, want the start's apply observed", n)
	}
	if ts := s4.Value("edgefw_policy_last_apply_success_timestamp_seconds"); ts < float64(p.Started.Unix()) {
		t.Errorf("edgefw_policy_last_apply_success_timestamp_seconds = %v, want the start's apply (after %d)", ts, p.Started.Unix())
	}

	metricsPromtool(t, s4.Raw)

	names := metricsMonitoringNames(t)
	var missing []string
	for _, n := range names {
		if !s4.HasFamily(n) {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		t.Errorf("metrics the alert rules or the dashboard use are absent from the scrape: %s", strings.Join(missing, ", "))
	}
	t.Logf("all %d metric names of %s present in the live scrape", len(names), monitoringDir)
}

// TestMetricsScrapeLatency measures (and logs, without asserting) the
// median time to scrape /metrics with a small policy, with 1,000 rules,
// and with 1,000 rules and a tunnel of 100 peers.
func TestMetricsScrapeLatency(t *testing.T) {
	netnstest.RequireRoot(t)
	for _, tc := range []struct {
		name         string
		rules, peers int
	}{
		{"3 rules", 3, 0},
		{"1000 rules", 1000, 0},
		{"1000 rules, 100 peers", 1000, 100},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			ns := netnstest.New(t, "mlat")
			keys := daemonShortDir(t, "keys")
			pol := metricsGeneratedPolicy(t, tc.rules, tc.peers, filepath.Join(keys, "efwm1.key"))
			p := startEdgefwdReady(t, edgefwdSetup{NS: ns, Policy: pol,
				Args: []string{"--metrics-address", daemon.DefaultMetricsAddress}})
			scraper := newMetricsScraper(t, ns, daemon.DefaultMetricsAddress)
			scraper.WaitUp(t, p)

			// Timed: the HTTP GET as Prometheus does it (gzip, kept-alive
			// connection), not the parsing, which is the test's own cost.
			const scrapes = 21
			took := make([]time.Duration, 0, scrapes)
			for range scrapes {
				start := time.Now()
				code, _, body, err := scraper.Get("/metrics")
				took = append(took, time.Since(start))
				if err != nil || code != http.StatusOK {
					t.Fatalf("GET /metrics: %d %v\n%s", code, err, body)
				}
			}
			slices.Sort(took)
			last := scraper.Scrape(t)
			series := len(last.Family("edgefw_rule_packets_total").GetMetric())
			peers := len(last.Family("edgefw_wireguard_peer_up").GetMetric())
			if series < tc.rules || peers != tc.peers {
				t.Errorf("scrape has %d rule series and %d peers, want ≥ %d and %d", series, peers, tc.rules, tc.peers)
			}
			t.Logf("%s: median scrape %s (min %s, max %s) over %d scrapes; %d bytes, %d rule series, %d peers; nftables read %vs, wireguard read %vs",
				tc.name, took[scrapes/2], took[0], took[scrapes-1], scrapes, len(last.Raw), series, peers,
				last.Value(`edgefw_kernel_read_duration_seconds{part="nftables"}`),
				last.Value(`edgefw_kernel_read_duration_seconds{part="wireguard"}`))
		})
	}
}

// metricsGeneratedPolicy is a policy with n accept rules on distinct ports
// and, when peers > 0, a userspace tunnel with that many peers.
func metricsGeneratedPolicy(t *testing.T, n, peers int, keyFile string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("version: 1\ndefaults: {input: drop, forward: accept, output: accept}\nrules:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - {name: svc-%d, direction: input, ports: [{protocol: tcp, port: %d}], action: accept}\n", i, 20000+i)
	}
	if peers > 0 {
		fmt.Fprintf(&b, "tunnels:\n  - name: efwm1\n    backend: userspace\n    privateKeyFile: %s\n    listenPort: 51898\n    addresses: [10.98.0.1/16]\n    peers:\n", keyFile)
		for i := range peers {
			fmt.Fprintf(&b, "      - {name: peer-%d, publicKey: %q, allowedIPs: [10.98.%d.%d/32]}\n", i, metricsPublicKey(t), 1+i/200, 1+i%200)
		}
	}
	return b.String()
}

// metricsPublicKey is the public key of a fresh private key.
func metricsPublicKey(t *testing.T) string {
	t.Helper()
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k.PublicKey().String()
}

// metricsServeTCP accepts and drains connections on addr inside ns until
// the test ends.
func metricsServeTCP(t *testing.T, ns *netnstest.NS, addr string) {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_, _ = io.Copy(io.Discard, c)
				c.Close()
			}()
		}
	}()
}

// metricsScraper fetches an address inside a namespace: its connections
// are dialled from a thread in the namespace, so the socket lives there
// and the test process needs neither curl nor a re-exec.
type metricsScraper struct {
	url    string
	client *http.Client
}

func newMetricsScraper(t *testing.T, ns *netnstest.NS, addr string) *metricsScraper {
	t.Helper()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := ns.Do(func() (err error) { c, err = (&net.Dialer{}).DialContext(ctx, network, addr); return err })
			return c, err
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &metricsScraper{url: "http://" + addr, client: &http.Client{Transport: tr, Timeout: 15 * time.Second}}
}

// Get fetches a path and returns the status and body.
func (s *metricsScraper) Get(path string) (int, http.Header, []byte, error) {
	resp, err := s.client.Get(s.url + path)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body, err
}

// WaitUp waits until /readyz answers 200.
func (s *metricsScraper) WaitUp(t *testing.T, p *edgefwdProcess) {
	t.Helper()
	daemonPoll(t, daemonReadyTimeout, "/readyz to answer 200", func() (bool, string) {
		code, _, body, err := s.Get("/readyz")
		return err == nil && code == http.StatusOK, fmt.Sprintf("%d %s %v\n%s", code, body, err, p.Log())
	})
	if code, _, body, err := s.Get("/healthz"); err != nil || code != http.StatusOK {
		t.Fatalf("/healthz: %d %s %v", code, body, err)
	}
}

// Scrape fetches and parses /metrics.
func (s *metricsScraper) Scrape(t *testing.T) *metricsScrape {
	t.Helper()
	code, header, body, err := s.Get("/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v\n%s", code, err, body)
	}
	if ct := header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("/metrics Content-Type %q, want the text exposition format", ct)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, body)
	}
	sc := &metricsScrape{Raw: body, families: families, series: map[string]float64{}}
	for name, mf := range families {
		for _, m := range mf.GetMetric() {
			var v float64
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				v = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				v = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				sc.series[metricsSeriesKey(name+"_count", m.GetLabel())] = float64(m.GetHistogram().GetSampleCount())
				continue
			default:
				v = m.GetUntyped().GetValue()
			}
			sc.series[metricsSeriesKey(name, m.GetLabel())] = v
		}
	}
	return sc
}

// metricsScrape is one parsed scrape. Series are keyed as the text format
// writes them: name{label="value",…} with labels sorted by name.
type metricsScrape struct {
	Raw      []byte
	families map[string]*dto.MetricFamily
	series   map[string]float64
}

func metricsSeriesKey(name string, labels []*dto.LabelPair) string {
	if len(labels) == 0 {
		return name
	}
	parts := make([]string, 0, len(labels))
	for _, l := range labels {
		parts = append(parts, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
	}
	sort.Strings(parts)
	return name + "{" + strings.Join(parts, ",") + "}"
}

// Lookup returns a series' value and whether the scrape has it.
func (s *metricsScrape) Lookup(series string) (float64, bool) {
	v, ok := s.series[series]
	return v, ok
}

// Value returns a series' value, 0 if absent.
func (s *metricsScrape) Value(series string) float64 { return s.series[series] }

// Family returns a metric family, nil if absent.
func (s *metricsScrape) Family(name string) *dto.MetricFamily { return s.families[name] }

// HasFamily reports whether the scrape has the family with at least one series.
func (s *metricsScrape) HasFamily(name string) bool {
	mf := s.families[name]
	return mf != nil && len(mf.GetMetric()) > 0
}

// metricsMoved checks that between two scrapes the series in moved grew
// and the other watched series did not change.
func metricsMoved(t *testing.T, what string, before, after *metricsScrape, watched []string, moved ...string) {
	t.Helper()
	all := slices.Clone(watched)
	for _, m := range moved {
		if !slices.Contains(all, m) {
			all = append(all, m)
		}
	}
	for _, series := range all {
		b, okB := before.Lookup(series)
		a, okA := after.Lookup(series)
		if !okA {
			t.Errorf("after %s: no series %s", what, series)
			continue
		}
		switch {
		case slices.Contains(moved, series):
			if a <= b {
				t.Errorf("after %s: %s = %v, was %v (present %v): want it to grow", what, series, a, b, okB)
			}
		case a != b:
			t.Errorf("after %s: %s = %v, was %v: want it unchanged", what, series, a, b)
		}
	}
}

// metricsPromtool runs `promtool check metrics` on a scrape.
func metricsPromtool(t *testing.T, scrape []byte) {
	t.Helper()
	netnstest.RequireTool(t, "promtool")
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(scrape)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics on the live scrape: %v\n%s", err, out)
	}
}

// metricsMonitoringNames lists the edgefw metric families the alert rules
// and the dashboard use, as `check.sh --list-names` prints them (histogram
// series folded into their family).
func metricsMonitoringNames(t *testing.T) []string {
	t.Helper()
	netnstest.RequireTool(t, "bash", "python3")
	check := filepath.Join(monitoringDir, "check.sh")
	out, err := exec.Command("bash", check, "--list-names").Output()
	if err != nil {
		t.Fatalf("%s --list-names: %v", check, err)
	}
	names := strings.Fields(string(out))
	if len(names) == 0 {
		t.Fatalf("%s --list-names printed no names", check)
	}
	return names
}
