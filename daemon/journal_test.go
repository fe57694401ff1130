package daemon

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/edgefw/edgefw/journal"
)

var bob = &Caller{UID: 1001, User: "bob"}

// entries reads the journal in the harness's state directory.
func (h *harness) entries(t *testing.T) []journal.Entry {
	t.Helper()
	es, err := journal.Read(filepath.Join(h.state, JournalDir), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// since returns the entries after the first n.
func (h *harness) since(t *testing.T, n int) []journal.Entry {
	t.Helper()
	return h.entries(t)[n:]
}

// only returns the one entry of es, failing the test if there are more
// or fewer, or if it is not of kind.
func only(t *testing.T, es []journal.Entry, kind journal.Kind) journal.Entry {
	t.Helper()
	if len(es) != 1 || es[0].Kind != kind {
		t.Fatalf("want one %s entry, got %d: %s", kind, len(es), entryLines(es))
	}
	return es[0]
}

func entryLines(es []journal.Entry) string {
	var b strings.Builder
	for _, e := range es {
		b.WriteString("\n\t" + e.String())
	}
	return b.String()
}

func wantBy(t *testing.T, e journal.Entry, c *Caller) {
	t.Helper()
	switch {
	case c == nil && e.By != nil:
		t.Errorf("%s: by %+v, want the daemon itself", e, e.By)
	case c != nil && (e.By == nil || e.By.UID != c.UID || e.By.User != c.User):
		t.Errorf("%s: by %+v, want %s", e, e.By, c)
	}
}

func runningHash(d *Daemon) string { return d.Status(context.Background()).Policy.Hash }

func TestJournalApplyByCaller(t *testing.T) {
	h := newHarness(t)
	d := h.run(t)
	before, n := runningHash(d), len(h.entries(t))
	req := applyReq(t, policyB, 0)
	if resp := d.send(context.Background(), event{kind: "apply", apply: req, caller: alice}); !resp.OK {
		t.Fatalf("apply: %+v", resp)
	}
	e := only(t, h.since(t, n), journal.KindApply)
	wantBy(t, e, alice)
	after := runningHash(d)
	if e.Trigger != "apply" || e.Source != req.Path || e.PolicyBefore != before || e.PolicyAfter != after || before == after {
		t.Errorf("apply entry %s: want trigger apply, source %s, policy %.12s→%.12s", e, req.Path, before, after)
	}
	if c := e.Changes; c == nil || c.RulesAdded != 1 || !slices.Equal(c.Added, []string{"metrics"}) || c.RulesRemoved+c.RulesChanged != 0 || c.Messages == 0 {
		t.Errorf("apply entry changes %+v, want the rule metrics added", e.Changes)
	}
	if e.Time.IsZero() || e.Seq != uint64(n+1) {
		t.Errorf("apply entry seq %d time %v", e.Seq, e.Time)
	}

	// A reload that writes nothing is journaled too, without changes.
	h.write(t, policyB)
	if resp := d.send(context.Background(), event{kind: "reload:" + triggerFromFiles, caller: bob}); !resp.OK {
		t.Fatalf("reload: %+v", resp)
	}
	e = only(t, h.since(t, n+1), journal.KindApply)
	wantBy(t, e, bob)
	if e.Trigger != triggerFromFiles || e.Changes != nil || e.Source != h.policy {
		t.Errorf("reload entry %s: want trigger %s, no changes, source %s", e, triggerFromFiles, h.policy)
	}
}

func TestJournalApplyFailed(t *testing.T) {
	h := newHarness(t)
	d := h.run(t)
	running, n := runningHash(d), len(h.entries(t))
	h.kernel.FailCommits(errors.New("kernel says no"))
	h.write(t, policyB)
	if resp := d.send(context.Background(), event{kind: "reload:reload", caller: bob}); resp.OK {
		t.Fatal("reload succeeded although the kernel refused it")
	}
	e := only(t, h.since(t, n), journal.KindApplyFailed)
	wantBy(t, e, bob)
	if e.Trigger != "reload" || !strings.Contains(e.Error, "kernel says no") || e.PolicyBefore != running || e.PolicyAfter != running {
		t.Errorf("failed apply entry %s: want trigger reload, the kernel's error, the running policy before and after", e)
	}

	// A policy that does not parse names its file and line.
	h.kernel.FailCommits(nil)
	h.write(t, "version: 1\nrules:\n  - name: Bad_Name\n    direction: input\n    action: accept\n")
	d.Reload(context.Background(), "signal")
	e = only(t, h.since(t, n+1), journal.KindApplyFailed)
	wantBy(t, e, nil)
	if e.Trigger != "signal" || !strings.Contains(e.Error, "policy.yaml:3:") {
		t.Errorf("failed apply entry %s: want trigger signal and the file's line", e)
	}
}

func TestJournalConfirmAndRollbacks(t *testing.T) {
	h := newHarness(t)
	d := h.run(t)
	ctx := context.Background()
	a := runningHash(d)
	req := applyReq(t, policyB, time.Hour)
	d.send(ctx, event{kind: "apply", apply: req, caller: alice})
	b := runningHash(d)
	n := len(h.entries(t))
	if resp := d.send(ctx, event{kind: "confirm", caller: alice}); !resp.OK {
		t.Fatalf("confirm: %+v", resp)
	}
	e := only(t, h.since(t, n), journal.KindConfirm)
	wantBy(t, e, alice)
	if e.Source != req.Path || e.PolicyAfter != b {
		t.Errorf("confirm entry %s: want source %s and policy %.12s", e, req.Path, b)
	}
	// Nothing pending: no entry.
	d.send(ctx, event{kind: "confirm", caller: alice})
	if len(h.since(t, n+1)) != 0 {
		t.Errorf("a confirm with nothing pending was journaled: %s", entryLines(h.since(t, n+1)))
	}

	// Rolled back on request.
	h.write(t, policyA)
	d.send(ctx, event{kind: "reload:" + triggerFromFiles})
	n = len(h.entries(t))
	d.send(ctx, event{kind: "apply", apply: applyReq(t, policyB, time.Hour), caller: alice})
	b = runningHash(d) // the hash covers the path of the file sent
	if resp := d.send(ctx, event{kind: "rollback", caller: bob}); !resp.OK {
		t.Fatalf("rollback: %+v", resp)
	}
	e = only(t, h.since(t, n+1), journal.KindRollback)
	wantBy(t, e, bob)
	if e.Trigger != "rollback" || e.PolicyBefore != b || e.PolicyAfter != a || !strings.Contains(e.Detail, "unconfirmed apply of") {
		t.Errorf("rollback entry %s: want trigger rollback, policy %.12s→%.12s", e, b, a)
	}
	if c := e.Changes; c == nil || !slices.Equal(c.Removed, []string{"metrics"}) {
		t.Errorf("rollback entry changes %+v, want metrics removed", e.Changes)
	}

	// Rolled back by the timer.
	n = len(h.entries(t))
	d.send(ctx, event{kind: "apply", apply: applyReq(t, policyB, 50*time.Millisecond), caller: alice})
	entry := h.since(t, n)
	if len(entry) == 0 || entry[0].Kind != journal.KindApply {
		t.Fatalf("no apply entry: %s", entryLines(entry))
	}
	b = entry[0].PolicyAfter
	waitFor(t, "the rollback's entry", func() bool { return len(h.since(t, n)) == 2 })
	e = only(t, h.since(t, n+1), journal.KindRollback)
	wantBy(t, e, nil)
	if e.Trigger != "confirm-timeout" || e.PolicyBefore != b || e.PolicyAfter != a {
		t.Errorf("timeout rollback entry %s: want trigger confirm-timeout, policy %.12s→%.12s", e, b, a)
	}
}

func TestJournalRemove(t *testing.T) {
	h := newHarness(t)
	d := h.run(t)
	running, n := runningHash(d), len(h.entries(t))
	if resp := d.send(context.Background(), event{kind: "remove", caller: alice}); !resp.OK {
		t.Fatalf("remove: %+v", resp)
	}
	e := only(t, h.since(t, n), journal.KindRemove)
	wantBy(t, e, alice)
	if e.PolicyBefore != running || e.PolicyAfter != "" || e.Source != h.policy || e.Error != "" {
		t.Errorf("remove entry %s: want policy %.12s→none", e, running)
	}
}

// TestJournalAppendFailureIsNotFatal: an event the journal cannot take is
// logged and counted, and what caused it goes on.
func TestJournalAppendFailureIsNotFatal(t *testing.T) {
	h := newHarness(t)
	m := NewMetrics(prometheus.NewPedanticRegistry(), "test", "x")
	d := h.startWith(t, func(c *Config) { c.Metrics = m })
	if got := testutil.ToFloat64(m.journalEntries); got != 1 {
		t.Errorf("edgefw_journal_entries = %v after the boot entry, want 1", got)
	}
	d.closeJournal()
	h.write(t, policyB)
	if err := d.reload(context.Background(), "signal"); err != nil {
		t.Fatalf("reload with the journal closed: %v", err)
	}
	if !h.holds(t, policyB) {
		t.Error("the policy was not applied")
	}
	if got := testutil.ToFloat64(m.journalErrors); got != 1 {
		t.Errorf("edgefw_journal_append_errors_total = %v, want 1", got)
	}
}

// TestJournalUnavailable: a journal that cannot be opened does not stop
// the daemon; status says why, and every event counts as an error.
func TestJournalUnavailable(t *testing.T) {
	h := newHarness(t)
	if err := os.MkdirAll(h.state, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.state, JournalDir), []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := NewMetrics(prometheus.NewPedanticRegistry(), "test", "x")
	d := h.startWith(t, func(c *Config) { c.Metrics = m })
	if !h.holds(t, policyA) {
		t.Error("no ruleset installed")
	}
	if st := d.Status(context.Background()).Journal; st == nil || st.Error == "" {
		t.Errorf("status journal %+v, want the error", st)
	}
	if got := testutil.ToFloat64(m.journalErrors); got != 1 {
		t.Errorf("edgefw_journal_append_errors_total = %v after the boot, want 1", got)
	}
}

// TestJournalAPI reads and verifies the journal through the control
// socket, as edgefwctl does.
func TestJournalAPI(t *testing.T) {
	h := newHarness(t)
	d := h.run(t)
	applyAs(t, d, policyB, time.Hour)
	c := NewClient(serveControl(t, d))
	ctx := context.Background()
	all, err := c.Journal(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	kinds := make([]journal.Kind, len(all))
	for i, e := range all {
		kinds[i] = e.Kind
	}
	if want := []journal.Kind{journal.KindBoot, journal.KindApply, journal.KindConfirm}; !slices.Equal(kinds, want) {
		t.Fatalf("journal kinds %v, want %v", kinds, want)
	}
	if later, err := c.Journal(ctx, all[2].Time); err != nil || len(later) == 0 || later[len(later)-1].Seq != 3 {
		t.Errorf("journal since the confirm: %v, %v", later, err)
	}
	if none, err := c.Journal(ctx, all[2].Time.Add(time.Hour)); err != nil || len(none) != 0 {
		t.Errorf("journal since an hour later: %v, %v; want none", none, err)
	}
	v, err := c.VerifyJournal(ctx)
	if err != nil || !v.OK() || v.Entries != 3 || v.LastSeq != 3 {
		t.Errorf("verify: %+v, %v", v, err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.Journal == nil || st.Journal.Entries != 3 || st.Journal.Head != v.Head {
		t.Errorf("status journal %+v, want 3 entries and head %s", st.Journal, v.Head)
	}
	var out []journal.Entry
	err = c.do(ctx, http.MethodGet, PathJournal+"?since=yesterday", nil, &out)
	if apiErr, ok := errors.AsType[*APIError](err); !ok || apiErr.StatusCode != http.StatusBadRequest || !strings.Contains(apiErr.Message, "RFC 3339") {
		t.Errorf("since=yesterday: %v, want 400 naming RFC 3339", err)
	}
}
