package report

import (
	"slices"
	"time"
)

// fakeTraffic serves canned days and samples, like the daemon's
// attribution would.
type fakeTraffic struct {
	days    map[string][]Day
	samples map[string]Sample
}

func (f *fakeTraffic) Rules() []string {
	var names []string
	for name := range f.days {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func (f *fakeTraffic) Days(rule string, from, to time.Time) []Day {
	var out []Day
	for _, d := range f.days[rule] {
		if d.Date >= from.Format(time.DateOnly) && d.Date <= to.Format(time.DateOnly) {
			out = append(out, d)
		}
	}
	return out
}

func (f *fakeTraffic) Samples(_, _ time.Time, rules []string) map[string]Sample {
	out := map[string]Sample{}
	for _, r := range rules {
		if s, ok := f.samples[r]; ok {
			out[r] = s
		}
	}
	return out
}

func ptr[T any](v T) *T { return &v }

var (
	fixtureFrom = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	fixtureTo   = time.Date(2026, 5, 4, 0, 0, 0, 0, time.UTC)
	fixtureNow  = time.Date(2026, 5, 4, 9, 30, 0, 0, time.UTC)
)

const (
	hashA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	hashB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	hashC = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
)

// smallInput is a small host: one input rule of each kind, a set, a
// tunnel, three days of traffic, a handful of journal entries.
func smallInput() Input {
	at := func(day, hour int) time.Time {
		return fixtureFrom.Add(time.Duration(day)*24*time.Hour + time.Duration(hour)*time.Hour)
	}
	return Input{
		Host: "edge-1", Version: "1.4.0", From: fixtureFrom, To: fixtureTo, Now: fixtureNow,
		Policy: PolicyRef{Path: "/etc/edgefw/policy.yaml", Hash: hashB},
		Chain:  JournalCheck{Verified: true, Summary: "the journal's hash chain holds: entries 1 to 6", Entries: 6, FirstSeq: 1, LastSeq: 6, Head: hashC},
		Journal: []Event{
			{Seq: 1, Time: fixtureFrom.Add(-time.Hour), Kind: KindPeerUp, Interface: "wg0", Peer: "gw"},
			{Seq: 2, Time: at(0, 10), Kind: KindApply, Trigger: "apply", By: &Caller{UID: 1000, User: "alice"}, Source: "/home/alice/p.yaml",
				PolicyBefore: hashA, PolicyAfter: hashB, Changes: &Changes{RulesAdded: 1, Added: []string{"ssh"}}},
			{Seq: 3, Time: at(0, 10).Add(time.Minute), Kind: KindConfirm, Trigger: "confirm", By: &Caller{UID: 1000, User: "alice"},
				Source: "/home/alice/p.yaml", PolicyBefore: hashB, PolicyAfter: hashB},
			{Seq: 4, Time: at(1, 3), Kind: KindPeerDown, Interface: "wg0", Peer: "gw"},
			{Seq: 5, Time: at(1, 5), Kind: KindPeerUp, Interface: "wg0", Peer: "gw"},
			{Seq: 6, Time: at(2, 12), Kind: KindDriftRepair, Trigger: "drift", ChangedBy: "nft (pid 42)", PolicyBefore: hashB, PolicyAfter: hashB,
				Drift: &Drift{Repairs: 1, Since: at(2, 12)}},
		},
		Exposure: Exposure{Directions: []DirectionExposure{{
			Direction: "input", Default: "drop", DefaultCounter: "edgefw-default-input", DefaultLogged: true,
			Rules: []ExposedRule{
				{Rule: "edgefw-established-input", Kind: "implicit", Implicit: "established", Action: "accept", Mode: "enforce",
					States: []string{"established", "related"}},
				{Rule: "ssh", Kind: "user", Action: "accept", Mode: "enforce", Services: []Service{{Protocol: "tcp", Ports: []PortRange{{22, 22}}}},
					From: []Endpoint{{Set: "mgmt-nets", Size: &SetSize{IPv4Ranges: 1, IPv6Ranges: 1, IPv4Addresses: 65536}}}},
				{Rule: "kube-api", Kind: "user", Action: "accept", Mode: "enforce", Services: []Service{{Protocol: "tcp", Ports: []PortRange{{6443, 6443}}}}},
				{Rule: "watch-telnet", Kind: "user", Action: "reject", Mode: "audit", Logged: true, Services: []Service{{Protocol: "tcp", Ports: []PortRange{{23, 23}}}}},
			},
		}}},
		Rules: []Rule{
			{Name: "edgefw-established-input", Direction: "input", Action: "accept", Kind: "implicit", Mode: "enforce"},
			{Name: "ssh", Direction: "input", Action: "accept", Kind: "user", Mode: "enforce"},
			{Name: "kube-api", Direction: "input", Action: "accept", Kind: "user", Mode: "enforce"},
			{Name: "watch-telnet", Direction: "input", Action: "reject", Kind: "user", Mode: "audit"},
			{Name: "edgefw-default-input", Direction: "input", Action: "drop", Kind: "default", Mode: "enforce"},
		},
		Peers: []PeerRef{{"wg0", "gw"}},
		Traffic: &fakeTraffic{
			days: map[string][]Day{
				"kube-api": {{Date: "2026-05-01", Packets: 100, Bytes: 6000}, {Date: "2026-05-02", Packets: 120, Bytes: 7200},
					{Date: "2026-05-03", Packets: 1000, Bytes: 60000}},
				"edgefw-default-input": {{Date: "2026-05-01", Packets: 40, Bytes: 2400, Sampled: 40, Share: ptr(1.0),
					TopSources: []SourceCount{{"203.0.113.5", 30, 0}, {"198.51.100.7", 10, 0}}, TopPorts: []PortCount{{"tcp", 23, 40, 0}}}},
				"old-rule": {{Date: "2026-05-02", Packets: 7, Bytes: 420}},
			},
			samples: map[string]Sample{
				"edgefw-default-input": {Sampled: 40, Share: ptr(1.0), TopSources: []SourceCount{{"203.0.113.5", 30, 0}, {"198.51.100.7", 10, 0}},
					TopPorts: []PortCount{{"tcp", 23, 40, 0}}},
			},
		},
	}
}
