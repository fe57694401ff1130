package daemon

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgefw/edgefw/audit"
	"github.com/edgefw/edgefw/report"
)

// reportPolicy is attribPolicy with a rule from a set, applied by alice.
const reportPolicy = attribPolicy + `  - name: ssh-mgmt
    direction: input
    from: [{set: mgmt}]
    ports: [{protocol: tcp, port: 22}]
    action: accept
sets:
  mgmt: [10.10.0.0/16, "fd00:10::/48"]
`

// reportStory gives a daemon two days of traffic and an apply by alice,
// confirmed.
func reportStory(t *testing.T) (*harness, *Daemon, *testClock) {
	t.Helper()
	h := newHarness(t)
	h.write(t, attribPolicy)
	c := newTestClock()
	d, err := New(Config{PolicyPath: h.policy, StateDir: h.state, Firewall: h.fw, Now: c.now, BootID: "boot-a", Hostname: "edge-7"})
	if err != nil {
		t.Fatal(err)
	}
	runLoop(t, d)
	c.add(time.Minute)
	h.count(t, "web", 1000)
	h.count(t, "deny-scan", 40)
	logPackets(d, "deny-scan", "203.0.113.5", 9100, 30)
	logPackets(d, "deny-scan", "198.51.100.7", 9200, 10)
	d.attrib.observe()
	c.add(24 * time.Hour)
	h.count(t, "web", 500)
	d.attrib.observe()
	applyAs(t, d, reportPolicy, time.Hour)
	return h, d, c
}

// TestReportGathers checks what the daemon puts in a report: identity,
// the journal's changes with who and hashes, the exposure's sentences,
// the denied traffic of the logged rule with its sample and the allowed
// traffic per day, every counter of the running ruleset.
func TestReportGathers(t *testing.T) {
	_, d, _ := reportStory(t)
	r, err := d.Report(audit.Query{Since: 7 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	id := r.Identity
	if id.Host != "edge-7" || !id.Journal.Verified || id.Journal.Entries != 3 || id.Policy.Hash != runningHash(d) ||
		!id.To.Equal(d.now()) || !id.From.Equal(d.now().Add(-7*24*time.Hour)) {
		t.Errorf("identity %+v", id)
	}
	var kinds []string
	for _, e := range r.Changes {
		kinds = append(kinds, e.Kind)
	}
	if strings.Join(kinds, ",") != "boot,apply,confirm" {
		t.Fatalf("changes %v, want boot, apply, confirm", kinds)
	}
	apply := r.Changes[1]
	if apply.By == nil || apply.By.User != "alice" || apply.By.UID != 1000 || apply.PolicyAfter != runningHash(d) ||
		apply.PolicyBefore == "" || apply.PolicyBefore == apply.PolicyAfter || !strings.Contains(apply.Summary, "ssh-mgmt") {
		t.Errorf("apply %+v", apply)
	}
	texts := exposureTexts(r)
	for _, want := range []string{"Anyone may connect to TCP 443 (web).",
		"TCP 22 from the set mgmt (2 ranges) is accepted (ssh-mgmt).",
		"TCP 9100 and 9200 is dropped, counted and logged (deny-scan).",
		"Everything else is dropped and counted (edgefw-default-input); a sample is logged."} {
		if !strings.Contains(texts, want) {
			t.Errorf("exposure lacks %q:\n%s", want, texts)
		}
	}
	scan := findTraffic(r.Denied, "deny-scan")
	if scan == nil || scan.Packets != 40 || scan.Sampled != 40 || len(scan.TopSources) == 0 || scan.TopSources[0].Source != "203.0.113.5" ||
		scan.TopSources[0].Count != 30 || scan.Direction != "input" || scan.Action != "drop" {
		t.Errorf("denied deny-scan: %+v", scan)
	}
	web := findTraffic(r.Allowed, "web")
	if web == nil || web.Packets != 1500 || len(web.Days) != 2 || web.Days[0].Packets+web.Days[1].Packets != 1500 {
		t.Errorf("allowed web: %+v", web)
	}
	if findTraffic(r.Allowed, "edgefw-established-input") == nil || findTraffic(r.Denied, "edgefw-default-input") == nil {
		t.Errorf("every counter of the ruleset is reported: allowed %v, denied %v", ruleNames(r.Allowed), ruleNames(r.Denied))
	}
}

// TestReportNamesBrokenEntry edits one byte of an old entry: the report
// says the chain is broken and names that entry.
func TestReportNamesBrokenEntry(t *testing.T) {
	h, d, _ := reportStory(t)
	file := filepath.Join(h.state, JournalDir, "journal.jsonl")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	edited := bytes.Replace(data, []byte(`"user":"alice"`), []byte(`"user":"alicE"`), 1)
	if bytes.Equal(edited, data) {
		t.Fatal("no entry by alice to edit")
	}
	if err := os.WriteFile(file, edited, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := d.Report(audit.Query{Since: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	j := r.Identity.Journal
	if j.Verified || j.Break == nil || j.Break.Seq != 2 || j.Break.File != "journal.jsonl" || j.Break.Line != 2 ||
		!strings.Contains(j.Summary, "broken at entry 2") {
		t.Errorf("journal check %+v (break %+v); want broken at entry 2", j, j.Break)
	}
}

// TestReportEndpoint asks the control API for reports: a period is read
// as drops reads it, anything else is refused with 400.
func TestReportEndpoint(t *testing.T) {
	_, d, c := reportStory(t)
	cl := NewClient(serveControl(t, d))
	ctx := context.Background()
	r, err := cl.Report(ctx, audit.Query{From: c.now().Add(-48 * time.Hour), To: c.now()})
	if err != nil {
		t.Fatal(err)
	}
	if r.SchemaVersion != report.SchemaVersion || findTraffic(r.Allowed, "web") == nil || len(r.Changes) != 3 {
		t.Errorf("report over the API: schema %d, allowed %v, %d changes", r.SchemaVersion, ruleNames(r.Allowed), len(r.Changes))
	}
	for _, q := range []audit.Query{{Rules: []string{"web"}}, {Since: time.Hour, From: c.now()}} {
		_, err := cl.Report(ctx, q)
		if apiErr, ok := errors.AsType[*APIError](err); !ok || apiErr.StatusCode != http.StatusBadRequest {
			t.Errorf("report %+v: %v; want 400", q, err)
		}
	}
}

func TestReportPeriod(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	day := func(d int) time.Time { return time.Date(2026, 5, d, 0, 0, 0, 0, time.UTC) }
	for _, tc := range []struct {
		q        audit.Query
		from, to time.Time
	}{
		{audit.Query{}, now.Add(-DefaultReportPeriod), now},
		{audit.Query{Since: time.Hour}, now.Add(-time.Hour), now},
		{audit.Query{From: day(1)}, day(1), now},
		{audit.Query{To: day(5)}, day(5).Add(-DefaultReportPeriod), day(5)},
		{audit.Query{From: day(1), To: day(5)}, day(1), day(5)},
	} {
		if from, to := reportPeriod(tc.q, now); !from.Equal(tc.from) || !to.Equal(tc.to) {
			t.Errorf("%+v: %v to %v; want %v to %v", tc.q, from, to, tc.from, tc.to)
		}
	}
}

func exposureTexts(r *report.Report) string {
	var b strings.Builder
	for _, d := range r.Exposure.Directions {
		for _, rule := range d.Rules {
			b.WriteString(rule.Text + "\n")
		}
		b.WriteString(d.DefaultText + "\n")
	}
	return b.String()
}

func findTraffic(rules []report.RuleTraffic, name string) *report.RuleTraffic {
	for i := range rules {
		if rules[i].Rule == name {
			return &rules[i]
		}
	}
	return nil
}

func ruleNames(rules []report.RuleTraffic) []string {
	var out []string
	for _, r := range rules {
		out = append(out, r.Rule)
	}
	return out
}
