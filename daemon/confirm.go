package daemon

import (
	"context"
	"time"
)

type pendingState struct {
	Path     string    `json:"path"`
	Deadline time.Time `json:"deadline"`
	// Hash is the unconfirmed policy's (PolicySource.Hash), for the
	// journal of a rollback at restart.
	Hash string `json:"hash,omitempty"`
	// Previous is what to restore: the policy in force before the apply.
	Previous *savedPolicy `json:"previous"`
}

func (d *Daemon) pendingView() *Pending {
	if d.pending == nil {
		return nil
	}
	return &Pending{Path: d.pending.Path, Deadline: d.pending.Deadline, SecondsLeft: d.pending.Deadline.Sub(d.now()).Seconds()}
}

func (d *Daemon) arm(path string, timeout time.Duration, prev *savedPolicy) {
	d.stopPendingTimer()
	d.mu.Lock()
	hash := hashOf(d.cur)
	d.mu.Unlock()
	p := &pendingState{Path: path, Deadline: d.now().Add(timeout), Hash: hash, Previous: prev}
	if err := savePending(d.cfg.StateDir, p); err != nil {
		d.log.Error("could not persist the pending confirmation; a restart will not roll back", "error", err)
	}
	d.mu.Lock()
	d.pending = p
	d.pendingTimer = time.AfterFunc(timeout, func() {
		d.send(d.runCtx(), event{kind: "confirm-timeout", pending: p})
	})
	d.mu.Unlock()
	d.log.Warn("apply awaits confirmation", "policy", path, "deadline", p.Deadline)
}

func (d *Daemon) stopPendingTimer() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pendingTimer != nil {
		d.pendingTimer.Stop()
		d.pendingTimer = nil
	}
}

func (d *Daemon) clearPending(why string) {
	d.stopPendingTimer()
	d.mu.Lock()
	had := d.pending != nil
	d.pending = nil
	d.mu.Unlock()
	if had {
		_ = removePending(d.cfg.StateDir)
		d.log.Info("pending confirmation cleared", "reason", why)
	}
}

func (d *Daemon) confirm() ApplyResponse {
	d.mu.Lock()
	p := d.pending
	d.mu.Unlock()
	if p == nil {
		return ApplyResponse{Error: "nothing awaits confirmation"}
	}
	d.clearPending("confirmed")
	d.journalConfirm(p)
	d.log.Info("apply confirmed", "policy", p.Path)
	return d.response(nil, "confirmed "+p.Path)
}

// rollback restores the policy in force before the pending apply (or, with
// nothing pending, reloads the policy file).
func (d *Daemon) rollback(ctx context.Context, trigger string) ApplyResponse {
	d.mu.Lock()
	p := d.pending
	d.mu.Unlock()
	if p == nil {
		if trigger == "confirm-timeout" {
			return ApplyResponse{OK: true}
		}
		err := d.reload(ctx, "rollback")
		msg := "nothing awaited confirmation: reloaded"
		d.mu.Lock()
		if d.cur != nil {
			msg += " " + d.cur.source.Path
		}
		d.mu.Unlock()
		return d.response(err, msg)
	}
	var err error
	if p.Previous != nil {
		err = d.applySaved(ctx, p.Previous, trigger)
	} else {
		err = d.reload(ctx, trigger)
	}
	if !firewallApplied(err) {
		d.log.Error("rollback failed; will retry on the next reload", "error", err)
		return d.response(err, "")
	}
	d.clearPending("rolled back")
	d.log.Warn("unconfirmed apply rolled back", "policy", p.Path, "trigger", trigger)
	return d.response(err, "rolled back "+p.Path)
}
