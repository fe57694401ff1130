package journal

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var at = time.Date(2026, 3, 1, 12, 0, 1, 0, time.UTC)

func TestEntryString(t *testing.T) {
	const before, after = "1a2b3c4d5e6f7a8b9c0d", "9f8e7d6c5b4a3f2e1d0c"
	tests := []struct {
		name string
		ev   Event
		want string
	}{
		{"apply by a caller",
			Event{Kind: KindApply, Trigger: "apply", By: &Caller{UID: 65534, User: "nobody"}, Source: "/tmp/candidate.yaml",
				PolicyBefore: before, PolicyAfter: after,
				Changes: &Summary{RulesAdded: 1, RulesRemoved: 1, RulesChanged: 1, ElementsAdded: 3, ElementsRemoved: 1, Added: []string{"metrics"}, Removed: []string{"old"}, Changed: []string{"web"}}},
			"2026-03-01T12:00:01Z #7 apply         nobody(uid=65534) trigger=apply source=/tmp/candidate.yaml policy=1a2b3c4d5e6f→9f8e7d6c5b4a rules=+metrics,-old,~web elements=+3-1"},
		{"names beyond the cap are counted",
			Event{Kind: KindBoot, Trigger: "policy-files", Version: "1.4.0", PolicyAfter: after,
				Changes: &Summary{RulesAdded: 20, Added: []string{"a", "b"}}},
			"2026-03-01T12:00:01Z #7 boot          edgefwd trigger=policy-files version=1.4.0 policy=none→9f8e7d6c5b4a rules=+a,+b,+18-more"},
		{"names beyond those shown are counted",
			Event{Kind: KindDriftRepair, Changes: &Summary{RulesAdded: 7, Added: []string{"a", "b", "c", "d", "e", "f", "g"}}},
			"2026-03-01T12:00:01Z #7 drift-repair  edgefwd rules=+a,+b,+c,+d,+e,+2-more"},
		{"drift repair",
			Event{Kind: KindDriftRepair, Trigger: "drift", ChangedBy: "nft (pid 4242)", PolicyBefore: after, PolicyAfter: after,
				Drift: &Drift{Repairs: 3, Failures: 1, Since: at, Ended: true}},
			`2026-03-01T12:00:01Z #7 drift-repair  edgefwd trigger=drift changed_by="nft (pid 4242)" policy=9f8e7d6c5b4a repairs=3 failures=1 burst=ended`},
		{"failed apply",
			Event{Kind: KindApplyFailed, Trigger: "reload", By: &Caller{UID: 0, User: "root"}, PolicyBefore: before, PolicyAfter: before,
				Error: `policy /etc/edgefw/policy.yaml:3:5: rules[0].name: "Bad" is invalid`},
			`2026-03-01T12:00:01Z #7 apply-failed  root(uid=0) trigger=reload policy=1a2b3c4d5e6f error="policy /etc/edgefw/policy.yaml:3:5: rules[0].name: \"Bad\" is invalid"`},
		{"safe fallback",
			Event{Kind: KindSafeFallback, Trigger: "safe-fallback", Failsafe: []string{"tcp/22", "tcp/2222"}},
			"2026-03-01T12:00:01Z #7 safe-fallback edgefwd trigger=safe-fallback failsafe=tcp/22,tcp/2222"},
		{"peer", Event{Kind: KindPeerDown, Interface: "wg0", Peer: "cluster-gw"},
			"2026-03-01T12:00:01Z #7 peer-down     edgefwd interface=wg0 peer=cluster-gw"},
		{"caller without a name", Event{Kind: KindConfirm, By: &Caller{UID: 1234}},
			"2026-03-01T12:00:01Z #7 confirm       uid=1234"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := Entry{Seq: 7, Time: at.In(time.FixedZone("CET", 3600)), Event: tt.ev}
			if got := e.String(); got != tt.want {
				t.Errorf("String():\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

// TestEntryJSON: every field an entry carries survives its line.
func TestEntryJSON(t *testing.T) {
	e := Entry{Seq: 3, Time: at, Prev: "ab", Event: Event{Kind: KindDriftRepair, Trigger: "drift", By: &Caller{UID: 1, User: "u"},
		ChangedBy: "nft (pid 1)", Source: "/p", PolicyBefore: "a", PolicyAfter: "b", Error: "e", Interface: "wg0", Peer: "p",
		Detail: "d", Version: "v", Failsafe: []string{"tcp/22"},
		Changes: &Summary{RulesAdded: 1, RulesRemoved: 2, RulesChanged: 3, ElementsAdded: 4, ElementsRemoved: 5, Messages: 6,
			Added: []string{"x"}, Removed: []string{"y", "z"}, Changed: []string{"w"}},
		Drift: &Drift{Repairs: 2, Failures: 1, Commits: 7, Since: at.Add(-time.Minute), Ended: true}}}
	line, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	got := parseEntry(line)
	if got == nil {
		t.Fatalf("%s does not parse back", line)
	}
	if diff := cmp.Diff(e, *got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}
