package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefw/edgefw/daemon"
	"github.com/edgefw/edgefw/internal/reporttest"
	"github.com/edgefw/edgefw/report"
)

// fakeReports serves a canned report and records the queries it gets.
type fakeReports struct {
	report *report.Report
	status int // 0: 200

	mu      sync.Mutex
	queries []url.Values
}

func (f *fakeReports) serve(t *testing.T) string {
	t.Helper()
	return serveUnix(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path != daemon.PathReport || f.status != 0 {
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(daemon.ErrorResponse{Error: "404 page not found"})
			return
		}
		f.mu.Lock()
		f.queries = append(f.queries, r.URL.Query())
		f.mu.Unlock()
		_ = json.NewEncoder(w).Encode(f.report)
	}))
}

// dayTraffic is a report.Traffic of canned days.
type dayTraffic map[string][]report.Day

func (d dayTraffic) Rules() []string { return nil }
func (d dayTraffic) Days(rule string, _, _ time.Time) []report.Day {
	return d[rule]
}
func (d dayTraffic) Samples(time.Time, time.Time, []string) map[string]report.Sample { return nil }

// cannedReport is a report of three days: an apply by alice, a drift
// repair, traffic of an accept and a drop rule, a tunnel peer.
func cannedReport(verified bool) *report.Report {
	from := testNow.Add(-72 * time.Hour)
	hash := strings.Repeat("ab", 32)
	in := report.Input{Host: "edge-1", Version: "1.4.0", From: from, To: testNow, Now: testNow,
		Policy: report.PolicyRef{Path: "/etc/edgefw/policy.yaml", Hash: hash},
		Chain: report.JournalCheck{Verified: verified, Summary: "the journal's hash chain holds: entries 1 to 3", Entries: 3,
			FirstSeq: 1, LastSeq: 3, Head: hash, Torn: []string{}},
		Journal: []report.Event{
			{Seq: 1, Time: from.Add(-time.Hour), Kind: report.KindPeerUp, Interface: "wg0", Peer: "gw"},
			{Seq: 2, Time: from.Add(time.Hour), Kind: report.KindApply, Trigger: "apply", By: &report.Caller{UID: 1000, User: "alice"},
				PolicyBefore: strings.Repeat("cd", 32), PolicyAfter: hash, Changes: &report.Changes{RulesAdded: 1, Added: []string{"kube-api"}}},
			{Seq: 3, Time: from.Add(30 * time.Hour), Kind: report.KindDriftRepair, Trigger: "drift", ChangedBy: "nft (pid 42)",
				Drift: &report.Drift{Repairs: 1, Since: from.Add(30 * time.Hour)}},
		},
		Exposure: report.Exposure{Directions: []report.DirectionExposure{{Direction: "input", Default: "drop", DefaultCounter: "edgefw-default-input",
			DefaultLogged: true, Rules: []report.ExposedRule{{Rule: "kube-api", Kind: "user", Action: "accept", Mode: "enforce",
				Services: []report.Service{{Protocol: "tcp", Ports: []report.PortRange{{From: 6443, To: 6443}}}}}}}}},
		Rules: []report.Rule{{Name: "kube-api", Direction: "input", Action: "accept", Kind: "user", Mode: "enforce"},
			{Name: "edgefw-default-input", Direction: "input", Action: "drop", Kind: "default", Mode: "enforce"}},
		Peers: []report.PeerRef{{Interface: "wg0", Peer: "gw"}},
		Traffic: dayTraffic{
			"kube-api":             {{Date: "2026-05-03", Packets: 10, Bytes: 600}, {Date: "2026-05-04", Packets: 12, Bytes: 720}, {Date: "2026-05-05", Packets: 90, Bytes: 5400}},
			"edgefw-default-input": {{Date: "2026-05-04", Packets: 5, Bytes: 300}},
		},
	}
	if !verified {
		in.Chain.Summary = "the journal's hash chain is broken at entry 2 (journal.jsonl:2): its hash does not match"
		in.Chain.Break = &report.ChainBreak{Seq: 2, File: "journal.jsonl", Line: 2, Reason: "its hash does not match"}
	}
	return report.Build(in)
}

func TestReportMarkdown(t *testing.T) {
	f := &fakeReports{report: cannedReport(true)}
	sock := f.serve(t)
	res := run(t, "--socket", sock, "report", "--since", "3d")
	if res.code != 0 || res.stderr != "" {
		t.Fatalf("report: code %d\n%s%s", res.code, res.stdout, res.stderr)
	}
	for _, want := range []string{"# Network security report: edge-1", "1. Anyone may connect to TCP 6443 (kube-api).",
		"| alice (uid 1000) | apply | cdcdcdcdcdcd → abababababab |", "by nft (pid 42) and restored (1 repair)", "| 2026-05-05 | 90 | 5.4 kB | SURGE |",
		"| wg0 | gw | 100% |"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("the markdown report lacks %q:\n%s", want, res.stdout)
		}
	}
	if len(f.queries) != 1 || f.queries[0].Get("since") != "72h0m0s" || f.queries[0].Get("from") != "" {
		t.Errorf("queries %v; want since=72h0m0s", f.queries)
	}
}

// TestReportJSON checks -o json: the model as the daemon sent it, valid
// against docs/report.schema.json.
func TestReportJSON(t *testing.T) {
	want := cannedReport(true)
	f := &fakeReports{report: want}
	res := run(t, "--socket", f.serve(t), "report", "--from", "2026-05-03", "--to", "2026-05-05", "-o", "json")
	if res.code != 0 {
		t.Fatalf("report -o json: code %d\n%s", res.code, res.stderr)
	}
	reporttest.ValidateJSON(t, []byte(res.stdout))
	var got report.Report
	if err := json.Unmarshal([]byte(res.stdout), &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, &got); diff != "" {
		t.Errorf("report -o json (-sent +printed):\n%s", diff)
	}
	if q := f.queries[0]; q.Get("from") != "2026-05-03T00:00:00Z" || q.Get("to") != "2026-05-06T00:00:00Z" {
		t.Errorf("query %v; want the UTC days 2026-05-03 to 2026-05-05, the last included", q)
	}
}

// TestReportHTML checks -o html: one document that parses, with its
// charts, no script and nothing from outside.
func TestReportHTML(t *testing.T) {
	f := &fakeReports{report: cannedReport(true)}
	res := run(t, "--socket", f.serve(t), "report", "-o", "html")
	if res.code != 0 {
		t.Fatalf("report -o html: code %d\n%s", res.code, res.stderr)
	}
	doc := reporttest.CheckHTML(t, []byte(res.stdout))
	if doc.Charts["traffic"] != 2 || doc.Charts["tunnel"] != 1 || doc.Scripts != 0 || len(doc.External) != 0 {
		t.Errorf("charts %v, %d scripts, external %v; want 2 traffic charts, 1 tunnel chart, self-contained", doc.Charts, doc.Scripts, doc.External)
	}
	if !strings.Contains(doc.Text, "Anyone may connect to TCP 6443 (kube-api).") {
		t.Errorf("the HTML report lacks the exposure")
	}
}

// TestReportBrokenJournal: the report is printed, and a warning names
// the broken entry.
func TestReportBrokenJournal(t *testing.T) {
	f := &fakeReports{report: cannedReport(false)}
	res := run(t, "--socket", f.serve(t), "report")
	if res.code != 0 || !strings.Contains(res.stderr, "warning: the journal's hash chain is broken at entry 2") ||
		!strings.Contains(res.stdout, "The journal's hash chain is BROKEN at entry 2 (journal.jsonl line 2)") {
		t.Errorf("report of a broken journal: code %d\nstdout:\n%s\nstderr:\n%s", res.code, res.stdout, res.stderr)
	}
	if q := f.queries[0]; len(q) != 0 {
		t.Errorf("query %v; want none: the daemon's default period", q)
	}
}

func TestReportRefused(t *testing.T) {
	f := &fakeReports{report: cannedReport(true)}
	sock := f.serve(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--since", "7d", "--from", "2026-05-01"}, "not both"},
		{[]string{"--from", "2026-05-05", "--to", "2026-05-01"}, "is not before"},
		{[]string{"--from", "May 1st"}, "--from"},
		{[]string{"--since", "-1h"}, "--since"},
		{[]string{"-o", "pdf"}, "markdown, json or html"},
	} {
		res := run(t, append([]string{"--socket", sock, "report"}, tc.args...)...)
		if res.code != 1 || !strings.Contains(res.stderr, tc.want) || res.stdout != "" {
			t.Errorf("report %v: code %d, stderr %q; want 1 and %q", tc.args, res.code, res.stderr, tc.want)
		}
	}
	if len(f.queries) != 0 {
		t.Errorf("refused flags reached the daemon: %v", f.queries)
	}
	old := &fakeReports{status: http.StatusNotFound}
	if res := run(t, "--socket", old.serve(t), "report"); res.code != 1 || !strings.Contains(res.stderr, "restart it") {
		t.Errorf("report from an older edgefwd: code %d, stderr %q", res.code, res.stderr)
	}
}
