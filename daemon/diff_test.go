package daemon

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/policy"
)

// webRule is how policyA's rule renders.
const webRule = "\t\ttcp dport 443 counter name \"web\" accept\n"

// deleteWebRule deletes web's rule behind the daemon's back, and returns
// how the table then renders.
func deleteWebRule(t *testing.T, h *harness) string {
	t.Helper()
	for _, r := range h.kernel.Snapshot().Chains["input"].Rules {
		if slices.Contains(r.Counters, "web") {
			if err := h.kernel.DeleteRule("input", r.Handle); err != nil {
				t.Fatal(err)
			}
			return strings.Replace(compileDoc(t, policyA).String(), webRule, "", 1)
		}
	}
	t.Fatal("no rule counts into web")
	return ""
}

// started starts a daemon without its loop, which would repair the drift
// a diff must show: a diff does not go through the loop.
func (h *harness) started(t *testing.T) *Daemon {
	t.Helper()
	d := h.daemon(t)
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return d
}

func compileDoc(t *testing.T, doc string) *nft.Ruleset {
	t.Helper()
	p, err := policy.Parse("test.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := nft.Compile(p)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestDiffReadsTheKernel checks that a diff reports what the kernel holds,
// drift included, rather than the daemon's model, and what applying the
// policy would write; and that it changes nothing.
func TestDiffReadsTheKernel(t *testing.T) {
	h := newHarness(t)
	d := h.started(t)
	running := compileDoc(t, policyA).String()
	drifted := deleteWebRule(t, h)
	gen := h.generation(t)

	req := applyReq(t, policyA, 0)
	got, err := d.Diff(&DiffRequest{req.PolicyRequest})
	if err != nil {
		t.Fatal(err)
	}
	want := &Diff{Kernel: drifted, Changes: []string{`add rule "web" in chain input`}, Messages: 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("diff of the running policy after drift (-want +got):\n%s", diff)
	}
	if d.RulesetText() != running {
		t.Errorf("the daemon's model changed:\n%s", d.RulesetText())
	}
	if g := h.generation(t); g != gen {
		t.Errorf("a diff wrote to the firewall (generation %d, was %d)", g, gen)
	}

	if _, err := h.fw.Apply(compileDoc(t, policyA)); err != nil {
		t.Fatal(err)
	}
	gen = h.generation(t)
	req = applyReq(t, policyB, 0)
	got, err = d.Diff(&DiffRequest{req.PolicyRequest})
	if err != nil {
		t.Fatal(err)
	}
	if got.Kernel != running || len(got.Changes) == 0 {
		t.Errorf("diff of another policy: kernel %q, changes %q; want the running ruleset and changes", got.Kernel, got.Changes)
	}

	// The firewall is asked knowing the running ruleset, whose rules the
	// kernel holds: a policy without web still shows web's rule as text,
	// not as a rule of another ruleset.
	req = applyReq(t, strings.Replace(policyA, "name: web", "name: www", 1), 0)
	got, err = d.Diff(&DiffRequest{req.PolicyRequest})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got.Kernel, webRule) || strings.Contains(got.Kernel, "# rule handle") {
		t.Errorf("diff of a policy without web shows the kernel as\n%s\nwant web's rule as text:\n%s", got.Kernel, webRule)
	}
	if g := h.generation(t); g != gen || !h.holds(t, policyA) {
		t.Errorf("a diff wrote to the firewall (generation %d, was %d)", g, gen)
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
	d := h.started(t)
	sock := serveControl(t, d)
	c := NewClient(sock)
	ctx := context.Background()
	drifted := deleteWebRule(t, h)

	req := applyReq(t, policyA, 0)
	got, err := c.Diff(ctx, DiffRequest{req.PolicyRequest})
	if err != nil {
		t.Fatal(err)
	}
	if want := (&Diff{Kernel: drifted, Changes: []string{`add rule "web" in chain input`}, Messages: 1}); !cmp.Equal(want, got) {
		t.Errorf("Diff = %+v, want %+v", got, want)
	}

	bad := sentFiles(t, strings.Replace(policyA, "name: web", "name: Bad_Name", 1))
	_, err = c.Diff(ctx, DiffRequest{bad})
	if apiErr, ok := errors.AsType[*APIError](err); !ok || apiErr.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(apiErr.Message, bad.Path+":3:11: rules[0].name:") {
		t.Errorf("diff of an invalid policy: %v; want 422 naming the bad rule at its line", err)
	}

	h.kernel.FailReads(errors.New("kernel says no"))
	_, err = c.Diff(ctx, DiffRequest{req.PolicyRequest})
	if apiErr, ok := errors.AsType[*APIError](err); !ok || apiErr.StatusCode != http.StatusInternalServerError || !strings.Contains(apiErr.Message, "kernel says no") {
		t.Errorf("diff with an unreadable kernel: %v; want 500 with the kernel's error", err)
	}
}
