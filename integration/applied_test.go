package integration

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/edgefw/edgefw/internal/netnstest"
)

// TestDaemonAppliedPolicyLasts: a confirmed `edgefwctl apply` stays in
// force across SIGHUP, `edgefwctl reload` and a restart, and status says
// who applied it and that the policy files differ; it gives way when the
// policy files change, or to `edgefwctl reload --from-files`.
func TestDaemonAppliedPolicyLasts(t *testing.T) {
	netnstest.RequireRoot(t)
	p := startEdgefwdReady(t, edgefwdSetup{Policy: daemonTestdata(t, "base.yaml")})
	candidate := filepath.Join(t.TempDir(), "candidate.yaml")
	if err := os.WriteFile(candidate, []byte(daemonTestdata(t, "extra.yaml")), 0o644); err != nil {
		t.Fatal(err)
	}
	hasCandidate := func(table string) bool { return strings.Contains(table, "counter node-exporter ") }
	requireCandidate := func(p *edgefwdProcess, when string) {
		t.Helper()
		if table, _ := p.Table(); !hasCandidate(table) {
			t.Fatalf("%s: the applied policy is not in force:\n%s\n%s", when, table, p.Log())
		}
		out := p.MustCtl(t, "status")
		for _, want := range []string{
			"policy:         " + candidate,
			", applied with edgefwctl apply by root (uid 0) ",
			"policy files:   " + p.PolicyPath + " differ from the running policy; not in force until they change or edgefwctl reload --from-files",
			"warning: the running policy is not the policy files: " + candidate + " was applied with edgefwctl apply by root (uid 0) at ",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("%s: edgefwctl status lacks %q:\n%s", when, want, out)
			}
		}
	}

	p.MustCtl(t, "apply", candidate, "--confirm-timeout", "1m")
	p.MustCtl(t, "confirm")
	requireCandidate(p, "after the confirm")
	p.Signal(t, syscall.SIGHUP)
	p.WaitNotify(t, "RELOADING=1")
	p.WaitNotify(t, "READY=1")
	requireCandidate(p, "after SIGHUP")
	p.MustCtl(t, "reload")
	requireCandidate(p, "after edgefwctl reload")

	p.Signal(t, syscall.SIGTERM)
	p.WaitExit(t)
	p = startEdgefwd(t, edgefwdSetup{NS: p.NS, PolicyPath: p.PolicyPath, StateDir: p.StateDir, Socket: p.Socket})
	p.WaitNotify(t, "READY=1")
	requireCandidate(p, "after a restart")

	// Configuration management rewrites the policy file: it wins.
	daemonWriteAtomic(t, p.PolicyPath, strings.Replace(daemonTestdata(t, "base.yaml"), "8080", "8081", 1))
	waitTable(t, p, "the changed policy file to be in force", func(table string) bool {
		return !hasCandidate(table) && strings.Contains(table, "8081")
	})
	if st := p.Status(t); st.Policy.Applied || st.PolicyFiles != nil {
		t.Errorf("after the file change, status still says applied: %+v %+v", st.Policy, st.PolicyFiles)
	}

	// The operator goes back to the unchanged files.
	p.MustCtl(t, "apply", candidate)
	requireCandidate(p, "after an apply without confirmation timeout")
	p.MustCtl(t, "reload", "--from-files")
	if table, _ := p.Table(); hasCandidate(table) || !strings.Contains(table, "8081") {
		t.Fatalf("after reload --from-files the policy files are not in force:\n%s", table)
	}
	if out := p.MustCtl(t, "status"); strings.Contains(out, "applied with edgefwctl apply") || strings.Contains(out, "policy files:") {
		t.Errorf("after reload --from-files, status still says applied:\n%s", out)
	}
}
