package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/nft/nfttest"
	"github.com/edgefw/edgefw/policy"
	"github.com/edgefw/edgefw/wg"
)

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

// harness runs daemons on a fake kernel (nft/nfttest) through a real
// nft.Applier: what a daemon writes is planned, committed and refused as
// on the kernel, and drift comes through the fake's helpers.
type harness struct {
	dir, policy, state string
	kernel             *nfttest.Kernel
	fw                 *nft.Applier
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	dir := t.TempDir()
	k := nfttest.New()
	h := &harness{dir: dir, policy: filepath.Join(dir, "policy.yaml"), state: filepath.Join(dir, "state"),
		kernel: k, fw: nft.NewApplier(nft.WithKernel(k))}
	h.write(t, policyA)
	return h
}

// holds reports whether the kernel holds exactly the ruleset of a policy,
// as an Applier that knows nothing else reads it.
func (h *harness) holds(t *testing.T, doc string) bool {
	t.Helper()
	p, err := policy.Parse("holds.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := nft.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	eq, err := nft.NewApplier(nft.WithKernel(h.kernel)).Equal(rs)
	if err != nil {
		t.Fatal(err)
	}
	return eq
}

// text renders what the kernel holds, knowing the rules of d's running
// ruleset: that ruleset's text when the kernel holds exactly it.
func (h *harness) text(t *testing.T, d *Daemon) string {
	t.Helper()
	var known []*nft.Ruleset
	d.mu.Lock()
	if d.cur != nil {
		known = append(known, d.cur.rs)
	}
	d.mu.Unlock()
	in, err := nft.NewApplier(nft.WithKernel(h.kernel)).Inspect(nil, known...)
	if err != nil {
		t.Fatal(err)
	}
	return in.Text
}

// generation is the kernel's ruleset generation: it moves on every
// commit, so an unmoved one means nothing was written.
func (h *harness) generation(t *testing.T) uint32 {
	t.Helper()
	g, err := h.kernel.Generation()
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// flush empties the kernel, as `nft flush ruleset` or a reboot does.
func (h *harness) flush(t *testing.T) {
	t.Helper()
	if err := h.kernel.DeleteTable(); err != nil && !errors.Is(err, syscall.ENOENT) {
		t.Fatal(err)
	}
}

func (h *harness) write(t testing.TB, content string) {
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
	// Before the state directory is removed.
	t.Cleanup(d.lastGood.wait)
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
	if !h.holds(t, policyA) {
		t.Fatalf("policy not in the firewall: %+v", h.kernel.Snapshot())
	}
}

func TestBrokenReloadKeepsRuleset(t *testing.T) {
	h := newHarness(t)
	d := h.run(t)
	before := h.generation(t)
	h.write(t, "version: 1\nrules:\n  - name: Bad_Name\n    direction: input\n    action: accept\n")
	resp := d.Reload(context.Background(), "test")
	if resp.OK || !strings.Contains(resp.Error, "policy.yaml:3:") {
		t.Fatalf("reload of a broken policy: ok=%v error=%q; want a positioned error", resp.OK, resp.Error)
	}
	if h.generation(t) != before || !h.holds(t, policyA) {
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
	before := h.generation(t)
	h.kernel.FailCommits(errors.New("kernel says no"))
	h.write(t, policyB)
	if resp := d.Reload(context.Background(), "test"); resp.OK {
		t.Fatal("reload succeeded although the firewall failed")
	}
	if h.generation(t) != before || !h.holds(t, policyA) || !strings.Contains(d.RulesetText(), `"web"`) || strings.Contains(d.RulesetText(), "metrics") {
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
	resp := d.send(context.Background(), event{kind: "apply", apply: applyReq(t, policyB, 100*time.Millisecond)})
	if !resp.OK || resp.Pending == nil {
		t.Fatalf("apply: %+v", resp)
	}
	if !h.holds(t, policyB) {
		t.Fatal("applied policy not in force")
	}
	waitFor(t, "rollback", func() bool { return h.holds(t, policyA) })
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
	if !h.holds(t, policyB) {
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
	if resp := d1.applyRequest(ctx, applyReq(t, policyB, time.Hour), nil); !resp.OK {
		t.Fatalf("apply: %+v", resp)
	}
	d1.stopPendingTimer() // the process "crashes": its timer dies with it
	if !h.holds(t, policyB) {
		t.Fatal("apply did not change the firewall")
	}
	d2 := h.daemon(t)
	if err := d2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if !h.holds(t, policyA) {
		t.Fatalf("restart left the unconfirmed policy in force: %+v", h.kernel.Snapshot())
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
	d.checkDrift(false)
	if d.Status(ctx).DriftRepairs != 0 {
		t.Fatal("repair without drift")
	}
	h.flush(t)
	d.checkDrift(false)
	if !h.holds(t, policyA) || d.Status(ctx).DriftRepairs != 1 {
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
	h.flush(t) // a reboot empties the kernel
	h.write(t, "version: 2\n")
	d2 := h.daemon(t)
	if err := d2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if !h.holds(t, policyA) {
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
	// The empty policy: the defaults (input drop) and the tcp/22 failsafe.
	if !h.holds(t, "version: 1\n") {
		t.Fatalf("safe ruleset missing failsafe or default drop: %+v", h.kernel.Snapshot())
	}
}

func TestRestartWithArmedTimerAndNothingBeforeLoadsPolicyFile(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	d1 := h.daemon(t)
	if err := d1.Start(ctx); err != nil {
		t.Fatal(err)
	}
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
	if !h.holds(t, policyA) {
		t.Fatalf("restart kept the unconfirmed policy instead of the policy file: %+v", h.kernel.Snapshot())
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
	resp := d.send(ctx, event{kind: "apply", apply: applyReq(t, policyB, 150*time.Millisecond)})
	if resp.OK || !strings.Contains(resp.Error, "tunnels failed") {
		t.Fatalf("apply with failing tunnels: %+v", resp)
	}
	if resp.Pending == nil {
		t.Fatal("the firewall changed but no rollback was armed")
	}
	waitFor(t, "rollback", func() bool { return h.holds(t, policyA) })
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

// TestReloadOfUnchangedFilesKeepsLastGood: a reload that finds the files
// last saved does not encode and write the last good policy again; one
// that finds them changed does.
func TestReloadOfUnchangedFilesKeepsLastGood(t *testing.T) {
	h := newHarness(t)
	d := h.run(t)
	path := filepath.Join(d.cfg.StateDir, lastGoodFile)
	saved, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// A marker only a rewrite would remove.
	if err := os.WriteFile(path, append(saved, ' '), 0o600); err != nil {
		t.Fatal(err)
	}
	if resp := d.Reload(context.Background(), "test"); !resp.OK {
		t.Fatalf("reload: %+v", resp)
	}
	if got, _ := os.ReadFile(path); len(got) != len(saved)+1 {
		t.Error("a reload of unchanged files wrote the last good policy again")
	}
	h.write(t, policyB)
	if resp := d.Reload(context.Background(), "test"); !resp.OK {
		t.Fatalf("reload: %+v", resp)
	}
	d.lastGood.wait()
	if got, _ := os.ReadFile(path); !strings.Contains(string(got), `"metrics"`) {
		t.Error("a reload of changed files did not save them as the last good policy")
	}
}
