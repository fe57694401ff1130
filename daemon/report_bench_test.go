package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgefw/edgefw/audit"
	"github.com/edgefw/edgefw/journal"
	"github.com/edgefw/edgefw/report"
)

// Size of the year of history BenchmarkReportYear reports on.
const (
	benchYearDays    = 365
	benchDenyRules   = 10 // logged drop rules
	benchAllowRules  = 10 // accept rules
	benchEntries     = 10_000
	benchSamplesADay = 200 // per logged rule
)

// benchYearPolicy has the benchmark's 20 rules: 10 logged drop rules and
// 10 accept rules, from sets and CIDRs.
func benchYearPolicy() string {
	var b strings.Builder
	b.WriteString("version: 1\nsets:\n  mgmt: [10.10.0.0/16, \"fd00:10::/48\"]\nrules:\n")
	for i := range benchDenyRules {
		fmt.Fprintf(&b, "  - name: deny-%d\n    direction: input\n    ports: [{protocol: tcp, port: %d}]\n    action: drop\n    log: true\n", i, 9000+i)
	}
	for i := range benchAllowRules {
		fmt.Fprintf(&b, "  - name: allow-%d\n    direction: input\n    from: [{set: mgmt}, {cidr: 0.0.0.0/0, except: [192.0.2.0/24]}]\n"+
			"    ports: [{protocol: tcp, port: %d}]\n    action: accept\n", i, 8000+i)
	}
	return b.String()
}

// benchRuleNames are the 20 rules' names.
func benchRuleNames() []string {
	var names []string
	for i := range benchDenyRules {
		names = append(names, fmt.Sprintf("deny-%d", i))
	}
	for i := range benchAllowRules {
		names = append(names, fmt.Sprintf("allow-%d", i))
	}
	return names
}

// feedYear gives an Attributor a year ending at end: each rule's counter
// read every hour, rising by a rate of its own that varies by day (a
// surge now and then), and the logged rules' samples, from a few heavy
// sources and many one-off ones, to ten ports.
func feedYear(a *audit.Attributor, end time.Time) {
	rng := rand.New(rand.NewPCG(1, 2))
	names := benchRuleNames()
	values := make([]uint64, len(names))
	start := end.AddDate(0, 0, -benchYearDays)
	for day := start; day.Before(end); day = day.Add(24 * time.Hour) {
		var samples []audit.Sample
		for i := range benchDenyRules {
			for range benchSamplesADay {
				src := netip.AddrFrom4([4]byte{203, 0, 113, byte(rng.IntN(8))})
				if rng.IntN(2) == 0 {
					src = netip.AddrFrom4([4]byte{198, 51, byte(rng.IntN(256)), byte(rng.IntN(256))})
				}
				samples = append(samples, audit.Sample{Rule: names[i], Time: day.Add(time.Duration(rng.Int64N(int64(24 * time.Hour)))),
					Source: src, Protocol: audit.TCP, Port: uint16(9000 + rng.IntN(10))})
			}
		}
		slices.SortStableFunc(samples, func(x, y audit.Sample) int { return x.Time.Compare(y.Time) })
		next := 0
		for hour := day; hour.Before(day.Add(24 * time.Hour)); hour = hour.Add(time.Hour) {
			for ; next < len(samples) && samples[next].Time.Before(hour); next++ {
				a.Record(samples[next])
			}
			readings := make(map[string]audit.Reading, len(names))
			for i, name := range names {
				rate := uint64(50 * (i + 1))
				if rng.IntN(40) == 0 {
					rate *= 10
				}
				values[i] += rate
				readings[name] = audit.Reading{Packets: values[i], Bytes: 80 * values[i], Epoch: "boot/1"}
			}
			a.Observe(hour, readings)
		}
		for ; next < len(samples); next++ {
			a.Record(samples[next])
		}
	}
}

// writeYearJournal appends benchEntries entries spread over the year
// ending at end: applies by a caller with what they changed, confirms,
// drift repairs, boots, three peers going down and up.
func writeYearJournal(b *testing.B, dir string, end time.Time) {
	b.Helper()
	start := end.AddDate(0, 0, -benchYearDays)
	step := end.Sub(start) / benchEntries
	at := start
	j, err := journal.Open(dir, journal.WithClock(func() time.Time { return at }))
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	hash := func(n int) string { return fmt.Sprintf("%064x", n) }
	for i := range benchEntries {
		at = start.Add(time.Duration(i) * step)
		var ev journal.Event
		switch i % 10 {
		case 0:
			ev = journal.Event{Kind: journal.KindApply, Trigger: "apply", By: &journal.Caller{UID: 1000, User: "alice"}, Source: "/home/alice/policy.yaml",
				PolicyBefore: hash(i - 1), PolicyAfter: hash(i), Changes: &journal.Summary{RulesAdded: 1, Added: []string{"allow-1"}, ElementsAdded: 3}}
		case 1:
			ev = journal.Event{Kind: journal.KindConfirm, Trigger: "confirm", By: &journal.Caller{UID: 1000, User: "alice"}, PolicyBefore: hash(i - 1), PolicyAfter: hash(i - 1)}
		case 2:
			ev = journal.Event{Kind: journal.KindDriftRepair, Trigger: "drift", ChangedBy: "nft (pid 4242)", PolicyBefore: hash(i - 2), PolicyAfter: hash(i - 2),
				Drift: &journal.Drift{Repairs: 1, Since: at}}
		case 3:
			ev = journal.Event{Kind: journal.KindBoot, Trigger: "policy-files", Version: "1.4.0", PolicyAfter: hash(i - 3)}
		default:
			kind := journal.KindPeerDown
			if i%2 == 1 {
				kind = journal.KindPeerUp
			}
			ev = journal.Event{Kind: kind, Interface: "wg0", Peer: fmt.Sprintf("gw-%d", i%3)}
		}
		if _, err := j.Append(ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReportYear measures `edgefwctl report` over a year of
// history: 365 days of rollups of 20 rules (10 of them logged, 200
// samples a day each) and 10,000 journal entries. gather is the
// daemon's part (reading and verifying the journal, building the model);
// markdown, json and html render the model; command-FORM is the whole
// of `edgefwctl report -o FORM`: gathered by the daemon, sent over the
// control socket, decoded and rendered. The output sizes are reported
// per form.
func BenchmarkReportYear(b *testing.B) {
	end := time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)
	h := newHarness(b)
	h.write(b, benchYearPolicy())
	writeYearJournal(b, filepath.Join(h.state, JournalDir), end)
	now := end
	d, err := New(Config{PolicyPath: h.policy, StateDir: h.state, Firewall: h.fw, Now: func() time.Time { return now }, BootID: "boot", Hostname: "edge-bench"})
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	attr := audit.New(func() time.Time { return now })
	feedYear(attr, end)
	d.attrib.attr = attr
	q := audit.Query{Since: benchYearDays * 24 * time.Hour}
	r, err := d.Report(q)
	if err != nil {
		b.Fatal(err)
	}
	renders := map[string]func(*report.Report) ([]byte, error){
		"markdown": func(r *report.Report) ([]byte, error) {
			var w bytes.Buffer
			err := report.Markdown(&w, r)
			return w.Bytes(), err
		},
		"json": func(r *report.Report) ([]byte, error) { return json.Marshal(r) },
		"html": func(r *report.Report) ([]byte, error) {
			var w bytes.Buffer
			err := report.HTML(&w, r)
			return w.Bytes(), err
		},
	}
	b.Logf("a year: %d changes, %d integrity events, %d denied rules with %d days, %d allowed, %d tunnel peers",
		len(r.Changes), len(r.Integrity), len(r.Denied), len(r.Denied[0].Days), len(r.Allowed), len(r.Tunnels))
	b.Run("gather", func(b *testing.B) {
		for b.Loop() {
			if _, err := d.Report(q); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, form := range []string{"markdown", "json", "html"} {
		b.Run(form, func(b *testing.B) {
			var out []byte
			for b.Loop() {
				if out, err = renders[form](r); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(out)), "bytes")
		})
	}
	// What `edgefwctl report -o FORM` costs end to end: the daemon
	// gathers and encodes, the client decodes over the socket and renders.
	sock := filepath.Join(b.TempDir(), "edgefwd.sock")
	srv, err := ListenControl(d, sock, d.log)
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve()
	defer srv.Close()
	cl := NewClient(sock)
	for _, form := range []string{"markdown", "json", "html"} {
		b.Run("command-"+form, func(b *testing.B) {
			for b.Loop() {
				r, err := cl.Report(context.Background(), q)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := renders[form](r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
