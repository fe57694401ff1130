package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgefw/edgefw/daemon"
	"github.com/edgefw/edgefw/internal/netnstest"
)

// dropsPolicy drops and logs 9100 and 9200 (deny-scan) and 9300
// (deny-other); the default input drop logs too.
const dropsPolicy = `version: 1
defaults:
  input: drop
  forward: accept
  output: accept
failsafe:
  - {protocol: tcp, port: 22}
rules:
  - name: deny-scan
    direction: input
    ports: [{protocol: tcp, port: 9100}, {protocol: tcp, port: 9200}]
    action: drop
    log: true
  - name: deny-other
    direction: input
    ports: [{protocol: tcp, port: 9300}]
    action: drop
    log: true
`

// dropsSYN sends one TCP SYN from src to 192.0.2.1:port in ns: the port
// is dropped, and the dial gives up before the SYN's first retransmission
// (1 s), so exactly one packet reaches the rule.
func dropsSYN(t *testing.T, ns *netnstest.NS, src string, port int) {
	t.Helper()
	err := ns.Do(func() error {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 300 * time.Millisecond}
		c, err := d.Dial("tcp", fmt.Sprintf("192.0.2.1:%d", port))
		if err == nil {
			c.Close()
			return fmt.Errorf("connected to dropped port %d", port)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// dropsView runs `edgefwctl drops -o json` with args and decodes it.
func dropsView(t *testing.T, p *edgefwdProcess, args ...string) daemon.DropsView {
	t.Helper()
	out := p.MustCtl(t, append([]string{"drops", "-o", "json"}, args...)...)
	var v daemon.DropsView
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("drops -o json: %v\n%s", err, out)
	}
	return v
}

func dropsRule(v daemon.DropsView, rule string) (daemon.RuleDrops, bool) {
	i := slices.IndexFunc(v.Rules, func(r daemon.RuleDrops) bool { return r.Rule == rule })
	if i < 0 {
		return daemon.RuleDrops{}, false
	}
	return v.Rules[i], true
}

// dropsFlows renders a rule's flows as "source proto/port count".
func dropsFlows(r daemon.RuleDrops) []string {
	var out []string
	for _, f := range r.TopFlows {
		out = append(out, fmt.Sprintf("%s %s/%d %d", f.Source, f.Protocol, f.Port, f.Count))
	}
	slices.Sort(out)
	return out
}

// nftCounter reads a counter of table inet edgefw with `nft -j`.
func nftCounter(t *testing.T, p *edgefwdProcess, name string) uint64 {
	t.Helper()
	var doc struct {
		Nftables []struct {
			Counter *struct {
				Name    string `json:"name"`
				Table   string `json:"table"`
				Packets uint64 `json:"packets"`
			} `json:"counter"`
		} `json:"nftables"`
	}
	out := p.Nft(t, "-j", "list", "counters", "table", "inet", "edgefw")
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("nft -j list counters: %v\n%s", err, out)
	}
	for _, o := range doc.Nftables {
		if o.Counter != nil && o.Counter.Table == "edgefw" && o.Counter.Name == name {
			return o.Counter.Packets
		}
	}
	t.Fatalf("no counter %q in:\n%s", name, out)
	return 0
}

// TestDropsEndToEnd sends SYNs from two sources to two ports of a log:
// true drop rule and checks `edgefwctl drops -o json`: each (source,
// port) under the rule with its count, the rule's total equal to its
// kernel counter, every packet logged (share 1); --rule shows one rule;
// --since leaves out what is older; after a restart of edgefwd the view
// is the same.
func TestDropsEndToEnd(t *testing.T) {
	netnstest.RequireRoot(t)
	netnstest.RequireTool(t, "nft")
	host := netnstest.New(t, "drops")
	client := netnstest.New(t, "dcli")
	netnstest.Link(t, host, []string{"192.0.2.1/24"}, client, []string{"192.0.2.2/24", "192.0.2.3/24"})
	p := startEdgefwdReady(t, edgefwdSetup{NS: host, Policy: dropsPolicy, Args: []string{"--log-format", "json"}})

	sent := map[string]int{"192.0.2.2 tcp/9100": 3, "192.0.2.2 tcp/9200": 2, "192.0.2.3 tcp/9100": 1, "192.0.2.3 tcp/9200": 2}
	for flow, n := range sent {
		src, port := "", 0
		fmt.Sscanf(flow, "%s tcp/%d", &src, &port)
		for range n {
			dropsSYN(t, client, src, port)
		}
	}
	dropsSYN(t, client, "192.0.2.2", 9300)
	want := []string{"192.0.2.2 tcp/9100 3", "192.0.2.2 tcp/9200 2", "192.0.2.3 tcp/9100 1", "192.0.2.3 tcp/9200 2"}

	var scan daemon.RuleDrops
	daemonPoll(t, daemonReadyTimeout, "the 8 logged packets of deny-scan", func() (bool, string) {
		scan, _ = dropsRule(dropsView(t, p, "--since", "1h"), "deny-scan")
		return scan.Sampled == 8, fmt.Sprintf("%+v", scan)
	})
	if got := dropsFlows(scan); !slices.Equal(got, want) {
		t.Errorf("deny-scan flows %q, want %q", got, want)
	}
	if counter := nftCounter(t, p, "deny-scan"); scan.Packets != counter || counter != 8 {
		t.Errorf("deny-scan: %d packets in drops, %d in its kernel counter; want both 8", scan.Packets, counter)
	}
	if scan.Share == nil || *scan.Share != 1 || scan.Direction != "input" || scan.Action != "drop" {
		t.Errorf("deny-scan: share %v, %s %s; want 1, input drop", scan.Share, scan.Direction, scan.Action)
	}
	if v := dropsView(t, p, "--since", "1h", "--rule", "deny-other"); len(v.Rules) != 1 || v.Rules[0].Rule != "deny-other" || v.Rules[0].Packets != 1 {
		t.Errorf("--rule deny-other: %+v; want deny-other alone with its packet", v.Rules)
	}
	if out := p.MustCtl(t, "status"); !strings.Contains(out, "denied in the last 24h") || !strings.Contains(out, "192.0.2.2") {
		t.Errorf("status does not show the denied flows:\n%s", out)
	}

	// --since 10s covers at most the last 20 s (10-second buckets): what
	// was sent 25 s ago is left out, a packet sent now is in.
	time.Sleep(25 * time.Second)
	dropsView(t, p, "--rule", "deny-other") // its counter read just before the packet
	dropsSYN(t, client, "192.0.2.3", 9300)
	daemonPoll(t, daemonReadyTimeout, "the new packet of deny-other in --since 10s", func() (bool, string) {
		v := dropsView(t, p, "--since", "10s")
		other, _ := dropsRule(v, "deny-other")
		_, hasScan := dropsRule(v, "deny-scan")
		return other.Sampled == 1 && other.Packets == 1 && !hasScan &&
			slices.Equal(dropsFlows(other), []string{"192.0.2.3 tcp/9300 1"}), fmt.Sprintf("%+v", v)
	})
	if other, _ := dropsRule(dropsView(t, p, "--since", "1h"), "deny-other"); other.Packets != 2 || other.Sampled != 2 {
		t.Errorf("deny-other in the last hour: %d packets, %d logged; want 2 and 2", other.Packets, other.Sampled)
	}

	p.Signal(t, syscall.SIGTERM)
	if code := p.WaitExit(t); code != 0 {
		t.Fatalf("edgefwd exited %d", code)
	}
	p = startEdgefwdReady(t, edgefwdSetup{NS: host, PolicyPath: p.PolicyPath, StateDir: p.StateDir, Args: []string{"--log-format", "json"}})
	if !strings.Contains(p.Log(), "denied-traffic history restored") {
		t.Errorf("no restore in the log:\n%s", p.Log())
	}
	scan, _ = dropsRule(dropsView(t, p, "--since", "1h"), "deny-scan")
	if got := dropsFlows(scan); !slices.Equal(got, want) || scan.Sampled != 8 {
		t.Errorf("after a restart: deny-scan flows %q (%d logged), want %q", got, scan.Sampled, want)
	}
	if counter := nftCounter(t, p, "deny-scan"); scan.Packets != counter {
		t.Errorf("after a restart: deny-scan %d packets in drops, %d in its kernel counter", scan.Packets, counter)
	}
}
