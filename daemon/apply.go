package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/edgefw/edgefw/policy"
	"github.com/edgefw/edgefw/wg"
)

// reload loads the policy file and applies it. A reload while an apply
// awaits confirmation makes the file the truth again and disarms the timer.
// A confirmed policy given by `edgefwctl apply` is applied again instead,
// until the policy files change (see keptApplied).
func (d *Daemon) reload(ctx context.Context, trigger string) error {
	if kept := d.keptApplied(trigger); kept != nil {
		err := d.apply(ctx, kept.pol, kept.source, trigger)
		if firewallApplied(err) {
			d.setPolicyFiles(d.compareFiles(kept.rs))
		}
		return err
	}
	start := d.now()
	// The files' hashes are of the bytes loaded, not of a second read:
	// with a large set file, that read cost 10 ms of every reload.
	pol, src, err := d.readPolicy() // with the cluster's objects (kube.go)
	if err != nil {
		d.recordFailure(start, trigger, fmt.Errorf("policy %s: %w", d.cfg.PolicyPath, err))
		return err
	}
	if trigger == triggerFileChange && d.runsFiles(src) {
		// An edit followed by `edgefwctl reload` is seen by the watch
		// too, which reloaded the same files again 300 ms later.
		d.log.Info("policy files unchanged since they were applied: nothing to do", "trigger", trigger, "policy", src.Path)
		return nil
	}
	err = d.applyNew(ctx, pol, src, trigger)
	d.clusterApplied(ctx, err) // kube.go
	if firewallApplied(err) {
		d.setPolicyFiles(nil)
		d.clearPending("reloaded from " + d.cfg.PolicyPath)
	}
	return err
}

// runsFiles reports whether the running policy was loaded from the policy
// files as src describes them, and applied in full: loading them again
// would apply the same policy. The firewall's drift is repaired apart.
func (d *Daemon) runsFiles(src PolicySource) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cur != nil && !d.cur.source.Applied && d.pending == nil && d.cur.source.Path == src.Path &&
		d.cur.source.Hash == src.Hash && d.lastApply != nil && d.lastApply.OK
}

// setPolicyFiles records how the policy files compare with a running
// policy given by `edgefwctl apply`; nil while the files run.
func (d *Daemon) setPolicyFiles(pf *PolicyFiles) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.policyFiles = pf
}

// apply compiles and applies a policy, firewall first. The previous state
// stays in force if the firewall part fails; tunnel errors are reported
// but do not undo the firewall.
func (d *Daemon) apply(ctx context.Context, pol *policy.Policy, src PolicySource, trigger string) error {
	start := d.now()
	rs, err := d.compiler.Compile(pol)
	if err != nil {
		d.recordFailure(start, trigger, fmt.Errorf("compile: %w", err))
		return err
	}
	defer d.releaseLater(rs)
	res, err := d.cfg.Firewall.Apply(rs)
	if err != nil {
		d.recordFailure(start, trigger, fmt.Errorf("apply firewall: %w", err))
		return err
	}
	d.noteGeneration()
	d.recordMark(res.Mark)
	after := &running{pol: pol, rs: rs, source: src}
	d.mu.Lock()
	before := d.cur
	d.cur = after
	d.mu.Unlock()
	d.persistLastGood(pol, src)
	var tunErr error
	if d.cfg.Tunnels != nil {
		var rep wg.Report
		rep, tunErr = d.cfg.Tunnels.Apply(ctx, pol.Tunnels)
		logTunnelReport(ctx, d.log, rep)
	}
	info := &ApplyInfo{Time: start, DurationSeconds: d.now().Sub(start).Seconds(), OK: tunErr == nil,
		Trigger: trigger, Messages: res.Messages, Changes: res.Changes}
	if tunErr != nil {
		info.Error = "tunnels: " + tunErr.Error()
		d.log.Error("tunnels not fully applied", "trigger", trigger, "error", tunErr)
	}
	d.mu.Lock()
	d.lastApply = info
	if info.OK {
		d.lastSuccess = info
	}
	d.mu.Unlock()
	if d.cfg.Metrics != nil {
		d.cfg.Metrics.ObserveApply(d.now().Sub(start), tunErr, d.now())
	}
	if res.Changed() {
		d.log.Info("policy applied", "trigger", trigger, "policy", src.Path, "messages", res.Messages, "full", res.Full, "changes", len(res.Changes))
		for _, c := range res.Changes {
			d.log.Debug("change", "what", c)
		}
	} else {
		d.log.Info("policy applied: kernel already up to date", "trigger", trigger, "policy", src.Path)
	}
	d.journalApply(trigger, before, after, res, tunErr)
	if tunErr != nil {
		return &TunnelError{Err: tunErr}
	}
	return nil
}

// persistLastGood saves pol as the last good policy, unless the last
// save was of the same files: at 10,000 peers encoding the policy and
// comparing it with the file took about a tenth of a reload's CPU, and
// an edit followed by `edgefwctl reload` reloads twice (the policy
// watch's reload finds the files the other applied).
//
// The first save of the process (at start) is in place when it returns,
// and synced once the loop has answered (see afterAnswer): the sync of a
// 100k set's policy took 10 to 30 ms here. Later saves replace a saved
// policy and are written in the background (lastGoodWriter), after the
// answer to the reload that applied them.
func (d *Daemon) persistLastGood(pol *policy.Policy, src PolicySource) {
	d.mu.Lock()
	saved := d.savedSource
	d.mu.Unlock()
	if saved != nil && !src.Applied && !saved.Applied && saved.Path == src.Path && saved.Hash == src.Hash &&
		slices.Equal(saved.Files, src.Files) {
		return
	}
	s := &savedPolicy{Source: src, Policy: pol}
	if saved != nil {
		d.mu.Lock()
		d.savedSource = &src
		d.mu.Unlock()
		d.lastGood.save(d.cfg.StateDir, s, func(err error) {
			d.log.Warn("could not persist the last good ruleset", "error", err)
			d.mu.Lock()
			d.savedSource = nil // nothing known saved: save again next time
			d.mu.Unlock()
		})
		return
	}
	// After a failed background write too: none may land after this one.
	d.lastGood.wait()
	wrote, err := writeLastGood(d.cfg.StateDir, s, false)
	if err != nil {
		d.log.Warn("could not persist the last good ruleset", "error", err)
		return // nothing known saved: save again next time
	}
	d.mu.Lock()
	d.savedSource = &src
	if wrote {
		d.syncDue = true
	}
	d.mu.Unlock()
}

// TunnelError is an apply whose firewall part is in force but whose
// tunnels were not all configured as declared.
type TunnelError struct{ Err error }

func (e *TunnelError) Error() string { return "firewall applied, but tunnels failed: " + e.Err.Error() }

// Unwrap returns the tunnels' error.
func (e *TunnelError) Unwrap() error { return e.Err }

// firewallApplied reports whether an apply that returned err changed the
// firewall anyway (only tunnels failed).
func firewallApplied(err error) bool {
	var te *TunnelError
	return err == nil || errors.As(err, &te)
}

func (d *Daemon) recordFailure(start time.Time, trigger string, err error) {
	d.log.Error("policy not applied; the previous ruleset stays in force", "trigger", trigger, "error", err)
	info := &ApplyInfo{Time: start, DurationSeconds: d.now().Sub(start).Seconds(), Trigger: trigger, Error: err.Error()}
	d.mu.Lock()
	d.lastApply = info
	d.mu.Unlock()
	if d.cfg.Metrics != nil {
		d.cfg.Metrics.ObserveApply(d.now().Sub(start), err, d.now())
	}
	d.journalFailure(trigger, err)
}

// applyRequest runs a policy given by `edgefwctl apply`, arming the
// commit-confirmed timer when asked.
func (d *Daemon) applyRequest(ctx context.Context, req *ApplyRequest, caller *Caller) ApplyResponse {
	if req == nil {
		return ApplyResponse{Error: "apply: no policy in request"}
	}
	note := req.note()
	if note != "" {
		d.log.Warn("edgefwctl sent a parsed policy, which is deprecated: upgrade it", "policy", req.Path, "caller", caller.String())
	}
	respond := func(err error, msg string) ApplyResponse { return d.response(err, withNote(msg, note)) }
	// The daemon parses the policy's files itself, as its own: the socket
	// is no way around validation, and errors name the operator's files.
	pol, err := req.load()
	if err != nil {
		d.recordFailure(d.now(), "apply", fmt.Errorf("policy %s: %w", req.Path, err))
		return respond(err, "")
	}
	d.mu.Lock()
	prev := d.cur
	hadPending := d.pending != nil
	d.mu.Unlock()
	src := req.source(pol)
	src.AppliedAt, src.AppliedBy, src.FilesFingerprint = d.now(), caller, d.filesFingerprint()
	err = d.applyNew(ctx, pol, src, "apply")
	if !firewallApplied(err) {
		return respond(err, "")
	}
	d.mu.Lock()
	rs := d.cur.rs
	d.mu.Unlock()
	d.setPolicyFiles(d.compareFiles(rs))
	// From here the new firewall is in force, even if tunnels failed: a
	// requested rollback must be armed whatever else went wrong.
	timeout := time.Duration(req.ConfirmTimeout)
	if timeout <= 0 {
		d.clearPending("superseded by an apply without confirmation")
		return respond(err, "applied "+req.Path)
	}
	if hadPending {
		// Keep the original restore point: rolling back must return to
		// the last confirmed policy, not to an unconfirmed one.
		d.mu.Lock()
		prevSaved := d.pending.Previous
		d.mu.Unlock()
		d.arm(req.Path, timeout, prevSaved)
	} else {
		var prevSaved *savedPolicy
		if prev != nil {
			prevSaved = &savedPolicy{Source: prev.source, Policy: prev.pol}
		}
		d.arm(req.Path, timeout, prevSaved)
	}
	return respond(err, fmt.Sprintf("applied %s; confirm within %s or it is rolled back", req.Path, timeout))
}

func (d *Daemon) remove() ApplyResponse {
	if err := d.cfg.Firewall.Delete(); err != nil {
		d.journalRemove(err)
		return ApplyResponse{Error: err.Error()}
	}
	d.journalRemove(nil)
	d.clearPending("firewall removed")
	d.mu.Lock()
	d.cur = nil
	d.mu.Unlock()
	d.log.Warn("table inet edgefw removed on operator request; the host is no longer filtered by edgefw until the next reload")
	return ApplyResponse{OK: true, Message: "table inet edgefw removed; `edgefwctl reload` restores it"}
}
