package daemon

import (
	"cmp"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/wg"
)

// A scrape reports every counter of the running ruleset, and with a
// thousand rules building each series' labels anew (label pairs made,
// validated and sorted per series, per scrape) cost more than reading the
// kernel. The label pairs of a ruleset's series are built once, when the
// collector first sees that ruleset, and of a tunnel peer's when it first
// appears; a scrape reads only the values. The kernel is still read at
// every scrape: nothing but the labels is kept.

// series is one metric series whose labels were built and checked once.
type series struct {
	def *familyDef
	// labels are sorted by name, as prometheus.MakeLabelPairs makes them;
	// shared by every scrape, which only read them.
	labels []*dto.LabelPair
	// sample is the series' line of the text exposition format up to its
	// value: the name, the labels and a space (see metricstext.go).
	sample []byte
	// invalid is the error of labels the client library rejects (not
	// UTF-8), reported as an invalid metric instead of the series.
	invalid error
}

func newSeries(d *familyDef, labelValues ...string) series {
	if _, err := prometheus.NewConstMetric(d.desc, prometheus.GaugeValue, 0, labelValues...); err != nil {
		return series{def: d, invalid: err}
	}
	labels := prometheus.MakeLabelPairs(d.desc, labelValues)
	_, sample, err := renderSeries(d, labels)
	if err != nil {
		return series{def: d, invalid: err}
	}
	return series{def: d, labels: labels, sample: sample}
}

// ruleSeries are the series of one counter of the ruleset: packets and
// bytes, or for a limit's counter, limited packets.
type ruleSeries struct {
	counter        string
	limited        bool
	packets, bytes series
}

// seriesCache holds the series of the last ruleset and peers a scrape
// reported. It is safe for concurrent scrapes.
type seriesCache struct {
	mu    sync.Mutex
	rules []nft.RuleInfo // the ruleset's counters the series were built for
	built []ruleSeries
	peers map[peerID]*peerSeries
}

// peerID names a peer's series.
type peerID struct{ iface, peer string }

// peerRow is a peer read at a scrape.
type peerRow struct {
	id     peerID
	status *wg.PeerStatus
}

// peerSeries are the series of one tunnel peer.
type peerSeries struct {
	handshake, receive, transmit, up series
}

// ruleSeries returns the series of rules' counters, each counter once, in
// the order the registry sorts them (by label values), so that its sort
// finds them sorted. They are rebuilt only when rules changed.
func (c *KernelCollector) ruleSeries(rules []nft.RuleInfo) []ruleSeries {
	sc := &c.cache
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.built != nil && slices.Equal(sc.rules, rules) {
		return sc.built
	}
	built := make([]ruleSeries, 0, len(rules))
	seen := make(map[string]bool, len(rules))
	for _, r := range rules {
		if seen[r.Name] {
			continue
		}
		seen[r.Name] = true
		mode := ruleMode(r)
		rs := ruleSeries{counter: r.Name, limited: r.Kind == nft.KindLimited}
		if rs.limited {
			rs.packets = newSeries(c.limitedPackets, r.Rule, mode)
		} else {
			rs.packets = newSeries(c.rulePackets, r.Name, string(r.Direction), string(r.Action), mode)
			rs.bytes = newSeries(c.ruleBytes, r.Name, string(r.Direction), string(r.Action), mode)
		}
		built = append(built, rs)
	}
	slices.SortStableFunc(built, func(a, b ruleSeries) int { return compareLabels(a.packets.labels, b.packets.labels) })
	sc.rules, sc.built = slices.Clone(rules), built
	return built
}

// compareLabels orders label pairs as the registry's sort does: by the
// values, in label name order.
func compareLabels(a, b []*dto.LabelPair) int {
	for i := range min(len(a), len(b)) {
		if c := cmp.Compare(a[i].GetValue(), b[i].GetValue()); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a), len(b))
}

// peerSeries returns the series of each peer in peers, building those of
// peers not seen at the last scrape and forgetting those of peers gone.
func (c *KernelCollector) peerSeries(peers []peerRow) []*peerSeries {
	sc := &c.cache
	sc.mu.Lock()
	defer sc.mu.Unlock()
	out := make([]*peerSeries, len(peers))
	kept := make(map[peerID]*peerSeries, len(peers))
	for i, p := range peers {
		id := p.id
		ps := sc.peers[id]
		if ps == nil {
			ps = &peerSeries{
				handshake: newSeries(c.peerHandshake, id.iface, id.peer),
				receive:   newSeries(c.peerReceive, id.iface, id.peer),
				transmit:  newSeries(c.peerTransmit, id.iface, id.peer),
				up:        newSeries(c.peerUp, id.iface, id.peer),
			}
		}
		kept[id], out[i] = ps, ps
	}
	sc.peers = kept
	return out
}
