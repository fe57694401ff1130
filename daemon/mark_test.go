package daemon

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/nft/nfttest"
	"github.com/edgefw/edgefw/policy"
)

// TestMarkRecord: a record reads back as written, 0600; anything else in
// the file (truncated, of another format, lacking a part) is no record,
// and a nil Mark removes it.
func TestMarkRecord(t *testing.T) {
	m := &nft.Mark{Namespace: nfttest.DefaultNamespace, Generation: 41, Ruleset: "5e1f"}
	dir := filepath.Join(t.TempDir(), "state")
	if err := SaveMark(dir, m); err != nil {
		t.Fatal(err)
	}
	if got := LoadMark(dir); got == nil || *got != *m {
		t.Fatalf("LoadMark: %+v, want %+v", got, m)
	}
	if _, files := LoadMarkWithFiles(dir); files != nil {
		t.Errorf("a record without policy files gave %+v", files)
	}
	// With the policy files of an --once, and back without them (the
	// daemon's next commit).
	files := &policy.Digest{Main: "/etc/edgefw/policy.yaml", Files: []string{"/etc/edgefw/policy.yaml"}, Sum: "ab"}
	if err := SaveMarkWithFiles(dir, m, files); err != nil {
		t.Fatal(err)
	}
	if got, gotFiles := LoadMarkWithFiles(dir); got == nil || *got != *m || !reflect.DeepEqual(gotFiles, files) {
		t.Fatalf("LoadMarkWithFiles: %+v %+v, want %+v %+v", got, gotFiles, m, files)
	}
	if err := SaveMark(dir, m); err != nil {
		t.Fatal(err)
	}
	if _, gotFiles := LoadMarkWithFiles(dir); gotFiles != nil {
		t.Fatalf("the daemon's record kept an --once's policy files %+v", gotFiles)
	}
	path := filepath.Join(dir, markFile)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("record file: %v, %v; want mode 0600", fi.Mode(), err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Each bad record is the good one with one part changed.
	with := func(key string, value any) string {
		var fields map[string]any
		if err := json.Unmarshal(good, &fields); err != nil {
			t.Fatal(err)
		}
		if value == nil {
			delete(fields, key)
		} else {
			fields[key] = value
		}
		data, err := json.Marshal(fields)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	if err := os.WriteFile(path, []byte(with("format", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := LoadMark(dir); got == nil || *got != *m {
		t.Fatalf("the record rewritten with its own parts reads back as %+v, want %+v", got, m)
	}
	bad := map[string]string{
		"empty":          "",
		"truncated":      string(good[:len(good)/2]),
		"garbage":        "generation 41\n",
		"two records":    string(good) + string(good),
		"older format":   with("format", nil),
		"format 0":       with("format", 0),
		"newer format":   with("format", 2),
		"another build":  with("build", "abc/def"),
		"no build":       with("build", nil),
		"no cookie":      with("netns_cookie", nil),
		"no inode":       with("netns_inode", nil),
		"no generation":  with("generation", nil),
		"no ruleset":     with("ruleset", nil),
		"no boot":        with("boot", nil),
		"unknown part":   with("tables", 2),
		"negative value": with("generation", -1),
	}
	for name, content := range bad {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := LoadMark(dir); got != nil {
			t.Errorf("%s: LoadMark gave %+v, want no record", name, got)
		}
	}
	if err := SaveMark(dir, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the record is still there after SaveMark(nil): %v", err)
	}
	if err := SaveMark(dir, nil); err != nil {
		t.Errorf("removing a record that is not there: %v", err)
	}
}

// TestDaemonRecordsItsCommits: the daemon records the Mark of every apply
// and drift repair, so that a --once after it (another Applier, as in
// another process) finds the kernel unchanged; after anyone else's
// commit, the record no longer matches.
func TestDaemonRecordsItsCommits(t *testing.T) {
	h := newHarness(t)
	d := h.daemon(t)
	ctx := context.Background()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	once := nft.NewApplier(nft.WithKernel(h.kernel))
	unchanged := func(doc string) bool {
		t.Helper()
		m := LoadMark(h.state)
		if m == nil {
			t.Fatal("no record in the state directory")
		}
		ok, err := once.Unchanged(compileDoc(t, doc), *m)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if !unchanged(policyA) || unchanged(policyB) {
		t.Fatal("after the start, the record does not prove policy A in force, and only A")
	}

	h.write(t, policyB)
	if err := d.reload(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	if !unchanged(policyB) {
		t.Fatal("after a reload, the record does not prove policy B in force")
	}

	h.flush(t)
	if unchanged(policyB) {
		t.Fatal("the record still matches after the table was deleted")
	}
	if c := d.checkDrift(false); !c.drifted || c.err != nil {
		t.Fatalf("drift check: %+v", c)
	}
	if !unchanged(policyB) {
		t.Fatal("after a drift repair, the record does not prove policy B in force")
	}
}
