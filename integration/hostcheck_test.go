package integration

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The tests that install the packages or boot a machine do it in a
// throw-away lab (systemdLab), never on the host. checkHostUnchanged proves
// it: what an installation would change on the host is read before the test
// and compared after the lab is gone.

// hostWatchedFiles are the host's files that installing the package would
// change: users and groups (sysusers, useradd) and the dpkg database.
var hostWatchedFiles = []string{"/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow", "/var/lib/dpkg/status"}

// hostWatchedPaths are where the package installs, configures and runs,
// and the marker its scripts leave between a remove and a reinstall.
var hostWatchedPaths = []string{
	"/etc/edgefw", "/var/lib/edgefw", "/run/edgefw", "/run/edgefw.reinstall",
	"/usr/bin/edgefwd", "/usr/bin/edgefwctl",
	"/lib/systemd/system/edgefwd.service", "/usr/lib/systemd/system/edgefwd.service",
	"/etc/systemd/system/sysinit.target.wants/edgefwd.service",
}

// checkHostUnchanged records the host's state and checks, once the test and
// every cleanup registered after this call are done (the lab's teardown
// among them), that it is the same: the watched files byte for byte, the
// watched paths there or not as before, the host network namespace's
// nftables tables, /dev/net/tun's mode, and a marker in the host's /tmp
// that a lab escaping its tmpfs (systemd-tmpfiles --clean) would delete.
// Call it before booting the lab.
func checkHostUnchanged(t *testing.T) {
	t.Helper()
	marker := systemdHostMarker(t)
	paths := hostWatchedPaths
	if db := hostRPMDatabase(); db != "" {
		paths = append(slices.Clip(paths), db)
	}
	before := hostSnapshot(t, hostWatchedFiles, paths)
	t.Cleanup(func() {
		if _, err := os.Stat(marker); err != nil {
			t.Errorf("the host's temporary files were touched: %v", err)
		}
		os.Remove(marker)
		for _, change := range hostChanges(before, hostSnapshot(t, hostWatchedFiles, paths)) {
			t.Error(change)
		}
	})
}

// hostRPMDatabase is the directory of rpm's database on this host, "" when
// rpm is not installed. Debian's rpm keeps it in ~/.rpmdb and creates it,
// and touches it, on any query, even of a package file (rpm -qp).
func hostRPMDatabase() string {
	out, err := exec.Command("rpm", "--eval", "%{_dbpath}").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// hostChanges says what differs between two snapshots.
func hostChanges(before, after map[string]string) []string {
	var changes []string
	for _, what := range slices.Sorted(maps.Keys(before)) {
		if diff := cmp.Diff(before[what], after[what]); diff != "" {
			changes = append(changes, fmt.Sprintf("the host's %s changed (-before +after):\n%s", what, diff))
		}
	}
	return changes
}

// hostSnapshot describes what checkHostUnchanged compares, by what it is:
// the contents of files, whether paths exist (and a directory's entries),
// the host network namespace's nftables tables and /dev/net/tun.
func hostSnapshot(t testing.TB, files, paths []string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	for _, path := range files {
		data, err := os.ReadFile(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			snap[path] = "(absent)"
		case err != nil:
			t.Fatal(err)
		default:
			snap[path] = string(data)
		}
	}
	for _, path := range paths {
		fi, err := os.Lstat(path)
		snap[path] = fmt.Sprintf("exists: %v", err == nil)
		if err != nil || !fi.IsDir() {
			continue
		}
		// A directory's entries, with their sizes and times: a database
		// that was only opened has a new time.
		entries, err := os.ReadDir(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if info, err := e.Info(); err == nil {
				snap[path] += fmt.Sprintf("\n%s %d %s", e.Name(), info.Size(), info.ModTime().Format(time.RFC3339Nano))
			}
		}
	}
	// Another table may come or go only through a bug: tests program the
	// firewall of their own namespaces only.
	out, err := exec.Command("nft", "list", "tables").CombinedOutput()
	snap["nftables tables (nft list tables)"] = fmt.Sprintf("%s(%v)", out, err)
	if fi, err := os.Stat("/dev/net/tun"); err != nil {
		snap["/dev/net/tun"] = err.Error()
	} else {
		st := fi.Sys().(*syscall.Stat_t)
		snap["/dev/net/tun"] = fmt.Sprintf("%v %d:%d rdev %#x", fi.Mode(), st.Uid, st.Gid, st.Rdev)
	}
	return snap
}

// systemdHostMarker creates a file in the host's /tmp that a lab which
// escaped its tmpfs (systemd-tmpfiles --clean, --remove) would delete.
func systemdHostMarker(t testing.TB) string {
	t.Helper()
	f, err := os.CreateTemp("/tmp", "edgefw-systemd-lab-marker-*")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	return f.Name()
}

// TestHostSnapshotSeesChanges proves checkHostUnchanged's comparison on
// files of its own: a changed file and a path that appeared are reported,
// and nothing else.
func TestHostSnapshotSeesChanges(t *testing.T) {
	dir := t.TempDir()
	file, path := filepath.Join(dir, "passwd"), filepath.Join(dir, "edgefw")
	if err := os.WriteFile(file, []byte("root:x:0:0::/root:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := hostSnapshot(t, []string{file}, []string{path})
	if changes := hostChanges(before, hostSnapshot(t, []string{file}, []string{path})); len(changes) != 0 {
		t.Fatalf("changes without a change: %q", changes)
	}
	if err := os.WriteFile(file, []byte("root:x:0:0::/root:/bin/sh\nedgefw:x:995:995::/var/lib/edgefw:/usr/sbin/nologin\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o750); err != nil {
		t.Fatal(err)
	}
	changes := hostChanges(before, hostSnapshot(t, []string{file}, []string{path}))
	if len(changes) != 2 ||
		!strings.HasPrefix(changes[0], "the host's "+path+" changed") || !strings.Contains(changes[0], "exists: true") ||
		!strings.HasPrefix(changes[1], "the host's "+file+" changed") || !strings.Contains(changes[1], "edgefw:x:995") {
		t.Errorf("changes: %q, want %s appeared and %s got the line of edgefw", changes, path, file)
	}
}
