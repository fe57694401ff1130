package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
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

// TestLastGoodWriter: saves written in the background end with the newest
// in place, synced whole, and no temporary file left beside it.
func TestLastGoodWriter(t *testing.T) {
	dir := t.TempDir()
	var w lastGoodWriter
	var want *savedPolicy
	for i := range 50 {
		pol := &policy.Policy{Version: 1, Sets: []policy.Set{{Name: "s", Prefixes: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(i), 0}), 24)}}}}
		want = &savedPolicy{Source: PolicySource{Path: "/p", Hash: fmt.Sprint(i)}, Policy: pol}
		w.save(dir, want, func(err error) { t.Errorf("save %d: %v", i, err) })
	}
	w.wait()
	got, err := loadLastGood(dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, cmpPrefix, cmp.AllowUnexported(savedPolicy{})); diff != "" {
		t.Errorf("in place after the saves (-newest +read):\n%s", diff)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Errorf("the state directory holds %v (%v), want %s alone", entries, err, lastGoodFile)
	}
	w.save(filepath.Join(dir, "missing"), want, func(err error) {
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a failed save reported %v", err)
		}
	})
	w.wait()
}

// TestLastGoodAfterReloadBoots: the last good policy a reload saved in the
// background is what the next start installs when the files are broken;
// a write interrupted before its rename (a crash) leaves it readable.
func TestLastGoodAfterReloadBoots(t *testing.T) {
	h := newHarness(t)
	d := h.run(t)
	h.write(t, policyB)
	reloadAs(t, d, "signal")
	d.lastGood.wait()
	// A crash during the next write leaves its temporary file, half written.
	if err := os.WriteFile(filepath.Join(h.state, ".tmp-"+lastGoodFile+"123"), []byte(`{"source":`), 0o600); err != nil {
		t.Fatal(err)
	}
	h.flush(t)
	h.write(t, "version: 2\n")
	if err := h.daemon(t).Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !h.holds(t, policyB) {
		t.Errorf("the start did not install the last good policy the reload saved: %+v", h.kernel.Snapshot())
	}
}
