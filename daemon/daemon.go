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
	"runtime/debug"
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
	// failed repair must be retried). While notifications are followed,
	// the comparison is skipped when the generation has not moved since
	// the table was last written by the daemon or compared equal: reading
	// a 100k set back costs about a second of CPU.
	FullCheckInterval time.Duration
	// RefreshInterval is how often tunnel endpoints are re-resolved.
	RefreshInterval time.Duration
	// WatchdogInterval is how often the loop pings systemd's watchdog;
	// zero disables pings.
	WatchdogInterval time.Duration
	// PeerCheckInterval is how often tunnel peers are checked, to journal
	// those that went up or down (DefaultPeerCheckInterval when zero).
	PeerCheckInterval time.Duration
	// JournalMaxBytes caps the audit journal (journal.DefaultMaxBytes
	// when zero).
	JournalMaxBytes int64
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// BootID names the host's current boot, which the counters of the
	// denied-traffic attribution live in; "" reads Linux's.
	BootID string
	// Hostname is the host.name of the log lines of denied traffic; ""
	// asks the kernel.
	Hostname string
	// Cluster, if set, adds policy from the Kubernetes API (kube.go).
	Cluster Cluster
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
	// savedSource is the source of the policy last saved as last good
	// (persistLastGood); nil before the first save.
	savedSource *PolicySource
	drift       uint64
	ready       bool
	ourGen      uint32
	genKnown    bool
	// verifiedGen is the generation at which the table was last written
	// by us or compared equal to the running ruleset (if verified).
	verifiedGen uint32
	verified    bool

	pendingTimer *time.Timer
	committers   *committerLog
	// foreignCommit is signalled when another process commits to our
	// table, or notifications were lost, so the loop checks for drift.
	foreignCommit chan struct{}
	// ctx is the context Run was given, for timer callbacks that must
	// not outlive the loop.
	ctx atomic.Pointer[context.Context]
	// jr journals what changes or tests what the host enforces.
	jr journaling
	// attrib attributes denied traffic (see attribution); host names the
	// host in its log lines.
	attrib *attribution
	host   string
	// releaseDue is set by an apply of large sets, whose memory the loop
	// returns to the OS once quiet (see releaseLater), and
	// syncDue by an apply that wrote the last good policy, which it syncs
	// to the disk then; only the loop (and Start, before it) uses them.
	releaseDue, syncDue bool
	// loader loads the policy files for reloads; only the loop uses it.
	loader policyLoader
	// compiler keeps the sets' merged ranges from one apply to the next:
	// a set the loader hands back unchanged is not merged again.
	compiler nft.Compiler
	// lastGood writes the last good policy after the first.
	lastGood lastGoodWriter
	// cluster is the cluster source as of the last reload (kube.go).
	cluster *ClusterStatus
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
	if cfg.PeerCheckInterval == 0 {
		cfg.PeerCheckInterval = DefaultPeerCheckInterval
	}
	if cfg.Hostname == "" {
		cfg.Hostname, _ = os.Hostname()
	}
	// Restored before anything is logged to it, and every write to the
	// kernel goes through it.
	attrib := newAttribution(cfg)
	cfg.Firewall = attributedFirewall{Firewall: cfg.Firewall, a: attrib}
	return &Daemon{
		cfg: cfg, log: cfg.Logger, now: cfg.Now,
		events:        make(chan event),
		committers:    newCommitterLog(),
		foreignCommit: make(chan struct{}, 1),
		attrib:        attrib,
		host:          cfg.Hostname,
	}, nil
}

// Run starts the daemon, tells systemd it is ready once a ruleset is in
// the kernel, and runs the reconcile loop until ctx ends. Stopping leaves
// the ruleset in place: the host stays protected (fail closed).
func (d *Daemon) Run(ctx context.Context) error {
	d.ctx.Store(&ctx)
	defer d.closeJournal()
	defer d.lastGood.wait()
	if err := d.Start(ctx); err != nil {
		return err
	}
	d.notify("READY=1\nSTATUS=" + d.statusLine())
	attributed := make(chan struct{})
	go func() {
		defer close(attributed)
		d.runAttribution(ctx)
	}()
	go d.followCluster(ctx)
	err := d.loop(ctx)
	<-attributed // its last snapshot is written when Run returns
	return err
}

func (d *Daemon) notify(state string) {
	if err := d.cfg.Notify(state); err != nil {
		d.log.Warn("sd_notify failed", "error", err)
	}
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
	peers := time.NewTicker(d.cfg.PeerCheckInterval)
	defer peers.Stop()
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
	var release <-chan time.Time
	for {
		if d.afterAnswer() {
			release = time.After(releaseQuiet)
		}
		select {
		case <-release:
			release = nil
			debug.FreeOSMemory()
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
			// With notifications, a commit to our table by anyone else is
			// heard and forces a comparison, so an unchanged generation
			// proves the table as last verified. Without them, compare.
			if !watching || !d.generationVerified() {
				repair.request(true)
			}
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
		case <-peers.C:
			d.checkPeers(ctx)
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
	d.jr.by = ev.caller
	defer func() { d.jr.by = nil }()
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
