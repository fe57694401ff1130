package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/wg"
)

// DefaultMetricsAddress is the loopback default for --metrics-address.
//
// The exporter range of Prometheus's "Default port allocations" wiki page,
// 9100-9999, has been full since 2023 (new entries go above 10000), so a
// port in it, such as 9847, is some other exporter's default. Prometheus's
// advice for exporters not on that list is to stay outside its range:
// 19847 is, and it is below Linux's ephemeral range (32768-60999), so it
// is never handed to an outgoing connection.
const DefaultMetricsAddress = "127.0.0.1:19847"

// kernelReadTimeout bounds the WireGuard reads of one scrape, below
// Prometheus's default scrape timeout of 10 s so that a hung read yields
// edgefw_kernel_read_up 0 rather than a failed scrape.
const kernelReadTimeout = 5 * time.Second

// Parts of the kernel state the collector reads, the values of the part label.
const (
	partNftables  = "nftables"
	partWireGuard = "wireguard"
)

// Metrics are the daemon's own event metrics, registered on reg.
type Metrics struct {
	applyDuration    prometheus.Histogram
	applyErrors      prometheus.Counter
	lastApplySuccess prometheus.Gauge
	driftRepairs     prometheus.Counter
	driftFailures    prometheus.Counter
	journalEntries   prometheus.Gauge
	journalErrors    prometheus.Counter
}

// NewMetrics creates the daemon's event metrics and edgefw_build_info and
// registers them on reg. It panics if reg already holds metrics of these
// names, which is a programming error.
func NewMetrics(reg prometheus.Registerer, version, revision string) *Metrics {
	m := &Metrics{
		applyDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "edgefw_policy_apply_duration_seconds",
			Help: "Time taken by policy apply attempts, successful or not: compiling the policy, writing the nftables transaction and configuring the tunnels.",
			// An apply that changes nothing takes about a millisecond; one
			// with large address sets or slow endpoint resolution takes
			// seconds.
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}),
		applyErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgefw_policy_apply_errors_total",
			Help: "Policy apply attempts that failed; the previous ruleset and tunnels stayed in place.",
		}),
		lastApplySuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgefw_policy_last_apply_success_timestamp_seconds",
			Help: "Unix time of the last successful policy apply, 0 if none since the daemon started.",
		}),
		driftRepairs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgefw_drift_repairs_total",
			Help: "Times table inet edgefw was found changed or deleted outside edgefwd and restored.",
		}),
		driftFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgefw_drift_repair_failures_total",
			Help: "Drift checks that could not read table inet edgefw or restore it; each is retried after a backoff of 1 s doubling to 1 min.",
		}),
		journalEntries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "edgefw_journal_entries",
			Help: "Sequence number of the audit journal's last entry: entries ever appended, rotated ones included. It never goes down; a lower value later means entries were cut from the journal's end.",
		}),
		journalErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "edgefw_journal_append_errors_total",
			Help: "Events that could not be appended to the audit journal (they are logged); the daemon carries on.",
		}),
	}
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "edgefw_build_info",
		Help: "Always 1; the labels identify the running edgefwd build.",
		ConstLabels: prometheus.Labels{
			"version":   version,
			"revision":  revision,
			"goversion": runtime.Version(),
		},
	})
	buildInfo.Set(1)
	reg.MustRegister(m.applyDuration, m.applyErrors, m.lastApplySuccess, m.driftRepairs, m.driftFailures,
		m.journalEntries, m.journalErrors, buildInfo)
	return m
}

// ObserveApply records one apply attempt that took d and ended with err at
// now.
func (m *Metrics) ObserveApply(d time.Duration, err error, now time.Time) {
	m.applyDuration.Observe(d.Seconds())
	if err != nil {
		m.applyErrors.Inc()
		return
	}
	m.lastApplySuccess.Set(unixSeconds(now))
}

// DriftRepaired records one restoration of the table.
func (m *Metrics) DriftRepaired() {
	m.driftRepairs.Inc()
}

// DriftRepairFailed records one drift check that could not read or
// restore the table.
func (m *Metrics) DriftRepairFailed() {
	m.driftFailures.Inc()
}

// JournalAppended records the journal's last entry, seq.
func (m *Metrics) JournalAppended(seq uint64) {
	m.journalEntries.Set(float64(seq))
}

// JournalAppendFailed records an event that could not be journaled.
func (m *Metrics) JournalAppendFailed() {
	m.journalErrors.Inc()
}

// NewRegistry returns a registry holding the Go runtime and process
// collectors, for the daemon's metrics and the kernel collector to join.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// KernelSource is what the collector reads at scrape time.
type KernelSource interface {
	// Counters reads the table's named counters in one netlink dump.
	Counters() (map[string]nft.Counter, error)
	// Rules describes the counters of the running ruleset.
	Rules() []nft.RuleInfo
	// Tunnels reads every declared tunnel, one WireGuard read per interface.
	Tunnels(ctx context.Context) ([]wg.TunnelStatus, error)
}

// NewCollector returns a collector that reads the firewall counters and the
// WireGuard peers from src at every scrape and keeps nothing between
// scrapes, so a value is never older than the scrape that reports it. A
// failed read is logged and reported as edgefw_kernel_read_up{part} 0; it
// never fails the scrape. now is the clock read durations are measured
// with.
func NewCollector(src KernelSource, log *slog.Logger, now func() time.Time) prometheus.Collector {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	peer := []string{"interface", "peer"}
	return &kernelCollector{
		src: src,
		log: log,
		now: now,
		rulePackets: prometheus.NewDesc("edgefw_rule_packets_total",
			"Packets counted by a firewall rule, implicit rule or default policy, read from the kernel at scrape time. A rule in mode audit counts the packets it would drop or reject (its action) and lets them go on.",
			[]string{"rule", "direction", "action", "mode"}, nil),
		ruleBytes: prometheus.NewDesc("edgefw_rule_bytes_total",
			"Bytes counted by a firewall rule, implicit rule or default policy, read from the kernel at scrape time. A rule in mode audit counts the bytes it would drop or reject (its action) and lets them go on.",
			[]string{"rule", "direction", "action", "mode"}, nil),
		limitedPackets: prometheus.NewDesc("edgefw_rule_limited_packets_total",
			"Packets a rule dropped because they exceeded its limit or connLimit; in mode audit, the packets it would have dropped.",
			[]string{"rule", "mode"}, nil),
		countersMissing: prometheus.NewDesc("edgefw_rule_counters_missing",
			"Counters of the running ruleset that were absent from the kernel at this scrape (table changed or deleted outside edgefwd); their rules are left out of the rule metrics.",
			nil, nil),
		peerHandshake: prometheus.NewDesc("edgefw_wireguard_peer_last_handshake_timestamp_seconds",
			"Unix time of the peer's last completed WireGuard handshake, 0 if it never completed one.",
			peer, nil),
		peerReceive: prometheus.NewDesc("edgefw_wireguard_peer_receive_bytes_total",
			"Bytes received from the peer through the tunnel since the interface was configured.",
			peer, nil),
		peerTransmit: prometheus.NewDesc("edgefw_wireguard_peer_transmit_bytes_total",
			"Bytes sent to the peer through the tunnel since the interface was configured.",
			peer, nil),
		peerUp: prometheus.NewDesc("edgefw_wireguard_peer_up",
			"1 if the peer completed a handshake within the last 180 s (WireGuard's Reject-After-Time), so the tunnel carries traffic to it; 0 otherwise.",
			peer, nil),
		readUp: prometheus.NewDesc("edgefw_kernel_read_up",
			"1 if this scrape read the part's state from the kernel, 0 if the read failed (the daemon logs why) and the part's metrics are missing.",
			[]string{"part"}, nil),
		readDuration: prometheus.NewDesc("edgefw_kernel_read_duration_seconds",
			"Time this scrape took to read the part's state from the kernel.",
			[]string{"part"}, nil),
	}
}

type kernelCollector struct {
	src KernelSource
	log *slog.Logger
	now func() time.Time

	rulePackets, ruleBytes, limitedPackets, countersMissing *prometheus.Desc
	peerHandshake, peerReceive, peerTransmit, peerUp        *prometheus.Desc
	readUp, readDuration                                    *prometheus.Desc

	cache seriesCache
}

// Describe implements prometheus.Collector.
func (c *kernelCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.rulePackets, c.ruleBytes, c.limitedPackets, c.countersMissing,
		c.peerHandshake, c.peerReceive, c.peerTransmit, c.peerUp,
		c.readUp, c.readDuration,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: it reads the kernel now.
func (c *kernelCollector) Collect(ch chan<- prometheus.Metric) {
	start := c.now()
	ok := c.collectRules(ch)
	c.readResult(ch, partNftables, ok, c.now().Sub(start))

	start = c.now()
	ok = c.collectTunnels(ch)
	c.readResult(ch, partWireGuard, ok, c.now().Sub(start))
}

func (c *kernelCollector) readResult(ch chan<- prometheus.Metric, part string, ok bool, took time.Duration) {
	up := 0.0
	if ok {
		up = 1
	}
	c.emit(ch, c.readUp, prometheus.GaugeValue, up, part)
	c.emit(ch, c.readDuration, prometheus.GaugeValue, took.Seconds(), part)
}

// collectRules emits the rule counters and reports whether the kernel read
// succeeded.
func (c *kernelCollector) collectRules(ch chan<- prometheus.Metric) bool {
	rules := c.src.Rules()
	counters, err := c.src.Counters()
	if err != nil && !errors.Is(err, nft.ErrNoTable) {
		c.log.Warn("metrics: read nftables counters", "error", err)
		return false
	}
	// A missing table is a successful read of a drifted (or not yet
	// applied) kernel: every counter of the running ruleset is missing, and
	// drift repair, not the reader, is what must act.
	missing := 0
	built := c.ruleSeries(rules)
	for i := range built {
		rs := &built[i]
		v, found := counters[rs.counter]
		if !found {
			missing++
			c.log.Debug("metrics: counter missing from the kernel", "rule", rs.counter)
			continue
		}
		ch <- rs.packets.metric(true, float64(v.Packets))
		if !rs.limited {
			ch <- rs.bytes.metric(true, float64(v.Bytes))
		}
	}
	c.emit(ch, c.countersMissing, prometheus.GaugeValue, float64(missing))
	return true
}

// collectTunnels emits the peer metrics and reports whether every
// WireGuard read succeeded.
func (c *kernelCollector) collectTunnels(ch chan<- prometheus.Metric) bool {
	ctx, cancel := context.WithTimeout(context.Background(), kernelReadTimeout)
	defer cancel()
	tunnels, err := c.src.Tunnels(ctx)
	if err != nil {
		c.log.Warn("metrics: read WireGuard tunnels", "error", err)
		return false
	}
	ok := true
	var ids []peerID
	var peers []*wg.PeerStatus
	for _, t := range tunnels {
		// A tunnel whose interface exists (a backend) but has no public
		// key is one whose WireGuard device could not be read: its peers
		// are unknown, which is a failed read, not a down peer.
		if t.Backend != "" && t.PublicKey == "" {
			c.log.Warn("metrics: read WireGuard device", "interface", t.Name, "error", t.Error)
			ok = false
			continue
		}
		for i := range t.Peers {
			if t.Peers[i].Name == "" {
				continue // not declared: the next reconcile removes it
			}
			ids = append(ids, peerID{iface: t.Name, peer: t.Peers[i].Name})
			peers = append(peers, &t.Peers[i])
		}
	}
	for i, ps := range c.peerSeries(ids) {
		p := peers[i]
		// Up is wg's verdict at the read: a handshake within
		// RejectAfterTime (whitepaper §6.1), so it matches edgefwctl
		// peers exactly.
		up := 0.0
		if p.Up {
			up = 1
		}
		ch <- ps.handshake.metric(false, unixSeconds(p.LastHandshake))
		ch <- ps.receive.metric(true, float64(p.ReceiveBytes))
		ch <- ps.transmit.metric(true, float64(p.TransmitBytes))
		ch <- ps.up.metric(false, up)
	}
	return ok
}

// emit sends one const metric. A label value the client library rejects
// (not UTF-8) becomes an invalid metric, which the handler reports and
// skips, rather than a panic in the daemon.
func (c *kernelCollector) emit(ch chan<- prometheus.Metric, d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		m = prometheus.NewInvalidMetric(d, err)
	}
	ch <- m
}

// unixSeconds is t as Unix seconds, 0 for the zero time.
func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

// NewMetricsHandler serves /metrics from g, /healthz (200 while the process
// runs) and /readyz (200 when ready returns nil, else 503 with its error).
// A collector error does not fail a scrape: what could be gathered is
// served, so one broken read never hides every other metric.
func NewMetricsHandler(g prometheus.Gatherer, ready func() error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError,
		// Each scrape dumps the counters over netlink; a handful of
		// concurrent scrapers is plenty and more only load the kernel.
		MaxRequestsInFlight: 4,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ready != nil {
			if err := ready(); err != nil {
				writeText(w, http.StatusServiceUnavailable, fmt.Sprintf("not ready: %v", err))
				return
			}
		}
		writeText(w, http.StatusOK, "ok")
	})
	return mux
}

func writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body+"\n")
}
