package daemon

import (
	"context"
	"errors"
	"net/http"
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
	got, err := d.Diff(&DiffRequest{req.PolicyRequest})
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
	got, err = d.Diff(&DiffRequest{req.PolicyRequest})
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
// apply: the socket is no way around validation, even to read. The error
// names the file sent, its line and column.
func TestDiffRefusesInvalidPolicy(t *testing.T) {
	h := newHarness(t)
	d := h.run(t)
	req := sentFiles(t, strings.Replace(policyA, "name: web", "name: Bad_Name", 1))
	want := "invalid policy: " + req.Path + `:3:11: rules[0].name: "Bad_Name" is not a valid name; use lowercase letters, digits and -, starting with a letter, like ssh-from-mgmt`
	if got, err := d.Diff(&DiffRequest{req}); !errors.Is(err, ErrInvalidPolicy) || err.Error() != want {
		t.Errorf("diff of an invalid policy = %+v, %v; want %s", got, err, want)
	}
	if _, err := d.Diff(&DiffRequest{PolicyRequest{Path: "/x.yaml"}}); !errors.Is(err, ErrInvalidPolicy) {
		t.Errorf("diff without a policy: %v; want ErrInvalidPolicy", err)
	}
}

// TestControlDiff drives the diff through the control socket: the daemon's
// answer, an invalid policy (422) and a kernel that cannot be read (500).
func TestControlDiff(t *testing.T) {
	h := newHarness(t)
	d := h.run(t)
	sock := serveControl(t, d)
	c := NewClient(sock)
	ctx := context.Background()
	running := h.fw.text()
	h.fw.setDrift(deleteWebRule)

	req := applyReq(t, policyA, 0)
	got, err := c.Diff(ctx, DiffRequest{req.PolicyRequest})
	if err != nil {
		t.Fatal(err)
	}
	if want := (&Diff{Kernel: deleteWebRule(running), Changes: []string{"replace"}, Messages: 1}); !cmp.Equal(want, got) {
		t.Errorf("Diff = %+v, want %+v", got, want)
	}

	bad := sentFiles(t, strings.Replace(policyA, "name: web", "name: Bad_Name", 1))
	_, err = c.Diff(ctx, DiffRequest{bad})
	if apiErr, ok := errors.AsType[*APIError](err); !ok || apiErr.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(apiErr.Message, bad.Path+":3:11: rules[0].name:") {
		t.Errorf("diff of an invalid policy: %v; want 422 naming the bad rule at its line", err)
	}

	h.fw.mu.Lock()
	h.fw.failing = errors.New("kernel says no")
	h.fw.mu.Unlock()
	_, err = c.Diff(ctx, DiffRequest{req.PolicyRequest})
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
