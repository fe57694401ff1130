package daemon

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/edgefw/edgefw/policy"
)

// Start installs a ruleset and returns once the host is protected: first
// the last ruleset that applied (so a broken policy file or an endpoint
// that does not resolve yet cannot leave the host open at boot), then the
// policy file. If neither exists, a minimal safe ruleset (defaults plus
// failsafe) is installed. READY=1 is sent by Run after Start succeeds.
func (d *Daemon) Start(ctx context.Context) (err error) {
	// The control socket already serves status while Start runs.
	d.mu.Lock()
	d.startedAt = d.now()
	d.mu.Unlock()
	if err := os.MkdirAll(d.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	d.openJournal()
	installed := false

	// An apply awaiting confirmation when the daemon stopped must not stay
	// in force: restore what it replaced, first of all.
	pend, err := loadPending(d.cfg.StateDir)
	if err != nil {
		d.log.Warn("ignoring unreadable pending-confirmation state", "error", err)
	}
	d.beginBoot(pend)
	defer func() { d.endBoot(err) }()
	if pend != nil {
		if pend.Previous != nil {
			if err := d.applySaved(ctx, pend.Previous, triggerRestart); !firewallApplied(err) {
				d.log.Error("restoring the policy before an unconfirmed apply failed", "error", err)
			} else {
				installed = true
				d.log.Warn("daemon restarted while an apply awaited confirmation: restored the previous policy",
					"unconfirmed", pend.Path, "deadline", pend.Deadline)
			}
		}
		// Handled either way: with nothing to restore, the policy file
		// below replaces the unconfirmed policy.
		if err := removePending(d.cfg.StateDir); err != nil {
			d.log.Error("could not remove the pending-confirmation state", "error", err)
		}
	}
	// The last good ruleset may be the unconfirmed one itself: with a
	// pending apply it is never the fallback.
	if !installed && pend == nil {
		if saved, err := loadLastGood(d.cfg.StateDir); err != nil {
			d.log.Warn("ignoring unreadable last-good ruleset", "error", err)
		} else if saved != nil {
			if err := d.applySaved(ctx, saved, triggerLastGood); !firewallApplied(err) {
				d.log.Error("installing the last good ruleset failed", "error", err)
			} else {
				installed = true
			}
		}
	}
	if pend == nil || !installed {
		if err := d.reload(ctx, "start"); firewallApplied(err) {
			installed = true
		} else if !installed {
			d.log.Error("policy rejected and no earlier ruleset to fall back on: installing the safe minimal ruleset (defaults and failsafe)", "error", err)
			if err := d.applySafe(ctx); err != nil {
				return fmt.Errorf("no ruleset could be installed: %w", err)
			}
		}
	}
	d.mu.Lock()
	d.ready = true
	d.mu.Unlock()
	return nil
}

// applySaved applies a policy from the state directory. It was valid when
// saved, but the file may be old or altered: it passes the checks again,
// as saved (policy.Validate); errors name its fields and the positions
// its files had when it was applied.
func (d *Daemon) applySaved(ctx context.Context, s *savedPolicy, trigger string) error {
	if err := policy.Validate(s.Policy); err != nil {
		d.recordFailure(d.now(), trigger, fmt.Errorf("saved policy of %s in %s: %w", s.Source.Path, d.cfg.StateDir, err))
		return err
	}
	return d.apply(ctx, s.Policy, s.Source, trigger)
}

// applySafe installs the defaults-and-failsafe ruleset of an empty policy.
// The safe ruleset is a stopgap, not the policy: the rejected apply stays
// the last apply, so status, the STATUS line and /readyz keep saying that
// the policy failed.
func (d *Daemon) applySafe(ctx context.Context) error {
	d.mu.Lock()
	rejected := d.lastApply
	d.mu.Unlock()
	pol := &policy.Policy{Version: 1,
		Defaults: policy.Defaults{Input: policy.Drop, Forward: policy.Accept, Output: policy.Accept},
		Failsafe: d.safeFailsafe()}
	if err := d.apply(ctx, pol, PolicySource{Path: "(safe minimal ruleset: policy invalid)"}, triggerSafeFallback); err != nil {
		return err
	}
	if rejected != nil {
		d.mu.Lock()
		d.lastApply = rejected
		d.mu.Unlock()
	}
	return nil
}

// safeFailsafe is the anti-lockout of the safe ruleset: the configured
// ports, and the policy file's failsafe section if it alone can be read,
// so that neither a typo in a rule nor a file that is not even YAML locks
// out an operator whose SSH is not on port 22.
func (d *Daemon) safeFailsafe() []policy.PortRange {
	ports := slices.Clone(d.cfg.Failsafe)
	declared, err := policy.LoadFailsafe(d.cfg.PolicyPath)
	if err != nil {
		d.log.Warn("the policy's failsafe section cannot be read either: the safe ruleset opens only the configured failsafe ports",
			"failsafe", portList(ports), "error", err)
	}
	for _, p := range declared {
		if !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	if ports == nil {
		ports = []policy.PortRange{}
	}
	d.log.Warn("safe minimal ruleset: input dropped but for the failsafe ports", "failsafe", portList(ports))
	return ports
}

func portList(ports []policy.PortRange) string {
	if len(ports) == 0 {
		return "none"
	}
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}
