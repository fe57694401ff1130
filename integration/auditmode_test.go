package integration

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgefw/edgefw/audit"
	"github.com/edgefw/edgefw/daemon"
	"github.com/edgefw/edgefw/internal/netnstest"
)

// auditModePolicy watches tcp/8080 from the client's network with a drop
// rule in the given mode, before the rule that accepts it.
const auditModePolicy = `version: 1
rules:
  - name: watch-8080
    direction: input
    from: [{cidr: 192.0.2.0/24}]
    ports: [{protocol: tcp, port: 8080}]
    action: drop
    mode: %s
  - name: web
    direction: input
    ports: [{protocol: tcp, port: 8080}]
    action: accept
`

// TestAuditMode runs edgefwd with a drop rule in audit mode: connections
// from a peer namespace get through, the rule counts them (its metric has
// mode="audit", status says so) and logs them to the daemon (drops). Then
// the policy file is switched to mode: enforce; the daemon reloads, the
// connections are dropped, and the rule's counter keeps its value and
// counts on.
func TestAuditMode(t *testing.T) {
	netnstest.RequireRoot(t)
	host := netnstest.New(t, "audit")
	client := netnstest.New(t, "acli")
	netnstest.Link(t, host, []string{"192.0.2.1/24"}, client, []string{"192.0.2.2/24"})
	metricsServeTCP(t, host, "192.0.2.1:8080")
	p := startEdgefwdReady(t, edgefwdSetup{NS: host, Policy: fmt.Sprintf(auditModePolicy, "audit"),
		Args: []string{"--metrics-address", daemon.DefaultMetricsAddress}})
	scraper := newMetricsScraper(t, host, daemon.DefaultMetricsAddress)
	scraper.WaitUp(t, p)

	const (
		audited  = `edgefw_rule_packets_total{action="drop",direction="input",mode="audit",rule="watch-8080"}`
		enforced = `edgefw_rule_packets_total{action="drop",direction="input",mode="enforce",rule="watch-8080"}`
		web      = `edgefw_rule_packets_total{action="accept",direction="input",mode="enforce",rule="web"}`
	)
	dial := func(timeout time.Duration) error {
		var c net.Conn
		err := client.Do(func() (err error) { c, err = net.DialTimeout("tcp", "192.0.2.1:8080", timeout); return err })
		if err != nil {
			return err
		}
		_, err = c.Write([]byte("watched\n"))
		c.Close()
		return err
	}

	const conns = 3
	for range conns {
		if err := dial(5 * time.Second); err != nil {
			t.Fatalf("connect past the audit-mode rule: %v", err)
		}
	}
	s1 := scraper.Scrape(t)
	if v := s1.Value(audited); v < conns {
		t.Errorf("%s = %v after %d connections; want at least %d (their SYNs)", audited, v, conns, conns)
	}
	if v := s1.Value(web); v < conns {
		t.Errorf("%s = %v after %d connections; want at least %d: the audited SYNs went on to web", web, v, conns, conns)
	}
	if _, ok := s1.Lookup(enforced); ok {
		t.Errorf("%s exists while the rule is in audit mode", enforced)
	}
	checkRuleMode(t, p, "watch-8080", "audit")
	if out := p.MustCtl(t, "status"); !strings.Contains(out, "drop (audit)") {
		t.Errorf("status does not show watch-8080's action as drop (audit):\n%s", out)
	}
	// The log reaches the daemon: drops names the rule, in audit mode,
	// and the client.
	daemonPoll(t, daemonReadyTimeout, "drops to show watch-8080 and the client", func() (bool, string) {
		v := dropsView(t, p)
		r, _ := dropsRule(v, "watch-8080")
		return r.Mode == "audit" && slices.ContainsFunc(r.TopSources, func(s audit.SourceCount) bool {
			return s.Source.String() == "192.0.2.2"
		}), fmt.Sprintf("%+v", v)
	})

	before := s1.Value(audited)
	daemonWriteAtomic(t, p.PolicyPath, fmt.Sprintf(auditModePolicy, "enforce"))
	daemonPoll(t, daemonReadyTimeout, "the reload to enforce watch-8080", func() (bool, string) {
		st := p.Status(t)
		for _, r := range st.Rules {
			if r.Name == "watch-8080" {
				return r.Mode == "enforce" && st.LastApply != nil && st.LastApply.OK, p.Log()
			}
		}
		return false, p.Log()
	})
	s2 := scraper.Scrape(t)
	if v := s2.Value(enforced); v != before {
		t.Errorf("right after the switch, %s = %v; want the %v it counted in audit mode, kept", enforced, v, before)
	}
	if _, ok := s2.Lookup(audited); ok {
		t.Errorf("%s still exists after the switch to enforce", audited)
	}

	if err := dial(500 * time.Millisecond); err == nil {
		t.Fatal("connected to port 8080, which the enforced rule watch-8080 drops")
	}
	s3 := scraper.Scrape(t)
	if v := s3.Value(enforced); v <= before {
		t.Errorf("after a dropped connection, %s = %v; want more than the %v kept from audit mode", enforced, v, before)
	}
	if a, b := s3.Value(web), s2.Value(web); a != b {
		t.Errorf("%s went from %v to %v; the enforced rule must drop before web", web, b, a)
	}
	t.Logf("watch-8080: %v packets in audit mode, %v after one dropped connection in enforce mode", before, s3.Value(enforced))
}

// checkRuleMode checks the mode status gives a rule's counter.
func checkRuleMode(t *testing.T, p *edgefwdProcess, rule, mode string) {
	t.Helper()
	for _, r := range p.CtlStatus(t).Rules {
		if r.Name == rule {
			if r.Mode != mode || r.Action != "drop" {
				t.Errorf("status shows %s as %s in mode %q; want drop in mode %q", rule, r.Action, r.Mode, mode)
			}
			return
		}
	}
	t.Errorf("status has no rule %s", rule)
}
