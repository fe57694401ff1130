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
		seen := make(map[string]bool, len(names))
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
	// regular holds each regular chain's place in rs.Chains.
	regular := make(map[string]int, len(rs.Chains))
	for i, ch := range rs.Chains {
		switch {
		case ch.Regular() && ch.Policy != "":
			errs = append(errs, fmt.Errorf("invalid ruleset: regular chain %s has policy %q", ch.Name, ch.Policy))
		case ch.Regular():
			regular[ch.Name] = i
		case !slices.Contains(policy.Directions, ch.Hook):
			errs = append(errs, fmt.Errorf("invalid ruleset: chain %s has hook %q, not input, forward or output", ch.Name, ch.Hook))
		case ch.Policy != policy.Accept && ch.Policy != policy.Drop:
			errs = append(errs, fmt.Errorf("invalid ruleset: chain %s has policy %q, not accept or drop", ch.Name, ch.Policy))
		}
	}
	for i, ch := range rs.Chains {
		for _, r := range ch.Rules {
			err := r.checkVerdict()
			if err == nil {
				err = checkFlow(r, i, ch.Regular(), regular)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("invalid ruleset: rule %q in chain %s: %w", r.Owner, ch.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// checkFlow refuses a rule of the chain at place i of the ruleset (regular
// or not) that would make the chains loop, jump to what the diff does not
// know, or end a base chain without its policy: jumps go only to our
// regular chains listed after the jumping chain; only regular chains go
// to a chain (a goto from a base chain never comes back to it) or return.
func checkFlow(r *Rule, i int, inRegular bool, regular map[string]int) error {
	verb := "jump"
	if r.Goto {
		verb = "goto"
	}
	for _, target := range r.Targets() {
		if at, ok := regular[target]; !ok || at <= i || (r.Goto && !inRegular) {
			return fmt.Errorf("%s to %s, which is not a regular chain of the ruleset listed after this chain (a goto only from a regular chain)", verb, target)
		}
	}
	if r.Verdict == VerdictReturn && !inRegular {
		return errors.New("return in a base chain, which would end it with its policy")
	}
	return nil
}
