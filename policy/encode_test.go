package policy

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestEncodeRoundTrip(t *testing.T) {
	var files []string
	for _, pattern := range []string{"testdata/spec-example.yaml", "../packaging/examples/*.yaml", "../nft/testdata/golden/*.yaml"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 5 {
		t.Fatalf("found only %d policies to round-trip", len(files))
	}
	ignore := cmp.Options{
		cmpopts.IgnoreTypes(Pos{}),
		cmpopts.IgnoreFields(Policy{}, "Files"),
		cmpopts.IgnoreFields(Set{}, "File"),
		cmpopts.EquateComparable(netip.Prefix{}, netip.Addr{}),
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			p, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			q, err := Revalidate(f, p)
			if err != nil {
				t.Fatalf("re-encoded policy rejected: %v\n%s", err, Encode(p))
			}
			if diff := cmp.Diff(p, q, ignore...); diff != "" {
				t.Errorf("round trip changed the policy (-loaded +re-parsed):\n%s", diff)
			}
		})
	}
}

func TestRevalidateRejectsUncheckedPolicies(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    *Policy
		want string
	}{
		{"nil", nil, "no policy"},
		{"bad rule name", &Policy{Version: 1, Defaults: Defaults{Input: Drop, Forward: Accept, Output: Accept},
			Rules: []Rule{{Name: "x; drop", Direction: Input, Action: Accept}}}, "rules[0].name"},
		{"bad action", &Policy{Version: 1, Defaults: Defaults{Input: Drop, Forward: Accept, Output: Accept},
			Rules: []Rule{{Name: "x", Direction: Input, Action: "allow"}}}, "rules[0].action"},
	} {
		_, err := Revalidate("request", tc.p)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Revalidate error = %v, want one naming %q", tc.name, err, tc.want)
		}
	}
}

// A policy struct without defaults must not become accept-all: the empty
// values read as absent, which means the safe defaults.
func TestRevalidateFillsMissingDefaultsSafely(t *testing.T) {
	q, err := Revalidate("request", &Policy{Version: 1})
	if err != nil {
		t.Fatal(err)
	}
	if want := (Defaults{Input: Drop, Forward: Accept, Output: Accept}); q.Defaults != want {
		t.Fatalf("defaults = %+v, want %+v", q.Defaults, want)
	}
}
