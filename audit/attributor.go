package audit

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultMaxRules is how many rules an Attributor keeps by default.
const DefaultMaxRules = 256

// MaxBytesPerRule bounds the heap a rule takes with every bucket of every
// ring full (1.17 MB measured, whatever the sources' family): the daemon's
// memory for attribution is at most this times the rules that log.
const MaxBytesPerRule = 3 << 19

// Attributor keeps, per rule, the exact counts of the kernel's counters
// and the heavy hitters of the logged sample, over rolling windows and
// days. It is safe for concurrent use.
type Attributor struct {
	now      func() time.Time
	maxRules int

	mu       sync.Mutex
	rules    map[string]*rule
	sizeHint int // the last snapshot's size
}

// Option configures New.
type Option func(*Attributor)

// WithMaxRules bounds the number of rules kept (DefaultMaxRules by
// default). A new rule beyond it replaces the rule whose last sample or
// counter reading is the oldest: a rule no longer in the policy goes
// before one the kernel still counts.
func WithMaxRules(n int) Option { return func(a *Attributor) { a.maxRules = max(n, 1) } }

// New returns an empty Attributor. now is the clock views and restores
// read; samples and readings carry their own times, from the same clock.
func New(now func() time.Time, opts ...Option) *Attributor {
	a := &Attributor{now: now, maxRules: DefaultMaxRules, rules: map[string]*rule{}}
	for _, o := range opts {
		o(a)
	}
	return a
}

// Sample is one packet the kernel logged for a rule (nflog), as the
// daemon decoded it.
type Sample struct {
	// Rule is the rule's name, from the log prefix.
	Rule string
	// Time is when the packet was logged.
	Time time.Time
	// Source is the packet's source address; its zone is ignored.
	Source netip.Addr
	// Protocol is the packet's transport protocol.
	Protocol Protocol
	// Port is its destination port, 0 for protocols without ports.
	Port uint16
}

// Record adds a sample to its rule's open buckets. A sample later than
// the open buckets closes them first; a late one counts in them. Samples
// without a rule name or with an invalid source are ignored.
func (a *Attributor) Record(s Sample) {
	if s.Rule == "" || !s.Source.IsValid() {
		return
	}
	f := flowKey{src: keyOf(s.Source), proto: s.Protocol, port: s.Port}
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.rule(s.Rule, s.Time)
	r.active = later(r.active, s.Time)
	for i := range r.rings {
		g := &r.rings[i]
		g.advance(g.spec.index(s.Time))
		g.record(f)
	}
}

// Reading is a kernel counter's value.
type Reading struct {
	Packets uint64
	Bytes   uint64
	// Epoch, when not empty, names the counter's lifetime (say the boot
	// ID with the counter object's handle): a reading whose epoch differs
	// from the last one's counts from zero even when its values are not
	// lower, for a counter recreated and already past its old value.
	Epoch string
}

// Observe takes the counters read at t, by rule name. The increase since
// a rule's last reading is spread over the interval between the two
// readings, as Prometheus's increase() reads counters:
//
//   - a rule's first reading is a baseline: what the counter held before
//     is not attributed to any period;
//   - a reading lower than the last one (or with another Epoch) means the
//     counter was recreated with its table: the new value is what was
//     counted since, never a negative increase;
//   - after a restore, the snapshot's last reading is the baseline, so a
//     daemon restart loses nothing and counts nothing twice of what the
//     kernel counted meanwhile (its counters outlive the daemon); after a
//     reboot the first reading is lower and counts from zero.
//
// Rules absent from counters keep their last reading.
func (a *Attributor) Observe(t time.Time, counters map[string]Reading) {
	names := make([]string, 0, len(counters))
	for name := range counters {
		names = append(names, name)
	}
	slices.Sort(names) // who replaces whom when there are too many rules
	a.mu.Lock()
	defer a.mu.Unlock()
	a.prune(t)
	for _, name := range names {
		if name == "" {
			continue
		}
		r := a.rule(name, t)
		r.active = later(r.active, t)
		r.observe(t, counters[name])
	}
}

// Rules returns the names of the rules kept, sorted.
func (a *Attributor) Rules() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	names := make([]string, 0, len(a.rules))
	for name := range a.rules {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// rule returns the rule named name, creating it at t, replacing the least
// recently active rule if there are too many.
func (a *Attributor) rule(name string, t time.Time) *rule {
	if r, ok := a.rules[name]; ok {
		return r
	}
	if len(a.rules) >= a.maxRules {
		a.evict(len(a.rules) - a.maxRules + 1)
	}
	r := newRule(t)
	a.rules[strings.Clone(name)] = r
	return r
}

// evict removes the n least recently active rules.
func (a *Attributor) evict(n int) {
	names := make([]string, 0, len(a.rules))
	for name := range a.rules {
		names = append(names, name)
	}
	slices.SortFunc(names, func(x, y string) int {
		if c := a.rules[x].active.Compare(a.rules[y].active); c != 0 {
			return c
		}
		return strings.Compare(x, y)
	})
	for _, name := range names[:min(n, len(names))] {
		delete(a.rules, name)
	}
}

// prune removes the rules whose whole history is older than the days
// kept.
func (a *Attributor) prune(t time.Time) {
	horizon := t.Add(-time.Duration(levels[dayLevel].slots) * levels[dayLevel].width)
	for name, r := range a.rules {
		if r.active.Before(horizon) {
			delete(a.rules, name)
		}
	}
}

// rule is one rule's history.
type rule struct {
	rings  [numLevels]ring
	last   lastReading
	active time.Time // the latest sample or reading
}

type lastReading struct {
	ok      bool
	at      time.Time
	packets uint64
	bytes   uint64
	epoch   string
}

func newRule(t time.Time) *rule {
	r := &rule{active: t}
	for i, spec := range levels {
		r.rings[i] = newRing(spec, t)
	}
	return r
}

// advance closes the buckets that end by t.
func (r *rule) advance(t time.Time) {
	for i := range r.rings {
		g := &r.rings[i]
		g.advance(g.spec.index(t))
	}
}

func (r *rule) observe(t time.Time, rd Reading) {
	r.advance(t)
	l := r.last
	r.last = lastReading{ok: true, at: t, packets: rd.Packets, bytes: rd.Bytes, epoch: rd.Epoch}
	if !l.ok {
		return
	}
	packets, bytes := rd.Packets-l.packets, rd.Bytes-l.bytes
	recreated := rd.Epoch != "" && l.epoch != "" && rd.Epoch != l.epoch
	if rd.Packets < l.packets || rd.Bytes < l.bytes || recreated {
		packets, bytes = rd.Packets, rd.Bytes
	}
	for i := range r.rings {
		r.rings[i].spread(l.at, t, packets, bytes)
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
