package integration

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/edgefw/edgefw/daemon"
	"github.com/edgefw/edgefw/internal/netnstest"
	"github.com/edgefw/edgefw/internal/reporttest"
	"github.com/edgefw/edgefw/report"
)

// reportJSON runs `edgefwctl report -o json` with args, checks it against
// docs/report.schema.json and decodes it.
func reportJSON(t *testing.T, p *edgefwdProcess, args ...string) (*report.Report, []byte) {
	t.Helper()
	r := p.Ctl(t, nil, append([]string{"report", "-o", "json"}, args...)...)
	if r.Code != 0 {
		t.Fatalf("edgefwctl report -o json: exit %d\n%s\ndaemon log:\n%s", r.Code, r.Stderr, p.Log())
	}
	reporttest.ValidateJSON(t, []byte(r.Stdout))
	var rep report.Report
	if err := json.Unmarshal([]byte(r.Stdout), &rep); err != nil {
		t.Fatalf("report -o json: %v", err)
	}
	return &rep, []byte(r.Stdout)
}

func reportRule(rules []report.RuleTraffic, name string) *report.RuleTraffic {
	for i := range rules {
		if rules[i].Rule == name {
			return &rules[i]
		}
	}
	return nil
}

// TestReportEndToEnd runs the real edgefwd in a namespace through the
// story of TestJournalEndToEnd: an apply and a confirm by a non-root
// member of the socket's group, an unconfirmed apply rolled back by its
// timeout, a drift repair after `nft flush ruleset`, and a restart while
// an apply awaits confirmation; then denied and allowed packets from a
// client. `edgefwctl report -o json` validates against the schema and
// holds all of it with time, uid and user, and policy hashes; the HTML
// form parses with its charts and headless Chromium draws it; one byte
// edited in an old journal entry (daemon stopped, then restarted) makes
// the report name that entry.
func TestReportEndToEnd(t *testing.T) {
	netnstest.RequireRoot(t)
	netnstest.RequireTool(t, "nft", "chromium")
	host := netnstest.New(t, "rep")
	client := netnstest.New(t, "rcli")
	netnstest.Link(t, host, []string{"192.0.2.1/24"}, client, []string{"192.0.2.2/24"})
	args := []string{"--socket-group", journalGroup}
	p := startEdgefwdReady(t, edgefwdSetup{NS: host, Policy: daemonTestdata(t, "base.yaml"), Args: args})
	dir := daemonShortDir(t, "rcand")
	candidate, other := filepath.Join(dir, "candidate.yaml"), filepath.Join(dir, "other.yaml")
	daemonWriteAtomic(t, candidate, daemonTestdata(t, "extra.yaml"))
	daemonWriteAtomic(t, other, strings.Replace(daemonTestdata(t, "extra.yaml"), "9100", "9200", 1))

	for _, cmd := range [][]string{{"apply", candidate, "--confirm-timeout", "10m"}, {"confirm"}} {
		if r := p.Ctl(t, nobodyInGroup, cmd...); r.Code != 0 {
			t.Fatalf("edgefwctl %s as uid 65534 in group %s: exit %d\n%s%s", cmd[0], journalGroup, r.Code, r.Stdout, r.Stderr)
		}
	}
	n := len(journalEntries(t, p))
	p.MustCtl(t, "apply", other, "--confirm-timeout", "2s")
	waitJournal(t, p, n, "the rollback of the unconfirmed apply", isKind("rollback", "confirm-timeout"))
	n = len(journalEntries(t, p))
	p.Nft(t, "flush", "ruleset")
	waitJournal(t, p, n, "the drift repair", isKind("drift-repair", ""))
	p.MustCtl(t, "apply", other, "--confirm-timeout", "1h")
	p.Signal(t, syscall.SIGKILL)
	p.WaitExit(t)
	p = startEdgefwdReady(t, edgefwdSetup{NS: host, PolicyPath: p.PolicyPath, StateDir: p.StateDir, Socket: p.Socket, Args: args})

	// Two SYNs no rule accepts (the default drops and logs them), one
	// that rule web accepts (nothing listens: the host resets it).
	dropsSYN(t, client, "192.0.2.2", 9300)
	dropsSYN(t, client, "192.0.2.2", 9301)
	dropsSYN(t, client, "192.0.2.2", 8080)
	var rep *report.Report
	var data []byte
	daemonPoll(t, daemonReadyTimeout, "the denied SYNs in the report", func() (bool, string) {
		rep, data = reportJSON(t, p, "--since", "1h")
		d := reportRule(rep.Denied, "edgefw-default-input")
		return d != nil && d.Packets >= 2 && d.Sampled >= 2, string(data)
	})
	checkReportStory(t, rep)
	t.Logf("report -o json: %d bytes, %d changes, %d integrity events", len(data), len(rep.Changes), len(rep.Integrity))

	checkReportHTML(t, p)

	// One byte of an old entry edited while the daemon is stopped.
	p.Signal(t, syscall.SIGTERM)
	p.WaitExit(t)
	file := filepath.Join(p.StateDir, daemon.JournalDir, "journal.jsonl")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	if !bytes.Contains(lines[1], []byte(`"user":"nobody"`)) {
		t.Fatalf("the second entry is not the apply by nobody: %s", lines[1])
	}
	lines[1] = bytes.Replace(lines[1], []byte(`"user":"nobody"`), []byte(`"user":"nobodY"`), 1)
	if err := os.WriteFile(file, bytes.Join(lines, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	p = startEdgefwdReady(t, edgefwdSetup{NS: host, PolicyPath: p.PolicyPath, StateDir: p.StateDir, Socket: p.Socket, Args: args})
	rep, _ = reportJSON(t, p, "--since", "1h")
	if j := rep.Identity.Journal; j.Verified || j.Break == nil || j.Break.Seq != 2 || j.Break.File != "journal.jsonl" || j.Break.Line != 2 {
		t.Errorf("report after editing entry 2: journal %+v, break %+v; want broken at entry 2 (journal.jsonl line 2)", j, j.Break)
	}
	r := p.Ctl(t, nil, "report", "--since", "1h")
	if r.Code != 0 || !strings.Contains(r.Stdout, "BROKEN at entry 2 (journal.jsonl line 2)") ||
		!strings.Contains(r.Stderr, "broken at entry 2 (journal.jsonl:2)") {
		t.Errorf("report after editing entry 2: exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
	}
}

// checkReportStory checks the report of TestReportEndToEnd's story.
func checkReportStory(t *testing.T, rep *report.Report) {
	t.Helper()
	next := 0
	find := func(what string, match func(report.Event) bool) report.Event {
		t.Helper()
		for i := next; i < len(rep.Changes); i++ {
			if e := rep.Changes[i]; match(e) {
				next = i + 1
				if e.Time.IsZero() || e.Seq == 0 || e.Summary == "" {
					t.Errorf("%s: no time, entry or summary: %+v", what, e)
				}
				return e
			}
		}
		t.Fatalf("no %s in the report's changes after %d: %+v", what, next, rep.Changes)
		return report.Event{}
	}
	kind := func(k, trigger string) func(report.Event) bool {
		return func(e report.Event) bool { return e.Kind == k && (trigger == "" || e.Trigger == trigger) }
	}
	by := func(e report.Event, uid int, user string) bool {
		return e.By != nil && e.By.UID == uid && e.By.User == user
	}
	boot := find("first boot", kind(report.KindBoot, "policy-files"))
	apply := find("apply by nobody", kind(report.KindApply, "apply"))
	if !by(apply, 65534, "nobody") || apply.PolicyBefore != boot.PolicyAfter || apply.PolicyAfter == "" || apply.PolicyAfter == apply.PolicyBefore ||
		apply.Changes == nil || apply.Changes.RulesAdded != 1 || !strings.Contains(apply.Summary, "node-exporter") {
		t.Errorf("apply %+v: want nobody's (uid 65534), policy %.12s→new, node-exporter added", apply, boot.PolicyAfter)
	}
	confirm := find("confirm by nobody", kind(report.KindConfirm, ""))
	if !by(confirm, 65534, "nobody") || confirm.PolicyAfter != apply.PolicyAfter {
		t.Errorf("confirm %+v: want nobody's, of policy %.12s", confirm, apply.PolicyAfter)
	}
	unconfirmed := find("unconfirmed apply by root", kind(report.KindApply, "apply"))
	if !by(unconfirmed, 0, "root") || unconfirmed.PolicyBefore != apply.PolicyAfter {
		t.Errorf("unconfirmed apply %+v: want root's, from %.12s", unconfirmed, apply.PolicyAfter)
	}
	timeout := find("rollback by timeout", kind(report.KindRollback, "confirm-timeout"))
	if timeout.By != nil || timeout.PolicyBefore != unconfirmed.PolicyAfter || timeout.PolicyAfter != apply.PolicyAfter {
		t.Errorf("timeout rollback %+v: want edgefwd's, %.12s→%.12s", timeout, unconfirmed.PolicyAfter, apply.PolicyAfter)
	}
	pending := find("apply before the kill", kind(report.KindApply, "apply"))
	restart := find("rollback at restart", kind(report.KindRollback, "restart"))
	if restart.PolicyBefore != pending.PolicyAfter || restart.PolicyAfter != apply.PolicyAfter {
		t.Errorf("restart rollback %+v: want %.12s→%.12s", restart, pending.PolicyAfter, apply.PolicyAfter)
	}
	reboot := find("boot after the restart", kind(report.KindBoot, "restart-rollback"))
	if reboot.PolicyAfter != apply.PolicyAfter || rep.Identity.Policy.Hash != apply.PolicyAfter {
		t.Errorf("boot %+v, running policy %.12s: want policy %.12s", reboot, rep.Identity.Policy.Hash, apply.PolicyAfter)
	}
	checkReportEvidence(t, rep, apply.PolicyAfter)
}

// checkReportEvidence checks the rest of TestReportEndToEnd's report:
// the integrity events (running is the policy confirmed), the journal's
// verification, the traffic, the exposure.
func checkReportEvidence(t *testing.T, rep *report.Report, running string) {
	t.Helper()
	var integrity []string
	for _, e := range rep.Integrity {
		integrity = append(integrity, e.Kind+"/"+e.Trigger)
		if e.Kind == report.KindDriftRepair && (!strings.Contains(e.ChangedBy, "nft") || e.Drift == nil || e.Drift.Repairs < 1 ||
			e.PolicyAfter != running || !strings.Contains(e.Summary, "changed outside edgefw by nft")) {
			t.Errorf("drift repair %+v: want changed by nft, repaired, the running policy", e)
		}
	}
	if got := strings.Join(integrity, ","); !strings.Contains(got, "rollback/confirm-timeout,drift-repair/drift") || !strings.Contains(got, "rollback/restart") {
		t.Errorf("integrity events %s; want the timeout rollback, the drift repair, the restart rollback", got)
	}
	if j := rep.Identity.Journal; !j.Verified || j.Break != nil || j.LastSeq == 0 || len(j.Head) != 64 {
		t.Errorf("journal check %+v; want it verified with its head", j)
	}
	denied := reportRule(rep.Denied, "edgefw-default-input")
	if len(denied.TopSources) == 0 || denied.TopSources[0].Source != "192.0.2.2" || len(denied.Days) == 0 || denied.Share == nil {
		t.Errorf("denied by the default: %+v; want 192.0.2.2 on top, a day, a share", denied)
	}
	if web := reportRule(rep.Allowed, "web"); web == nil || web.Packets < 1 {
		t.Errorf("allowed by web: %+v; want the SYN to 8080", web)
	}
	texts := ""
	for _, d := range rep.Exposure.Directions {
		for _, r := range d.Rules {
			texts += r.Text + "\n"
		}
		texts += d.DefaultText + "\n"
	}
	for _, want := range []string{"Anyone may connect to TCP 8080 (web).", "Anyone may connect to TCP 9100 (node-exporter).",
		"anyone may connect to TCP 22 (edgefw-failsafe).", "Everything else is dropped and counted (edgefw-default-input); a sample is logged."} {
		if !strings.Contains(texts, want) {
			t.Errorf("exposure lacks %q:\n%s", want, texts)
		}
	}
}

// checkReportHTML renders the report as HTML: it parses, holds a chart
// for each rule that counted traffic, and headless Chromium, in the
// daemon's namespace (no network beyond it), draws it to a non-blank
// screenshot.
func checkReportHTML(t *testing.T, p *edgefwdProcess) {
	t.Helper()
	out := p.MustCtl(t, "report", "--since", "1h", "-o", "html")
	doc := reporttest.CheckHTML(t, []byte(out))
	if doc.Charts["traffic"] < 2 || doc.Scripts != 0 || len(doc.External) != 0 {
		t.Errorf("HTML report: charts %v, %d scripts, external %v; want at least 2 traffic charts, self-contained", doc.Charts, doc.Scripts, doc.External)
	}
	if !strings.Contains(doc.Text, "Anyone may connect to TCP 8080 (web).") {
		t.Errorf("the HTML report lacks the exposure")
	}
	file := filepath.Join(t.TempDir(), "report.html")
	if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	img := reporttest.Chromium(t, p.NS.Command, file)
	got := reporttest.CheckScreenshot(t, img, 0.02)
	t.Logf("HTML report: %d bytes, charts %v; chromium's screenshot: %s", len(out), doc.Charts, got)
}
