package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/policy"
	"github.com/edgefw/edgefw/wg"
)

func (d *Daemon) statusLine() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cur == nil {
		return "no ruleset"
	}
	s := fmt.Sprintf("enforcing %s (%d rules)", d.cur.source.Path, len(d.cur.pol.Rules))
	if d.lastApply != nil && !d.lastApply.OK {
		s += "; last apply failed: " + firstLine(d.lastApply.Error)
	}
	if d.pending != nil {
		s += "; awaiting confirmation"
	}
	return s
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

// Ready reports nil once a ruleset is installed and the last apply
// succeeded; it backs /readyz.
func (d *Daemon) Ready() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case !d.ready || d.cur == nil:
		return errors.New("no ruleset installed")
	case d.lastApply != nil && !d.lastApply.OK:
		return fmt.Errorf("last apply failed: %s", d.lastApply.Error)
	}
	return nil
}

// Counters, Rules and Tunnels make the Daemon a KernelSource for metrics.

// Counters reads the table's named counters.
func (d *Daemon) Counters() (map[string]nft.Counter, error) { return d.cfg.Firewall.Counters() }

// Rules describes the counters of the running ruleset.
func (d *Daemon) Rules() []nft.RuleInfo {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cur == nil {
		return nil
	}
	return slices.Clone(d.cur.rs.Rules)
}

// Tunnels reads tunnel and peer health.
func (d *Daemon) Tunnels(ctx context.Context) ([]wg.TunnelStatus, error) {
	if d.cfg.Tunnels == nil {
		return nil, nil
	}
	return d.cfg.Tunnels.Status(ctx)
}

// Status gathers everything `edgefwctl status` shows.
func (d *Daemon) Status(ctx context.Context) *Status {
	now := d.now()
	d.mu.Lock()
	st := &Status{
		Version: d.cfg.Version, StartedAt: d.startedAt, UptimeSeconds: now.Sub(d.startedAt).Seconds(),
		LastApply: d.lastApply, LastSuccess: d.lastSuccess, Pending: d.pendingView(), DriftRepairs: d.drift,
		Rules: []RuleStatus{}, Tunnels: []wg.TunnelStatus{}, Warnings: []string{}, OtherTables: []HookedChain{},
	}
	cur := d.cur
	if cur != nil && cur.source.Applied && d.pending == nil {
		st.PolicyFiles = d.policyFiles
		st.Warnings = append(st.Warnings, appliedWarning(cur.source, d.policyFiles))
	}
	d.mu.Unlock()
	st.Journal = d.journalStatus()
	st.Cluster = d.clusterStatus()
	if cur != nil {
		st.Policy = cur.source
		counters, err := d.cfg.Firewall.Counters()
		if err != nil {
			st.Warnings = append(st.Warnings, "cannot read counters: "+err.Error())
		}
		sources := ruleSources(cur.pol)
		for _, r := range cur.rs.Rules {
			c := counters[r.Name]
			st.Rules = append(st.Rules, RuleStatus{Name: r.Name, Direction: string(r.Direction), Action: string(r.Action),
				Kind: r.Kind, Mode: ruleMode(r), Packets: c.Packets, Bytes: c.Bytes, Source: sources[r.Name]})
		}
	} else {
		st.Warnings = append(st.Warnings, "no edgefw ruleset is installed")
	}
	if tun, err := d.Tunnels(ctx); err != nil {
		st.Warnings = append(st.Warnings, "cannot read tunnels: "+err.Error())
	} else if tun != nil {
		st.Tunnels = tun
	}
	if others, err := d.cfg.Firewall.OtherHooked(); err == nil {
		for _, o := range others {
			st.OtherTables = append(st.OtherTables, HookedChain(o))
			st.Warnings = append(st.Warnings, fmt.Sprintf(
				"table %s %s has a base chain %q at hook %s (priority %d, policy %s): its drops apply on top of edgefw's accepts, and edgefw's drops on top of its accepts",
				o.Family, o.Table, o.Chain, o.Hook, o.Priority, o.Policy))
		}
	}
	if st.LastApply != nil && !st.LastApply.OK {
		st.Warnings = append(st.Warnings, "the last apply failed; the previous ruleset is in force")
	}
	return st
}

// ruleMode is the mode status and metrics show for a counter: audit or
// enforce (also for a RuleInfo that says none).
func ruleMode(r nft.RuleInfo) string {
	if r.Mode == policy.Audit {
		return string(policy.Audit)
	}
	return string(policy.Enforce)
}

// RulesetText renders the running ruleset.
func (d *Daemon) RulesetText() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cur == nil {
		return ""
	}
	return d.cur.rs.String()
}
