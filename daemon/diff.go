package daemon

import (
	"errors"
	"fmt"

	"github.com/edgefw/edgefw/nft"
)

// ErrInvalidPolicy is wrapped by the errors of requests whose policy does
// not pass validation or does not compile.
var ErrInvalidPolicy = errors.New("invalid policy")

// Diff compares a policy with what the kernel holds, without applying it:
// the table rendered as nft text, and what applying the policy would
// write. It reads the kernel itself, not the running policy, so drift
// that the loop has not repaired (or cannot) shows. It only reads, so it
// does not wait for the loop.
func (d *Daemon) Diff(req *DiffRequest) (*Diff, error) {
	if req == nil {
		return nil, fmt.Errorf("diff: %w: no policy in request", ErrInvalidPolicy)
	}
	if req.note() != "" {
		d.log.Warn("edgefwctl sent a parsed policy, which is deprecated: upgrade it", "policy", req.Path)
	}
	// Parsed and checked as an apply's policy is: the socket is no way
	// around validation, even to read.
	pol, err := req.load()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPolicy, err)
	}
	rs, err := nft.Compile(pol)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: cannot compile: %w", ErrInvalidPolicy, req.Path, err)
	}
	d.mu.Lock()
	cur := d.cur
	d.mu.Unlock()
	var known []*nft.Ruleset
	if cur != nil {
		// The kernel normally holds the running ruleset's rules: knowing
		// them, the rendering shows them as text, not as unknown rules.
		known = append(known, cur.rs)
	}
	in, err := d.cfg.Firewall.Inspect(rs, known...)
	if err != nil {
		return nil, fmt.Errorf("read table inet %s: %w", nft.TableName, err)
	}
	changes := in.Plan.Changes
	if changes == nil {
		changes = []string{}
	}
	return &Diff{Kernel: in.Text, Changes: changes, Messages: in.Plan.Messages}, nil
}
