package daemon

import (
	"errors"
	"net/http"
	"path/filepath"
	"time"

	"github.com/edgefw/edgefw/audit"
	"github.com/edgefw/edgefw/journal"
	"github.com/edgefw/edgefw/report"
)

// DefaultReportPeriod is the period a report covers when it is asked for
// none, or for a start or an end alone: 30 days.
const DefaultReportPeriod = 30 * 24 * time.Hour

// Report gathers the audit report of the period q selects: Since back
// from now, or From to To (see DefaultReportPeriod). The counters are
// read first, so the traffic runs to now. What it reads: the journal
// (all of it: entries before the period tell the tunnels' state at its
// start) and the chain's verification, the running ruleset's exposure
// and counters, the declared tunnel peers, and the attribution's days.
func (d *Daemon) Report(q audit.Query) (*report.Report, error) {
	now := d.now()
	from, to := reportPeriod(q, now)
	d.attrib.observe()
	dir := filepath.Join(d.cfg.StateDir, JournalDir)
	entries, err := journal.Read(dir, time.Time{})
	if err != nil {
		return nil, err
	}
	in := report.Input{Host: d.host, Version: d.cfg.Version, From: from, To: to, Now: now,
		Journal: reportEvents(entries), Chain: reportChain(journal.Verify(dir)), Traffic: attributionTraffic{d.attrib.attr}}
	d.mu.Lock()
	cur := d.cur
	d.mu.Unlock()
	if cur != nil {
		in.Policy = report.PolicyRef{Path: cur.source.Path, Hash: cur.source.Hash}
		in.Exposure = reportExposure(cur.rs.Exposure())
		in.Rules = reportRules(cur.rs.Rules)
		for _, t := range cur.pol.Tunnels {
			for _, p := range t.Peers {
				in.Peers = append(in.Peers, report.PeerRef{Interface: t.Name, Peer: p.Name})
			}
		}
	}
	return report.Build(in), nil
}

// reportPeriod resolves a query into the period's bounds.
func reportPeriod(q audit.Query, now time.Time) (from, to time.Time) {
	from, to = q.From, q.To
	switch {
	case q.Since > 0:
		return now.Add(-q.Since), now
	case to.IsZero():
		to = now
	}
	if from.IsZero() {
		from = to.Add(-DefaultReportPeriod)
	}
	return from, to
}

// serveReport answers the report of the period of the query parameters
// since, or from and to, as GET PathDenied reads them.
func (s *ControlServer) serveReport(w http.ResponseWriter, r *http.Request) {
	q, err := ParseDropsQuery(r.URL.Query())
	if err == nil && (len(q.Rules) > 0 || q.Top > 0) {
		err = errors.New("a report takes since, or from and to, and nothing else")
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad report request: "+err.Error())
		return
	}
	rep, err := s.d.Report(q)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "report: "+err.Error())
		return
	}
	writeHTTPJSON(w, http.StatusOK, rep)
}

// attributionTraffic reads the attribution's history for a report.
type attributionTraffic struct{ a *audit.Attributor }

func (t attributionTraffic) Rules() []string { return t.a.Rules() }

func (t attributionTraffic) Days(rule string, from, to time.Time) []report.Day {
	days := t.a.Days(rule, from, to)
	out := make([]report.Day, len(days))
	for i, d := range days {
		out[i] = report.Day{Date: d.Date, Packets: d.Packets, Bytes: d.Bytes, Sampled: d.Sampled, Share: d.Share,
			TopSources: reportSources(d.TopSources), TopPorts: reportPorts(d.TopPorts)}
	}
	return out
}

func (t attributionTraffic) Samples(from, to time.Time, rules []string) map[string]report.Sample {
	v := t.a.Drops(audit.Query{From: from, To: to, Rules: rules, Top: reportTop})
	out := make(map[string]report.Sample, len(v.Rules))
	for _, r := range v.Rules {
		out[r.Rule] = report.Sample{Sampled: r.Sampled, Share: r.Share, TopSources: reportSources(r.TopSources), TopPorts: reportPorts(r.TopPorts)}
	}
	return out
}

// reportTop is how many sources and ports a report lists per rule for
// its period.
const reportTop = 10

func reportSources(ss []audit.SourceCount) []report.SourceCount {
	out := make([]report.SourceCount, len(ss))
	for i, s := range ss {
		out[i] = report.SourceCount{Source: s.Source.String(), Count: s.Count, ErrorBound: s.ErrorBound}
	}
	return out
}

func reportPorts(ps []audit.PortCount) []report.PortCount {
	out := make([]report.PortCount, len(ps))
	for i, p := range ps {
		out[i] = report.PortCount{Protocol: p.Protocol.String(), Port: p.Port, Count: p.Count, ErrorBound: p.ErrorBound}
	}
	return out
}
