package integration

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/edgefw/edgefw/internal/netnstest"
)

// diffPolicy has a named set, so that drift can remove one of its
// elements, and a rule to delete.
const diffPolicy = `version: 1
sets:
  trusted: [192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24]
rules:
  - name: web
    direction: input
    ports: [{protocol: tcp, port: 8080}]
    action: accept
  - name: metrics
    direction: input
    from: [{set: trusted}]
    ports: [{protocol: tcp, port: 9100}]
    action: accept
`

// ctlDiff is `edgefwctl diff -o json`.
type ctlDiff struct {
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
	Planned []string `json:"planned"`
}

// TestDaemonDiffShowsKernel checks that `edgefwctl diff` compares a policy
// with the table in the kernel, not with the daemon's idea of it.
//
// A running daemon repairs drift within a second, so the drift is made
// where it does not repair: after `edgefwctl remove` it leaves the table
// alone until the next reload. `edgefwd --once` (another edgefw, as at
// boot) then writes the policy, and nft changes it behind both: a rule
// deleted, a set element deleted, a foreign rule added. The daemon's model
// is empty the whole time, so only a diff against the kernel shows exactly
// these three changes.
func TestDaemonDiffShowsKernel(t *testing.T) {
	netnstest.RequireRoot(t)
	p := startEdgefwdReady(t, edgefwdSetup{Policy: diffPolicy})
	if p.Edgefwctl == "" {
		t.Skip("edgefwctl does not build")
	}
	if out := p.MustCtl(t, "diff", p.PolicyPath); out != "no changes\n" {
		t.Fatalf("diff of the running policy right after start:\n%s", out)
	}
	plan := splitLines(p.MustCtl(t, "plan", p.PolicyPath))

	p.MustCtl(t, "remove", "--yes")
	bin, _ := buildBinaries(t)
	if out, code, _ := runOnce(t, p.NS, bin, p.PolicyPath, filepath.Join(t.TempDir(), "state")); code != 0 {
		t.Fatalf("edgefwd --once exited %d:\n%s", code, out)
	}
	web := ruleHandle(t, p, "input", `counter name "web"`)
	p.Nft(t, "delete", "rule", "inet", "edgefw", "input", "handle", web)
	p.Nft(t, "delete", "element", "inet", "edgefw", "trusted-v4", "{ 203.0.113.0/24 }")
	p.Nft(t, "add", "rule", "inet", "edgefw", "input", "tcp", "dport", "9999", "accept")
	foreign := ruleHandle(t, p, "input", "tcp dport 9999 accept")

	var got ctlDiff
	out := p.MustCtl(t, "diff", "-o", "json", p.PolicyPath)
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("diff -o json: %v\n%s", err, out)
	}
	// FILE has the deleted rule and element; the kernel has the foreign
	// rule and the shorter element list.
	elems := slices.IndexFunc(plan, func(l string) bool { return strings.HasPrefix(l, "\t\telements = { 192.0.2.0/24") })
	webLine := slices.IndexFunc(plan, func(l string) bool { return strings.Contains(l, `counter name "web"`) })
	if elems < 0 || webLine < 0 {
		t.Fatalf("plan lacks the set's elements or the web rule:\n%s", strings.Join(plan, "\n"))
	}
	wantAdded := []string{plan[elems], plan[elems+1], plan[webLine]}
	if !slices.Equal(got.Added, wantAdded) {
		t.Errorf("diff added %q, want %q (what the kernel lacks)\n%s", got.Added, wantAdded, out)
	}
	foreignLine := regexp.MustCompile(`^\t\t# rule handle ` + foreign + `: not written by edgefw \(\d+ expressions\)$`)
	if len(got.Removed) != 2 || got.Removed[0] != "\t\telements = { 192.0.2.0/24, 198.51.100.0/24 }" || !foreignLine.MatchString(got.Removed[1]) {
		t.Errorf("diff removed %q, want the kernel's two elements and the foreign rule %s\n%s", got.Removed, foreign, out)
	}
	for _, want := range []string{
		"delete rule " + foreign + " of chain input",
		"add 1 ranges to set trusted-v4",
		`add rule "web" in chain input`,
	} {
		if !slices.Contains(got.Planned, want) {
			t.Errorf("diff plans %q, want it to include %q", got.Planned, want)
		}
	}

	text := p.MustCtl(t, "diff", p.PolicyPath)
	t.Logf("edgefwctl diff after the drift:\n%s", text)
	for _, want := range []string{"--- kernel", "+++ " + p.PolicyPath, "\n+" + plan[webLine] + "\n", "\n-\t\t# rule handle " + foreign + ": not written by edgefw", "\n  add rule \"web\" in chain input\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("diff lacks %q:\n%s", want, text)
		}
	}

	p.MustCtl(t, "reload")
	if out := p.MustCtl(t, "diff", p.PolicyPath); out != "no changes\n" {
		t.Errorf("diff after the reload repaired the table:\n%s\nkernel:\n%s", out, p.Nft(t, "-a", "list", "table", "inet", "edgefw"))
	}
}

// ruleHandle returns the handle of the one rule of a chain of table inet
// edgefw whose listing contains text.
func ruleHandle(t *testing.T, p *edgefwdProcess, chain, text string) string {
	t.Helper()
	listing := p.Nft(t, "-a", "list", "chain", "inet", "edgefw", chain)
	var handles []string
	for _, l := range splitLines(listing) {
		if m := handleComment.FindStringSubmatch(l); m != nil && strings.Contains(l, text) {
			handles = append(handles, m[1])
		}
	}
	if len(handles) != 1 {
		t.Fatalf("%d rules of chain %s contain %q, want 1:\n%s", len(handles), chain, text, listing)
	}
	return handles[0]
}

var handleComment = regexp.MustCompile(` # handle (\d+)$`)

func splitLines(s string) []string { return strings.Split(strings.TrimSuffix(s, "\n"), "\n") }
