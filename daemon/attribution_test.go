package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefw/edgefw/audit"
	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/policy"
)

// attribPolicy has a drop rule and an accept rule that both log, and
// the default input drop.
const attribPolicy = `version: 1
rules:
  - name: web
    direction: input
    ports: [{protocol: tcp, port: 443}]
    action: accept
    log: true
  - name: deny-scan
    direction: input
    ports: [{protocol: tcp, port: 9100}, {protocol: tcp, port: 9200}]
    action: drop
    log: true
`

// testClock is a clock the tests move by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock {
	return &testClock{t: time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)}
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// attribDaemon starts a daemon on the harness's kernel and state with the
// clock, boot and logger given, without its loop: the tests tick it.
func (h *harness) attribDaemon(t *testing.T, c *testClock, boot string, log *slog.Logger) *Daemon {
	t.Helper()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d, err := New(Config{PolicyPath: h.policy, StateDir: h.state, Firewall: h.fw, Now: c.now,
		BootID: boot, Hostname: "edge-7", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return d
}

// count adds packets (of 60 bytes) to a counter in the fake kernel.
func (h *harness) count(t *testing.T, counter string, packets uint64) {
	t.Helper()
	if err := h.kernel.Count(counter, packets, 60*packets); err != nil {
		t.Fatal(err)
	}
}

// logPackets has the daemon receive n logged packets, as nflog hands them.
func logPackets(d *Daemon, rule, src string, port uint16, n int) {
	for range n {
		d.recordLogged(rule+" ", ipv4TCP(src, port))
	}
}

func ruleDrops(v DropsView, rule string) (RuleDrops, bool) {
	i := slices.IndexFunc(v.Rules, func(r RuleDrops) bool { return r.Rule == rule })
	if i < 0 {
		return RuleDrops{}, false
	}
	return v.Rules[i], true
}

// TestDropsAttributesSamplesAndCounts checks a drops view: the rule's
// exact total from its counter (read when the view is asked for), the
// logged packets by source and port, the share, the accept rule left out
// unless named, and a rule filter.
func TestDropsAttributesSamplesAndCounts(t *testing.T) {
	h := newHarness(t)
	h.write(t, attribPolicy)
	c := newTestClock()
	d := h.attribDaemon(t, c, "boot-a", nil)
	c.add(10 * time.Second)
	h.count(t, "deny-scan", 40)
	h.count(t, "web", 500)
	logPackets(d, "deny-scan", "203.0.113.5", 9100, 6)
	logPackets(d, "deny-scan", "203.0.113.5", 9200, 2)
	logPackets(d, "deny-scan", "198.51.100.9", 9100, 2)
	logPackets(d, "web", "192.0.2.1", 443, 5) // allowed traffic: not attributed
	c.add(10 * time.Second)

	v := d.Drops(audit.Query{Since: time.Hour})
	scan, ok := ruleDrops(v, "deny-scan")
	if !ok {
		t.Fatalf("deny-scan not in the view: %+v", v)
	}
	if scan.Packets != 40 || scan.Bytes != 2400 || scan.Sampled != 10 || scan.Share == nil || *scan.Share != 0.25 {
		t.Errorf("deny-scan: %d packets, %d bytes, %d sampled, share %v; want 40, 2400, 10, 0.25",
			scan.Packets, scan.Bytes, scan.Sampled, scan.Share)
	}
	if scan.Direction != "input" || scan.Action != "drop" || scan.Mode != "enforce" {
		t.Errorf("deny-scan is %s %s in mode %q, want input drop enforced", scan.Direction, scan.Action, scan.Mode)
	}
	var flows []string
	for _, f := range scan.TopFlows {
		flows = append(flows, fmt.Sprintf("%s %s/%d %d±%d", f.Source, f.Protocol, f.Port, f.Count, f.ErrorBound))
	}
	want := []string{"203.0.113.5 tcp/9100 6±0", "198.51.100.9 tcp/9100 2±0", "203.0.113.5 tcp/9200 2±0"}
	if !slices.Equal(flows, want) {
		t.Errorf("flows %q, want %q", flows, want)
	}
	if _, ok := ruleDrops(v, "web"); ok {
		t.Error("the accept rule web is in a drops view nobody named it in")
	}
	named := d.Drops(audit.Query{Since: time.Hour, Rules: []string{"web"}})
	if len(named.Rules) != 1 || named.Rules[0].Rule != "web" || named.Rules[0].Packets != 500 || named.Rules[0].Sampled != 0 {
		t.Errorf("--rule web: %+v; want web alone, counted, with no sample", named.Rules)
	}
}

// TestDropsTotalsSurviveCounterResets checks that the total of a rule is
// the sum of what its counter counted across the counter's lifetimes: a
// reset because the rule now rejects, the table deleted by someone else
// and restored, never a negative or a double count.
func TestDropsTotalsSurviveCounterResets(t *testing.T) {
	h := newHarness(t)
	h.write(t, attribPolicy)
	c := newTestClock()
	d := h.attribDaemon(t, c, "boot-a", nil)
	c.add(10 * time.Second)
	h.count(t, "deny-scan", 100)
	c.add(10 * time.Second)

	h.write(t, strings.Replace(attribPolicy, "action: drop", "action: reject", 1))
	if err := d.reload(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
	if n := counterValue(t, h, "deny-scan"); n != 0 {
		t.Fatalf("the counter holds %d after its rule changed meaning, want it reset", n)
	}
	c.add(10 * time.Second)
	h.count(t, "deny-scan", 30)
	c.add(10 * time.Second)
	if got := total(d, "deny-scan"); got != 130 {
		t.Errorf("after a reset: total %d, want 100 + 30", got)
	}

	h.flush(t)
	if err := d.reload(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
	c.add(10 * time.Second)
	h.count(t, "deny-scan", 7)
	c.add(10 * time.Second)
	if got := total(d, "deny-scan"); got != 137 {
		t.Errorf("after the table was restored: total %d, want 130 + 7", got)
	}
}

func counterValue(t *testing.T, h *harness, name string) uint64 {
	t.Helper()
	cs, err := h.kernel.Counters()
	if err != nil {
		t.Fatal(err)
	}
	return cs[name].Packets
}

func total(d *Daemon, rule string) uint64 {
	r, _ := ruleDrops(d.Drops(audit.Query{Since: 24 * time.Hour, Rules: []string{rule}}), rule)
	return r.Packets
}

// TestAttributionAcrossRestarts stops a daemon (which writes its
// snapshot) and starts another on the same state: the sample is still
// there; a restart in the same boot counts what the counter counted
// meanwhile, once; after a reboot, a counter already past its old value
// is a new one and counts from zero.
func TestAttributionAcrossRestarts(t *testing.T) {
	h := newHarness(t)
	h.write(t, attribPolicy)
	c := newTestClock()
	d := h.attribDaemon(t, c, "boot-a", nil)
	c.add(10 * time.Second)
	h.count(t, "deny-scan", 100)
	logPackets(d, "deny-scan", "203.0.113.5", 9100, 4)
	c.add(10 * time.Second)
	d.attributionTick(true) // as the daemon stops

	c.add(time.Minute)
	h.count(t, "deny-scan", 50) // while no daemon runs
	d = h.attribDaemon(t, c, "boot-a", nil)
	c.add(10 * time.Second)
	r, _ := ruleDrops(d.Drops(audit.Query{Since: time.Hour}), "deny-scan")
	if r.Packets != 150 || r.Sampled != 4 || len(r.TopFlows) != 1 || r.TopFlows[0].Source.String() != "203.0.113.5" {
		t.Errorf("after a restart: %d packets, %d sampled, flows %+v; want 150, 4, 203.0.113.5", r.Packets, r.Sampled, r.TopFlows)
	}
	d.attributionTick(true)

	// A reboot: the table is recreated (here by edgefwd --once before the
	// daemon starts) and counts past its old value before the daemon's
	// first reading.
	c.add(time.Minute)
	h.flush(t)
	pol, err := policy.Parse("policy.yaml", []byte(attribPolicy))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := nft.Compile(pol)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.fw.Apply(rs); err != nil {
		t.Fatal(err)
	}
	h.count(t, "deny-scan", 180)
	d = h.attribDaemon(t, c, "boot-b", nil)
	c.add(10 * time.Second)
	if got := total(d, "deny-scan"); got != 150+180 {
		t.Errorf("after a reboot: total %d, want 150 + 180", got)
	}
}

// TestAttributionSnapshotEveryFiveMinutes checks the snapshot's cadence:
// ticks every minute read the counters, the snapshot is written every
// fifth, and always when the daemon stops.
func TestAttributionSnapshotEveryFiveMinutes(t *testing.T) {
	h := newHarness(t)
	c := newTestClock()
	d := h.attribDaemon(t, c, "boot-a", nil)
	path := filepath.Join(h.state, attributionFile)
	var written []int
	for minute := 1; minute <= 11; minute++ {
		c.add(time.Minute)
		d.attributionTick(false)
		if _, err := os.Stat(path); err == nil {
			written = append(written, minute)
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !slices.Equal(written, []int{5, 10}) {
		t.Errorf("snapshots written at minutes %v, want 5 and 10", written)
	}
	c.add(time.Second)
	d.attributionTick(true)
	if _, err := os.Stat(path); err != nil {
		t.Errorf("no snapshot when stopping: %v", err)
	}
}

// TestAttributionCorruptSnapshot starts a daemon on a snapshot that is
// not one, or cannot be read: it starts with an empty history and says so.
func TestAttributionCorruptSnapshot(t *testing.T) {
	for name, damage := range map[string]func(path string) error{
		"corrupt": func(path string) error {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			data[len(data)/2] ^= 0xff
			return os.WriteFile(path, data, 0o600)
		},
		"truncated": func(path string) error { return os.Truncate(path, 10) },
		"unreadable": func(path string) error {
			if err := os.Remove(path); err != nil {
				return err
			}
			return os.Mkdir(path, 0o700) // a directory: reading it fails
		},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			h.write(t, attribPolicy)
			c := newTestClock()
			d := h.attribDaemon(t, c, "boot-a", nil)
			logPackets(d, "deny-scan", "203.0.113.5", 9100, 4)
			d.attributionTick(true)
			if err := damage(filepath.Join(h.state, attributionFile)); err != nil {
				t.Fatal(err)
			}
			logs := &tunnelLogBuffer{}
			d = h.attribDaemon(t, c, "boot-a", tunnelTextLogger(logs))
			if !strings.Contains(logs.String(), `level=WARN msg="denied-traffic history not restored: it starts empty"`) {
				t.Errorf("no warning:\n%s", logs.String())
			}
			if r, _ := ruleDrops(d.Drops(audit.Query{Since: time.Hour}), "deny-scan"); r.Sampled != 0 {
				t.Errorf("a damaged snapshot gave %d samples", r.Sampled)
			}
		})
	}
}
