package daemon

import (
	"context"
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	nflog "github.com/florianl/go-nflog/v2"

	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/policy"
)

// maxDropRecords bounds the audit aggregation's memory: under a scan from
// many sources the oldest records are evicted first.
const maxDropRecords = 4096

type dropKey struct {
	rule, source, proto string
	port                uint16
}

// Audit aggregates denied packets logged by the ruleset (nflog group
// nft.LogGroup) by rule, source and destination port.
type Audit struct {
	mu      sync.Mutex
	records map[dropKey]*DropRecord
	now     func() time.Time
}

// NewAudit returns an empty aggregation.
func NewAudit(now func() time.Time) *Audit {
	return &Audit{records: map[dropKey]*DropRecord{}, now: now}
}

// Record adds one logged packet: prefix is the rule name the ruleset put
// in the log prefix, payload the packet from its network header.
func (a *Audit) Record(prefix string, payload []byte) {
	rule := strings.TrimSpace(prefix)
	src, proto, port, ok := parsePacket(payload)
	if !ok || rule == "" {
		return
	}
	k := dropKey{rule: rule, source: src.String(), proto: proto, port: port}
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.records[k]
	if !ok {
		if len(a.records) >= maxDropRecords {
			a.evictOldest()
		}
		r = &DropRecord{Rule: rule, Source: k.source, Protocol: proto, Port: port, First: now}
		a.records[k] = r
	}
	r.Packets++
	r.Last = now
}

func (a *Audit) evictOldest() {
	var oldest dropKey
	var t time.Time
	for k, r := range a.records {
		if t.IsZero() || r.Last.Before(t) {
			oldest, t = k, r.Last
		}
	}
	delete(a.records, oldest)
}

// Snapshot returns the records, most packets first.
func (a *Audit) Snapshot() []DropRecord {
	a.mu.Lock()
	out := make([]DropRecord, 0, len(a.records))
	for _, r := range a.records {
		out = append(out, *r)
	}
	a.mu.Unlock()
	slices.SortFunc(out, func(x, y DropRecord) int {
		if x.Packets != y.Packets {
			if x.Packets > y.Packets {
				return -1
			}
			return 1
		}
		return strings.Compare(x.Rule+x.Source, y.Rule+y.Source)
	})
	return out
}

// parsePacket reads source address, protocol and destination port from an
// IPv4 or IPv6 packet (IPv6 extension headers are not followed: the port
// is then 0).
func parsePacket(b []byte) (src netip.Addr, proto string, port uint16, ok bool) {
	if len(b) < 1 {
		return src, "", 0, false
	}
	var l4 []byte
	var num byte
	switch b[0] >> 4 {
	case 4:
		if len(b) < 20 {
			return src, "", 0, false
		}
		ihl := int(b[0]&0x0f) * 4
		src = netip.AddrFrom4([4]byte(b[12:16]))
		num = b[9]
		if len(b) >= ihl {
			l4 = b[ihl:]
		}
	case 6:
		if len(b) < 40 {
			return src, "", 0, false
		}
		src = netip.AddrFrom16([16]byte(b[8:24]))
		num = b[6]
		l4 = b[40:]
	default:
		return src, "", 0, false
	}
	switch num {
	case 6:
		proto = "tcp"
	case 17:
		proto = "udp"
	case 132:
		proto = "sctp"
	case 1:
		return src, "icmp", 0, true
	case 58:
		return src, "icmpv6", 0, true
	default:
		return src, "other", 0, true
	}
	if len(l4) >= 4 {
		port = binary.BigEndian.Uint16(l4[2:4])
	}
	return src, proto, port, true
}

// ListenAudit receives logged packets until ctx ends.
func (d *Daemon) ListenAudit(ctx context.Context) error {
	nf, err := nflog.Open(&nflog.Config{Group: nft.LogGroup, Copymode: nflog.CopyPacket, Bufsize: 128})
	if err != nil {
		return err
	}
	go func() {
		<-ctx.Done()
		nf.Close()
	}()
	return nf.RegisterWithErrorFunc(ctx, func(attr nflog.Attribute) int {
		if attr.Prefix != nil && attr.Payload != nil && d.denies(strings.TrimSpace(*attr.Prefix)) {
			d.audit.Record(*attr.Prefix, *attr.Payload)
		}
		return 0
	}, func(err error) int {
		if ctx.Err() != nil {
			return 1
		}
		d.log.Debug("audit log receive", "error", err)
		return 0
	})
}

// Drops returns the aggregated denied packets.
func (d *Daemon) Drops() []DropRecord { return d.audit.Snapshot() }

// denies reports whether the running ruleset's counter name drops or
// rejects: rules with log: true and an accept action log too, but what
// they log is allowed traffic, not denied.
func (d *Daemon) denies(counter string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cur == nil {
		return true
	}
	info, ok := d.cur.rs.Rule(counter)
	return !ok || info.Action != policy.Accept
}
