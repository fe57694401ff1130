package daemon

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/nft/nfttest"
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
	path := filepath.Join(dir, markFile)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("record file: %v, %v; want mode 0600", fi.Mode(), err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ns := nfttest.DefaultNamespace
	bad := map[string]string{
		"empty":        "",
		"truncated":    string(good[:len(good)/2]),
		"garbage":      "generation 41\n",
		"two records":  string(good) + string(good),
		"older format": `{"boot":"` + ns.Boot + `","netns_inode":4026531840,"generation":41,"ruleset":"5e1f"}`,
		"format 0":     `{"format":0,"boot":"` + ns.Boot + `","netns_cookie":1,"netns_dev":4,"netns_inode":4026531840,"generation":41,"ruleset":"5e1f"}`,
		"newer format": `{"format":2,"boot":"` + ns.Boot + `","netns_cookie":1,"netns_dev":4,"netns_inode":4026531840,"generation":41,"ruleset":"5e1f"}`,
		"no cookie":    `{"format":1,"boot":"` + ns.Boot + `","netns_dev":4,"netns_inode":4026531840,"generation":41,"ruleset":"5e1f"}`,
		"no ruleset":   `{"format":1,"boot":"` + ns.Boot + `","netns_cookie":1,"netns_dev":4,"netns_inode":4026531840,"generation":41}`,
		"no boot":      `{"format":1,"netns_cookie":1,"netns_dev":4,"netns_inode":4026531840,"generation":41,"ruleset":"5e1f"}`,
		"unknown part": `{"format":1,"boot":"` + ns.Boot + `","netns_cookie":1,"netns_dev":4,"netns_inode":4026531840,"generation":41,"ruleset":"5e1f","tables":2}`,
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
