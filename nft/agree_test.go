package nft_test

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefw/edgefw/internal/netnstest"
	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/nft/nfttest"
	"github.com/edgefw/edgefw/policy"
)

// The same cases, run on nfttest's fake and on the kernel: the fake must
// plan and refuse as the kernel does (planCases in agree_cases_test.go).

// TestPlanCasesOnFake runs every case on the fake kernel, without root,
// and checks what each step must do.
func TestPlanCasesOnFake(t *testing.T) {
	for _, c := range planCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.run(t, newFakeWorld())
		})
	}
}

// TestKernelAndFakeAgree runs every case on the kernel, in a namespace of
// its own, and on the fake: each step must write the same changes and
// messages, leave the same table (rules, their user data and expression
// counts, sets and their elements, counter values) and fail with the same
// error.
func TestKernelAndFakeAgree(t *testing.T) {
	netnstest.RequireRoot(t)
	netnstest.RequireTool(t, "nft")
	for _, c := range planCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			onKernel := c.run(t, newKernelWorld(t))
			onFake := c.run(t, newFakeWorld())
			if diff := cmp.Diff(onKernel, onFake); diff != "" {
				t.Errorf("the fake differs from the kernel (-kernel +fake):\n%s", diff)
			}
		})
	}
}

// planCase is a sequence of steps on one table.
type planCase struct {
	name string
	// seed are counters, with values, that the table holds before the
	// first step (the table is made for them).
	seed  map[string]nft.Counter
	steps []step
}

// step changes the table behind the Applier's back (drift), then applies
// a ruleset or commits ops as they are.
type step struct {
	drift []drift
	// policy is the ruleset's policy, as YAML; file, a policy file; both
	// empty: the previous step's. mutate changes the compiled ruleset.
	policy, file string
	mutate       func(rs *nft.Ruleset)
	// full applies the full replacement that Apply falls back to.
	full bool
	// ops, when set, are committed as they are instead.
	ops func(h handles) []nft.Op
	// want are the changes written, "delete rule #I of chain C" for the
	// rule at position I before the step; nil: not checked.
	want []string
	// wantErr is the error, "WHAT: ERRNO"; "": none.
	wantErr string
	// kept are counters whose values the step must keep; reset those it
	// must start again from zero.
	kept, reset []string
}

// drift is a change behind the Applier's back, in each world's terms.
type drift struct {
	// nft is the command that makes it in the kernel; {CHAIN:COUNTER}
	// stands for the handle of the first rule of CHAIN that counts into
	// COUNTER.
	nft  string
	fake func(k *nfttest.Kernel, h handles) error
}

// handles finds the handle of the first rule of a chain that counts into
// a counter.
type handles func(chain, counter string) uint64

func handlesOf(ks *nft.TableState) handles {
	return func(chain, counter string) uint64 {
		if ch := ks.Chains[chain]; ch != nil {
			for _, r := range ch.Rules {
				if slices.Contains(r.Counters, counter) || slices.Contains(r.MapCounters, counter) {
					return r.Handle
				}
			}
		}
		return 0
	}
}

// world is where a case runs: the kernel's nftables in a namespace, or
// the fake.
type world struct {
	kernel nft.Kernel
	fw     *nft.Applier
	fake   *nfttest.Kernel // nil on the kernel
	ns     *netnstest.NS   // nil on the fake
}

func newFakeWorld() *world {
	k := nfttest.New()
	return &world{kernel: k, fw: nft.NewApplier(nft.WithKernel(k)), fake: k}
}

func newKernelWorld(t *testing.T) *world {
	ns := netnstest.New(t, "agree")
	k := nft.NewNetlinkKernel(ns.FD)
	t.Cleanup(func() { k.Close() })
	return &world{kernel: k, fw: nft.NewApplier(nft.WithKernel(k)), ns: ns}
}

func (w *world) String() string {
	if w.fake != nil {
		return "fake"
	}
	return "kernel"
}

var placeholder = regexp.MustCompile(`\{([a-z0-9-]+):([a-z0-9-]+)\}`)

func (w *world) drift(t *testing.T, d drift) {
	t.Helper()
	h := handlesOf(w.read(t))
	if w.fake != nil {
		if err := d.fake(w.fake, h); err != nil {
			t.Fatalf("drift %q on the fake: %v", d.nft, err)
		}
		return
	}
	cmd := placeholder.ReplaceAllStringFunc(d.nft, func(s string) string {
		m := placeholder.FindStringSubmatch(s)
		return strconv.FormatUint(h(m[1], m[2]), 10)
	})
	w.ns.MustRun(t, "nft", cmd)
}

func (w *world) seed(t *testing.T, counters map[string]nft.Counter) {
	t.Helper()
	if len(counters) == 0 {
		return
	}
	if w.fake != nil {
		if err := w.fake.AddTable(); err != nil {
			t.Fatal(err)
		}
	} else {
		w.ns.MustRun(t, "nft", "add table inet "+nft.TableName)
	}
	for _, name := range slices.Sorted(maps.Keys(counters)) {
		c := counters[name]
		if w.fake != nil {
			if err := w.fake.AddCounter(name, c); err != nil {
				t.Fatal(err)
			}
			continue
		}
		w.ns.MustRun(t, "nft", fmt.Sprintf("add counter inet %s %s { packets %d bytes %d }", nft.TableName, name, c.Packets, c.Bytes))
	}
}

// checkFreshRead checks, on the kernel, that a Kernel that knows nothing
// reads what the case's own Kernel read, which trusts the set elements it
// committed (its cache of known elements).
func (w *world) checkFreshRead(t *testing.T, ks *nft.TableState) {
	t.Helper()
	if w.ns == nil {
		return
	}
	k := nft.NewNetlinkKernel(w.ns.FD)
	defer k.Close()
	fresh, err := k.ReadTable()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(describe(fresh), describe(ks)); diff != "" {
		t.Errorf("what the Kernel knows differs from a fresh read (-fresh +known):\n%s", diff)
	}
}

func (w *world) read(t *testing.T) *nft.TableState {
	t.Helper()
	ks, err := w.kernel.ReadTable()
	if err != nil {
		t.Fatalf("read the table (%s): %v", w, err)
	}
	return ks
}

// outcome is what a step did, as both worlds must agree on it.
type outcome struct {
	Changes  []string
	Messages int
	Full     bool
	Err      string
	Table    string // describe of the table after the step
}

// run runs the case's steps in w, checks what each step must do, and
// returns what they did.
func (c planCase) run(t *testing.T, w *world) []outcome {
	t.Helper()
	w.seed(t, c.seed)
	var out []outcome
	var doc, file string
	for i, s := range c.steps {
		for _, d := range s.drift {
			w.drift(t, d)
		}
		if s.policy != "" || s.file != "" {
			doc, file = s.policy, s.file
		}
		var rs *nft.Ruleset
		if s.ops == nil {
			rs = compile(t, doc, file, s.mutate)
		}
		o := s.run(t, w, rs)
		if t.Failed() {
			t.Fatalf("%s: step %d failed", w, i)
		}
		out = append(out, o)
	}
	return out
}

func (s step) run(t *testing.T, w *world, rs *nft.Ruleset) outcome {
	t.Helper()
	before := w.read(t)
	gen, err := w.kernel.Generation()
	if err != nil {
		t.Fatal(err)
	}
	var res nft.Result
	switch {
	case s.ops != nil:
		res, err = commitOps(w.kernel, s.ops(handlesOf(before)))
	case s.full:
		res, err = nft.ApplyFull(w.fw, rs)
	default:
		res, err = w.fw.Apply(rs)
	}
	after := w.read(t)
	w.checkFreshRead(t, after)
	o := outcome{Changes: positions(res.Changes, before), Messages: res.Messages, Full: res.Full,
		Err: errorText(t, err), Table: describe(after)}
	if s.want != nil && !slices.Equal(s.want, o.Changes) {
		t.Errorf("%s: changes (-want +got):\n%s", w, cmp.Diff(s.want, o.Changes))
	}
	if o.Err != s.wantErr {
		t.Errorf("%s: error %q, want %q", w, o.Err, s.wantErr)
	}
	for _, name := range s.kept {
		if after.Counters[name] != before.Counters[name] || before.Counters[name] == (nft.Counter{}) {
			t.Errorf("%s: counter %s went from %+v to %+v; want it kept, not zero", w, name, before.Counters[name], after.Counters[name])
		}
	}
	for _, name := range s.reset {
		if c, ok := after.Counters[name]; !ok || c != (nft.Counter{}) || before.Counters[name] == (nft.Counter{}) {
			t.Errorf("%s: counter %s went from %+v to %+v; want it reset", w, name, before.Counters[name], c)
		}
	}
	if err != nil {
		s.checkUnchanged(t, w, before, after, gen)
	} else if s.ops == nil {
		checkHolds(t, w, rs)
	}
	return o
}

// checkUnchanged checks that a refused step changed nothing at all.
func (s step) checkUnchanged(t *testing.T, w *world, before, after *nft.TableState, gen uint32) {
	t.Helper()
	if diff := cmp.Diff(describe(before), describe(after)); diff != "" {
		t.Errorf("%s: a refused step changed the table (-before +after):\n%s", w, diff)
	}
	if g, err := w.kernel.Generation(); err != nil || g != gen {
		t.Errorf("%s: a refused step moved the generation from %d to %d (%v)", w, gen, g, err)
	}
}

// checkHolds checks that the table holds exactly rs: it renders as rs
// does, and applying rs again writes nothing.
func checkHolds(t *testing.T, w *world, rs *nft.Ruleset) {
	t.Helper()
	in, err := w.fw.Inspect(rs)
	if err != nil {
		t.Fatalf("%s: inspect: %v", w, err)
	}
	if diff := cmp.Diff(rs.String(), in.Text); diff != "" {
		t.Errorf("%s: the table renders differently from the ruleset (-ruleset +table):\n%s", w, diff)
	}
	if in.Plan.Messages != 0 {
		t.Errorf("%s: applying the ruleset again would write %q", w, in.Plan.Changes)
	}
}

func commitOps(k nft.Kernel, ops []nft.Op) (nft.Result, error) {
	tx, err := nft.NewTransaction(ops...)
	if err != nil {
		return nft.Result{}, err
	}
	res := nft.Result{Messages: tx.Messages()}
	for _, op := range ops {
		res.Changes = append(res.Changes, op.Change())
	}
	if err := k.Commit(tx); err != nil {
		return nft.Result{}, err
	}
	return res, nil
}

func errorText(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var ke *nft.KernelError
	if !errors.As(err, &ke) {
		t.Fatalf("error %v is no *nft.KernelError", err)
	}
	s := ke.What + ": " + ke.Errno.Error()
	if ke.Message != "" {
		s += " (" + ke.Message + ")"
	}
	return s
}

var deleteRule = regexp.MustCompile(`^delete rule (\d+) of chain (\S+)$`)

// positions replaces the handles in changes by positions in the table
// before: handles are the kernel's numbering, which the fake need not
// follow.
func positions(changes []string, before *nft.TableState) []string {
	out := make([]string, 0, len(changes))
	for _, c := range changes {
		if m := deleteRule.FindStringSubmatch(c); m != nil {
			h, _ := strconv.ParseUint(m[1], 10, 64)
			i := slices.IndexFunc(before.Chains[m[2]].Rules, func(r nft.RuleState) bool { return r.Handle == h })
			c = fmt.Sprintf("delete rule #%d of chain %s", i, m[2])
		}
		out = append(out, c)
	}
	return out
}

// describe lists everything a table holds that planning and rendering
// read, handles aside, one line per object, in name order.
func describe(ks *nft.TableState) string {
	if !ks.Exists {
		return "no table\n"
	}
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(ks.Counters)) {
		fmt.Fprintf(&b, "counter %s %+v\n", name, ks.Counters[name])
	}
	for _, name := range slices.Sorted(maps.Keys(ks.Sets)) {
		s := ks.Sets[name]
		fmt.Fprintf(&b, "set %s %s map=%v:%s constant=%v dynamic=%v interval=%v timeout=%v:%v size=%d",
			name, s.KeyType, s.IsMap, s.DataType, s.Constant, s.Dynamic, s.Interval, s.HasTimeout, s.Timeout, s.Size)
		if s.Interval && !s.IsMap {
			// Only address interval sets are read element by element
			// (see nft.SetState).
			fmt.Fprintf(&b, " elements=%v", s.Elements)
		}
		b.WriteString("\n")
	}
	for _, name := range slices.Sorted(maps.Keys(ks.Chains)) {
		ch := ks.Chains[name]
		fmt.Fprintf(&b, "chain %s", name)
		if ch.Base != nil {
			fmt.Fprintf(&b, " %+v", *ch.Base)
		}
		b.WriteString("\n")
		for i, r := range ch.Rules {
			fmt.Fprintf(&b, "\trule #%d hash=%q counted=%q counters=%q map counters=%q exprs=%d\n", i, r.Hash, r.Counted, r.Counters, r.MapCounters, r.Exprs)
		}
	}
	return b.String()
}

// compile compiles a policy, given as YAML or as a file, and mutates the
// ruleset when asked.
func compile(t *testing.T, doc, file string, mutate func(rs *nft.Ruleset)) *nft.Ruleset {
	t.Helper()
	var p *policy.Policy
	var err error
	if file != "" {
		p, err = policy.Load(file)
	} else {
		p, err = policy.Parse("test.yaml", []byte(doc))
	}
	if err != nil {
		t.Fatalf("policy: %v", err)
	}
	rs, err := nft.Compile(p)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	if mutate != nil {
		mutate(rs)
	}
	return rs
}
