package main

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/edgefw/edgefw/bench"
)

// setReps says how many samples each size gets: bulk applies per side,
// and no-op and one-change runs in each of edgefw's namespaces.
type setReps struct {
	n, apply, noop, change int
}

func (e *env) setPlan() []setReps {
	if e.quick {
		return []setReps{{10_000, 2, 2, 2}, {100_000, 1, 1, 1}}
	}
	// 1M: two bulk applies each, a no-op in each of edgefw's namespaces
	// (against nft -f, ~7 s); no one-line change (--once then reads the
	// whole set back, and nft add element takes over a minute).
	return []setReps{{10_000, 3, 2, 2}, {100_000, 3, 1, 1}, {1_000_000, 2, 1, 0}}
}

// sizeLabel prints 10000 as 10k and 1000000 as 1M.
func sizeLabel(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

// setFiles is a policy with a blocklist file in a directory of its own.
type setFiles struct {
	dir, policy, setFile, plan string
	prefixes                   []netip.Prefix
}

// writeSetPolicy writes the bulk-apply policy (a blocklist of prefixes
// and two port rules) into a new directory.
func (e *env) writeSetPolicy(label string, prefixes []netip.Prefix, spec bench.PolicySpec) (*setFiles, error) {
	dir, err := e.lab.TempDir(label)
	if err != nil {
		return nil, err
	}
	f := &setFiles{dir: dir, policy: filepath.Join(dir, "policy.yaml"), setFile: filepath.Join(dir, "blocklist.txt"),
		plan: filepath.Join(dir, "plan.nft"), prefixes: prefixes}
	spec.SetFile = "blocklist.txt"
	if err := os.WriteFile(f.setFile, bench.SetFile(prefixes), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(f.policy, bench.Policy(spec), 0o644); err != nil {
		return nil, err
	}
	return f, nil
}

// writePlan writes what `edgefwctl plan` prints for the policy.
func (e *env) writePlan(policy, plan string) error {
	out, err := runOut(e.edgefwctl, "plan", policy)
	if err != nil {
		return fmt.Errorf("edgefwctl plan: %w", err)
	}
	return os.WriteFile(plan, []byte(out), 0o644)
}

// changeLine rewrites the set file with its first line replaced, the
// way an editor saves it (a new file renamed over the old one), and
// returns the new prefix.
func changeLine(f *setFiles, k int) (netip.Prefix, error) {
	p := bench.Replacement(f.prefixes, k)
	changed := slices.Clone(f.prefixes)
	changed[0] = p
	tmp := f.setFile + ".tmp"
	if err := os.WriteFile(tmp, bench.SetFile(changed), 0o644); err != nil {
		return p, err
	}
	return p, os.Rename(tmp, f.setFile)
}

var bulkSpec = bench.PolicySpec{PortRules: 2, FirstPort: 6443}

// runSetApply measures, per size N: bulk apply of the set into a fresh
// namespace; a no-op --once into the namespace holding it; --once after
// one line of the set file changed. The reference for each: nft -f of
// the plan, nft -f of it again, nft add element.
func runSetApply(e *env) ([]bench.Row, error) {
	var rows []bench.Row
	var perElement []bench.Row
	var errs []string
	for _, sz := range e.setPlan() {
		if !e.want(sz.n) {
			continue
		}
		bulk, noop, change, err := e.setSize(sz)
		rows = append(rows, bulk, noop, change)
		perElement = append(perElement, bulk)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", sizeLabel(sz.n), err))
		}
	}
	if len(perElement) > 1 {
		rows = append(rows, perElementRow(perElement))
	}
	var err error
	if len(errs) > 0 {
		err = fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return rows, err
}

func (e *env) setSize(sz setReps) (bulk, noop, change bench.Row, err error) {
	label := sizeLabel(sz.n)
	bulk = bench.Row{Scenario: "bulk apply: set of N CIDRs + 2 port rules", Size: label, N: sz.n, Unit: "s",
		Edgefw: bench.Side{Tool: "edgefwd --once"}, Reference: bench.Side{Tool: "nft -f"},
		Target: "≤ 0.5× nft -f; peak RSS ≤ 0.5× nft's"}
	noop = bench.Row{Scenario: "no-op re-apply (set already loaded)", Size: label, N: sz.n, Unit: "s",
		Edgefw: bench.Side{Tool: "edgefwd --once"}, Reference: bench.Side{Tool: "nft -f"}}
	if sz.n == 100_000 {
		noop.Target = "≤ 0.1× nft -f"
	}
	change = bench.Row{Scenario: "one changed set line, --once", Size: label, N: sz.n, Unit: "s",
		Edgefw: bench.Side{Tool: "edgefwd --once"}, Reference: bench.Side{Tool: "nft add element"}}
	defer func() {
		bulk.Met = metRatio(bulk, 0.5, bulk.Edgefw.PeakRSS() > 0 && float64(bulk.Edgefw.PeakRSS()) <= 0.5*float64(bulk.Reference.PeakRSS()))
		if noop.Target != "" {
			noop.Met = metRatio(noop, 0.1, true)
		}
		if err != nil {
			bulk.Error = err.Error()
		}
		if sz.noop == 0 {
			noop.Note = "skipped at this size (budget)"
		}
		if sz.change == 0 {
			change.Note = "skipped at this size (budget: a changed line makes --once read the whole set back, and nft add element takes over a minute)"
		}
	}()

	e.logf("set %s: generating", label)
	f, err := e.writeSetPolicy("set"+label, bench.RandomPrefixes(uint64(sz.n), sz.n), bulkSpec)
	if err != nil {
		return
	}
	if err = e.writePlan(f.policy, f.plan); err != nil {
		return
	}
	verified := false
	for rep := range sz.apply {
		sides := []func() error{
			func() error { return e.setEdgefw(f, sz, rep, &bulk, &noop, &change) },
			func() error {
				err := e.setNft(f, sz, rep, !verified, &bulk, &noop, &change)
				verified = verified || err == nil
				return err
			},
		}
		if rep%2 == 1 {
			slices.Reverse(sides)
		}
		for _, side := range sides {
			if err = side(); err != nil {
				return
			}
		}
		e.logf("set %s: rep %d/%d: edgefw %.3fs, nft -f %.3fs", label, rep+1, sz.apply,
			last(bulk.Edgefw.Samples), last(bulk.Reference.Samples))
	}
	return
}

// setEdgefw is one edgefw sample: bulk apply into a fresh namespace,
// every range counted back, then no-ops and one-line changes there.
func (e *env) setEdgefw(f *setFiles, sz setReps, rep int, bulk, noop, change *bench.Row) error {
	ns, err := e.lab.NewNS("s")
	if err != nil {
		return err
	}
	defer e.settle()
	defer ns.Delete()
	// Each sample gets its own copy: the change step edits the set file.
	own, err := e.writeSetPolicy(fmt.Sprintf("once%d", rep), f.prefixes, bulkSpec)
	if err != nil {
		return err
	}
	state := filepath.Join(own.dir, "state")
	once := func() (bench.Usage, error) {
		u, _, err := ns.Measure(nil, e.edgefwd, "--once", "--policy", own.policy, "--state-dir", state)
		return u, err
	}
	u, err := once()
	if err != nil {
		return err
	}
	bulk.Edgefw.Add(u)
	t := time.Now()
	if err := countBack(ns, f.prefixes); err != nil {
		return err
	}
	e.logf("  edgefw: applied in %.3fs, counted back in %.1fs", u.Wall.Seconds(), time.Since(t).Seconds())
	for range sz.noop {
		u, err := once()
		if err != nil {
			return fmt.Errorf("no-op: %w", err)
		}
		noop.Edgefw.Add(u)
	}
	for k := range sz.change {
		if _, err := changeLine(own, rep*10+k); err != nil {
			return err
		}
		u, err := once()
		if err != nil {
			return fmt.Errorf("one change: %w", err)
		}
		change.Edgefw.Add(u)
	}
	if sz.change > 0 {
		changed := slices.Clone(f.prefixes)
		changed[0] = bench.Replacement(f.prefixes, rep*10+sz.change-1)
		return countBack(ns, changed)
	}
	return nil
}

// countBack fails unless the kernel's blocklist holds every prefix.
func countBack(ns *bench.NS, want []netip.Prefix) error {
	missing, err := bench.CheckElements(ns, "blocklist-v4", want)
	if err != nil {
		return fmt.Errorf("check the set in the kernel: %w", err)
	}
	if missing > 0 {
		return fmt.Errorf("the kernel lacks %d of %d elements: elements lost", missing, len(want))
	}
	// The check itself must see a missing element.
	absent := bench.Replacement(want, 9999)
	if missing, err := bench.CheckElements(ns, "blocklist-v4", []netip.Prefix{absent}); err != nil || missing != 1 {
		return fmt.Errorf("the element check does not see that %v is absent (%d missing, %v)", absent, missing, err)
	}
	return nil
}

// setNft is one reference sample: nft -f into a fresh namespace, nft -f
// again, then nft add element of a new CIDR.
func (e *env) setNft(f *setFiles, sz setReps, rep int, verify bool, bulk, noop, change *bench.Row) error {
	ns, err := e.lab.NewNS("n")
	if err != nil {
		return err
	}
	defer e.settle()
	defer ns.Delete()
	u, _, err := ns.Measure(nil, "nft", "-f", f.plan)
	if err != nil {
		return fmt.Errorf("the plan does not load with nft -f: %w", err)
	}
	bulk.Reference.Add(u)
	if verify {
		if err := countBack(ns, f.prefixes); err != nil {
			return fmt.Errorf("after nft -f: %w", err)
		}
	}
	for range sz.noop {
		u, _, err := ns.Measure(nil, "nft", "-f", f.plan)
		if err != nil {
			return fmt.Errorf("nft -f again: %w", err)
		}
		noop.Reference.Add(u)
	}
	for k := range sz.change {
		p := bench.Replacement(f.prefixes, rep*10+k)
		u, _, err := ns.Measure(nil, "nft", "add", "element", "inet", "edgefw", "blocklist-v4", "{ "+p.String()+" }")
		if err != nil {
			return err
		}
		change.Reference.Add(u)
	}
	return nil
}

func last(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	return xs[len(xs)-1]
}

// metRatio says whether a row's ratio is at most limit (and extra holds).
func metRatio(r bench.Row, limit float64, extra bool) string {
	ratio := r.Ratio()
	if ratio != ratio { // NaN: nothing measured
		return "—"
	}
	if ratio <= limit && extra {
		return "yes"
	}
	return "no"
}

// perElementRow derives edgefw's cost per element from the bulk rows:
// the target is a cost flat within ±25% of the smallest size's.
func perElementRow(bulk []bench.Row) bench.Row {
	r := bench.Row{Scenario: "bulk apply: edgefw cost per element", Unit: "µs",
		Edgefw: bench.Side{Tool: "edgefwd --once"}, Reference: bench.Side{Tool: "nft -f"},
		Target: "flat ±25% from 10k to 1M"}
	var sizes, notes []string
	var base float64
	met := "yes"
	for i, b := range bulk {
		if len(b.Edgefw.Samples) == 0 {
			continue
		}
		per := b.Edgefw.Median() / float64(b.N) * 1e6
		ref := b.Reference.Median() / float64(b.N) * 1e6
		r.Edgefw.Samples = append(r.Edgefw.Samples, per)
		if len(b.Reference.Samples) > 0 {
			r.Reference.Samples = append(r.Reference.Samples, ref)
		}
		if i == 0 {
			base = per
		} else if per > 1.25*base || per < 0.75*base {
			met = "no"
		}
		sizes = append(sizes, b.Size)
		notes = append(notes, fmt.Sprintf("%s: %.2f µs (nft %.2f µs)", b.Size, per, ref))
	}
	r.Size = strings.Join(sizes, "–")
	r.Met = met
	r.Note = "per size, median time / N: " + strings.Join(notes, ", ") + "; median and min columns are over the sizes"
	return r
}

// rulesPlan is the sizes and samples of the many-rules scenario.
func (e *env) rulesPlan() [][2]int {
	if e.quick {
		return [][2]int{{1000, 2}, {10_000, 1}}
	}
	return [][2]int{{1000, 4}, {10_000, 3}}
}

// runRules measures the bulk apply of N port rules, alternating edgefwd
// --once and nft -f of the plan, each into a fresh namespace.
func runRules(e *env) ([]bench.Row, error) {
	var rows []bench.Row
	for _, p := range e.rulesPlan() {
		n, reps := p[0], p[1]
		row := bench.Row{Scenario: "bulk apply: N port rules", Size: sizeLabel(n), N: n, Unit: "s",
			Edgefw: bench.Side{Tool: "edgefwd --once"}, Reference: bench.Side{Tool: "nft -f"}, Target: "≤ 0.5× nft -f"}
		err := e.rulesSize(n, reps, &row)
		row.Met = metRatio(row, 0.5, true)
		if err != nil {
			row.Error = err.Error()
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func (e *env) rulesSize(n, reps int, row *bench.Row) error {
	dir, err := e.lab.TempDir("rules")
	if err != nil {
		return err
	}
	policy, plan := filepath.Join(dir, "policy.yaml"), filepath.Join(dir, "plan.nft")
	if err := os.WriteFile(policy, bench.Policy(bench.PolicySpec{PortRules: n, FirstPort: 1024}), 0o644); err != nil {
		return err
	}
	if err := e.writePlan(policy, plan); err != nil {
		return err
	}
	edgefw := func(rep int) error {
		ns, err := e.lab.NewNS("r")
		if err != nil {
			return err
		}
		defer ns.Delete()
		u, _, err := ns.Measure(nil, e.edgefwd, "--once", "--policy", policy, "--state-dir", filepath.Join(dir, fmt.Sprint("state", rep)))
		if err == nil {
			row.Edgefw.Add(u)
		}
		return err
	}
	ref := func(int) error {
		ns, err := e.lab.NewNS("r")
		if err != nil {
			return err
		}
		defer ns.Delete()
		u, _, err := ns.Measure(nil, "nft", "-f", plan)
		if err == nil {
			row.Reference.Add(u)
		}
		return err
	}
	for rep := range reps {
		sides := []func(int) error{edgefw, ref}
		if rep%2 == 1 {
			slices.Reverse(sides)
		}
		for _, side := range sides {
			if err := side(rep); err != nil {
				return err
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	e.settle()
	return nil
}
