package audit

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// Bounds of a MinuteSummariser by default: the lines it gives per minute
// (the heaviest flows, then one line for the rest) and the flows it
// tracks in the open minute. The kernel logs at most 20 packets a second
// per rule (burst 50), so a minute holds at most about 1,250 samples per
// rule: 10,000 flows is eight rules flooded from a new source at every
// packet, about 1 MB.
const (
	DefaultMinuteFlows = 50
	DefaultMinuteKeys  = 10000
)

// maxClosedMinutes bounds the minutes closed and not yet flushed, should
// nobody flush: the oldest go first.
const maxClosedMinutes = 60

// MinuteSummariser sums the logged sample per minute by flow (rule,
// source, protocol, destination port), for a log that says once a minute
// who was denied where, bounded in lines however many sources there are:
// the heaviest flows one by one, then the others together. It is pure
// (the clock is injected), safe for concurrent use, and keeps one open
// minute and the closed minutes not yet flushed.
type MinuteSummariser struct {
	now         func() time.Time
	flows, keys int

	mu     sync.Mutex
	open   *openMinute
	closed []MinuteSummary
}

// MinuteOption configures NewMinuteSummariser.
type MinuteOption func(*MinuteSummariser)

// WithMinuteFlows sets how many flows a minute lists one by one
// (DefaultMinuteFlows by default); the rest are summed in More.
func WithMinuteFlows(n int) MinuteOption {
	return func(m *MinuteSummariser) { m.flows = max(n, 1) }
}

// WithMinuteKeys bounds the flows tracked in the open minute
// (DefaultMinuteKeys by default): the packets of flows past it count in
// More as untracked.
func WithMinuteKeys(n int) MinuteOption {
	return func(m *MinuteSummariser) { m.keys = max(n, 1) }
}

// NewMinuteSummariser returns an empty summariser; now is the clock that
// Flush and FlushAll read.
func NewMinuteSummariser(now func() time.Time, opts ...MinuteOption) *MinuteSummariser {
	m := &MinuteSummariser{now: now, flows: DefaultMinuteFlows, keys: DefaultMinuteKeys}
	for _, o := range opts {
		o(m)
	}
	return m
}

// MinuteSummary is the sample of one minute (or, from FlushAll, of the
// part of the open minute up to the flush).
type MinuteSummary struct {
	Start, End time.Time
	// Flows are the heaviest flows, most packets first, then by rule,
	// source, protocol and port.
	Flows []MinuteFlow
	// More sums the flows past Flows.
	More MoreFlows
}

// MinuteFlow is one flow's packets in the sample of a minute.
type MinuteFlow struct {
	Rule     string
	Source   netip.Addr
	Protocol Protocol
	Port     uint16
	Packets  uint64
}

// MoreFlows sums the flows of a minute that are not listed.
type MoreFlows struct {
	// Flows and Sources count the distinct flows and source addresses
	// not listed, untracked ones left out.
	Flows, Sources int
	// Rules names their rules, sorted.
	Rules []string
	// Packets are their packets, Untracked included.
	Packets uint64
	// Untracked are the packets of flows past the tracking bound
	// (WithMinuteKeys), which are counted but not told apart.
	Untracked uint64
}

type minuteKey struct {
	rule string
	flow flowKey
}

type openMinute struct {
	start     time.Time
	counts    map[minuteKey]uint64
	untracked map[string]uint64 // by rule
}

// Record counts a sample in the minute of its time. A sample of a later
// minute closes the open one; a late sample counts in the open minute.
// Samples without a rule name or with an invalid source are ignored.
func (m *MinuteSummariser) Record(s Sample) {
	if s.Rule == "" || !s.Source.IsValid() {
		return
	}
	start := s.Time.Truncate(time.Minute)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.open != nil && start.After(m.open.start) {
		m.close(m.open.start.Add(time.Minute))
	}
	if m.open == nil {
		m.open = &openMinute{start: start, counts: map[minuteKey]uint64{}, untracked: map[string]uint64{}}
	}
	k := minuteKey{rule: s.Rule, flow: flowKey{src: keyOf(s.Source), proto: s.Protocol, port: s.Port}}
	if _, ok := m.open.counts[k]; ok || len(m.open.counts) < m.keys {
		if !ok {
			k.rule = strings.Clone(k.rule)
		}
		m.open.counts[k]++
		return
	}
	if _, ok := m.open.untracked[s.Rule]; !ok {
		m.open.untracked[strings.Clone(s.Rule)] = 0
	}
	m.open.untracked[s.Rule]++
}

// Flush returns the minutes that have ended by the clock's time and not
// been returned yet, oldest first. Call it every minute: should nobody,
// only the last hour's minutes are kept.
func (m *MinuteSummariser) Flush() []MinuteSummary {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.open != nil && !now.Before(m.open.start.Add(time.Minute)) {
		m.close(m.open.start.Add(time.Minute))
	}
	return m.take()
}

// FlushAll returns what Flush returns and, if anything was recorded in
// it, the open minute up to the clock's time: for a daemon that stops.
func (m *MinuteSummariser) FlushAll() []MinuteSummary {
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.open != nil {
		end := m.open.start.Add(time.Minute)
		if now.Before(end) {
			end = later(now, m.open.start)
		}
		m.close(end)
	}
	return m.take()
}

func (m *MinuteSummariser) take() []MinuteSummary {
	out := m.closed
	m.closed = nil
	return out
}

// close summarises the open minute as ending at end.
func (m *MinuteSummariser) close(end time.Time) {
	o := m.open
	m.open = nil
	flows := make([]MinuteFlow, 0, len(o.counts))
	for k, n := range o.counts {
		flows = append(flows, MinuteFlow{Rule: k.rule, Source: k.flow.src.addr(), Protocol: k.flow.proto, Port: k.flow.port, Packets: n})
	}
	slices.SortFunc(flows, compareMinuteFlows)
	s := MinuteSummary{Start: o.start, End: end, Flows: flows[:min(m.flows, len(flows))]}
	s.More = moreFlows(flows[len(s.Flows):], o.untracked)
	if len(m.closed) == maxClosedMinutes {
		m.closed = slices.Delete(m.closed, 0, 1)
	}
	m.closed = append(m.closed, s)
}

func moreFlows(rest []MinuteFlow, untracked map[string]uint64) MoreFlows {
	var more MoreFlows
	sources := map[netip.Addr]bool{}
	rules := map[string]bool{}
	for _, f := range rest {
		more.Flows++
		more.Packets += f.Packets
		sources[f.Source] = true
		rules[f.Rule] = true
	}
	for rule, n := range untracked {
		more.Packets += n
		more.Untracked += n
		rules[rule] = true
	}
	more.Sources = len(sources)
	if len(rules) > 0 {
		more.Rules = slices.Sorted(maps.Keys(rules))
	}
	return more
}

func compareMinuteFlows(x, y MinuteFlow) int {
	return cmp.Or(
		cmp.Compare(y.Packets, x.Packets),
		strings.Compare(x.Rule, y.Rule),
		x.Source.Compare(y.Source),
		cmp.Compare(x.Protocol, y.Protocol),
		cmp.Compare(x.Port, y.Port),
	)
}
