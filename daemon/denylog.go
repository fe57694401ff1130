package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/edgefw/edgefw/audit"
	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/policy"
)

// Messages of a minute's line per flow: of denied traffic, and of what a
// rule in audit mode would have denied (it let it through). The line for
// the other flows says how many sources they are.
const (
	deniedLogMessage  = "denied traffic"
	auditedLogMessage = "traffic a rule in audit mode would deny"
)

// logDenied logs the minutes of denied traffic, a line per flow listed
// and one for the rest, with Elastic Common Schema field names (see
// deniedFlowAttrs). With --log-format json they are JSON fields, with
// text key=value pairs.
func (d *Daemon) logDenied(minutes []audit.MinuteSummary) {
	if len(minutes) == 0 {
		return
	}
	rules := map[string]nft.RuleInfo{}
	for _, info := range d.Rules() {
		rules[info.Name] = info
	}
	ctx := context.Background()
	for _, m := range minutes {
		for _, f := range m.Flows {
			msg := deniedLogMessage
			if rules[f.Rule].Mode == policy.Audit {
				msg = auditedLogMessage
			}
			d.log.LogAttrs(ctx, slog.LevelInfo, msg, deniedFlowAttrs(m, f, rules[f.Rule], d.host)...)
		}
		if m.More.Packets > 0 {
			audited := !slices.ContainsFunc(m.More.Rules, func(r string) bool { return rules[r].Mode != policy.Audit })
			d.log.LogAttrs(ctx, slog.LevelInfo, moreDeniedMessage(m.More), deniedMoreAttrs(m, audited, d.host)...)
		}
	}
}

// deniedFlowAttrs are the fields of a minute's line for one flow, named
// as the Elastic Common Schema names them, so that shippers (Filebeat,
// Vector, Fluent Bit) and SIEMs read them without a mapping:
// event.category [network], event.type [connection, denied],
// event.action (the rule's action), event.start and event.end (the
// minute), rule.name, rule.ruleset (the hook: input, output, forward),
// source.ip, destination.port (for protocols with ports),
// network.transport, network.type, network.direction (ingress for
// input, egress for output, unknown for forwarded traffic, which is
// neither the host's own), network.packets (packets logged: the log is
// rate-limited, the exact totals are the counters') and host.name; and
// edgefw.mode, enforce or audit. What a rule in audit mode logs was let
// through: its event.type is [connection, allowed], and event.action what
// the rule would have done.
func deniedFlowAttrs(m audit.MinuteSummary, f audit.MinuteFlow, info nft.RuleInfo, host string) []slog.Attr {
	attrs := deniedEventAttrs(m, info.Mode == policy.Audit)
	if info.Action != "" {
		attrs = append(attrs, slog.String("event.action", string(info.Action)))
	}
	attrs = append(attrs, slog.String("rule.name", f.Rule))
	if info.Direction != "" {
		attrs = append(attrs, slog.String("rule.ruleset", string(info.Direction)))
	}
	attrs = append(attrs, slog.String("source.ip", f.Source.String()))
	if f.Port != 0 {
		attrs = append(attrs, slog.Int("destination.port", int(f.Port)))
	}
	network := "ipv4"
	if f.Source.Is6() && !f.Source.Is4In6() {
		network = "ipv6"
	}
	return append(attrs,
		slog.String("network.transport", ecsTransport(f.Protocol)),
		slog.String("network.type", network),
		slog.String("network.direction", ecsDirection(info.Direction)),
		slog.Uint64("network.packets", f.Packets),
		slog.String("edgefw.mode", ruleMode(info)),
		slog.String("host.name", host),
	)
}

// deniedMoreAttrs are the fields of a minute's line for the flows past
// those listed: rule.name lists their rules, network.packets sums their
// packets, and edgefw.more.sources and edgefw.more.flows count them
// (edgefw.more.untracked_packets are those of flows past the bound the
// daemon tracks a minute, which are counted but not told apart). Its
// event.type is [connection, allowed] when all its rules are in audit
// mode.
func deniedMoreAttrs(m audit.MinuteSummary, audited bool, host string) []slog.Attr {
	attrs := append(deniedEventAttrs(m, audited),
		slog.Any("rule.name", m.More.Rules),
		slog.Uint64("network.packets", m.More.Packets),
		slog.Int("edgefw.more.sources", m.More.Sources),
		slog.Int("edgefw.more.flows", m.More.Flows),
	)
	if m.More.Untracked > 0 {
		attrs = append(attrs, slog.Uint64("edgefw.more.untracked_packets", m.More.Untracked))
	}
	return append(attrs, slog.String("host.name", host))
}

func moreDeniedMessage(more audit.MoreFlows) string {
	return fmt.Sprintf("%s: %d more sources", deniedLogMessage, more.Sources)
}

// deniedEventAttrs are the fields every line of denied traffic carries;
// audited is traffic let through by rules in audit mode.
func deniedEventAttrs(m audit.MinuteSummary, audited bool) []slog.Attr {
	outcome := "denied"
	if audited {
		outcome = "allowed"
	}
	return []slog.Attr{
		slog.String("event.kind", "event"),
		slog.Any("event.category", []string{"network"}),
		slog.Any("event.type", []string{"connection", outcome}),
		slog.String("event.dataset", "edgefw.denied"),
		slog.Time("event.start", m.Start.UTC()),
		slog.Time("event.end", m.End.UTC()),
	}
}

// ecsDirection names a rule's direction as network.direction does from a
// host's point of view.
func ecsDirection(d policy.Direction) string {
	switch d {
	case policy.Input:
		return "ingress"
	case policy.Output:
		return "egress"
	}
	return "unknown"
}

// ecsTransport names a protocol as network.transport does: IANA's
// keyword, lower case ("ipv6-icmp" where nftables says "icmpv6").
func ecsTransport(p audit.Protocol) string {
	if p == audit.ICMPv6 {
		return "ipv6-icmp"
	}
	return p.String()
}
