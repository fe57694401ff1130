// Command edgefwd is the edgefw daemon: it keeps the host's nftables table
// inet edgefw and its WireGuard tunnels as the policy declares.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"

	"github.com/edgefw/edgefw/daemon"
	"github.com/edgefw/edgefw/journal"
	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/policy"
	"github.com/edgefw/edgefw/wg"
)

// Set at build time with -ldflags "-X main.version=… -X main.revision=…".
var (
	version  = "dev"
	revision = "unknown"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("edgefwd", flag.ContinueOnError)
	policyPath := fs.String("policy", "/etc/edgefw/policy.yaml", "policy file; drop-ins are read from policy.d/ beside it")
	socket := fs.String("socket", "/run/edgefw/edgefwd.sock", "control socket for edgefwctl")
	metricsAddr := fs.String("metrics-address", daemon.DefaultMetricsAddress, "HOST:PORT for /metrics, /healthz and /readyz; empty disables")
	stateDir := fs.String("state-dir", "/var/lib/edgefw", "directory for the last good ruleset, pending confirmations and the audit journal")
	once := fs.Bool("once", false, "apply the policy's firewall idempotently and exit; non-zero and nothing changed on any error")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "text (journal-friendly key=value) or json")
	failsafe := fs.String("failsafe", "tcp/22", "anti-lockout ports of the safe ruleset installed when the policy does not load and no earlier ruleset exists, like tcp/22,tcp/2222 (none: no port); the policy's failsafe section is opened too when it alone can be read")
	journalMax := fs.Int64("journal-max-bytes", journal.DefaultMaxBytes, fmt.Sprintf("size cap of the audit journal in the state directory; its oldest files are rotated away past it (at least %d)", journal.MinMaxBytes))
	socketGroup := fs.String("socket-group", daemon.SocketGroup, "group (name or gid) whose members may use the control socket")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the node's identity: apply the HostFirewallPolicy objects selecting this node after the policy files, and report in its HostFirewallNodeState; empty: files only")
	nodeName := fs.String("node-name", "", "the node's name in the Kubernetes API (default: the host name)")
	aggregate := fs.Bool("aggregate", false, "also stand for election as the cluster's one aggregator (Lease edgefw-system/edgefw-aggregator) and, while elected, write each HostFirewallPolicy's status (matched, applied, failed nodes, Ready)")
	aggKubeconfig := fs.String("aggregator-kubeconfig", "", "kubeconfig of the aggregator's identity (service account edgefw-system/edgefw-aggregator) for --aggregate (default: --kubeconfig)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 1
	}
	if fs.NArg() > 0 {
		// edgefwd takes no arguments: a path given without --policy would
		// otherwise be ignored and the default policy enforced.
		fmt.Fprintf(os.Stderr, "edgefwd: unexpected argument %q; did you mean --policy %s?\n", fs.Arg(0), fs.Arg(0))
		return 1
	}
	if *showVersion {
		fmt.Printf("edgefwd %s (%s)\n", version, revision)
		return 0
	}
	log, err := newLogger(*logLevel, *logFormat)
	if err != nil {
		fmt.Fprintln(os.Stderr, "edgefwd:", err)
		return 1
	}
	failsafePorts, err := policy.ParsePorts(*failsafe)
	if err != nil {
		fmt.Fprintln(os.Stderr, "edgefwd: --failsafe:", err)
		return 1
	}
	if *journalMax < journal.MinMaxBytes {
		fmt.Fprintf(os.Stderr, "edgefwd: --journal-max-bytes %d: must be at least %d\n", *journalMax, journal.MinMaxBytes)
		return 1
	}
	if *aggregate && *aggKubeconfig == "" && *kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "edgefwd: --aggregate needs --aggregator-kubeconfig or --kubeconfig")
		return 1
	}
	if *once {
		return runOnce(*policyPath, *stateDir, log)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	opts := serveOptions{journalMaxBytes: *journalMax, socketGroup: *socketGroup, kubeconfig: *kubeconfig, nodeName: *nodeName,
		aggregate: *aggregate, aggregatorKubeconfig: *aggKubeconfig}
	if err := serve(ctx, *policyPath, *socket, *metricsAddr, *stateDir, failsafePorts, opts, log); err != nil {
		log.Error("edgefwd failed", "error", err)
		return 1
	}
	return 0
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is not text or json", format)
}

// runOnce applies the firewall part of the policy and exits. Tunnels need
// a running daemon (the userspace backend lives in its process).
func runOnce(policyPath, stateDir string, log *slog.Logger) int {
	start := time.Now()
	fw := nft.NewApplier()
	main, err := filepath.Abs(policyPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "edgefwd: policy rejected, nothing changed:\n%v\n", err)
		return 1
	}
	if gen, ok := filesUnchangedSinceLastCommit(fw, main, stateDir, log); ok {
		log.Info("policy applied: its files and the ruleset are unchanged since our last commit", "policy", policyPath,
			"generation", gen, "messages", 0, "duration", time.Since(start))
		return 0
	}
	pol, bundle, err := policy.ReadBundle(policyPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "edgefwd: policy rejected, nothing changed:\n%v\n", err)
		return 1
	}
	files := policy.DigestBundle(main, bundle)
	bundle = nil // a large set file's bytes are not kept through the apply
	rs, err := nft.Compile(pol)
	if err != nil {
		fmt.Fprintf(os.Stderr, "edgefwd: policy rejected, nothing changed:\n%v\n", err)
		return 1
	}
	if len(pol.Tunnels) > 0 {
		log.Warn("--once configures the firewall only; tunnels are managed by the running daemon", "tunnels", len(pol.Tunnels))
	}
	if m, ok := unchangedSinceLastCommit(fw, rs, stateDir, log); ok {
		saveLastGood(stateDir, policyPath, pol, log)
		saveMark(stateDir, m, &files, log)
		log.Info("policy applied: unchanged since our last commit", "policy", policyPath, "generation", m.Generation,
			"messages", 0, "duration", time.Since(start))
		return 0
	}
	res, err := fw.Apply(rs)
	if err != nil {
		fmt.Fprintf(os.Stderr, "edgefwd: apply failed, the previous ruleset is unchanged: %v\n", err)
		return 1
	}
	saveLastGood(stateDir, policyPath, pol, log)
	saveMark(stateDir, res.Mark, &files, log)
	log.Info("policy applied", "policy", policyPath, "messages", res.Messages, "changes", len(res.Changes), "duration", time.Since(start))
	return 0
}

// filesUnchangedSinceLastCommit reports whether the state directory's
// record of the last commit was left by an --once of the policy at main
// (absolute) whose files still read as they did, and the kernel has seen
// no commit since: then it holds what those files compile to, and nothing
// needs loading, compiling or reading back. It returns the generation.
func filesUnchangedSinceLastCommit(fw *nft.Applier, main, stateDir string, log *slog.Logger) (uint32, bool) {
	m, files := daemon.LoadMarkWithFiles(stateDir)
	if m == nil || files == nil || files.Main != main || !files.Unchanged() {
		return 0, false
	}
	ok, err := fw.Holds(*m)
	if err != nil {
		log.Debug("cannot compare with the last commit: loading the policy", "error", err)
	}
	return m.Generation, ok
}

// unchangedSinceLastCommit reports whether the state directory's record
// of the last commit (by --once or the daemon) proves that the kernel
// still holds rs, and returns that record: then nothing needs reading
// back. Anything else, a doubt included, means a full apply, which reads
// the table and compares.
func unchangedSinceLastCommit(fw *nft.Applier, rs *nft.Ruleset, stateDir string, log *slog.Logger) (*nft.Mark, bool) {
	m := daemon.LoadMark(stateDir)
	if m == nil {
		log.Debug("no record of the last commit: reading the table")
		return nil, false
	}
	ok, err := fw.Unchanged(rs, *m)
	switch {
	case err != nil:
		log.Debug("cannot compare with the last commit: reading the table", "error", err)
	case !ok:
		log.Debug("committed to since our last commit, or another ruleset: reading the table", "generation", m.Generation)
	}
	return m, ok && err == nil
}

// saveMark records the Mark of the commit and the policy files it was
// compiled from, for the next --once.
func saveMark(stateDir string, m *nft.Mark, files *policy.Digest, log *slog.Logger) {
	if err := daemon.SaveMarkWithFiles(stateDir, m, files); err != nil {
		log.Warn("could not record the generation of the commit", "error", err)
	}
}

func saveLastGood(stateDir, policyPath string, pol *policy.Policy, log *slog.Logger) {
	if err := daemon.SaveLastGood(stateDir, policyPath, pol); err != nil {
		log.Warn("could not persist the last good ruleset", "error", err)
	}
}

// serveOptions are serve's settings beyond the paths.
type serveOptions struct {
	journalMaxBytes int64
	socketGroup     string
	// kubeconfig, if set, adds the Kubernetes source for nodeName.
	kubeconfig, nodeName string
	// aggregate runs the aggregator (kube.Aggregator) through
	// aggregatorKubeconfig, or kubeconfig if empty.
	aggregate            bool
	aggregatorKubeconfig string
}

func serve(ctx context.Context, policyPath, socket, metricsAddr, stateDir string, failsafe []policy.PortRange, opts serveOptions, log *slog.Logger) error {
	// Catch SIGHUP first: its default action would kill a daemon that is
	// still starting (systemctl reload right after start).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	reg := daemon.NewRegistry()
	metrics := daemon.NewMetrics(reg, version, revision)
	tunnels, err := wg.New(wg.WithDeviceLogger(log.With("component", "wg")), wg.WithManagedInterfaces(daemon.LastGoodTunnels(stateDir)...))
	if err != nil {
		return fmt.Errorf("tunnels: %w", err)
	}
	watchdog, err := watchdogInterval()
	if err != nil {
		log.Warn("systemd watchdog not pinged", "error", err)
	}
	cfg := daemon.Config{
		PolicyPath: policyPath, StateDir: stateDir, Version: version, Logger: log, Failsafe: failsafe,
		Firewall: nft.NewApplier(), Tunnels: tunnels, Notify: daemon.SystemdNotifier,
		Metrics: metrics, WatchdogInterval: watchdog, JournalMaxBytes: opts.journalMaxBytes,
	}
	node := opts.nodeName
	if node == "" && (opts.kubeconfig != "" || opts.aggregate) {
		if node, err = os.Hostname(); err != nil {
			return fmt.Errorf("--node-name: %w", err)
		}
	}
	if opts.aggregate {
		kubeconfig := opts.aggregatorKubeconfig
		if kubeconfig == "" {
			kubeconfig = opts.kubeconfig
		}
		if kubeconfig == "" {
			return errors.New("--aggregate needs --aggregator-kubeconfig or --kubeconfig")
		}
		actx, stopAggregator := context.WithCancel(ctx)
		stopped, err := startAggregator(actx, kubeconfig, node, log.With("component", "aggregator"))
		if err != nil {
			stopAggregator()
			return err
		}
		// On the way out, however serve ends: stop it, and wait until it
		// has released the Lease so another candidate takes over at once.
		defer func() { stopAggregator(); <-stopped }()
	}
	if opts.kubeconfig != "" {
		c, err := newCluster(ctx, opts.kubeconfig, node, stateDir, log.With("component", "kube"))
		if err != nil {
			return err
		}
		cfg.Cluster = c
	}
	d, err := daemon.New(cfg)
	if err != nil {
		return err
	}
	// The control socket and metrics listen before the first apply so a
	// slow start can be observed; they answer "not ready" until then.
	ctl, err := daemon.ListenControl(d, socket, log.With("component", "control"), daemon.WithSocketGroup(opts.socketGroup))
	if err != nil {
		return err
	}
	defer ctl.Close()
	go func() {
		if err := ctl.Serve(); err != nil {
			log.Error("control socket", "error", err)
		}
	}()
	if metricsAddr != "" {
		ln, err := net.Listen("tcp", metricsAddr)
		if err != nil {
			return fmt.Errorf("metrics listener: %w", err)
		}
		kernel := daemon.NewCollector(d, log.With("component", "metrics"), time.Now)
		srv := &http.Server{Handler: daemon.NewMetricsHandler(daemon.WithKernelMetrics(reg, kernel), d.Ready), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("metrics server", "error", err)
			}
		}()
		defer srv.Close()
	}
	go func() {
		for range hup {
			d.Reload(ctx, "signal")
		}
	}()
	// Watched from now, before READY: a drop-in written as soon as the
	// daemon is ready must not go unseen.
	if pw, err := d.OpenPolicyWatch(); err != nil {
		log.Warn("policy file watch unavailable; reload with SIGHUP or edgefwctl reload", "error", err)
	} else {
		go func() {
			if err := pw.Run(ctx); err != nil {
				log.Warn("policy file watch ended; reload with SIGHUP or edgefwctl reload", "error", err)
			}
		}()
	}
	go func() {
		if err := d.ListenAudit(ctx); err != nil && ctx.Err() == nil {
			log.Warn("audit log unavailable: denied packets are counted but not itemised", "error", err)
		}
	}()
	log.Info("edgefwd starting", "version", version, "policy", policyPath, "state_dir", stateDir,
		"socket", socket, "metrics", metricsAddr, "backend_hint", backendHint(tunnels.AutoBackend()))
	return d.Run(ctx)
}

// watchdogInterval is how often the daemon pings systemd's watchdog: a
// third of the timeout systemd set (WatchdogSec=), so that one late ping
// is survived. It is zero when the unit has no watchdog or when the
// watchdog is meant for another process (WATCHDOG_PID, sd_watchdog_enabled(3)).
func watchdogInterval() (time.Duration, error) {
	timeout, err := sddaemon.SdWatchdogEnabled(false)
	if err != nil {
		return 0, err
	}
	return timeout / 3, nil
}

// backendHint names the WireGuard implementation that tunnels declaring
// backend auto get, as edgefwd's start line has always put it.
func backendHint(auto policy.Backend) string {
	if auto == policy.BackendKernel {
		return "kernel-wireguard"
	}
	return "userspace-wireguard"
}
