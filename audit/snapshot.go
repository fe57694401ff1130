package audit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"time"
)

// ErrCorrupt is returned (wrapped) by UnmarshalBinary for data that is
// not a whole snapshot: truncated, altered or of an unknown version.
var ErrCorrupt = errors.New("corrupt audit snapshot")

// snapshotMagic and snapshotVersion begin a snapshot.
const (
	snapshotMagic   = "EFWA"
	snapshotVersion = 1
)

// Decoding limits, so that a corrupt length cannot make a restore
// allocate without bound.
const (
	maxNameLen      = 256
	maxSnapshotRule = 1 << 16
	maxItems        = 4096
)

// MarshalBinary encodes every rule's history: a compact binary form
// (varints, addresses in 4 or 16 bytes, counts as differences) ending in
// a CRC-32, of bounded size (see the package documentation). The daemon
// writes it atomically (a temporary file renamed over the old one) every
// 5 minutes and when it stops.
func (a *Attributor) MarshalBinary() ([]byte, error) {
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	w := encoder{b: make([]byte, 0, a.sizeHint+a.sizeHint/8+4096)}
	w.b = append(w.b, snapshotMagic...)
	w.uvarint(snapshotVersion)
	w.uvarint(numLevels)
	for _, sp := range levels {
		w.varint(int64(sp.width))
	}
	names := make([]string, 0, len(a.rules))
	for name := range a.rules {
		names = append(names, name)
	}
	slices.Sort(names)
	w.uvarint(uint64(len(names)))
	for _, name := range names {
		r := a.rules[name]
		r.advance(now) // so that equal states encode alike
		w.string(name)
		r.encode(&w)
	}
	a.sizeHint = len(w.b)
	return binary.LittleEndian.AppendUint32(w.b, crc32.ChecksumIEEE(w.b)), nil
}

// UnmarshalBinary replaces the Attributor's rules with a snapshot's, then
// ages them to the clock's time: the buckets that ended since are closed,
// those older than their ring dropped. On an error (wrapping ErrCorrupt)
// nothing changes. A snapshot of other levels keeps the levels whose
// bucket width is still used.
func (a *Attributor) UnmarshalBinary(data []byte) error {
	if len(data) < len(snapshotMagic)+4 || string(data[:len(snapshotMagic)]) != snapshotMagic {
		return fmt.Errorf("%w: not a snapshot", ErrCorrupt)
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	d := decoder{b: body[len(snapshotMagic):]}
	if v := d.uvarint(); v != snapshotVersion {
		return fmt.Errorf("%w: version %d, want %d", ErrCorrupt, v, snapshotVersion)
	}
	widths := make([]time.Duration, d.count(numLevels*4))
	for i := range widths {
		widths[i] = time.Duration(d.varint())
	}
	now := a.now()
	rules := map[string]*rule{}
	for range d.count(maxSnapshotRule) {
		name := d.string()
		r := decodeRule(&d, widths, now)
		if d.err != nil {
			break
		}
		rules[name] = r
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("trailing bytes")
	}
	if d.err != nil {
		return fmt.Errorf("%w: %w", ErrCorrupt, d.err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rules = rules
	a.prune(now)
	if n := len(a.rules) - a.maxRules; n > 0 {
		a.evict(n)
	}
	return nil
}

func (r *rule) encode(w *encoder) {
	w.varint(r.active.UnixNano())
	w.bool(r.last.ok)
	if r.last.ok {
		w.varint(r.last.at.UnixNano())
		w.uvarint(r.last.packets)
		w.uvarint(r.last.bytes)
		w.string(r.last.epoch)
	}
	for i := range r.rings {
		g := &r.rings[i]
		w.varint(g.live)
		open := g.open != nil && g.open.sources.Total() > 0
		w.bool(open)
		if open {
			w.tops(g.open.summary(-1))
		}
		var kept []*bucket
		for idx := g.live - int64(len(g.slots)) + 1; idx <= g.live; idx++ {
			if b := g.get(idx); b != nil && (b.counted || b.tops != nil) {
				kept = append(kept, b)
			}
		}
		w.uvarint(uint64(len(kept)))
		for _, b := range kept {
			w.uvarint(uint64(g.live - b.idx))
			w.bool(b.counted)
			w.uvarint(b.packets)
			w.uvarint(b.bytes)
			w.bool(b.tops != nil)
			if b.tops != nil {
				w.tops(*b.tops)
			}
		}
	}
}

// decodeRule reads a rule encoded with the levels of widths, places its
// buckets in the levels of the same widths, and advances it to now.
func decodeRule(d *decoder, widths []time.Duration, now time.Time) *rule {
	active := time.Unix(0, d.varint()).UTC()
	r := newRule(active)
	r.active = active
	if d.bool() {
		r.last = lastReading{ok: true, at: time.Unix(0, d.varint()).UTC(), packets: d.uvarint(), bytes: d.uvarint(), epoch: d.string()}
	}
	for _, width := range widths {
		l := slices.IndexFunc(levels[:], func(sp levelSpec) bool { return sp.width == width })
		g := &ring{} // a level no longer used is read and dropped
		if l >= 0 {
			g = &r.rings[l]
		}
		g.decode(d, l >= 0)
	}
	r.advance(now)
	return r
}

func (g *ring) decode(d *decoder, use bool) {
	live := d.varint()
	var open tops
	hasOpen := d.bool()
	if hasOpen {
		open = d.tops()
	}
	type closed struct {
		idx            int64
		counted        bool
		packets, bytes uint64
		tops           *tops
	}
	var bs []closed
	for range d.count(maxItems) {
		b := closed{idx: live - int64(d.uvarint()), counted: d.bool(), packets: d.uvarint(), bytes: d.uvarint()}
		if d.bool() {
			t := d.tops()
			b.tops = &t
		}
		bs = append(bs, b)
	}
	if !use || d.err != nil {
		return
	}
	*g = newRing(g.spec, g.spec.start(live))
	for _, b := range bs {
		if !g.retained(b.idx) {
			continue
		}
		s := g.claim(b.idx)
		s.counted, s.packets, s.bytes, s.tops = b.counted, b.packets, b.bytes, b.tops
	}
	if hasOpen {
		g.open = newLiveTops(g.spec.live)
		g.open.load(open)
	}
}
