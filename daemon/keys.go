package daemon

import (
	"context"
	"fmt"

	"github.com/edgefw/edgefw/policy"
	"github.com/edgefw/edgefw/wg"
)

// applyNew applies a policy that has not applied before: one read from the
// policy files or given by `edgefwctl apply`. Its tunnels' key files are
// checked first, as the tunnels will read them (wg.CheckKeyFiles, as this
// process), and a policy with a bad one is refused whole before the
// firewall changes: "bad input never reaches the kernel", and the running
// ruleset and tunnels stay as they were.
//
// Policies restored from the state directory (the last good one at boot,
// the one before an unconfirmed apply) go to apply directly: they
// protected the host before, bringing their firewall back comes first
// (refusing a rollback for a key file would keep an operator locked out),
// and the tunnels report a bad key on their own. Without a tunnel manager
// the daemon ignores the tunnels, and so their key files.
func (d *Daemon) applyNew(ctx context.Context, pol *policy.Policy, src PolicySource, trigger string) error {
	if d.cfg.Tunnels != nil {
		if err := wg.CheckKeyFiles(pol.Tunnels, wg.ProcessKeyReader()); err != nil {
			d.recordFailure(d.now(), trigger, fmt.Errorf("policy %s: %w", src.Path, err))
			return err
		}
	}
	return d.apply(ctx, pol, src, trigger)
}
