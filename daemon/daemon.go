// Package daemon is edgefwd: it keeps the host's firewall and tunnels as
// the policy declares, repairs drift, serves the control API and metrics,
// and talks to systemd.
//
// All state changes go through one reconcile loop, so applies never race:
// signals, file changes, API requests, the confirm timer and the drift
// check are events the loop handles one at a time.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/policy"
	"github.com/edgefw/edgefw/wg"
)

// Firewall is the kernel side of the firewall: *nft.Applier.
type Firewall interface {
	Apply(rs *nft.Ruleset) (nft.Result, error)
	Equal(rs *nft.Ruleset) (bool, error)
	Inspect(rs *nft.Ruleset, known ...*nft.Ruleset) (nft.Inspection, error)
	Counters() (map[string]nft.Counter, error)
	Generation() (uint32, error)
	// Changes reports commits to the table as they happen, with the
	// process that made them (see nft.Applier.Changes).
	Changes(ctx context.Context) (<-chan nft.TableChange, error)
	OtherHooked() ([]nft.HookedTable, error)
	Delete() error
}

// Tunnels is the WireGuard side: *wg.Manager. Apply and Refresh report
// what they changed, which the daemon logs.
type Tunnels interface {
	Apply(ctx context.Context, tunnels []policy.Tunnel) (wg.Report, error)
	Refresh(ctx context.Context) (wg.Report, error)
	Status(ctx context.Context) ([]wg.TunnelStatus, error)
	Close() error
}

// Notifier sends sd_notify messages; the default does nothing when
// NOTIFY_SOCKET is unset.
type Notifier func(state string) error

// Config configures a Daemon.
type Config struct {
	PolicyPath string
	StateDir   string
	Version    string
	// Failsafe are the anti-lockout ports of the safe minimal ruleset,
	// which is installed when the policy does not load and no earlier
	// ruleset exists; the failsafe section of the policy file is opened
	// too when it alone can be read (edgefwd --failsafe, tcp/22 unless
	// the unit says otherwise).
	Failsafe []policy.PortRange
	Logger   *slog.Logger
	Firewall Firewall
	// Tunnels may be nil: the daemon then ignores the tunnels section.
	Tunnels Tunnels
	Notify  Notifier
	Metrics *Metrics
	// DriftInterval is how often the ruleset generation is checked when
	// nftables notifications cannot be followed; with them, every commit
	// to the table is heard as it happens and nothing is polled.
	DriftInterval time.Duration
	// FullCheckInterval is how often the table is compared in full, a
	// backstop for what notifications and the generation cannot tell (a
	// failed repair must be retried).
	FullCheckInterval time.Duration
	// RefreshInterval is how often tunnel endpoints are re-resolved.
	RefreshInterval time.Duration
	// WatchdogInterval is how often the loop pings systemd's watchdog;
	// zero disables pings.
	WatchdogInterval time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// running is a policy in force and what it compiled to.
type running struct {
	pol    *policy.Policy
	rs     *nft.Ruleset
	source PolicySource
}

// Daemon is edgefwd's state and reconcile loop.
type Daemon struct {
	cfg Config
	log *slog.Logger
	now func() time.Time

	events chan event

	mu          sync.Mutex // guards the fields below, read by the API
	startedAt   time.Time
	cur         *running
	lastApply   *ApplyInfo
	lastSuccess *ApplyInfo
	pending     *pendingState
	// policyFiles compares the policy files with a running policy given
	// by `edgefwctl apply`; nil while the files run.
	policyFiles *PolicyFiles
	drift       uint64
	ready       bool
	ourGen      uint32
	genKnown    bool

	pendingTimer *time.Timer
	committers   *committerLog
	// foreignCommit is signalled when another process commits to our
	// table, or notifications were lost, so the loop checks for drift.
	foreignCommit chan struct{}
	// ctx is the context Run was given, for timer callbacks that must
	// not outlive the loop.
	ctx   atomic.Pointer[context.Context]
	audit *Audit
}

type pendingState struct {
	Path     string    `json:"path"`
	Deadline time.Time `json:"deadline"`
	// Previous is what to restore: the policy in force before the apply.
	Previous *savedPolicy `json:"previous"`
}

// event is one thing for the loop to do; done receives the outcome.
type event struct {
	kind  string
	apply *ApplyRequest
	// caller sent the request on the control socket, if it came there.
	caller *Caller
	// pending is, for confirm-timeout, the apply whose timer fired.
	pending *pendingState
	done    chan ApplyResponse
}

// New returns a Daemon; Run starts it.
func New(cfg Config) (*Daemon, error) {
	if cfg.Firewall == nil {
		return nil, errors.New("daemon: no firewall")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Notify == nil {
		cfg.Notify = func(string) error { return nil }
	}
	if cfg.DriftInterval == 0 {
		cfg.DriftInterval = 250 * time.Millisecond
	}
	if cfg.FullCheckInterval == 0 {
		cfg.FullCheckInterval = 30 * time.Second
	}
	if cfg.RefreshInterval == 0 {
		cfg.RefreshInterval = 30 * time.Second
	}
	return &Daemon{
		cfg: cfg, log: cfg.Logger, now: cfg.Now,
		events:        make(chan event),
		committers:    newCommitterLog(),
		foreignCommit: make(chan struct{}, 1),
		audit:         NewAudit(cfg.Now),
	}, nil
}

// Start installs a ruleset and returns once the host is protected: first
// the last ruleset that applied (so a broken policy file or an endpoint
// that does not resolve yet cannot leave the host open at boot), then the
// policy file. If neither exists, a minimal safe ruleset (defaults plus
// failsafe) is installed. READY=1 is sent by Run after Start succeeds.
func (d *Daemon) Start(ctx context.Context) error {
	// The control socket already serves status while Start runs.
	d.mu.Lock()
	d.startedAt = d.now()
	d.mu.Unlock()
	if err := os.MkdirAll(d.cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	installed := false

	// An apply awaiting confirmation when the daemon stopped must not stay
	// in force: restore what it replaced, first of all.
	pend, err := loadPending(d.cfg.StateDir)
	if err != nil {
		d.log.Warn("ignoring unreadable pending-confirmation state", "error", err)
	}
	if pend != nil {
		if pend.Previous != nil {
			if err := d.applySaved(ctx, pend.Previous, "confirm-timeout"); !firewallApplied(err) {
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
			if err := d.applySaved(ctx, saved, "boot-ruleset"); !firewallApplied(err) {
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

// Run starts the daemon, tells systemd it is ready once a ruleset is in
// the kernel, and runs the reconcile loop until ctx ends. Stopping leaves
// the ruleset in place: the host stays protected (fail closed).
func (d *Daemon) Run(ctx context.Context) error {
	d.ctx.Store(&ctx)
	if err := d.Start(ctx); err != nil {
		return err
	}
	d.notify("READY=1\nSTATUS=" + d.statusLine())
	return d.loop(ctx)
}

func (d *Daemon) notify(state string) {
	if err := d.cfg.Notify(state); err != nil {
		d.log.Warn("sd_notify failed", "error", err)
	}
}

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

func (d *Daemon) loop(ctx context.Context) error {
	// Others' commits to the table are heard as nftables notifies them;
	// only when it cannot be followed is the generation polled.
	watching := d.followChanges(ctx)
	var poll <-chan time.Time
	if !watching {
		t := time.NewTicker(d.cfg.DriftInterval)
		defer t.Stop()
		poll = t.C
	}
	full := time.NewTicker(d.cfg.FullCheckInterval)
	defer full.Stop()
	refresh := time.NewTicker(d.cfg.RefreshInterval)
	defer refresh.Stop()
	var watchdog <-chan time.Time
	if d.cfg.WatchdogInterval > 0 {
		t := time.NewTicker(d.cfg.WatchdogInterval)
		defer t.Stop()
		watchdog = t.C
	}
	repair := d.newDriftRepairer()
	defer repair.stop()
	if watching {
		// Commits since our last write and before the subscription were
		// not notified to it.
		repair.request(false)
	}
	for {
		select {
		case <-ctx.Done():
			d.stopPendingTimer()
			if d.cfg.Tunnels != nil {
				_ = d.cfg.Tunnels.Close()
			}
			d.log.Info("stopping; the ruleset stays in the kernel")
			return nil
		case ev := <-d.events:
			ev.done <- d.handle(ctx, ev)
		case <-d.foreignCommit:
			// Forced: our own generation note may already include it.
			repair.request(true)
		case <-poll:
			repair.request(false)
		case <-full.C:
			repair.request(true)
		case <-repair.C():
			// A check the limiter deferred, or a burst's summary.
			repair.wake()
		case <-refresh.C:
			if d.cfg.Tunnels != nil {
				rep, err := d.cfg.Tunnels.Refresh(ctx)
				logTunnelReport(ctx, d.log, rep)
				if err != nil {
					d.log.Warn("tunnel refresh", "error", err)
				}
			}
		case <-watchdog:
			// Pinged from the loop, not a bare ticker goroutine: a loop
			// stuck in an apply stops the pings and systemd restarts us.
			d.notify("WATCHDOG=1")
		}
	}
}

// runCtx is Run's context, or Background before Run.
func (d *Daemon) runCtx() context.Context {
	if c := d.ctx.Load(); c != nil {
		return *c
	}
	return context.Background()
}

// send hands an event to the loop and waits for its outcome.
func (d *Daemon) send(ctx context.Context, ev event) ApplyResponse {
	ev.done = make(chan ApplyResponse, 1)
	select {
	case d.events <- ev:
	case <-ctx.Done():
		return ApplyResponse{Error: ctx.Err().Error()}
	}
	select {
	case r := <-ev.done:
		return r
	case <-ctx.Done():
		return ApplyResponse{Error: ctx.Err().Error()}
	}
}

// Reload asks the loop to reload the policy file.
func (d *Daemon) Reload(ctx context.Context, trigger string) ApplyResponse {
	return d.send(ctx, event{kind: "reload:" + trigger})
}

func (d *Daemon) handle(ctx context.Context, ev event) ApplyResponse {
	switch {
	case strings.HasPrefix(ev.kind, "reload:"):
		trigger := strings.TrimPrefix(ev.kind, "reload:")
		d.notify(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", monotonicUsec()))
		err := d.reload(ctx, trigger)
		d.notify("READY=1\nSTATUS=" + d.statusLine())
		return d.response(err, "")
	case ev.kind == "apply":
		return d.applyRequest(ctx, ev.apply, ev.caller)
	case ev.kind == "confirm":
		return d.confirm()
	case ev.kind == "confirm-timeout":
		d.mu.Lock()
		current := d.pending == ev.pending
		d.mu.Unlock()
		if !current {
			// The timer fired while the loop was busy with a confirm, a
			// reload or a newer apply: its apply is no longer pending,
			// and rolling back now would undo the newer one early.
			return ApplyResponse{OK: true}
		}
		return d.rollback(ctx, ev.kind)
	case ev.kind == "rollback":
		return d.rollback(ctx, ev.kind)
	case ev.kind == "remove":
		return d.remove()
	}
	return ApplyResponse{Error: "unknown request " + ev.kind}
}

func (d *Daemon) response(err error, msg string) ApplyResponse {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := ApplyResponse{OK: err == nil, Apply: d.lastApply, Message: msg}
	if err != nil {
		r.Error = err.Error()
	}
	if d.pending != nil {
		r.Pending = d.pendingView()
	}
	return r
}

func (d *Daemon) pendingView() *Pending {
	if d.pending == nil {
		return nil
	}
	return &Pending{Path: d.pending.Path, Deadline: d.pending.Deadline, SecondsLeft: d.pending.Deadline.Sub(d.now()).Seconds()}
}

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
	pol, err := policy.Load(d.cfg.PolicyPath)
	if err != nil {
		d.recordFailure(start, trigger, fmt.Errorf("policy %s: %w", d.cfg.PolicyPath, err))
		return err
	}
	src := sourceOf(d.cfg.PolicyPath, pol, false)
	err = d.applyNew(ctx, pol, src, trigger)
	if firewallApplied(err) {
		d.setPolicyFiles(nil)
		d.clearPending("reloaded from " + d.cfg.PolicyPath)
	}
	return err
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
	rs, err := nft.Compile(pol)
	if err != nil {
		d.recordFailure(start, trigger, fmt.Errorf("compile: %w", err))
		return err
	}
	res, err := d.cfg.Firewall.Apply(rs)
	if err != nil {
		d.recordFailure(start, trigger, fmt.Errorf("apply firewall: %w", err))
		return err
	}
	d.noteGeneration()
	d.mu.Lock()
	d.cur = &running{pol: pol, rs: rs, source: src}
	d.mu.Unlock()
	if err := saveLastGood(d.cfg.StateDir, &savedPolicy{Source: src, Policy: pol}); err != nil {
		d.log.Warn("could not persist the last good ruleset", "error", err)
	}
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
	if tunErr != nil {
		return &TunnelError{Err: tunErr}
	}
	return nil
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
	if err := d.apply(ctx, pol, PolicySource{Path: "(safe minimal ruleset: policy invalid)"}, "safe-fallback"); err != nil {
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

// noteGeneration remembers the ruleset generation our write produced, so
// the drift check can tell our commits from others'.
func (d *Daemon) noteGeneration() {
	g, err := d.cfg.Firewall.Generation()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ourGen, d.genKnown = g, err == nil
}

// checkDrift restores the table if anyone else changed it. Without full,
// the table is compared only if the ruleset generation moved. It counts
// repairs and failures; the caller, which sees bursts, logs them.
func (d *Daemon) checkDrift(full bool) driftCheck {
	d.mu.Lock()
	cur := d.cur
	d.mu.Unlock()
	if cur == nil {
		return driftCheck{}
	}
	gen, known, moved := d.generationMoved()
	if !moved && !full {
		return driftCheck{}
	}
	c := driftCheck{changedBy: d.committers.describe(gen)}
	equal, err := d.cfg.Firewall.Equal(cur.rs)
	if err != nil {
		c.err = fmt.Errorf("compare table inet edgefw: %w", err)
		d.countDriftFailure()
		return c
	}
	if equal {
		d.mu.Lock()
		d.ourGen, d.genKnown = gen, known
		d.mu.Unlock()
		return c
	}
	c.drifted = true
	start := d.now()
	res, err := d.cfg.Firewall.Apply(cur.rs)
	c.took = d.now().Sub(start)
	if err != nil {
		c.err = fmt.Errorf("restore table inet edgefw: %w", err)
		d.countDriftFailure()
		return c
	}
	c.messages = res.Messages
	d.noteGeneration()
	d.mu.Lock()
	d.drift++
	d.mu.Unlock()
	if d.cfg.Metrics != nil {
		d.cfg.Metrics.DriftRepaired()
	}
	return c
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
	src.AppliedAt, src.AppliedBy, src.FilesFingerprint = d.now(), caller, filesFingerprint(d.cfg.PolicyPath)
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

func (d *Daemon) arm(path string, timeout time.Duration, prev *savedPolicy) {
	d.stopPendingTimer()
	p := &pendingState{Path: path, Deadline: d.now().Add(timeout), Previous: prev}
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

func (d *Daemon) remove() ApplyResponse {
	if err := d.cfg.Firewall.Delete(); err != nil {
		return ApplyResponse{Error: err.Error()}
	}
	d.clearPending("firewall removed")
	d.mu.Lock()
	d.cur = nil
	d.mu.Unlock()
	d.log.Warn("table inet edgefw removed on operator request; the host is no longer filtered by edgefw until the next reload")
	return ApplyResponse{OK: true, Message: "table inet edgefw removed; `edgefwctl reload` restores it"}
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
	if cur != nil {
		st.Policy = cur.source
		counters, err := d.cfg.Firewall.Counters()
		if err != nil {
			st.Warnings = append(st.Warnings, "cannot read counters: "+err.Error())
		}
		for _, r := range cur.rs.Rules {
			c := counters[r.Name]
			st.Rules = append(st.Rules, RuleStatus{Name: r.Name, Direction: string(r.Direction), Action: string(r.Action),
				Kind: r.Kind, Packets: c.Packets, Bytes: c.Bytes})
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

// RulesetText renders the running ruleset.
func (d *Daemon) RulesetText() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cur == nil {
		return ""
	}
	return d.cur.rs.String()
}
