package integration

// The fleet metrics chain against real components: edgefwd in a namespace,
// Prometheus (Debian's 2.42) in agent mode with deploy/prometheus-agent's
// configuration, remote-writing into VictoriaMetrics (Debian's 1.79); the
// dashboard's and the alert rules' queries are run against the store.

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/edgefw/edgefw/daemon"
	"github.com/edgefw/edgefw/internal/netnstest"
	"github.com/edgefw/edgefw/wg"
)

// agentConfigPath is the example agent configuration the test runs as is,
// but for the scrape target, the store's address and file paths.
const agentConfigPath = "../deploy/prometheus-agent/prometheus.yml"

// Loopback addresses inside the host's namespace (private to the test, so
// fixed ports cannot collide): two stores, the budgeted one the deploy
// configuration writes to and a raw one fed without relabelling (the
// "before" of the budget), and the two agents' web ports.
const (
	fleetStoreAddr    = "127.0.0.1:18428"
	fleetRawStoreAddr = "127.0.0.1:18429"
	fleetAgentAddr    = "127.0.0.1:19090"
	fleetRawAgentAddr = "127.0.0.1:19091"
	fleetChainTimeout = 3 * time.Minute
	fleetHosts        = 10000 // the fleet the cost is extrapolated to
)

// fleetHostPolicy: accepted web (8080) and a rate-limited api (6443), a
// deny rule (9100), the default drop (9200 and anything else), an audit
// rule with a limit (9300), and a tunnel with two peers: the cluster
// gateway, which handshakes, and one that never does.
const fleetHostPolicy = `version: 1
defaults: {input: drop, forward: accept, output: accept}
rules:
  - {name: web, direction: input, ports: [{protocol: tcp, port: 8080}], action: accept}
  - {name: deny-9100, direction: input, ports: [{protocol: tcp, port: 9100}], action: drop}
  - name: api
    direction: input
    ports: [{protocol: tcp, port: 6443}]
    limit: {rate: 1/minute, burst: 1}
    action: accept
  - name: watch-9300
    direction: input
    ports: [{protocol: tcp, port: 9300}]
    limit: {rate: 1/minute, burst: 1}
    action: drop
    mode: audit
tunnels:
  - name: %s
    backend: userspace
    privateKeyFile: %s
    listenPort: 51820
    addresses: [10.97.0.1/24]
    peers:
      - {name: cluster-gw, publicKey: %q, endpoint: "192.0.2.2:51821", allowedIPs: [10.97.0.2/32], persistentKeepalive: 5s}
      - {name: never-peer, publicKey: %q, allowedIPs: [10.97.0.3/32]}
`

// fleetGatewayPolicy is the cluster gateway's side of the tunnel.
const fleetGatewayPolicy = `version: 1
tunnels:
  - name: %s
    backend: userspace
    privateKeyFile: %s
    listenPort: 51821
    addresses: [10.97.0.2/24]
    peers:
      - {name: site, publicKey: %q, endpoint: "192.0.2.1:51820", allowedIPs: [10.97.0.1/32]}
`

// fleetQuietAlerts are the alerts whose expression is non-empty only while
// they fire, which this lab cannot make them do in the minutes it runs.
// For each, parts of its expression (each found verbatim in it) must
// return data instead: the series and functions the alert stands on are
// in the store. The other alerts' expressions must return data as they
// are: the lab makes them fire (a peer that never handshakes, half the
// site's peers down, a policy that fails to apply, a drift repair).
var fleetQuietAlerts = map[string]struct {
	why   string
	parts []string
}{
	"EdgefwDeniedTrafficSpike": {"it compares the 5-minute rate with the 1-day rate, which minutes of history make equal",
		[]string{`rate(edgefw_rule_packets_total{action=~"drop|reject",mode!="audit"}[5m])`, `rate(edgefw_rule_packets_total{action=~"drop|reject",mode!="audit"}[1d])`}},
	"EdgefwAllowedTrafficSurge": {"it judges only series with a day of history (offset 1d)",
		[]string{`rate(edgefw_rule_bytes_total{action="accept"}[10m])`, `rate(edgefw_rule_bytes_total{action="accept"}[1d])`}},
	"EdgefwPolicyApplyStuck": {"it needs the last successful apply to be over an hour old",
		[]string{`time() - edgefw_policy_last_apply_success_timestamp_seconds`, `increase(edgefw_policy_apply_errors_total[1h])`}},
	"EdgefwDriftRepairFailing": {"it needs the kernel to refuse a repair",
		[]string{`increase(edgefw_drift_repair_failures_total[15m])`}},
	"EdgefwMetricsTargetDown": {"it needs edgefwd unreachable while its agent runs",
		[]string{`up{job="edgefw"}`}},
	"EdgefwMetricsTargetMissing": {"absent() is non-empty only without any target, the opposite of this lab",
		[]string{`up{job="edgefw"}`}},
	"EdgefwKernelReadFailing": {"it needs a kernel read to fail",
		[]string{`edgefw_kernel_read_up`}},
	"EdgefwHostStoppedReporting": {"it needs a host whose series stopped arriving",
		[]string{`max_over_time(edgefw_build_info[1d])`}},
}

// TestFleetMetricsThroughAgentToVictoriaMetrics runs the fleet chain for
// real: edgefwd (with a tunnel whose gateway handshakes) in a namespace,
// allowed, denied and audited traffic, a drift repair and a failed apply;
// Prometheus in agent mode with deploy/prometheus-agent/prometheus.yml
// remote-writing into VictoriaMetrics. Then every query of the dashboard
// (and of its variables) and every alert expression returns data for the
// lab host from the store (see fleetQuietAlerts for the alerts that only
// return data while firing). A second agent without the relabelling, into
// a second store, gives the budget's "before"; series and samples per host
// before and after, and what 10,000 hosts would cost the store, are logged.
func TestFleetMetricsThroughAgentToVictoriaMetrics(t *testing.T) {
	netnstest.RequireRoot(t)
	netnstest.RequireTool(t, "prometheus", "victoria-metrics", "nft", "wg")
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		netnstest.Unavailable(t, "userspace WireGuard needs /dev/net/tun: %v", err)
	}
	host := netnstest.New(t, "fleet")
	gw := netnstest.New(t, "fleetgw")
	netnstest.Link(t, host, []string{"192.0.2.1/24"}, gw, []string{"192.0.2.2/24"})
	for _, port := range []string{"8080", "9100", "9200", "6443", "9300"} {
		metricsServeTCP(t, host, "192.0.2.1:"+port)
	}

	keys := daemonShortDir(t, "keys")
	hostIf, gwIf := tunIfName("fh"), tunIfName("fg")
	hostPub := fleetKey(t, filepath.Join(keys, "host.key"))
	gwPub := fleetKey(t, filepath.Join(keys, "gw.key"))
	hostPolicy := fmt.Sprintf(fleetHostPolicy, hostIf, filepath.Join(keys, "host.key"), gwPub, metricsPublicKey(t))
	startEdgefwdReady(t, edgefwdSetup{NS: gw, Policy: fmt.Sprintf(fleetGatewayPolicy, gwIf, filepath.Join(keys, "gw.key"), hostPub)})
	p := startEdgefwdReady(t, edgefwdSetup{NS: host, Policy: hostPolicy,
		Args: []string{"--metrics-address", daemon.DefaultMetricsAddress}})
	edgefwd := newMetricsScraper(t, host, daemon.DefaultMetricsAddress)
	edgefwd.WaitUp(t, p)
	tunWaitHandshake(t, host, hostIf, gwPub, 0, tunHandshakeWait)

	store := fleetStartStore(t, host, fleetStoreAddr)
	rawStore := fleetStartStore(t, host, fleetRawStoreAddr)
	cfg := fleetAgentConfig(t)
	fleetStartAgent(t, host, fleetAgentAddr, cfg.forLab(t, daemon.DefaultMetricsAddress, fleetStoreAddr, true))
	fleetStartAgent(t, host, fleetRawAgentAddr, cfg.forLab(t, daemon.DefaultMetricsAddress, fleetRawStoreAddr, false))
	up := fmt.Sprintf(`count_over_time(up{job="edgefw",site=%q,instance=%q}[1h])`, cfg.site, cfg.instance)

	fleetTraffic(t, gw)
	scrapes := fleetWaitValue(t, store, up, 1)
	fleetWaitValue(t, rawStore, up, 1)

	// Events for the apply and drift panels, annotations and alerts.
	host.MustRun(t, "nft", "delete", "table", "inet", "edgefw")
	fleetWaitMetric(t, edgefwd, "edgefw_drift_repairs_total", 1)
	daemonWriteAtomic(t, p.PolicyPath, "version: 1\nno-such-field: true\n")
	fleetWaitMetric(t, edgefwd, "edgefw_policy_apply_errors_total", 1)
	success := edgefwd.Scrape(t).Value("edgefw_policy_last_apply_success_timestamp_seconds")
	daemonWriteAtomic(t, p.PolicyPath, hostPolicy)
	fleetWaitMetric(t, edgefwd, "edgefw_policy_last_apply_success_timestamp_seconds", success+0.001)
	fleetTraffic(t, gw)
	// Two more scrapes: one sees the events, the next gives rates a second
	// point after them.
	fleetWaitValue(t, store, up, scrapes+2)
	fleetWaitValue(t, rawStore, up, scrapes+2)

	fleetCheckDashboard(t, store, cfg)
	fleetCheckAlerts(t, store)
	fleetCheckBudget(t, store, rawStore, cfg)
	fleetCheckKeptDropped(t, store, rawStore)
}

// fleetKey writes a private key file and returns its public key.
func fleetKey(t *testing.T, path string) string {
	t.Helper()
	pub, err := wg.GenerateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// fleetTraffic connects from gw to each port of the host's policy: web and
// the first api connection are accepted, the rest dropped (by deny-9100,
// the api limit and the default policy); watch-9300 counts what it would
// drop, and the default policy drops it.
func fleetTraffic(t *testing.T, gw *netnstest.NS) {
	t.Helper()
	dial := func(port string, timeout time.Duration) error {
		var c net.Conn
		err := gw.Do(func() (err error) { c, err = net.DialTimeout("tcp", "192.0.2.1:"+port, timeout); return err })
		if err == nil {
			_, err = c.Write([]byte("edgefw fleet metrics\n"))
			c.Close()
		}
		return err
	}
	for range 3 {
		if err := dial("8080", 5*time.Second); err != nil {
			t.Fatalf("connect to the accepted port 8080: %v", err)
		}
	}
	for _, port := range []string{"9100", "9200", "9300", "6443", "6443", "6443"} {
		_ = dial(port, 300*time.Millisecond)
	}
}

// fleetWaitMetric waits until edgefwd's series is at least min.
func fleetWaitMetric(t *testing.T, edgefwd *metricsScraper, series string, min float64) {
	t.Helper()
	daemonPoll(t, daemonReadyTimeout, fmt.Sprintf("%s ≥ %v", series, min), func() (bool, string) {
		v := edgefwd.Scrape(t).Value(series)
		return v >= min, fmt.Sprintf("%s = %v", series, v)
	})
}

// fleetDashboardVars replaces Grafana's variables as Grafana would for the
// lab host: one site, one host, the job, and $__rate_interval as 4 scrape
// intervals.
func fleetDashboardVars(cfg *fleetAgentConfigFile) *strings.Replacer {
	return strings.NewReplacer(
		"$site", regexp.QuoteMeta(cfg.site), "$instance", regexp.QuoteMeta(cfg.instance), "$job", "edgefw",
		"$__rate_interval", (4 * cfg.interval).String(), "$__interval", cfg.interval.String(), "$__range", "1h")
}

// fleetCheckDashboard runs every query of the dashboard: its panels',
// its annotations' and its variables' (label_values(SELECTOR, LABEL) as
// count by (LABEL) (SELECTOR)), and wants data for the lab host.
func fleetCheckDashboard(t *testing.T, store *metricsScraper, cfg *fleetAgentConfigFile) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(monitoringDir, "edgefw-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels      []fleetPanel
		Annotations struct{ List []struct{ Name, Expr string } }
		Templating  struct {
			List []struct{ Name, Type, Query string }
		}
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	type query struct{ where, expr string }
	var queries []query
	var walk func([]fleetPanel)
	walk = func(ps []fleetPanel) {
		for _, p := range ps {
			for _, q := range p.Targets {
				queries = append(queries, query{fmt.Sprintf("panel %d %q %s", p.ID, p.Title, q.RefID), q.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	for _, a := range dash.Annotations.List {
		if a.Expr != "" {
			queries = append(queries, query{fmt.Sprintf("annotation %q", a.Name), a.Expr})
		}
	}
	labelValues := regexp.MustCompile(`^label_values\((.+), *([a-z_]+)\)$`)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(v.Query)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(SELECTOR, LABEL)", v.Name, v.Query)
			continue
		}
		queries = append(queries, query{"variable " + v.Name, fmt.Sprintf("count by (%s) (%s)", m[2], m[1])})
	}
	vars := fleetDashboardVars(cfg)
	for _, q := range queries {
		expr := vars.Replace(q.expr)
		res, err := fleetQuery(store, expr)
		switch {
		case err != nil:
			t.Errorf("dashboard %s: %v", q.where, err)
		case len(res) == 0:
			t.Errorf("dashboard %s: no data from the store for %s", q.where, expr)
		default:
			t.Logf("dashboard %s: %d series, e.g. %v = %v", q.where, len(res), res[0].Metric, res[0].Value)
		}
	}
	if len(queries) < 30 {
		t.Errorf("found %d dashboard queries, want them all (over 30)", len(queries))
	}
}

type fleetPanel struct {
	ID      int
	Title   string
	Targets []struct{ RefID, Expr string }
	Panels  []fleetPanel
}

// fleetCheckAlerts evaluates every alert expression of the rules on the
// store: non-empty as it is, or, for fleetQuietAlerts, each listed part of
// it non-empty.
func fleetCheckAlerts(t *testing.T, store *metricsScraper) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(monitoringDir, "edgefw-rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct{ Alert, Expr string }
		}
	}
	if err := yaml.Unmarshal(data, &rules); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			seen[r.Alert] = true
			res, err := fleetQuery(store, r.Expr)
			if err != nil {
				t.Errorf("alert %s: %v", r.Alert, err)
				continue
			}
			quiet, isQuiet := fleetQuietAlerts[r.Alert]
			if !isQuiet {
				if len(res) == 0 {
					t.Errorf("alert %s: its expression returns no data from the store; if it can only while firing, add it to fleetQuietAlerts with why:\n%s", r.Alert, r.Expr)
				} else {
					t.Logf("alert %s: fires in the lab, %d series, e.g. %v", r.Alert, len(res), res[0].Metric)
				}
				continue
			}
			t.Logf("alert %s: %d series as it is (%s); checking its parts", r.Alert, len(res), quiet.why)
			for _, part := range quiet.parts {
				if !strings.Contains(r.Expr, part) {
					t.Errorf("alert %s: %s is not part of its expression any more:\n%s", r.Alert, part, r.Expr)
					continue
				}
				if res, err := fleetQuery(store, part); err != nil || len(res) == 0 {
					t.Errorf("alert %s: its part %s returns no data from the store (%v)", r.Alert, part, err)
				}
			}
		}
	}
	for name := range fleetQuietAlerts {
		if !seen[name] {
			t.Errorf("fleetQuietAlerts names %s, which the rules no longer have", name)
		}
	}
}

// fleetCheckBudget counts the lab host's series in both stores (raw:
// without the relabelling; budgeted: with it), logs the cost per host and
// for a fleet, and checks that the budget is smaller and within the
// sample limit.
func fleetCheckBudget(t *testing.T, store, rawStore *metricsScraper, cfg *fleetAgentConfigFile) {
	t.Helper()
	host := fmt.Sprintf(`{site=%q,instance=%q}`, cfg.site, cfg.instance)
	families := func(s *metricsScraper) map[string]int {
		res, err := fleetQuery(s, "count by (__name__) ("+host+")")
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, r := range res {
			out[r.Metric["__name__"]] = int(r.Value)
		}
		return out
	}
	total := func(f map[string]int) (n int) {
		for _, c := range f {
			n += c
		}
		return n
	}
	raw, kept := families(rawStore), families(store)
	before, after := total(raw), total(kept)
	var dropped []string
	for name, n := range raw {
		if kept[name] != n {
			dropped = append(dropped, fmt.Sprintf("%s %d→%d", name, n, kept[name]))
		}
	}
	sort.Strings(dropped)
	t.Logf("series per host: %d before the relabelling, %d after (%d families before, %d after); changed: %s",
		before, after, len(raw), len(kept), strings.Join(dropped, ", "))

	// Samples per scrape, as the store received them over the whole run.
	perScrape := func(s *metricsScraper) float64 {
		return fleetValue(t, s, fmt.Sprintf(`sum(count_over_time(%s[1h])) / max(count_over_time(up%s[1h]))`, host, host))
	}
	sec := cfg.interval.Seconds()
	pb, pa := perScrape(rawStore), perScrape(store)
	t.Logf("samples per host at the %s scrape interval: %.1f/s before, %.2f/s after (%.0f and %.0f per scrape)", cfg.interval, pb/sec, pa/sec, pb, pa)
	t.Logf("a fleet of %d such hosts costs the store %d series and %.0f samples/s before, %d series and %.0f samples/s after",
		fleetHosts, fleetHosts*before, fleetHosts*pb/sec, fleetHosts*after, fleetHosts*pa/sec)

	if after >= before || after > cfg.sampleLimit {
		t.Errorf("budget: %d series after the relabelling, %d before, sample_limit %d: want fewer after, and within the limit", after, before, cfg.sampleLimit)
	}
}

// fleetCheckKeptDropped checks what the budget keeps (in the store) and
// what it drops (in the raw store only).
func fleetCheckKeptDropped(t *testing.T, store, rawStore *metricsScraper) {
	t.Helper()
	for _, expr := range []string{
		`edgefw_rule_packets_total{rule="deny-9100",action="drop"}`,
		`edgefw_rule_packets_total{rule="edgefw-default-input",action="drop"}`,
		`edgefw_rule_packets_total{rule="watch-9300",mode="audit"}`,
		`edgefw_rule_bytes_total{rule=~"edgefw-established-.*",action="accept"}`,
		`edgefw_rule_bytes_total{rule="edgefw-failsafe"}`,
		`edgefw_rule_bytes_total{rule=~"edgefw-tunnel-.*"}`,
		`edgefw_rule_packets_total{rule=~"edgefw-invalid-.*",action="drop"}`,
		`edgefw_rule_packets_total{rule="edgefw-default-output",action="accept"}`,
		`edgefw_rule_limited_packets_total{rule="api"}`,
		`edgefw_wireguard_peer_up{peer="cluster-gw"}`,
		`edgefw_wireguard_peer_last_handshake_timestamp_seconds{peer="cluster-gw"} > 0`,
		`edgefw_policy_apply_duration_seconds_count`,
		`scrape_samples_post_metric_relabeling`,
	} {
		if res, err := fleetQuery(store, expr); err != nil || len(res) == 0 {
			t.Errorf("budget: %s is not in the store (%v)", expr, err)
		}
	}
	for _, expr := range []string{
		`edgefw_rule_packets_total{action="accept",rule!~"edgefw-.*"}`,
		`edgefw_rule_bytes_total{action="accept",rule!~"edgefw-.*"}`,
		`edgefw_rule_packets_total{rule=~"edgefw-(loopback|icmpv6-nd|icmp-errors)-.*"}`,
		`edgefw_wireguard_peer_receive_bytes_total`,
		`edgefw_policy_apply_duration_seconds_bucket`,
		`{__name__=~"go_.*"}`,
	} {
		if res, err := fleetQuery(rawStore, expr); err != nil || len(res) == 0 {
			t.Errorf("budget: %s is not in the raw store, so its absence proves nothing (%v)", expr, err)
		}
		if res, err := fleetQuery(store, expr); err != nil || len(res) != 0 {
			t.Errorf("budget: %s reached the store, want it relabelled away (%v): %v", expr, err, res)
		}
	}
	// The relabelling's own mark never leaves the agent.
	if res, err := fleetQuery(store, `{__tmp_edgefw_keep!=""}`); err != nil || len(res) != 0 {
		t.Errorf("budget: series with the relabelling's mark label reached the store (%v): %v", err, res)
	}
}
