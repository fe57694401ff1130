package audit

import (
	"cmp"
	"net/netip"
	"slices"
	"time"
)

// DefaultTop and MaxTop bound the items a view lists per dimension.
const (
	DefaultTop = 10
	MaxTop     = 100
)

// Query selects what Drops shows.
type Query struct {
	// Since, when positive, is the period's length back from now; else
	// From and To bound it (a zero To is now, a zero From the oldest day
	// kept).
	Since    time.Duration
	From, To time.Time
	// Rules are the rules to show (those unknown are left out); empty
	// means every rule that counted or sampled packets in the period.
	Rules []string
	// Top is how many items to list per dimension (DefaultTop when 0, at
	// most MaxTop).
	Top int
}

// DropsView is what the rules counted and sampled in a period: the
// answer of `edgefwctl drops` and a report's denied-traffic section.
type DropsView struct {
	// From and To are the period covered, the asked one rounded out to
	// the buckets kept (see the package documentation).
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	// Rules are by packets counted, most first, then by name.
	Rules []RuleView `json:"rules"`
}

// RuleView is one rule's traffic in a period.
type RuleView struct {
	Rule string `json:"rule"`
	// Packets and Bytes are what the kernel's counter for the rule
	// counted, exactly, up to CountedTo (the rule's last counter reading).
	Packets   uint64    `json:"packets"`
	Bytes     uint64    `json:"bytes"`
	CountedTo time.Time `json:"countedTo,omitzero"`
	// Sampled is how many of the packets the kernel logged (its log rule
	// is rate-limited, so under a flood it logs a fraction).
	Sampled uint64 `json:"sampled"`
	// Share is Sampled ÷ Packets, the fraction the tops are drawn from;
	// null when nothing was counted. At most 1: the counters lag the
	// sample by up to one reading, so read the counters just before
	// asking for an exact share of a short period.
	Share *float64 `json:"share"`
	// The heaviest sources, destination ports and (source, port) pairs of
	// the sample.
	TopSources []SourceCount `json:"topSources"`
	TopPorts   []PortCount   `json:"topPorts"`
	TopFlows   []FlowCount   `json:"topFlows"`
}

// SourceCount is a source address's packets in the sample: at most
// Count, at least Count−ErrorBound.
type SourceCount struct {
	Source     netip.Addr `json:"source"`
	Count      uint64     `json:"count"`
	ErrorBound uint64     `json:"errorBound"`
}

// PortCount is a destination port's packets in the sample.
type PortCount struct {
	Protocol   Protocol `json:"protocol"`
	Port       uint16   `json:"port"`
	Count      uint64   `json:"count"`
	ErrorBound uint64   `json:"errorBound"`
}

// FlowCount is a source's packets to a destination port in the sample.
type FlowCount struct {
	Source     netip.Addr `json:"source"`
	Protocol   Protocol   `json:"protocol"`
	Port       uint16     `json:"port"`
	Count      uint64     `json:"count"`
	ErrorBound uint64     `json:"errorBound"`
}

// Day is a rule's traffic on one UTC day.
type Day struct {
	// Date is the day, as 2006-01-02 (UTC).
	Date string `json:"date"`
	// Packets and Bytes are what the rule's kernel counter counted that
	// day. A reading interval that spans midnight is split in proportion.
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
	// Sampled, Share and the tops are as in RuleView; a closed day keeps
	// its ten heaviest items per dimension.
	Sampled    uint64        `json:"sampled"`
	Share      *float64      `json:"share"`
	TopSources []SourceCount `json:"topSources"`
	TopPorts   []PortCount   `json:"topPorts"`
	TopFlows   []FlowCount   `json:"topFlows"`
}

// Drops returns what the rules counted and sampled in the period the
// query selects.
func (a *Attributor) Drops(q Query) DropsView {
	now := a.now()
	from, to := q.From, q.To
	if q.Since > 0 {
		from, to = now.Add(-q.Since), now
	}
	ps, start, end := cover(from, to, now)
	top := q.Top
	if top <= 0 {
		top = DefaultTop
	}
	top = min(top, MaxTop)

	a.mu.Lock()
	defer a.mu.Unlock()
	names := q.Rules
	if len(names) == 0 {
		for name := range a.rules {
			names = append(names, name)
		}
	}
	v := DropsView{From: start.UTC(), To: end.UTC(), Rules: []RuleView{}}
	for _, name := range slices.Compact(slices.Sorted(slices.Values(names))) {
		r, ok := a.rules[name]
		if !ok {
			continue
		}
		r.advance(now)
		rv := r.view(name, ps, top)
		if len(q.Rules) == 0 && rv.Packets == 0 && rv.Sampled == 0 {
			continue
		}
		v.Rules = append(v.Rules, rv)
	}
	slices.SortStableFunc(v.Rules, func(x, y RuleView) int { return cmp.Compare(y.Packets, x.Packets) })
	return v
}

func (r *rule) view(name string, ps []piece, top int) RuleView {
	v := RuleView{Rule: name}
	if r.last.ok {
		v.CountedTo = r.last.at.UTC()
	}
	var parts []tops
	for _, pc := range ps {
		g := &r.rings[pc.level]
		if b := g.get(pc.idx); b != nil {
			v.Packets += b.packets
			v.Bytes += b.bytes
		}
		if t, ok := g.sampled(pc.idx, -1); ok {
			parts = append(parts, t)
		}
	}
	t := mergeTops(parts)
	v.Sampled = t.sources.Total
	v.Share = share(v.Sampled, v.Packets)
	v.TopSources, v.TopPorts, v.TopFlows = t.lists(top)
	return v
}

// Days returns a rule's days from the day of from to the day of to, both
// included, that the kernel counted or the log sampled; nil for a rule
// not kept.
func (a *Attributor) Days(rule string, from, to time.Time) []Day {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.rules[rule]
	if !ok {
		return nil
	}
	r.advance(now)
	g := &r.rings[dayLevel]
	var days []Day
	for idx := max(g.spec.index(from), g.live-int64(g.spec.slots)+1); idx <= min(g.spec.index(to), g.live); idx++ {
		b := g.get(idx)
		t, sampled := g.sampled(idx, -1)
		if (b == nil || !b.counted) && !sampled {
			continue
		}
		d := Day{Date: g.spec.start(idx).Format(time.DateOnly), Sampled: t.sources.Total}
		if b != nil {
			d.Packets, d.Bytes = b.packets, b.bytes
		}
		d.Share = share(d.Sampled, d.Packets)
		d.TopSources, d.TopPorts, d.TopFlows = t.lists(g.spec.keep)
		days = append(days, d)
	}
	return days
}

func mergeTops(parts []tops) tops {
	var s []Summary[addrKey]
	var p []Summary[portKey]
	var f []Summary[flowKey]
	for _, t := range parts {
		s, p, f = append(s, t.sources), append(p, t.ports), append(f, t.flows)
	}
	return tops{sources: MergeSummaries(s...), ports: MergeSummaries(p...), flows: MergeSummaries(f...)}
}

// lists returns the n heaviest items per dimension, ties by key.
func (t tops) lists(n int) ([]SourceCount, []PortCount, []FlowCount) {
	src := heaviest(t.sources.Items, n, addrKey.compare)
	ports := heaviest(t.ports.Items, n, portKey.compare)
	flows := heaviest(t.flows.Items, n, flowKey.compare)
	sc := make([]SourceCount, len(src))
	for i, c := range src {
		sc[i] = SourceCount{Source: c.Key.addr(), Count: c.Count, ErrorBound: c.Err}
	}
	pc := make([]PortCount, len(ports))
	for i, c := range ports {
		pc[i] = PortCount{Protocol: c.Key.proto, Port: c.Key.port, Count: c.Count, ErrorBound: c.Err}
	}
	fc := make([]FlowCount, len(flows))
	for i, c := range flows {
		fc[i] = FlowCount{Source: c.Key.src.addr(), Protocol: c.Key.proto, Port: c.Key.port, Count: c.Count, ErrorBound: c.Err}
	}
	return sc, pc, fc
}

func heaviest[K comparable](items []Counter[K], n int, compare func(K, K) int) []Counter[K] {
	s := byKey(Summary[K]{Items: slices.Clone(items)}, compare)
	return s.Items[:min(n, len(s.Items))]
}

func share(sampled, packets uint64) *float64 {
	if packets == 0 {
		return nil
	}
	s := min(float64(sampled)/float64(packets), 1)
	return &s
}
