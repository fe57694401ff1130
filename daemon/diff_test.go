package daemon

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefw/edgefw/nft"
)

// webRule is how policyA's rule renders.
const webRule = "\t\ttcp dport 443 counter name \"web\" accept\n"

// deleteWebRule is drift for the fake kernel: someone deleted web's rule.
func deleteWebRule(text string) string { return strings.Replace(text, webRule, "", 1) }

// TestDiffReadsTheKernel checks that a diff reports what the kernel holds,
// drift included, rather than the daemon's model, and what applying the
// policy would write; and that it changes nothing.
func TestDiffReadsTheKernel(t *testing.T) {
	h := newHarness(t)
	d := h.run(t)
	running := h.fw.text()
	h.fw.setDrift(deleteWebRule)

	req := applyReq(t, policyA, 0)
	got, err := d.Diff(&DiffRequest{Path: req.Path, Policy: req.Policy})
	if err != nil {
		t.Fatal(err)
	}
	want := &Diff{Kernel: deleteWebRule(running), Changes: []string{"replace"}, Messages: 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("diff of the running policy after drift (-want +got):\n%s", diff)
	}
	if d.RulesetText() != running {
		t.Errorf("the daemon's model changed:\n%s", d.RulesetText())
	}

	// The firewall was asked about the policy's ruleset, knowing the
	// running one, whose rules the kernel holds.
	h.fw.mu.Lock()
	asked, known := h.fw.inspected, h.fw.known
	h.fw.mu.Unlock()
	if asked.String() != running || len(known) != 1 || known[0].String() != running {
		t.Errorf("Inspect(%q, %d known): want the policy's ruleset and the running one", asked, len(known))
	}

	h.fw.setDrift(nil)
	req = applyReq(t, policyB, 0)
	got, err = d.Diff(&DiffRequest{Path: req.Path, Policy: req.Policy})
	if err != nil {
		t.Fatal(err)
	}
	if got.Kernel != running || len(got.Changes) == 0 {
		t.Errorf("diff of another policy: kernel %q, changes %q; want the running ruleset and changes", got.Kernel, got.Changes)
	}
	if h.fw.text() != running || h.fw.applies != 1 {
		t.Errorf("a diff wrote to the firewall (%d applies):\n%s", h.fw.applies, h.fw.text())
	}
}

// TestDiffRefusesInvalidPolicy holds a diff's policy to the checks of an
// apply: the socket is no way around validation, even to read.
func TestDiffRefusesInvalidPolicy(t *testing.T) {
	h := newHarness(t)
	d := h.run(t)
	req := applyReq(t, policyA, 0)
	req.Policy.Rules[0].Name = "Bad_Name"
	if got, err := d.Diff(&DiffRequest{Path: req.Path, Policy: req.Policy}); err == nil || !errors.Is(err, ErrInvalidPolicy) {
		t.Errorf("diff of an invalid policy = %+v, %v; want ErrInvalidPolicy", got, err)
	}
	if _, err := d.Diff(&DiffRequest{Path: "x.yaml"}); !errors.Is(err, ErrInvalidPolicy) {
		t.Errorf("diff without a policy: %v; want ErrInvalidPolicy", err)
	}
}

// TestControlDiff drives the diff through the control socket: the daemon's
// answer, an invalid policy (422) and a kernel that cannot be read (500).
func TestControlDiff(t *testing.T) {
	h := newHarness(t)
	d := h.run(t)
	sock := filepath.Join(t.TempDir(), "edgefwd.sock")
	srv, err := ListenControl(d, sock, d.log)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Close() })
	c := NewClient(sock)
	ctx := context.Background()
	running := h.fw.text()
	h.fw.setDrift(deleteWebRule)

	req := applyReq(t, policyA, 0)
	got, err := c.Diff(ctx, DiffRequest{Path: req.Path, Policy: req.Policy})
	if err != nil {
		t.Fatal(err)
	}
	if want := (&Diff{Kernel: deleteWebRule(running), Changes: []string{"replace"}, Messages: 1}); !cmp.Equal(want, got) {
		t.Errorf("Diff = %+v, want %+v", got, want)
	}

	bad := applyReq(t, policyA, 0)
	bad.Policy.Rules[0].Name = "Bad_Name"
	_, err = c.Diff(ctx, DiffRequest{Path: bad.Path, Policy: bad.Policy})
	if apiErr, ok := errors.AsType[*APIError](err); !ok || apiErr.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(apiErr.Message, "Bad_Name") {
		t.Errorf("diff of an invalid policy: %v; want 422 naming the bad rule", err)
	}

	h.fw.mu.Lock()
	h.fw.failing = errors.New("kernel says no")
	h.fw.mu.Unlock()
	_, err = c.Diff(ctx, DiffRequest{Path: req.Path, Policy: req.Policy})
	if apiErr, ok := errors.AsType[*APIError](err); !ok || apiErr.StatusCode != http.StatusInternalServerError || !strings.Contains(apiErr.Message, "kernel says no") {
		t.Errorf("diff with an unreadable kernel: %v; want 500 with the kernel's error", err)
	}
}

// setDrift makes the fake kernel differ from what was applied, as a change
// behind edgefw's back would; nil undoes it.
func (f *fakeFirewall) setDrift(edit func(text string) string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drift = edit
}

// Inspect renders the fake kernel: the last applied ruleset, edited by
// the drift, and plans a whole replacement when rs differs from it.
func (f *fakeFirewall) Inspect(rs *nft.Ruleset, known ...*nft.Ruleset) (nft.Inspection, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failing != nil {
		return nft.Inspection{}, f.failing
	}
	f.inspected, f.known = rs, known
	var text string
	if f.rs != nil {
		text = f.rs.String()
	}
	if f.drift != nil {
		text = f.drift(text)
	}
	in := nft.Inspection{Text: text}
	if text != rs.String() {
		in.Plan = nft.Result{Messages: 1, Changes: []string{"replace"}}
	}
	return in, nil
}
