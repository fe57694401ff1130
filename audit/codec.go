package audit

import (
	"encoding/binary"
	"errors"
)

// encoder appends a snapshot's fields.
type encoder struct{ b []byte }

func (w *encoder) uvarint(v uint64) { w.b = binary.AppendUvarint(w.b, v) }
func (w *encoder) varint(v int64)   { w.b = binary.AppendVarint(w.b, v) }
func (w *encoder) string(s string)  { w.uvarint(uint64(len(s))); w.b = append(w.b, s...) }

func (w *encoder) bool(v bool) {
	if v {
		w.b = append(w.b, 1)
	} else {
		w.b = append(w.b, 0)
	}
}

func (w *encoder) addr(k addrKey) {
	if k.v6 {
		w.b = append(w.b, 6)
		w.b = append(w.b, k.b[:]...)
	} else {
		w.b = append(w.b, 4)
		w.b = append(w.b, k.b[12:]...)
	}
}

func (w *encoder) port(k portKey) { w.b = append(w.b, byte(k.proto)); w.uvarint(uint64(k.port)) }

// tops writes a bucket's heavy hitters, sorted as liveTops.summary sorts
// them (ties by key, so that equal states encode alike).
func (w *encoder) tops(t tops) {
	encodeSummary(w, t.sources, w.addr)
	encodeSummary(w, t.ports, w.port)
	encodeSummary(w, t.flows, func(k flowKey) { w.addr(k.src); w.port(portKey{k.proto, k.port}) })
}

// encodeSummary writes the items, by count descending, each count as its
// difference from the one before and each error as the count's lower
// bound: both are small numbers in a bucket of one-off sources.
func encodeSummary[K comparable](w *encoder, s Summary[K], key func(K)) {
	w.uvarint(s.Total)
	w.uvarint(s.Floor)
	w.uvarint(uint64(len(s.Items)))
	prev := uint64(0)
	for i, it := range s.Items {
		key(it.Key)
		if i == 0 {
			w.uvarint(it.Count)
		} else {
			w.uvarint(prev - it.Count)
		}
		w.uvarint(it.Count - it.Err)
		prev = it.Count
	}
}

// decoder reads a snapshot's fields; its first error sticks, and every
// read after it returns zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(msg string) {
	if d.err == nil {
		d.err = errors.New(msg)
	}
	d.b = nil
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad or truncated number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad or truncated number")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a length of at most limit.
func (d *decoder) count(limit int) int {
	n := d.uvarint()
	if n > uint64(limit) {
		d.fail("length out of bounds")
		return 0
	}
	return int(n)
}

func (d *decoder) bytes(n int) []byte {
	if len(d.b) < n {
		d.fail("truncated")
		return make([]byte, n)
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte { return d.bytes(1)[0] }

func (d *decoder) bool() bool {
	switch d.byte() {
	case 0:
		return false
	case 1:
		return true
	}
	d.fail("bad flag")
	return false
}

func (d *decoder) string() string { return string(d.bytes(d.count(maxNameLen))) }

func (d *decoder) addr() addrKey {
	var k addrKey
	switch d.byte() {
	case 4:
		k = addrKey{b: [16]byte{10: 0xff, 11: 0xff}}
		copy(k.b[12:], d.bytes(4))
	case 6:
		k = addrKey{v6: true}
		copy(k.b[:], d.bytes(16))
	default:
		d.fail("bad address family")
	}
	return k
}

func (d *decoder) port() portKey {
	k := portKey{proto: Protocol(d.byte())}
	p := d.uvarint()
	if p > 0xffff {
		d.fail("port out of range")
	}
	k.port = uint16(p)
	return k
}

func (d *decoder) tops() tops {
	return tops{
		sources: decodeSummary(d, d.addr),
		ports:   decodeSummary(d, d.port),
		flows: decodeSummary(d, func() flowKey {
			src, p := d.addr(), d.port()
			return flowKey{src: src, proto: p.proto, port: p.port}
		}),
	}
}

func decodeSummary[K comparable](d *decoder, key func() K) Summary[K] {
	s := Summary[K]{Total: d.uvarint(), Floor: d.uvarint()}
	n := d.count(maxItems)
	s.Items = make([]Counter[K], 0, n)
	seen := make(map[K]bool, n)
	prev := uint64(0)
	for i := range n {
		k := key()
		c := d.uvarint()
		if i > 0 {
			if c > prev {
				d.fail("counts out of order")
			}
			c = prev - c
		}
		lower := d.uvarint()
		if lower > c || c < s.Floor || seen[k] {
			d.fail("inconsistent counter")
		}
		if d.err != nil {
			return Summary[K]{}
		}
		seen[k] = true
		s.Items = append(s.Items, Counter[K]{Key: k, Count: c, Err: c - lower})
		prev = c
	}
	return s
}
