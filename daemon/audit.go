package daemon

import (
	"context"
	"encoding/binary"
	"net/netip"
	"strings"
	"time"

	nflog "github.com/florianl/go-nflog/v2"

	"github.com/edgefw/edgefw/audit"
	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/policy"
)

// parsePacket reads source address, protocol and destination port from an
// IPv4 or IPv6 packet (IPv6 extension headers are not followed: the
// protocol is then the first extension header's and the port 0).
func parsePacket(b []byte) (src netip.Addr, proto audit.Protocol, port uint16, ok bool) {
	if len(b) < 1 {
		return src, 0, 0, false
	}
	var l4 []byte
	switch b[0] >> 4 {
	case 4:
		if len(b) < 20 {
			return src, 0, 0, false
		}
		ihl := int(b[0]&0x0f) * 4
		src = netip.AddrFrom4([4]byte(b[12:16]))
		proto = audit.Protocol(b[9])
		if len(b) >= ihl {
			l4 = b[ihl:]
		}
	case 6:
		if len(b) < 40 {
			return src, 0, 0, false
		}
		src = netip.AddrFrom16([16]byte(b[8:24]))
		proto = audit.Protocol(b[6])
		l4 = b[40:]
	default:
		return src, 0, 0, false
	}
	switch proto {
	case audit.TCP, audit.UDP, audit.SCTP:
		if len(l4) >= 4 {
			port = binary.BigEndian.Uint16(l4[2:4])
		}
	}
	return src, proto, port, true
}

// sampleOf decodes a logged packet: prefix is the rule name the ruleset
// put in the log prefix, payload the packet from its network header.
func sampleOf(prefix string, payload []byte, t time.Time) (audit.Sample, bool) {
	rule := strings.TrimSpace(prefix)
	src, proto, port, ok := parsePacket(payload)
	if !ok || rule == "" {
		return audit.Sample{}, false
	}
	return audit.Sample{Rule: rule, Time: t, Source: src, Protocol: proto, Port: port}, true
}

// ListenAudit receives the packets the ruleset logs (those of rules with
// log: true and of the default policies, at most 20 a second per rule)
// until ctx ends, and feeds those of rules that deny to the attribution.
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
		if attr.Prefix != nil && attr.Payload != nil {
			d.recordLogged(*attr.Prefix, *attr.Payload)
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

// recordLogged feeds a logged packet of a rule that denies to the
// attribution: prefix is the log prefix, the rule's name, and payload the
// packet from its network header.
func (d *Daemon) recordLogged(prefix string, payload []byte) {
	if s, ok := sampleOf(prefix, payload, d.now()); ok && d.denies(s.Rule) {
		d.attrib.record(s)
	}
}

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
