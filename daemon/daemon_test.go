package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/policy"
	"github.com/edgefw/edgefw/wg"
)

// fakeFirewall holds a ruleset like the kernel would: applies replace it
// whole or fail whole, and a generation moves on every write.
type fakeFirewall struct {
	mu      sync.Mutex
	rs      *nft.Ruleset
	gen     uint32
	applies int
	failing error
	// drift edits what Inspect renders, as a change behind edgefw's
	// back would; inspected and known are what Inspect was last asked.
	drift     func(text string) string
	inspected *nft.Ruleset
	known     []*nft.Ruleset
	// changes carries what notify sends to the daemon's subscription;
	// unwatchable makes Changes fail, as when notifications cannot be
	// followed.
	changes     chan nft.TableChange
	unwatchable bool
}

func (f *fakeFirewall) Apply(rs *nft.Ruleset) (nft.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing != nil {
		return nft.Result{}, f.failing
	}
	if f.rs != nil && f.rs.String() == rs.String() {
		return nft.Result{}, nil
	}
	f.rs, f.gen, f.applies = rs, f.gen+1, f.applies+1
	return nft.Result{Messages: 1, Changes: []string{"replace"}}, nil
}

func (f *fakeFirewall) Equal(rs *nft.Ruleset) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rs != nil && f.rs.String() == rs.String(), nil
}

func (f *fakeFirewall) Counters() (map[string]nft.Counter, error) {
	return map[string]nft.Counter{}, nil
}
func (f *fakeFirewall) Generation() (uint32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gen, nil
}
func (f *fakeFirewall) OtherHooked() ([]nft.HookedTable, error) { return nil, nil }

// Changes reports what notify sends, until ctx ends.
func (f *fakeFirewall) Changes(ctx context.Context) (<-chan nft.TableChange, error) {
	if f.unwatchable {
		return nil, errors.New("fake firewall: no notifications")
	}
	in := f.changeStream()
	out := make(chan nft.TableChange)
	go func() {
		defer close(out)
		for {
			select {
			case c := <-in:
				select {
				case out <- c:
				case <-ctx.Done():
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// notify tells the daemon's subscription of a change, as nftables would.
func (f *fakeFirewall) notify(c nft.TableChange) { f.changeStream() <- c }

func (f *fakeFirewall) changeStream() chan nft.TableChange {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.changes == nil {
		f.changes = make(chan nft.TableChange)
	}
	return f.changes
}
func (f *fakeFirewall) Delete() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rs, f.gen = nil, f.gen+1
	return nil
}

// flush simulates `nft flush ruleset` by someone else.
func (f *fakeFirewall) flush() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rs, f.gen = nil, f.gen+1
}

func (f *fakeFirewall) text() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rs == nil {
		return ""
	}
	return f.rs.String()
}

const policyA = `version: 1
rules:
  - name: web
    direction: input
    ports: [{protocol: tcp, port: 443}]
    action: accept
`

const policyB = `version: 1
rules:
  - name: web
    direction: input
    ports: [{protocol: tcp, port: 443}]
    action: accept
  - name: metrics
    direction: input
    ports: [{protocol: tcp, port: 9100}]
    action: accept
`

type harness struct {
	dir, policy, state string
	fw                 *fakeFirewall
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	dir := t.TempDir()
	h := &harness{dir: dir, policy: filepath.Join(dir, "policy.yaml"), state: filepath.Join(dir, "state"), fw: &fakeFirewall{}}
	h.write(t, policyA)
	return h
}

func (h *harness) write(t *testing.T, content string) {
	t.Helper()
	if err := os.WriteFile(h.policy, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) daemon(t *testing.T) *Daemon {
	t.Helper()
	d, err := New(Config{PolicyPath: h.policy, StateDir: h.state, Firewall: h.fw, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// run starts a daemon's loop; it stops when the test ends.
func (h *harness) run(t *testing.T) *Daemon {
	t.Helper()
	d := h.daemon(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	go func() { done <- d.loop(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return d
}

func TestStartInstallsPolicyAndIsReady(t *testing.T) {
	h := newHarness(t)
	d := h.run(t)
	if err := d.Ready(); err != nil {
		t.Fatalf("not ready: %v", err)
	}
	if !strings.Contains(h.fw.text(), `counter name "web" accept`) {
		t.Fatalf("policy not in the firewall:\n%s", h.fw.text())
	}
}

func TestBrokenReloadKeepsRuleset(t *testing.T) {
	h := newHarness(t)
	d := h.run(t)
	before := h.fw.text()
	h.write(t, "version: 1\nrules:\n  - name: Bad_Name\n    direction: input\n    action: accept\n")
	resp := d.Reload(context.Background(), "test")
	if resp.OK || !strings.Contains(resp.Error, "policy.yaml:3:") {
		t.Fatalf("reload of a broken policy: ok=%v error=%q; want a positioned error", resp.OK, resp.Error)
	}
	if h.fw.text() != before {
		t.Fatal("a rejected policy changed the firewall")
	}
	if err := d.Ready(); err == nil {
		t.Fatal("ready after a failed apply")
	}
	st := d.Status(context.Background())
	if st.LastApply == nil || st.LastApply.OK || st.LastSuccess == nil {
		t.Fatalf("status after failure: %+v", st.LastApply)
	}
}

func TestFirewallErrorKeepsRunningPolicy(t *testing.T) {
	h := newHarness(t)
	d := h.run(t)
	before := h.fw.text()
	h.fw.mu.Lock()
	h.fw.failing = errors.New("kernel says no")
	h.fw.mu.Unlock()
	h.write(t, policyB)
	if resp := d.Reload(context.Background(), "test"); resp.OK {
		t.Fatal("reload succeeded although the firewall failed")
	}
	if h.fw.text() != before || !strings.Contains(d.RulesetText(), `"web"`) || strings.Contains(d.RulesetText(), "metrics") {
		t.Fatal("the running policy changed although the apply failed")
	}
}

func applyReq(t *testing.T, content string, timeout time.Duration) *ApplyRequest {
	t.Helper()
	f := filepath.Join(t.TempDir(), "new.yaml")
	if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	_, files, err := policy.ReadBundle(f)
	if err != nil {
		t.Fatal(err)
	}
	return &ApplyRequest{PolicyRequest: PolicyRequest{Path: f, Files: files}, ConfirmTimeout: Duration(timeout)}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestUnconfirmedApplyRollsBack(t *testing.T) {
	h := newHarness(t)
	d := h.run(t)
	before := h.fw.text()
	resp := d.send(context.Background(), event{kind: "apply", apply: applyReq(t, policyB, 100*time.Millisecond)})
	if !resp.OK || resp.Pending == nil {
		t.Fatalf("apply: %+v", resp)
	}
	if !strings.Contains(h.fw.text(), `"metrics"`) {
		t.Fatal("applied policy not in force")
	}
	waitFor(t, "rollback", func() bool { return h.fw.text() == before })
	waitFor(t, "pending state removed", func() bool {
		_, err := os.Stat(filepath.Join(h.state, pendingFile))
		return os.IsNotExist(err) && d.Status(context.Background()).Pending == nil
	})
}

func TestConfirmedApplyStays(t *testing.T) {
	h := newHarness(t)
	d := h.run(t)
	d.send(context.Background(), event{kind: "apply", apply: applyReq(t, policyB, 200*time.Millisecond)})
	if resp := d.send(context.Background(), event{kind: "confirm"}); !resp.OK {
		t.Fatalf("confirm: %+v", resp)
	}
	time.Sleep(400 * time.Millisecond)
	if !strings.Contains(h.fw.text(), `"metrics"`) {
		t.Fatal("confirmed policy was rolled back")
	}
	if resp := d.send(context.Background(), event{kind: "confirm"}); resp.OK {
		t.Fatal("a second confirm with nothing pending succeeded")
	}
}

func TestRestartWithArmedTimerRollsBack(t *testing.T) {
	h := newHarness(t)
	d1 := h.daemon(t)
	ctx := context.Background()
	if err := d1.Start(ctx); err != nil {
		t.Fatal(err)
	}
	before := h.fw.text()
	if resp := d1.applyRequest(ctx, applyReq(t, policyB, time.Hour), nil); !resp.OK {
		t.Fatalf("apply: %+v", resp)
	}
	d1.stopPendingTimer() // the process "crashes": its timer dies with it
	if h.fw.text() == before {
		t.Fatal("apply did not change the firewall")
	}
	d2 := h.daemon(t)
	if err := d2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if h.fw.text() != before {
		t.Fatalf("restart left the unconfirmed policy in force:\n%s", h.fw.text())
	}
	if d2.Status(ctx).Pending != nil {
		t.Fatal("pending confirmation survived the restart")
	}
}

func TestDriftIsRepaired(t *testing.T) {
	h := newHarness(t)
	d := h.daemon(t)
	ctx := context.Background()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	want := h.fw.text()
	d.checkDrift(false)
	if d.Status(ctx).DriftRepairs != 0 {
		t.Fatal("repair without drift")
	}
	h.fw.flush()
	d.checkDrift(false)
	if h.fw.text() != want || d.Status(ctx).DriftRepairs != 1 {
		t.Fatalf("drift not repaired: repairs=%d", d.Status(ctx).DriftRepairs)
	}
}

func TestBootUsesLastGoodWhenPolicyBroken(t *testing.T) {
	h := newHarness(t)
	d1 := h.daemon(t)
	ctx := context.Background()
	if err := d1.Start(ctx); err != nil {
		t.Fatal(err)
	}
	good := h.fw.text()
	h.fw.flush() // a reboot empties the kernel
	h.write(t, "version: 2\n")
	d2 := h.daemon(t)
	if err := d2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if h.fw.text() != good {
		t.Fatal("boot did not install the last good ruleset")
	}
	if st := d2.Status(ctx); st.LastApply == nil || st.LastApply.OK {
		t.Fatal("status does not show the rejected policy")
	}
}

func TestNoStateAndBrokenPolicyInstallsSafeRuleset(t *testing.T) {
	h := newHarness(t)
	h.write(t, "version: 1\nbogus: true\n")
	d := h.daemon(t)
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	text := h.fw.text()
	if !strings.Contains(text, `tcp dport 22 counter name "edgefw-failsafe" accept`) || !strings.Contains(text, "policy drop") {
		t.Fatalf("safe ruleset missing failsafe or default drop:\n%s", text)
	}
}

func TestRestartWithArmedTimerAndNothingBeforeLoadsPolicyFile(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	d1 := h.daemon(t)
	if err := d1.Start(ctx); err != nil {
		t.Fatal(err)
	}
	fromFile := h.fw.text()
	if resp := d1.remove(); !resp.OK {
		t.Fatalf("remove: %+v", resp)
	}
	if resp := d1.applyRequest(ctx, applyReq(t, policyB, time.Hour), nil); !resp.OK {
		t.Fatalf("apply: %+v", resp)
	}
	d1.stopPendingTimer()
	d2 := h.daemon(t)
	if err := d2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if h.fw.text() != fromFile {
		t.Fatalf("restart kept the unconfirmed policy instead of the policy file:\n%s", h.fw.text())
	}
}

// failingTunnels configures nothing and always fails, like a missing PSK.
type failingTunnels struct{}

func (failingTunnels) Apply(context.Context, []policy.Tunnel) (wg.Report, error) {
	return wg.Report{}, errors.New("preshared key file missing")
}
func (failingTunnels) Refresh(context.Context) (wg.Report, error)        { return wg.Report{}, nil }
func (failingTunnels) Status(context.Context) ([]wg.TunnelStatus, error) { return nil, nil }
func (failingTunnels) Close() error                                      { return nil }

func TestTunnelFailureStillArmsRollback(t *testing.T) {
	h := newHarness(t)
	d, err := New(Config{PolicyPath: h.policy, StateDir: h.state, Firewall: h.fw, Tunnels: failingTunnels{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.loop(ctx) }()
	defer func() { cancel(); <-done }()
	before := h.fw.text()
	resp := d.send(ctx, event{kind: "apply", apply: applyReq(t, policyB, 150*time.Millisecond)})
	if resp.OK || !strings.Contains(resp.Error, "tunnels failed") {
		t.Fatalf("apply with failing tunnels: %+v", resp)
	}
	if resp.Pending == nil {
		t.Fatal("the firewall changed but no rollback was armed")
	}
	waitFor(t, "rollback", func() bool { return h.fw.text() == before })
}

func TestPendingWithoutPreviousIsCleared(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	d1 := h.daemon(t)
	if err := d1.Start(ctx); err != nil {
		t.Fatal(err)
	}
	d1.remove()
	d1.applyRequest(ctx, applyReq(t, policyB, time.Hour), nil)
	d1.stopPendingTimer()
	if err := h.daemon(t).Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(h.state, pendingFile)); !os.IsNotExist(err) {
		t.Fatalf("pending state survived a restart: %v", err)
	}
}
