package report

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Markdown writes the report as Markdown (CommonMark with GitHub's
// tables).
func Markdown(w io.Writer, r *Report) error {
	b := bufio.NewWriter(w)
	m := &mdWriter{b: b}
	m.identity(r.Identity)
	m.exposure(r.Exposure)
	m.changes(r.Changes)
	m.integrity(r.Identity.Journal, r.Integrity)
	m.traffic("Denied traffic", deniedIntro, r.Denied, "No rule denied traffic in the period.")
	m.traffic("Would be denied (audit mode)", wouldDenyIntro, r.WouldDeny, "No rule is in audit mode.")
	m.traffic("Allowed traffic", allowedIntro, r.Allowed, "No rule allowed traffic in the period.")
	if len(r.Retired) > 0 {
		m.traffic("Rules no longer in the running ruleset", retiredIntro, r.Retired, "")
	}
	m.tunnels(r.Tunnels)
	return b.Flush()
}

// Introductions of the traffic sections, shared by the Markdown and HTML
// forms.
const (
	deniedIntro = "Per rule that drops or rejects, per UTC day: the packets and bytes its kernel counter counted, exactly, " +
		"and the top sources and destination ports of the packets the daemon logged (a sample, whose share is given; " +
		"a count shown as 37-40 is a range). Days without traffic are left out. " + surgeNote
	wouldDenyIntro = "Rules in audit mode count and log what they would drop or reject, and let it through."
	allowedIntro   = "Per rule that accepts, per UTC day. " + surgeNote
	surgeNote      = "A surge is a day over 3 times the rule's median day in the period " +
		"(in packets or bytes; with a median of zero, any day with traffic)."
	retiredIntro = "Rules that counted in the period but are not in the running ruleset (removed or renamed since)."
)

type mdWriter struct{ b *bufio.Writer }

func (m *mdWriter) f(format string, args ...any) { fmt.Fprintf(m.b, format, args...) }

// cell makes text safe in a table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.Join(strings.Fields(s), " ")
}

func (m *mdWriter) row(cells ...string) {
	for i := range cells {
		cells[i] = cell(cells[i])
	}
	m.f("| %s |\n", strings.Join(cells, " | "))
}

func (m *mdWriter) header(cells ...string) {
	m.row(cells...)
	m.f("|%s\n", strings.Repeat("---|", len(cells)))
}

func (m *mdWriter) identity(id Identity) {
	m.f("# Network security report: %s\n\n", id.Host)
	m.header("", "")
	m.row("Host", id.Host)
	m.row("edgefwd version", id.Version)
	m.row("Period", periodText(id))
	m.row("Generated at", stamp(id.GeneratedAt))
	m.row("Running policy", fmt.Sprintf("%s (SHA-256 %s)", id.Policy.Path, short(id.Policy.Hash)))
	m.row("Journal", journalVerdict(id.Journal))
	if id.Journal.Head != "" {
		m.row("Journal head", fmt.Sprintf("entry %d, SHA-256 %s", id.Journal.LastSeq, id.Journal.Head))
	}
	m.f("\n")
}

func periodText(id Identity) string {
	return fmt.Sprintf("%s to %s (traffic: the UTC days %s to %s)", stamp(id.From), stamp(id.To), id.FirstDay, id.LastDay)
}

// journalVerdict says whether the chain holds, in a cell.
func journalVerdict(j JournalCheck) string {
	switch {
	case j.Error != "":
		return "NOT VERIFIED: " + j.Error
	case !j.Verified:
		return "BROKEN: " + j.Summary
	}
	return "verified: " + j.Summary
}

func (m *mdWriter) exposure(e Exposure) {
	m.f("## Exposure\n\n%s\n\n", exposureIntro)
	for _, d := range e.Directions {
		m.f("### %s\n\n", directionTitle(d.Direction))
		for i, r := range d.Rules {
			m.f("%d. %s\n", i+1, r.Text)
		}
		m.f("%d. %s\n\n", len(d.Rules)+1, d.DefaultText)
	}
}

const exposureIntro = "What the ruleset in the kernel lets through, read from it. In each direction the rules " +
	"are read top to bottom and the first that matches a packet decides; each counts in the counter named in brackets."

func directionTitle(dir string) string {
	switch dir {
	case "input":
		return "Input: traffic to this host"
	case "forward":
		return "Forward: traffic routed through this host"
	case "output":
		return "Output: traffic this host sends"
	}
	return dir
}

func (m *mdWriter) changes(es []Event) {
	m.f("## Changes\n\n")
	if len(es) == 0 {
		m.f("No changes in the period.\n\n")
		return
	}
	m.header("Time (UTC)", "Entry", "Event", "Who", "Trigger", "Policy before → after", "What")
	for _, e := range es {
		m.row(stamp(e.Time), fmt.Sprint(e.Seq), e.Kind, who(e), e.Trigger, hashes(e), e.Summary)
	}
	m.f("\n")
}

// hashes renders an event's policy hashes, before → after.
func hashes(e Event) string {
	if e.PolicyBefore == "" && e.PolicyAfter == "" {
		return ""
	}
	if e.PolicyBefore == e.PolicyAfter {
		return short(e.PolicyAfter)
	}
	return short(e.PolicyBefore) + " → " + short(e.PolicyAfter)
}

func (m *mdWriter) integrity(j JournalCheck, es []Event) {
	m.f("## Integrity\n\n%s\n\n", integrityJournal(j))
	if len(es) == 0 {
		m.f("%s\n\n", noIntegrityEvents)
		return
	}
	m.header("Time (UTC)", "Entry", "Event", "What")
	for _, e := range es {
		m.row(stamp(e.Time), fmt.Sprint(e.Seq), e.Kind, e.Summary)
	}
	m.f("\n")
}

const noIntegrityEvents = "No integrity events in the period: no drift repairs, failed applies, safe fallbacks, " +
	"rollbacks by timeout or at restart, removals or journal rotations."

// integrityJournal says what the journal's verification found.
func integrityJournal(j JournalCheck) string {
	switch {
	case j.Error != "":
		return "The journal could not be verified: " + j.Error + "."
	case j.Break != nil:
		return fmt.Sprintf("The journal's hash chain is BROKEN at entry %d (%s line %d): %s. Entries from there on cannot be trusted.",
			j.Break.Seq, j.Break.File, j.Break.Line, j.Break.Reason)
	}
	s := upperFirst(j.Summary) + "."
	if len(j.Torn) > 0 {
		s += " Lines cut short by a crash, skipped: " + strings.Join(j.Torn, ", ") + "."
	}
	return s
}

func (m *mdWriter) traffic(title, intro string, rules []RuleTraffic, none string) {
	m.f("## %s\n\n%s\n\n", title, intro)
	if len(rules) == 0 {
		m.f("%s\n\n", none)
		return
	}
	for _, rt := range rules {
		m.f("### %s%s\n\n", rt.Rule, ruleRole(rt))
		m.f("%s\n\n", trafficTotals(rt))
		if rt.Sampled > 0 {
			m.f("%s\n\n", sampleText(rt))
		}
		days := activeDays(rt.Days)
		if len(days) == 0 {
			continue
		}
		m.header("Day", "Packets", "Bytes", "Surge", "Top sources (logged)", "Top ports (logged)")
		for _, d := range days {
			m.row(d.Date, count(d.Packets), bytesText(d.Bytes), surgeMark(d.Surge), sourcesText(d.TopSources, dayTop), portsText(d.TopPorts, dayTop))
		}
		m.f("\n")
	}
}

// dayTop is how many sources and ports a day's row lists; periodTop the
// rule's whole period.
const (
	dayTop    = 3
	periodTop = 10
)

// ruleRole says what a rule is: " (input drop)", " (input reject,
// audit mode)".
func ruleRole(rt RuleTraffic) string {
	if rt.Direction == "" {
		return ""
	}
	s := " (" + rt.Direction + " " + rt.Action
	if rt.Mode == "audit" {
		s += ", audit mode"
	}
	return s + ")"
}

func trafficTotals(rt RuleTraffic) string {
	if rt.Packets == 0 && rt.Bytes == 0 {
		return "No traffic counted in the period."
	}
	s := fmt.Sprintf("%s (%s) in the period", plural(int(min(rt.Packets, 1<<62)), "packet", "packets"), bytesText(rt.Bytes))
	if len(rt.Days) > 0 {
		s += fmt.Sprintf("; median day %s packets, %s", count(uint64(rt.MedianPackets)), bytesText(uint64(rt.MedianBytes)))
	}
	if rt.SurgeDays > 0 {
		s += fmt.Sprintf("; %s", plural(rt.SurgeDays, "surge day", "surge days"))
	}
	return s + "."
}

// sampleText gives the rule's period tops and the sample they come from.
func sampleText(rt RuleTraffic) string {
	from := plural(int(min(rt.Sampled, 1<<62)), "packet", "packets") + " logged"
	if rt.Share != nil {
		from = fmt.Sprintf("a %s sample, %s", percent(*rt.Share), from)
	}
	return fmt.Sprintf("Top sources (from %s): %s. Top ports: %s.", from, orDash(sourcesText(rt.TopSources, periodTop)), orDash(portsText(rt.TopPorts, periodTop)))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// activeDays are the days a rule counted or logged anything.
func activeDays(days []Day) []Day {
	var out []Day
	for _, d := range days {
		if d.Packets > 0 || d.Sampled > 0 {
			out = append(out, d)
		}
	}
	return out
}

func surgeMark(surge bool) string {
	if surge {
		return "SURGE"
	}
	return ""
}

// sampledCount renders a sampled count: exact, or the range its error
// bound allows.
func sampledCount(n, errBound uint64) string {
	if errBound == 0 {
		return count(n)
	}
	return count(n-min(errBound, n)) + "-" + count(n)
}

func sourcesText(ss []SourceCount, top int) string {
	parts := make([]string, 0, min(len(ss), top))
	for _, s := range ss[:min(len(ss), top)] {
		parts = append(parts, fmt.Sprintf("%s (%s)", s.Source, sampledCount(s.Count, s.ErrorBound)))
	}
	return strings.Join(parts, ", ")
}

func portsText(ps []PortCount, top int) string {
	parts := make([]string, 0, min(len(ps), top))
	for _, p := range ps[:min(len(ps), top)] {
		parts = append(parts, fmt.Sprintf("%s (%s)", portName(p), sampledCount(p.Count, p.ErrorBound)))
	}
	return strings.Join(parts, ", ")
}

func portName(p PortCount) string {
	if p.Port == 0 {
		return p.Protocol
	}
	return fmt.Sprintf("%s/%d", p.Protocol, p.Port)
}

func (m *mdWriter) tunnels(ps []PeerAvailability) {
	m.f("## Tunnel availability\n\n%s\n\n", tunnelsIntro)
	if len(ps) == 0 {
		m.f("No tunnel peers.\n\n")
		return
	}
	m.header("Tunnel", "Peer", "Up", "Down", "Unknown", "Outages", "Longest outage", "At the start")
	for _, p := range ps {
		m.row(p.Interface, peerName(p), percent(p.ShareUp), duration(p.DownSeconds), duration(p.UnknownSeconds),
			fmt.Sprint(p.Outages), outageText(p.LongestOutage), p.StateAtStart)
	}
	m.f("\n")
}

const tunnelsIntro = "Share of the period each peer was up (a handshake within 180 s), from the journal's peer-up and " +
	"peer-down entries. Before a peer's first entry its state is unknown."

func peerName(p PeerAvailability) string {
	if p.Declared {
		return p.Peer
	}
	return p.Peer + " (no longer declared)"
}

func outageText(o *Outage) string {
	if o == nil {
		return "none"
	}
	s := fmt.Sprintf("%s, %s to %s", duration(o.Seconds), stamp(o.From), stamp(o.To))
	switch {
	case o.BeganBefore && o.Ongoing:
		s += " (the whole period)"
	case o.BeganBefore:
		s += " (began before the period)"
	case o.Ongoing:
		s += " (still down at the end)"
	}
	return s
}
