package nft

import (
	"errors"
	"fmt"
	"slices"

	"github.com/edgefw/edgefw/policy"
)

// validate catches rulesets that the diff cannot express: names are keys
// of the diff, so a duplicate would silently merge two objects into one.
// What only the kernel knows (references, limits) the kernel checks.
func (rs *Ruleset) validate() error {
	var errs []error
	dup := func(kind string, names []string) {
		seen := map[string]bool{}
		for _, n := range names {
			if seen[n] {
				errs = append(errs, fmt.Errorf("invalid ruleset: two %ss named %q", kind, n))
			}
			seen[n] = true
		}
	}
	dup("counter", rs.Counters)
	var sets, chains []string
	for _, s := range rs.Sets {
		sets = append(sets, s.Name)
	}
	for _, ch := range rs.Chains {
		chains = append(chains, ch.Name)
	}
	dup("set", sets)
	dup("chain", chains)
	regular := map[string]bool{}
	for _, ch := range rs.Chains {
		switch {
		case ch.Regular() && ch.Policy != "":
			errs = append(errs, fmt.Errorf("invalid ruleset: regular chain %s has policy %q", ch.Name, ch.Policy))
		case ch.Regular():
			regular[ch.Name] = true
		case !slices.Contains(policy.Directions, ch.Hook):
			errs = append(errs, fmt.Errorf("invalid ruleset: chain %s has hook %q, not input, forward or output", ch.Name, ch.Hook))
		case ch.Policy != policy.Accept && ch.Policy != policy.Drop:
			errs = append(errs, fmt.Errorf("invalid ruleset: chain %s has policy %q, not accept or drop", ch.Name, ch.Policy))
		}
	}
	for _, ch := range rs.Chains {
		for _, r := range ch.Rules {
			err := r.checkVerdict()
			if err == nil && r.Jump != "" && (!regular[r.Jump] || ch.Regular()) {
				// Only base chains jump, and only to our regular chains:
				// no loop, and nothing the diff does not know.
				err = fmt.Errorf("jump to %s, which is not a regular chain of the ruleset reached from a base chain", r.Jump)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("invalid ruleset: rule %q in chain %s: %w", r.Owner, ch.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}
