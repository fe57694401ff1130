package daemon

import (
	"encoding/json"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefw/edgefw/policy"
)

// TestLastGoodEncoding: the last good policy, whose sets' prefixes are
// written without encoding/json, is the same JSON document encoding/json
// writes (older versions read it as ever), and reads back as saved.
func TestLastGoodEncoding(t *testing.T) {
	spec, err := policy.Load(filepath.Join("..", "policy", "testdata", "spec-example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	withEmpty := *spec
	withEmpty.Sets = append([]policy.Set{{Name: "empty", Prefixes: []netip.Prefix{}}, {Name: "none"}}, spec.Sets...)
	noSets := *spec
	noSets.Sets = nil
	src := PolicySource{Path: "/etc/edgefw/policy.yaml", Hash: "abc", Applied: true, AppliedAt: time.Unix(1700000000, 0).UTC(),
		AppliedBy: &Caller{UID: 1000, User: "o\"p"}}
	for name, s := range map[string]*savedPolicy{
		"spec": {Source: src, Policy: spec}, "empty sets": {Policy: &withEmpty}, "no sets": {Policy: &noSets}, "no policy": {Source: src},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := s.encode()
			if err != nil {
				t.Fatal(err)
			}
			want, err := json.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			var gotDoc, wantDoc any
			if err := json.Unmarshal(got, &gotDoc); err != nil {
				t.Fatalf("not JSON: %v\n%s", err, got)
			}
			if err := json.Unmarshal(want, &wantDoc); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(wantDoc, gotDoc); diff != "" {
				t.Errorf("document differs from encoding/json's (-want +got):\n%s", diff)
			}
			dir := t.TempDir()
			if err := saveLastGood(dir, s); err != nil {
				t.Fatal(err)
			}
			back, err := loadLastGood(dir)
			if s.Policy == nil {
				if err == nil {
					t.Error("a saved state without a policy was read back")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(s, back, cmpPrefix, cmp.AllowUnexported(savedPolicy{})); diff != "" {
				t.Errorf("read back differs (-saved +read):\n%s", diff)
			}
		})
	}
}
