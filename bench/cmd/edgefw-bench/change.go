package main

import (
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/edgefw/edgefw/bench"
)

// runDaemonChange measures one changed line of the set file in the
// running daemon: the file is rewritten, then `edgefwctl reload` is timed
// until it returns (the daemon has applied the change), against `nft add
// element` of one CIDR into a namespace holding the same ruleset.
func runDaemonChange(e *env) ([]bench.Row, error) {
	// 1M: nft add element reads the whole set back (over a minute), so
	// its side runs once.
	plan := [][2]int{{10_000, 3}, {100_000, 5}, {1_000_000, 3}}
	if e.quick {
		plan = [][2]int{{10_000, 2}, {100_000, 2}}
	}
	var rows []bench.Row
	for _, p := range plan {
		n, reps := p[0], p[1]
		if !e.want(n) {
			continue
		}
		row := bench.Row{Scenario: "one changed set line, running daemon", Size: sizeLabel(n), N: n, Unit: "ms",
			Edgefw: bench.Side{Tool: "edgefwctl reload"}, Reference: bench.Side{Tool: "nft add element"}}
		switch n {
		case 100_000:
			row.Target = "≤ 0.05× nft add element"
		case 1_000_000:
			row.Target = "≤ 10 ms"
		}
		err := e.daemonChange(n, reps, &row)
		if err != nil {
			row.Error = err.Error()
		}
		switch n {
		case 100_000:
			row.Met = metRatio(row, 0.05, true)
		case 1_000_000:
			row.Met = yesNo(err == nil && bench.Median(row.Edgefw.Samples) <= 10)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func (e *env) daemonChange(n, reps int, row *bench.Row) error {
	prefixes := bench.RandomPrefixes(uint64(n)+1, n)
	f, err := e.writeSetPolicy("dchg", prefixes, bulkSpec)
	if err != nil {
		return err
	}
	if err := e.writePlan(f.policy, f.plan); err != nil {
		return err
	}
	policy, err := os.ReadFile(f.policy)
	if err != nil {
		return err
	}
	dns, err := e.lab.NewNS("d")
	if err != nil {
		return err
	}
	defer e.settle()
	defer dns.Delete()
	rns, err := e.lab.NewNS("n")
	if err != nil {
		return err
	}
	defer rns.Delete()
	d, err := e.startDaemon(dns, f.dir, policy, "")
	if err != nil {
		return err
	}
	defer d.stop()
	if _, _, err := rns.Measure(nil, "nft", "-f", f.plan); err != nil {
		return err
	}
	var applied []float64
	for k := range reps {
		edgefw := func() error {
			if _, err := changeLine(f, k); err != nil {
				return err
			}
			u, resp, err := e.reload(d)
			if err != nil {
				return err
			}
			if !resp.OK || resp.Apply == nil {
				return fmt.Errorf("reload: %s %s", resp.Error, resp.Message)
			}
			row.Edgefw.AddWall(u, time.Millisecond)
			applied = append(applied, resp.Apply.DurationSeconds*1000)
			d.waitQuiet()
			return nil
		}
		ref := func() error {
			p := bench.Replacement(prefixes, 100+k)
			u, _, err := rns.Measure(nil, "nft", "add", "element", "inet", "edgefw", "blocklist-v4", "{ "+p.String()+" }")
			if err == nil {
				row.Reference.AddScaled(u, time.Millisecond)
			}
			return err
		}
		sides := []func() error{edgefw, ref}
		if n >= 1_000_000 && k > 0 {
			sides = sides[:1]
		}
		if k%2 == 1 {
			slices.Reverse(sides)
		}
		for _, side := range sides {
			if err := side(); err != nil {
				return err
			}
		}
	}
	changed := slices.Clone(prefixes)
	changed[0] = bench.Replacement(prefixes, reps-1)
	if err := countBack(dns, changed); err != nil {
		return err
	}
	row.Note = fmt.Sprintf("the daemon's own apply duration (reload -o json): median %.1f ms; the policy watch also reloads 300 ms after the file changes (waited out between samples)",
		bench.Median(applied))
	return nil
}
