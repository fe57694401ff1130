package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"

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
// scrapes but the series' labels, so a value is never older than the
// scrape that reports it. A failed read is logged and reported as
// edgefw_kernel_read_up{part} 0; it never fails the scrape. now is the
// clock read durations are measured with.
//
// The collector can be registered on a registry, or, faster, served beside
// one with WithKernelMetrics (see metricsgather.go).
func NewCollector(src KernelSource, log *slog.Logger, now func() time.Time) *KernelCollector {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	peer := []string{"interface", "peer"}
	rule := []string{"rule", "direction", "action", "mode"}
	part := []string{"part"}
	c := &KernelCollector{src: src, log: log, now: now}
	c.rulePackets = newFamilyDef("edgefw_rule_packets_total", dto.MetricType_COUNTER,
		"Packets counted by a firewall rule, implicit rule or default policy, read from the kernel at scrape time. A rule in mode audit counts the packets it would drop or reject (its action) and lets them go on.",
		rule...)
	c.ruleBytes = newFamilyDef("edgefw_rule_bytes_total", dto.MetricType_COUNTER,
		"Bytes counted by a firewall rule, implicit rule or default policy, read from the kernel at scrape time. A rule in mode audit counts the bytes it would drop or reject (its action) and lets them go on.",
		rule...)
	c.limitedPackets = newFamilyDef("edgefw_rule_limited_packets_total", dto.MetricType_COUNTER,
		"Packets a rule dropped because they exceeded its limit or connLimit; in mode audit, the packets it would have dropped.",
		"rule", "mode")
	c.countersMissing = newFamilyDef("edgefw_rule_counters_missing", dto.MetricType_GAUGE,
		"Counters of the running ruleset that were absent from the kernel at this scrape (table changed or deleted outside edgefwd); their rules are left out of the rule metrics.")
	c.peerHandshake = newFamilyDef("edgefw_wireguard_peer_last_handshake_timestamp_seconds", dto.MetricType_GAUGE,
		"Unix time of the peer's last completed WireGuard handshake, 0 if it never completed one.",
		peer...)
	c.peerReceive = newFamilyDef("edgefw_wireguard_peer_receive_bytes_total", dto.MetricType_COUNTER,
		"Bytes received from the peer through the tunnel since the interface was configured.",
		peer...)
	c.peerTransmit = newFamilyDef("edgefw_wireguard_peer_transmit_bytes_total", dto.MetricType_COUNTER,
		"Bytes sent to the peer through the tunnel since the interface was configured.",
		peer...)
	c.peerUp = newFamilyDef("edgefw_wireguard_peer_up", dto.MetricType_GAUGE,
		"1 if the peer completed a handshake within the last 180 s (WireGuard's Reject-After-Time), so the tunnel carries traffic to it; 0 otherwise.",
		peer...)
	c.readUp = newFamilyDef("edgefw_kernel_read_up", dto.MetricType_GAUGE,
		"1 if this scrape read the part's state from the kernel, 0 if the read failed (the daemon logs why) and the part's metrics are missing.",
		part...)
	c.readDuration = newFamilyDef("edgefw_kernel_read_duration_seconds", dto.MetricType_GAUGE,
		"Time this scrape took to read the part's state from the kernel.",
		part...)
	c.missing = newSeries(c.countersMissing)
	c.parts = partSeries{
		nftablesUp: newSeries(c.readUp, partNftables), wireguardUp: newSeries(c.readUp, partWireGuard),
		nftablesTook: newSeries(c.readDuration, partNftables), wireguardTook: newSeries(c.readDuration, partWireGuard),
	}
	return c
}

// KernelCollector reads the kernel's firewall counters and WireGuard peers
// at every scrape: a prometheus.Collector, and the metric families of
// WithKernelMetrics.
type KernelCollector struct {
	src KernelSource
	log *slog.Logger
	now func() time.Time

	rulePackets, ruleBytes, limitedPackets, countersMissing *familyDef
	peerHandshake, peerReceive, peerTransmit, peerUp        *familyDef
	readUp, readDuration                                    *familyDef

	// The series of the parts' reads and of the missing counters' count,
	// which never change; the ruleset's and peers' are in cache.
	parts   partSeries
	missing series
	cache   seriesCache
}

// Describe implements prometheus.Collector.
func (c *KernelCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.defs() {
		ch <- d.desc
	}
}

// defs are the collector's metric families, by name.
func (c *KernelCollector) defs() []*familyDef {
	return []*familyDef{
		c.readDuration, c.readUp,
		c.ruleBytes, c.countersMissing, c.limitedPackets, c.rulePackets,
		c.peerHandshake, c.peerReceive, c.peerTransmit, c.peerUp,
	}
}

// Collect implements prometheus.Collector: it reads the kernel now.
func (c *KernelCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.scrape()
	for _, f := range s.families {
		for _, m := range f.metricFamily().Metric {
			ch <- &dtoMetric{desc: f.def.desc, m: m}
		}
	}
	for _, inv := range s.invalid {
		ch <- prometheus.NewInvalidMetric(inv.def.desc, inv.invalid)
	}
}

// collectRules adds the rule counters to s and reports whether the kernel
// read succeeded.
func (c *KernelCollector) collectRules(s *scrape) bool {
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
	packets, bytes, limited := 0, 0, 0
	for i := range built {
		if built[i].limited {
			limited++
		} else {
			packets++
			bytes++
		}
	}
	fp, fb, fl := s.family(c.rulePackets, packets), s.family(c.ruleBytes, bytes), s.family(c.limitedPackets, limited)
	for i := range built {
		rs := &built[i]
		v, found := counters[rs.counter]
		if !found {
			missing++
			c.log.Debug("metrics: counter missing from the kernel", "rule", rs.counter)
			continue
		}
		if rs.limited {
			fl.add(s, &rs.packets, float64(v.Packets))
			continue
		}
		fp.add(s, &rs.packets, float64(v.Packets))
		fb.add(s, &rs.bytes, float64(v.Bytes))
	}
	s.family(c.countersMissing, 1).add(s, &c.missing, float64(missing))
	return true
}

// collectTunnels adds the peer metrics to s and reports whether every
// WireGuard read succeeded.
func (c *KernelCollector) collectTunnels(s *scrape) bool {
	ctx, cancel := context.WithTimeout(context.Background(), kernelReadTimeout)
	defer cancel()
	tunnels, err := c.src.Tunnels(ctx)
	if err != nil {
		c.log.Warn("metrics: read WireGuard tunnels", "error", err)
		return false
	}
	ok := true
	var peers []peerRow
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
			peers = append(peers, peerRow{id: peerID{iface: t.Name, peer: t.Peers[i].Name}, status: &t.Peers[i]})
		}
	}
	// In the order of the series' labels, interface then peer, as the
	// exposition sorts them.
	slices.SortFunc(peers, func(a, b peerRow) int {
		return cmp.Or(cmp.Compare(a.id.iface, b.id.iface), cmp.Compare(a.id.peer, b.id.peer))
	})
	fh, fr, ft, fu := s.family(c.peerHandshake, len(peers)), s.family(c.peerReceive, len(peers)),
		s.family(c.peerTransmit, len(peers)), s.family(c.peerUp, len(peers))
	for i, ps := range c.peerSeries(peers) {
		p := peers[i].status
		// Up is wg's verdict at the read: a handshake within
		// RejectAfterTime (whitepaper §6.1), so it matches edgefwctl
		// peers exactly.
		up := 0.0
		if p.Up {
			up = 1
		}
		fh.add(s, &ps.handshake, unixSeconds(p.LastHandshake))
		fr.add(s, &ps.receive, float64(p.ReceiveBytes))
		ft.add(s, &ps.transmit, float64(p.TransmitBytes))
		fu.add(s, &ps.up, up)
	}
	return ok
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
	mux.Handle("GET /metrics", newGzipHandler(newMetricsHandler(g)))
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
