package daemon

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestLookupGroup(t *testing.T) {
	for _, tc := range []struct {
		group string
		gid   int
		err   string
	}{
		{group: "root", gid: 0},
		{group: "4242", gid: 4242}, // a number needs no entry in the group database
		{group: "no-such-group-edgefw-test", gid: -1, err: `socket group "no-such-group-edgefw-test": no such group`},
		{group: "-1", gid: -1, err: "no such group"},
	} {
		gid, err := lookupGroup(tc.group)
		if gid != tc.gid || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("lookupGroup(%q) = %d, %v; want %d, %q", tc.group, gid, err, tc.gid, tc.err)
		}
	}
}

// TestSocketGroupOption gives the socket to the group named, and refuses
// a group that does not exist, unlike the default group edgefw, which
// may be missing.
func TestSocketGroupOption(t *testing.T) {
	if unix.Geteuid() != 0 {
		t.Skip("giving the socket to another group needs root")
	}
	d := newHarness(t).daemon(t)
	sock := filepath.Join(t.TempDir(), "s.sock")
	srv, err := ListenControl(d, sock, d.log, WithSocketGroup("4242"))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var st syscall.Stat_t
	if err := syscall.Stat(sock, &st); err != nil || st.Gid != 4242 || srv.group != "4242" {
		t.Errorf("socket gid %d (%v), want 4242", st.Gid, err)
	}
	if _, err := ListenControl(d, filepath.Join(t.TempDir(), "t.sock"), d.log, WithSocketGroup("no-such-group-edgefw-test")); err == nil {
		t.Error("ListenControl with a missing group succeeded")
	}
}
