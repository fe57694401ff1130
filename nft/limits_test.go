package nft

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/edgefw/edgefw/internal/netnstest"
)

// Sources of the limit tests.
const (
	sourceA = "192.0.2.10"
	sourceB = "192.0.2.11"
)

// TestRateLimit sends new connections beyond a rule's rate limit: over the
// limit they are dropped and counted in edgefw-limited-RULE; per source,
// another source still has its own budget, and without perSource it shares
// the exhausted one.
func TestRateLimit(t *testing.T) {
	for _, perSource := range []bool{true, false} {
		t.Run(fmt.Sprintf("perSource=%v", perSource), func(t *testing.T) {
			l := newLab(t, sourceA, sourceB)
			// One packet a minute refills nothing while the test runs:
			// exactly the burst of 3 connections (one SYN each) passes.
			l.apply(t, compileYAML(t, fmt.Sprintf(`
version: 1
rules:
  - name: web
    direction: input
    ports: [{protocol: tcp, port: 80}]
    limit: {rate: 1/minute, burst: 3, perSource: %v}
    action: accept
`, perSource)))
			srv := serve(t, l.host, "tcp", 80)
			fromA := flow{"tcp", sourceA, hostV4, 80}
			for i := range 3 {
				if got := fromA.try(t, l.client, srv, accepted); got != accepted {
					t.Fatalf("connection %d within the burst: %s", i+1, got)
				}
			}
			before := l.counters(t)
			if got := fromA.try(t, l.client, srv, timedOut); got != timedOut {
				t.Errorf("connection beyond the burst: %s, want %s", got, timedOut)
			}
			after := l.counters(t)
			if diff := moved(before, after); len(diff) != 1 || diff[0] != LimitedCounter("web") {
				t.Errorf("counters that moved: %v, want only %s", diff, LimitedCounter("web"))
			}

			want := timedOut
			if perSource {
				want = accepted
			}
			if got := (flow{"tcp", sourceB, hostV4, 80}).try(t, l.client, srv, want); got != want {
				t.Errorf("another source: %s, want %s", got, want)
			}
		})
	}
}

// TestConnLimitPerSource holds connections open up to a rule's per-source
// connection limit: the next one from that source is dropped and counted,
// another source connects, and once the first source closes one it may
// connect again.
func TestConnLimitPerSource(t *testing.T) {
	l := newLab(t, sourceA, sourceB)
	l.apply(t, compileYAML(t, `
version: 1
rules:
  - name: db
    direction: input
    ports: [{protocol: tcp, port: 5432}]
    connLimit: {max: 2, perSource: true}
    action: accept
`))
	srv := serve(t, l.host, "tcp", 5432)
	var held []net.Conn
	for range 2 {
		held = append(held, hold(t, l.client, sourceA, hostV4, 5432))
	}
	fromA := flow{"tcp", sourceA, hostV4, 5432}
	before := l.counters(t)
	if got := fromA.try(t, l.client, srv, timedOut); got != timedOut {
		t.Errorf("a third connection from the same source: %s, want %s", got, timedOut)
	}
	if diff := moved(before, l.counters(t)); len(diff) != 1 || diff[0] != LimitedCounter("db") {
		t.Errorf("counters that moved: %v, want only %s", diff, LimitedCounter("db"))
	}
	if got := (flow{"tcp", sourceB, hostV4, 5432}).try(t, l.client, srv, accepted); got != accepted {
		t.Errorf("another source: %s", got)
	}
	held[0].Close()
	<-srv.closed
	if got := fromA.try(t, l.client, srv, accepted); got != accepted {
		t.Errorf("the first source after closing a connection: %s", got)
	}
}

// hold opens a TCP connection from ns and keeps it open until the test
// ends.
func hold(t *testing.T, ns *netnstest.NS, from, to string, port int) net.Conn {
	t.Helper()
	var c net.Conn
	err := ns.Do(func() error {
		d := net.Dialer{Timeout: acceptTimeout, LocalAddr: &net.TCPAddr{IP: netip.MustParseAddr(from).AsSlice()}}
		var err error
		c, err = d.Dial("tcp", net.JoinHostPort(to, fmt.Sprint(port)))
		return err
	})
	if err != nil {
		t.Fatalf("hold a connection from %s: %v", from, err)
	}
	t.Cleanup(func() { c.Close() })
	// A byte each way: the connection is established on both ends.
	if err := c.SetDeadline(time.Now().Add(acceptTimeout)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte{'x'}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	return c
}

// sharedLimitPolicy has a rule whose from list gives it four alternatives
// (two sets, each in both families), with a global limit.
const sharedLimitPolicy = `
version: 1
sets:
  a: [192.0.2.10/32, "2001:db8::10/128"]
  b: [192.0.2.11/32, "2001:db8::11/128"]
rules:
  - name: web
    direction: input
    from: [{set: a}, {set: b}]
    ports: [{protocol: tcp, port: 80}]
    %s
    action: accept
`

// TestLimitSharedByAlternatives checks that a rule's global limit and
// connLimit hold for the rule as a whole, not for each alternative of its
// from list: the rule compiles to one limit statement and one ct count,
// and two sources that match different alternatives share them.
func TestLimitSharedByAlternatives(t *testing.T) {
	for _, tc := range []struct{ name, limit, stmt string }{
		{"limit", "limit: {rate: 1/minute, burst: 2}", "limit rate over"},
		{"connLimit", "connLimit: {max: 1}", "ct count over"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := compileYAML(t, fmt.Sprintf(sharedLimitPolicy, tc.limit))
			if n := strings.Count(rs.String(), tc.stmt); n != 1 {
				t.Fatalf("the ruleset has %d %q statements, want 1:\n%s", n, tc.stmt, rs)
			}
			l := newLab(t, sourceA, sourceB)
			l.apply(t, rs)
			srv := serve(t, l.host, "tcp", 80)
			fromA, fromB := flow{"tcp", sourceA, hostV4, 80}, flow{"tcp", sourceB, hostV4, 80}
			if tc.name == "limit" {
				// The burst of 2 is for both sources together.
				for _, f := range []flow{fromA, fromB} {
					if got := f.try(t, l.client, srv, accepted); got != accepted {
						t.Fatalf("%s within the burst: %s", f, got)
					}
				}
			} else {
				hold(t, l.client, sourceA, hostV4, 80)
			}
			before := l.counters(t)
			if got := fromB.try(t, l.client, srv, timedOut); got != timedOut {
				t.Errorf("%s beyond the rule's limit: %s, want %s", fromB, got, timedOut)
			}
			if diff := moved(before, l.counters(t)); len(diff) != 1 || diff[0] != LimitedCounter("web") {
				t.Errorf("counters that moved: %v, want only %s", diff, LimitedCounter("web"))
			}
		})
	}
}

// TestLimitChainComesAndGoes adds and removes a rule's limits: its limit
// chain, meters and counter come and go in incremental patches, never by
// replacing the table, and the result is exactly the policy.
func TestLimitChainComesAndGoes(t *testing.T) {
	ns := netnstest.New(t, "limchain")
	fw := NewApplier(WithNetNS(ns.FD))
	for i, limit := range []string{
		"",
		"limit: {rate: 10/second}",
		"limit: {rate: 10/second, perSource: true}\n    connLimit: {max: 3}",
		"connLimit: {max: 3, perSource: true}",
		"",
		"limit: {rate: 5/minute, burst: 7}",
	} {
		rs := compileYAML(t, fmt.Sprintf(sharedLimitPolicy, limit))
		res, err := fw.Apply(rs)
		if err != nil {
			t.Fatalf("step %d (%s): %v", i, limit, err)
		}
		if i > 0 && res.Full {
			t.Errorf("step %d (%s): applied by full replacement: %q", i, limit, res.Changes)
		}
		if eq, err := NewApplier(WithNetNS(ns.FD)).Equal(rs); !eq || err != nil {
			t.Errorf("step %d (%s): Equal = %v, %v", i, limit, eq, err)
		}
		if got, want := listTable(t, ns), rs.String(); !strings.Contains(got, LimitChain("web")) != (limit == "") {
			t.Errorf("step %d (%s): the kernel holds\n%s\nwant\n%s", i, limit, got, want)
		}
	}
}
