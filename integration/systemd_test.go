package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgefw/edgefw/internal/netnstest"
)

// The systemd tests check systemd/edgefwd.service twice: statically
// (systemd-analyze verify and security) and for real, under a systemd booted
// as PID 1 in a throw-away machine (see systemdlab/boot.sh and bootSystemd).

// systemdMaxExposure is the highest "systemd-analyze security" score the
// unit may have. What keeps it from going lower is inherent to a firewall:
// the host's network namespace, CAP_NET_ADMIN, netlink and /dev/net/tun.
const systemdMaxExposure = 2.0

var systemdExposureRE = regexp.MustCompile(`Overall exposure level for edgefwd\.service: ([0-9]+\.[0-9]+)`)

func TestUnitVerifyAndSecurity(t *testing.T) {
	netnstest.RequireTool(t, "systemd-analyze", "systemd-sysusers", "systemd-tmpfiles")
	unit := systemdRepoFile(t, "systemd/edgefwd.service")

	t.Run("verify", func(t *testing.T) {
		// verify insists that every Exec*= binary exists; --root lets it
		// find them in a scratch tree instead of the host's /usr/bin.
		// Stand-ins are enough: only the unit is under test here.
		root := t.TempDir()
		systemdCopyFile(t, unit, filepath.Join(root, "etc/systemd/system/edgefwd.service"), 0o644)
		systemdCopyFile(t, "/bin/true", filepath.Join(root, "usr/bin/edgefwd"), 0o755)
		systemdCopyFile(t, "/bin/true", filepath.Join(root, "bin/kill"), 0o755)
		var stdout, stderr bytes.Buffer
		cmd := exec.Command("systemd-analyze", "verify", "--man=no", "--root="+root, "edgefwd.service")
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		// Unknown keys and bad values are only warnings: clean means silent.
		if err != nil || stdout.Len()+stderr.Len() != 0 {
			t.Fatalf("systemd-analyze verify: %v\n%s%s", err, stdout.String(), stderr.String())
		}
	})

	t.Run("boot without ordering cycles", func(t *testing.T) {
		// A firewall ordered Before=network-pre.target but started late
		// (default dependencies, or After= something that comes after the
		// network) makes a cycle that systemd breaks by dropping a job at
		// boot. Simulate the boot transaction of the host's own units with
		// edgefwd enabled next to whichever network managers the host has.
		// The deliberately cyclic variant proves the check can fail.
		for _, tc := range []struct {
			name      string
			extra     string
			wantCycle bool
		}{
			{"as packaged", "", false},
			{"started after multi-user.target", "After=multi-user.target\n", true},
		} {
			root := systemdBootRoot(t, unit, tc.extra)
			out, _ := exec.Command("systemd-analyze", "verify", "--man=no", "--generators=no", "--root="+root, "multi-user.target").CombinedOutput()
			if cycle := bytes.Contains(out, []byte("ordering cycle")); cycle != tc.wantCycle {
				t.Errorf("%s: ordering cycle %v, want %v:\n%s", tc.name, cycle, tc.wantCycle, out)
			}
		}
	})

	t.Run("security", func(t *testing.T) {
		out, err := exec.Command("systemd-analyze", "security", "--offline=true", "--no-pager", unit).CombinedOutput()
		if err != nil {
			t.Fatalf("systemd-analyze security: %v\n%s", err, out)
		}
		m := systemdExposureRE.FindSubmatch(out)
		if m == nil {
			t.Fatalf("no overall exposure level in:\n%s", out)
		}
		score, err := strconv.ParseFloat(string(m[1]), 64)
		if err != nil {
			t.Fatal(err)
		}
		if score > systemdMaxExposure {
			t.Errorf("exposure %.1f, want at most %.1f:\n%s", score, systemdMaxExposure, out)
		}
		t.Logf("exposure level %.1f", score)
	})

	t.Run("sysusers and tmpfiles", func(t *testing.T) {
		if os.Geteuid() != 0 {
			netnstest.Unavailable(t, "needs root to chown in a scratch root")
		}
		root := t.TempDir()
		if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{
			{"systemd-sysusers", "--root=" + root, systemdRepoFile(t, "systemd/edgefw.sysusers")},
			{"systemd-tmpfiles", "--root=" + root, "--create", systemdRepoFile(t, "systemd/edgefw.tmpfiles")},
		} {
			if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
			}
		}
		uid, gid := systemdLookupUser(t, root, "edgefw")
		for _, want := range []struct {
			path     string
			mode     os.FileMode
			uid, gid int
		}{
			{"etc/edgefw", 0o750, 0, gid},
			{"etc/edgefw/policy.d", 0o750, 0, gid},
			{"etc/edgefw/keys", 0o700, uid, gid},
		} {
			fi, err := os.Stat(filepath.Join(root, want.path))
			if err != nil {
				t.Error(err)
				continue
			}
			st := fi.Sys().(*syscall.Stat_t)
			if !fi.IsDir() || fi.Mode().Perm() != want.mode || int(st.Uid) != want.uid || int(st.Gid) != want.gid {
				t.Errorf("/%s: %v %d:%d, want a directory %v %d:%d", want.path, fi.Mode(), st.Uid, st.Gid, want.mode, want.uid, want.gid)
			}
		}
	})
}

// systemdBootRoot returns a scratch root holding the host's vendor units,
// the edgefwd unit (with extra lines appended to its [Unit] section) enabled
// as packaged, and the host's network managers enabled.
func systemdBootRoot(t *testing.T, unit, extra string) string {
	t.Helper()
	root := t.TempDir()
	units := filepath.Join(root, "usr/lib/systemd/system")
	if err := os.MkdirAll(filepath.Dir(units), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", "/lib/systemd/system/.", units+"/").CombinedOutput(); err != nil {
		t.Fatalf("copy the host's units: %v\n%s", err, out)
	}
	data, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.Replace(data, []byte("[Service]"), []byte(extra+"\n[Service]"), 1)
	if err := os.WriteFile(filepath.Join(units, "edgefwd.service"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	systemdCopyFile(t, "/bin/true", filepath.Join(root, "usr/bin/edgefwd"), 0o755)
	systemdCopyFile(t, "/bin/true", filepath.Join(root, "bin/kill"), 0o755)
	enable := map[string]string{"edgefwd.service": "sysinit.target.wants"}
	for _, network := range []string{"systemd-networkd.service", "NetworkManager.service", "networking.service"} {
		if _, err := os.Stat(filepath.Join(units, network)); err == nil {
			enable[network] = "multi-user.target.wants"
		}
	}
	for name, wants := range enable {
		dir := filepath.Join(root, "etc/systemd/system", wants)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("/usr/lib/systemd/system/"+name, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// systemdStandInUnit proves the lab itself: a Type=notify service that
// reports ready and answers reloads, as edgefwd does, written in shell.
// systemd-notify exits before systemd reads its message, so --pid
// attributes the message to the main process (root may forge that PID).
const systemdStandInUnit = `[Unit]
Description=edgefw lab stand-in notify service
DefaultDependencies=no

[Service]
Type=notify
NotifyAccess=all
ExecStart=/bin/sh -c 'trap "systemd-notify --pid=$$$$ --status=reloaded" HUP; systemd-notify --pid=$$$$ --ready --status=running; while :; do sleep 1 & wait $!; done'
ExecReload=/bin/kill -HUP $MAINPID
`

// systemdTestPolicy has a tunnel so that the sandbox is tried on everything
// the daemon writes: the key it generates, /dev/net/tun, the UAPI socket.
const systemdTestPolicy = `version: 1
defaults:
  input: drop
  forward: accept
  output: accept
rules:
  - name: ssh-from-tunnel
    direction: input
    from: [{cidr: 10.77.0.0/24}]
    ports: [{protocol: tcp, port: 22}]
    action: accept
tunnels:
  - name: edgefwlab0
    privateKeyFile: /etc/edgefw/keys/edgefwlab0.key
    listenPort: 51820
    addresses: [10.77.0.1/24]
    peers:
      - name: lab-peer
        publicKey: "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
        allowedIPs: [10.77.0.2/32]
`

func TestUnitUnderSystemd(t *testing.T) {
	// The lab must leave no trace on the host: checked after it is gone.
	checkHostUnchanged(t)
	lab := bootSystemd(t)

	t.Run("devices as the kernel makes them", func(t *testing.T) {
		// Not copies of the host's nodes, whose modes may differ: a
		// /dev/net/tun at 0600 denies the unit's User=edgefw.
		if out := lab.MustExec(t, "stat", "-c", "%A %t:%T", "/dev/net/tun"); strings.TrimSpace(out) != "crw-rw-rw- a:c8" {
			t.Errorf("the lab's /dev/net/tun: %q, want crw-rw-rw- a:c8 (10:200, 0666)", strings.TrimSpace(out))
		}
	})

	t.Run("stand-in notify service", func(t *testing.T) {
		lab.WriteFile(t, "/etc/systemd/system/edgefw-lab-notify.service", []byte(systemdStandInUnit), 0o644)
		lab.MustExec(t, "systemctl", "daemon-reload")
		lab.MustExec(t, "systemctl", "start", "edgefw-lab-notify.service")
		lab.WaitActive(t, "edgefw-lab-notify.service")
		pid := lab.MainPID(t, "edgefw-lab-notify.service")
		lab.MustExec(t, "systemctl", "reload", "edgefw-lab-notify.service")
		lab.WaitActive(t, "edgefw-lab-notify.service")
		if got := lab.MainPID(t, "edgefw-lab-notify.service"); got != pid {
			t.Errorf("reload restarted the service: main PID %d, was %d", got, pid)
		}
		lab.MustExec(t, "systemctl", "stop", "edgefw-lab-notify.service")
		if state := lab.ActiveState(t, "edgefw-lab-notify.service"); state != "inactive" {
			t.Errorf("after stop: %s, want inactive", state)
		}
	})

	t.Run("edgefwd", func(t *testing.T) {
		edgefwd, edgefwctl := buildBinaries(t)
		if edgefwctl == "" {
			t.Fatal("edgefwctl did not build")
		}
		systemdTestEdgefwd(t, lab, filepath.Dir(edgefwd))
	})
}

// systemdTestEdgefwd installs edgefwd and edgefwctl from bin in the lab and
// drives the packaged unit through start, reload, the watchdog and stop.
func systemdTestEdgefwd(t *testing.T, lab *systemdLab, bin string) {
	systemdInstallEdgefw(t, lab, bin)
	defer func() {
		if t.Failed() {
			out, _ := lab.Exec("journalctl", "--no-pager", "-o", "short-monotonic", "-u", "edgefwd.service")
			t.Logf("journal of edgefwd.service:\n%s", out)
		}
	}()

	// The [Install] section must work as packaged.
	lab.MustExec(t, "systemctl", "enable", "edgefwd.service")
	if _, err := lab.Exec("test", "-L", "/etc/systemd/system/sysinit.target.wants/edgefwd.service"); err != nil {
		t.Errorf("systemctl enable did not link edgefwd.service into sysinit.target.wants: %v", err)
	}
	// A short watchdog for this run only: proves the daemon pings
	// without waiting half of the packaged 30 s.
	lab.WriteFile(t, "/etc/systemd/system/edgefwd.service.d/lab-watchdog.conf",
		[]byte("[Service]\nWatchdogSec=6s\n"), 0o644)
	lab.MustExec(t, "systemctl", "daemon-reload")

	// start returns once the daemon has sent READY=1 (Type=notify).
	lab.MustExec(t, "systemctl", "start", "edgefwd.service")
	if state := lab.ActiveState(t, "edgefwd.service"); state != "active" {
		t.Fatalf("after start: %s, want active", state)
	}
	// READY=1 means protected: the table is there as soon as start returns.
	lab.MustExec(t, "nft", "list", "table", "inet", "edgefw")
	pid := lab.MainPID(t, "edgefwd.service")

	t.Run("runs unprivileged", func(t *testing.T) {
		status := lab.MustExec(t, "cat", fmt.Sprintf("/proc/%d/status", pid))
		uid, _ := systemdLookupUser(t, lab.Path("/"), "edgefw")
		if f := systemdStatusField(status, "Uid"); len(f) == 0 || f[0] != strconv.Itoa(uid) {
			t.Errorf("Uid: %v, want edgefw (%d)", f, uid)
		}
		// CAP_NET_ADMIN is capability 12, nothing else.
		if f := systemdStatusField(status, "CapEff"); len(f) == 0 || f[0] != "0000000000001000" {
			t.Errorf("CapEff: %v, want only CAP_NET_ADMIN (0000000000001000)", f)
		}
		if f := systemdStatusField(status, "NoNewPrivs"); len(f) == 0 || f[0] != "1" {
			t.Errorf("NoNewPrivs: %v, want 1", f)
		}
		// 2: a seccomp filter (SystemCallFilter= and friends) is on, and
		// the Go runtime got this far under it.
		if f := systemdStatusField(status, "Seccomp"); len(f) == 0 || f[0] != "2" {
			t.Errorf("Seccomp: %v, want 2 (filter)", f)
		}
	})

	t.Run("commit recorded inside the sandbox", func(t *testing.T) {
		// ProcSubset=pid hides /proc/sys/kernel/random/boot_id from the
		// daemon; the unit hands it systemd's %b, so the record that lets
		// edgefwd --once skip reading the table back is still written.
		var rec struct {
			Boot       string `json:"boot"`
			Generation uint32 `json:"generation"`
		}
		out := lab.MustExec(t, "cat", "/var/lib/edgefw/last-commit.json")
		if err := json.Unmarshal([]byte(out), &rec); err != nil {
			t.Fatalf("last-commit.json: %v\n%s", err, out)
		}
		boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
		if err != nil {
			t.Fatal(err)
		}
		if rec.Boot != strings.TrimSpace(string(boot)) || rec.Generation == 0 {
			t.Errorf("last-commit.json: boot %q generation %d, want this boot %q and a generation", rec.Boot, rec.Generation, strings.TrimSpace(string(boot)))
		}
	})

	t.Run("tunnel inside the sandbox", func(t *testing.T) {
		// The key was generated in the one writable /etc directory.
		out := lab.MustExec(t, "stat", "-c", "%U %a", "/etc/edgefw/keys/edgefwlab0.key")
		if got := strings.TrimSpace(out); got != "edgefw 600" {
			t.Errorf("generated key: %q, want owner edgefw, mode 600", got)
		}
		lab.MustExec(t, "ip", "link", "show", "edgefwlab0")
		lab.MustExec(t, "test", "-S", "/run/wireguard/edgefwlab0.sock")
	})

	t.Run("control socket", func(t *testing.T) {
		out := lab.MustExec(t, "stat", "-c", "%G %a", "/run/edgefw/edgefwd.sock")
		if got := strings.TrimSpace(out); got != "edgefw 660" {
			t.Errorf("control socket: %q, want group edgefw, mode 660", got)
		}
		// An operator in group edgefw gets through /run/edgefw
		// (RuntimeDirectoryMode=0750) to the socket; anyone else does not.
		_, gid := systemdLookupUser(t, lab.Path("/"), "edgefw")
		status := []string{"edgefwctl", "--socket", "/run/edgefw/edgefwd.sock", "status", "-o", "json"}
		asMember := append([]string{"setpriv", "--reuid=65534", "--regid=" + strconv.Itoa(gid), "--clear-groups", "--"}, status...)
		out = lab.MustExec(t, asMember...)
		if !json.Valid([]byte(out)) {
			t.Errorf("edgefwctl status -o json is not JSON:\n%s", out)
		}
		asOther := append([]string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"}, status...)
		if out, err := lab.Exec(asOther...); err == nil {
			t.Errorf("a user outside group edgefw reached the control socket:\n%s", out)
		}
	})

	t.Run("watchdog", func(t *testing.T) {
		first := lab.Property(t, "edgefwd.service", "WatchdogTimestampMonotonic")
		daemonPoll(t, 15*time.Second, "a watchdog ping", func() (bool, string) {
			now := lab.Property(t, "edgefwd.service", "WatchdogTimestampMonotonic")
			return now != first && now != "0", now
		})
		if got := lab.MainPID(t, "edgefwd.service"); got != pid {
			t.Errorf("main PID %d, was %d: restarted (by the watchdog?)", got, pid)
		}
	})

	t.Run("reload", func(t *testing.T) {
		lab.MustExec(t, "systemctl", "reload", "edgefwd.service")
		lab.WaitActive(t, "edgefwd.service")
		if got := lab.MainPID(t, "edgefwd.service"); got != pid {
			t.Errorf("reload restarted the daemon: main PID %d, was %d", got, pid)
		}
		lab.MustExec(t, "nft", "list", "table", "inet", "edgefw")
	})

	t.Run("nothing denied by the sandbox", func(t *testing.T) {
		// The daemon degrades rather than dies when, say, nflog or the
		// policy watch is refused; these are the errnos the sandbox returns
		// (seccomp and missing capabilities, file permissions and
		// inaccessible paths, read-only paths, unsupported families).
		log := lab.MustExec(t, "journalctl", "--no-pager", "-o", "cat", "_PID="+strconv.Itoa(pid))
		for _, line := range strings.Split(log, "\n") {
			for _, denial := range []string{"operation not permitted", "permission denied", "read-only file system", "address family not supported", "function not implemented"} {
				if strings.Contains(strings.ToLower(line), denial) {
					t.Errorf("denied by the sandbox: %s", line)
				}
			}
		}
	})

	t.Run("stop fails closed", func(t *testing.T) {
		lab.MustExec(t, "systemctl", "stop", "edgefwd.service")
		if state := lab.ActiveState(t, "edgefwd.service"); state != "inactive" {
			t.Errorf("after stop: %s, want inactive", state)
		}
		if out, err := lab.Exec("nft", "list", "table", "inet", "edgefw"); err != nil {
			t.Errorf("stopping removed the ruleset: %v\n%s", err, out)
		}
	})
}

// systemdInstallEdgefw installs what the packages install, the way their
// maintainer scripts do, and a policy.
func systemdInstallEdgefw(t *testing.T, lab *systemdLab, bin string) {
	t.Helper()
	for _, f := range []struct {
		src, dst string
		mode     os.FileMode
	}{
		{filepath.Join(bin, "edgefwd"), "/usr/bin/edgefwd", 0o755},
		{filepath.Join(bin, "edgefwctl"), "/usr/bin/edgefwctl", 0o755},
		{systemdRepoFile(t, "systemd/edgefwd.service"), "/usr/lib/systemd/system/edgefwd.service", 0o644},
		{systemdRepoFile(t, "systemd/edgefw.sysusers"), "/usr/lib/sysusers.d/edgefw.conf", 0o644},
		{systemdRepoFile(t, "systemd/edgefw.tmpfiles"), "/usr/lib/tmpfiles.d/edgefw.conf", 0o644},
	} {
		data, err := os.ReadFile(f.src)
		if err != nil {
			t.Fatal(err)
		}
		lab.WriteFile(t, f.dst, data, f.mode)
	}
	lab.MustExec(t, "systemd-sysusers", "/usr/lib/sysusers.d/edgefw.conf")
	lab.MustExec(t, "systemd-tmpfiles", "--create", "/usr/lib/tmpfiles.d/edgefw.conf")
	lab.WriteFile(t, "/etc/edgefw/policy.yaml", []byte(systemdTestPolicy), 0o640)
	lab.MustExec(t, "chgrp", "edgefw", "/etc/edgefw/policy.yaml")
	lab.MustExec(t, "systemctl", "daemon-reload")
}

// systemdLab is a throw-away machine: private PID, mount, network, UTS, IPC
// and cgroup namespaces over a copy-on-write view of the host's root
// (systemdlab/boot.sh), with fresh /dev, /run, /tmp and /var/tmp. Nothing
// it writes reaches the host.
//
// Booted by bootSystemd, its PID 1 is systemd. Its default target starts
// only the journal; every other service, socket, timer, path, mount,
// automount and swap unit of the host is masked and every generator
// disabled, so what runs is what a test starts. Booted by
// bootWithoutSystemd, it runs no service manager at all.
//
// Tests install into it from inside, as a package would be installed:
//
//	lab := bootSystemd(t)
//	lab.WriteFile(t, "/tmp/edgefw.deb", deb, 0o644)
//	lab.MustExec(t, "dpkg", "-i", "/tmp/edgefw.deb")
//	lab.MustExec(t, "systemctl", "is-active", "edgefwd.service")
type systemdLab struct {
	dir    string // host directory: overlay/, boot.log
	cgroup string // host path of the machine's cgroup
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	pid    int           // host PID of the machine's PID 1 (systemd or sleep)

	closeOnce sync.Once
}

// systemdLabEnv is the whole environment of commands run in the machine.
var systemdLabEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/root",
	"LANG=C.UTF-8",
	"TERM=dumb",
	"SYSTEMD_COLORS=0",
	"SYSTEMD_PAGER=",
}

// bootSystemd boots a machine and returns once its systemd has finished
// starting up. The named units are left unmasked (edgefwd.service always
// is). The machine is torn down when the test ends.
func bootSystemd(t *testing.T, unmask ...string) *systemdLab {
	t.Helper()
	netnstest.RequireTool(t, "systemctl")
	lab := bootMachine(t, "systemd", func(overlay string) error {
		return systemdWriteLabOverlay(overlay, append([]string{"edgefwd.service"}, unmask...))
	})
	daemonPoll(t, 30*time.Second, "the lab's systemd to finish booting", func() (bool, string) {
		out, _ := lab.Exec("systemctl", "is-system-running")
		state := strings.TrimSpace(out)
		return state == "running" || state == "degraded", state
	})
	return lab
}

// bootWithoutSystemd boots the same machine without a service manager, as
// packages meet in a container, a chroot or an image build: PID 1 only
// waits, and /run has no systemd/system. The machine is torn down when the
// test ends.
func bootWithoutSystemd(t *testing.T) *systemdLab {
	t.Helper()
	return bootMachine(t, "none", func(string) error { return nil })
}

// bootMachine boots a machine with systemdlab/boot.sh, init "systemd" or
// "none", over the files writeOverlay puts in the overlay's directory, and
// returns once its PID 1 is systemd, or sleep.
func bootMachine(t *testing.T, init string, writeOverlay func(overlay string) error) *systemdLab {
	t.Helper()
	if os.Geteuid() != 0 {
		netnstest.Unavailable(t, "booting a lab machine needs root")
	}
	pid1 := map[string]string{"systemd": "/lib/systemd/systemd", "none": "sleep"}[init]
	netnstest.RequireTool(t, "unshare", "nsenter", pid1)
	cgroupParent, err := systemdCgroupParent()
	if err != nil {
		netnstest.Unavailable(t, "no cgroup2 hierarchy for the lab: %v", err)
	}
	script, err := filepath.Abs("systemdlab/boot.sh")
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	overlay := filepath.Join(dir, "overlay")
	if err := os.Mkdir(overlay, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeOverlay(overlay); err != nil {
		t.Fatal(err)
	}
	var suffix [4]byte
	rand.Read(suffix[:])
	lab := &systemdLab{
		dir:    dir,
		cgroup: filepath.Join(cgroupParent, "edgefw-lab-"+hex.EncodeToString(suffix[:])),
		exited: make(chan struct{}),
	}
	if err := os.Mkdir(lab.cgroup, 0o755); err != nil {
		netnstest.Unavailable(t, "cannot create a cgroup for the lab: %v", err)
	}
	bootLog, err := os.Create(filepath.Join(dir, "boot.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer bootLog.Close()

	lab.cmd = exec.Command("/bin/sh", script, dir, lab.cgroup, init)
	lab.cmd.Stdout, lab.cmd.Stderr = bootLog, bootLog
	// If the test binary dies, unshare dies, and its --kill-child takes the
	// machine with it.
	lab.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := lab.cmd.Start(); err != nil {
		os.Remove(lab.cgroup)
		t.Fatal(err)
	}
	go func() {
		lab.cmd.Wait()
		close(lab.exited)
	}()
	t.Cleanup(lab.Close)
	t.Cleanup(func() {
		if t.Failed() {
			lab.logDiagnostics(t)
		}
	})

	// Commands must not enter the machine before boot.sh has exec'd its
	// PID 1: until then its root is still the host's, and systemctl would
	// talk to the host's service manager.
	comm := filepath.Base(pid1)
	daemonPoll(t, 15*time.Second, comm+" as the lab's PID 1", func() (bool, string) {
		select {
		case <-lab.exited:
			t.Fatalf("the lab exited while booting: %v", lab.cmd.ProcessState)
		default:
		}
		if lab.pid == 0 {
			lab.pid = systemdChildPID(lab.cmd.Process.Pid)
		}
		if lab.pid == 0 {
			return false, "no PID 1 yet"
		}
		got, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", lab.pid))
		return strings.TrimSpace(string(got)) == comm, "PID 1 is " + string(got)
	})
	return lab
}

// Exec runs a command inside all of the machine's namespaces, as root, and
// returns its standard output. The error includes its standard error.
func (l *systemdLab) Exec(args ...string) (string, error) {
	return l.ExecInput(nil, args...)
}

// ExecInput is Exec with the command's standard input.
func (l *systemdLab) ExecInput(stdin io.Reader, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nsenter := append([]string{"--target", strconv.Itoa(l.pid), "--all", "--root", "--wd", "--"}, args...)
	cmd := exec.CommandContext(ctx, "nsenter", nsenter...)
	cmd.Env = systemdLabEnv
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// nsenter forks to enter the PID namespace: killing it on timeout
	// leaves the command holding our pipes.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("in the lab: %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// MustExec is Exec that fails the test on error.
func (l *systemdLab) MustExec(t testing.TB, args ...string) string {
	t.Helper()
	out, err := l.Exec(args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return out
}

// Exists says whether path exists in the machine, as a file, a directory
// or a symbolic link (even a dangling one).
func (l *systemdLab) Exists(t testing.TB, path string) bool {
	t.Helper()
	_, err := l.Exec("test", "-e", path, "-o", "-L", path)
	var exitErr *exec.ExitError
	if err != nil && (!errors.As(err, &exitErr) || exitErr.ExitCode() != 1) {
		t.Fatal(err) // not test's "no": the machine did not answer
	}
	return err == nil
}

// WriteFile writes a file in the machine, creating its parent directories.
// It writes from inside, so that the machine's own symbolic links (/var/run)
// are followed in the machine and never onto the host.
func (l *systemdLab) WriteFile(t testing.TB, path string, data []byte, perm os.FileMode) {
	t.Helper()
	script := `set -e; mkdir -p "$(dirname "$1")"; cat >"$1"; chmod "$2" "$1"`
	if out, err := l.ExecInput(bytes.NewReader(data), "/bin/sh", "-c", script, "sh", path, fmt.Sprintf("%o", perm)); err != nil {
		t.Fatalf("write %s: %v\n%s", path, err, out)
	}
}

// Path is where the host reads a file of the machine. Absolute symbolic
// links met below it resolve on the host: read, never write, through it.
func (l *systemdLab) Path(path string) string {
	return filepath.Join(fmt.Sprintf("/proc/%d/root", l.pid), path)
}

// Property returns one property of a unit (systemctl show).
func (l *systemdLab) Property(t testing.TB, unit, property string) string {
	t.Helper()
	return strings.TrimSpace(l.MustExec(t, "systemctl", "show", "--property", property, "--value", unit))
}

// ActiveState returns the unit's ActiveState.
func (l *systemdLab) ActiveState(t testing.TB, unit string) string {
	t.Helper()
	return l.Property(t, unit, "ActiveState")
}

// MainPID returns the unit's main PID, as seen in the machine.
func (l *systemdLab) MainPID(t testing.TB, unit string) int {
	t.Helper()
	pid, err := strconv.Atoi(l.Property(t, unit, "MainPID"))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// WaitActive waits for a unit to be active, for instance when a reload
// (RELOADING=1, then READY=1) has finished.
func (l *systemdLab) WaitActive(t testing.TB, unit string) {
	t.Helper()
	daemonPoll(t, 15*time.Second, unit+" to be active", func() (bool, string) {
		state := l.ActiveState(t, unit)
		if state == "failed" || state == "inactive" {
			t.Fatalf("%s is %s", unit, state)
		}
		return state == "active", state
	})
}

func (l *systemdLab) logDiagnostics(t testing.TB) {
	if l.pid != 0 {
		if out, err := l.Exec("journalctl", "--no-pager", "-o", "short-monotonic", "-n", "200"); err == nil {
			t.Logf("lab journal:\n%s", out)
		}
	}
	if bootLog, err := os.ReadFile(filepath.Join(l.dir, "boot.log")); err == nil && len(bootLog) > 0 {
		t.Logf("lab boot script:\n%s", bootLog)
	}
}

// Close kills the machine: SIGKILL to its PID 1 kills every process in its
// PID namespace, and its mounts and network namespace go with the last of
// them. Then the cgroup is removed.
func (l *systemdLab) Close() {
	l.closeOnce.Do(func() {
		select {
		case <-l.exited:
		default:
			// While unshare runs it has not reaped its child: l.pid cannot
			// have been reused.
			if l.pid != 0 {
				syscall.Kill(l.pid, syscall.SIGKILL)
			}
			select {
			case <-l.exited:
			case <-time.After(10 * time.Second):
				l.cmd.Process.Kill()
				<-l.exited
			}
		}
		// Processes entered with nsenter live in our cgroup, not the lab's;
		// the lab's own are gone with the PID namespace, but the kernel may
		// take a moment to release them.
		os.WriteFile(filepath.Join(l.cgroup, "cgroup.kill"), []byte("1"), 0)
		deadline := time.Now().Add(10 * time.Second)
		for {
			err := systemdRemoveCgroup(l.cgroup)
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// systemdRemoveCgroup removes a cgroup and its descendants, deepest first.
func systemdRemoveCgroup(path string) error {
	var dirs []string
	filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	var errs []error
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// systemdCgroupParent returns the host path of our own cgroup in the cgroup2
// hierarchy (unified, or the unified part of a hybrid setup): the lab's
// cgroup is created below it.
func systemdCgroupParent() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	var mountPoint string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
		fields := strings.Fields(sc.Text())
		for i, field := range fields {
			if field == "-" && i+1 < len(fields) && fields[i+1] == "cgroup2" && fields[3] == "/" {
				mountPoint = fields[4]
			}
		}
	}
	if mountPoint == "" {
		return "", errors.New("cgroup2 is not mounted")
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(self), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			return filepath.Join(mountPoint, rest), nil
		}
	}
	return "", errors.New("no cgroup2 entry in /proc/self/cgroup")
}

// systemdChildPID returns the only child of pid, or 0.
func systemdChildPID(pid int) int {
	children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(children))
	if len(fields) != 1 {
		return 0
	}
	child, _ := strconv.Atoi(fields[0])
	return child
}

// systemdWriteLabOverlay writes the files the lab lays over the host's root:
// a default target that starts only the journal, masks for every other
// unit of the host that runs or mounts something (so that nothing starts
// even when a unit pulls in sysinit.target: no debugfs, no udev, no
// tmpfiles), disabled generators (no fstab mounts, no getty, no SysV
// scripts) and an empty fstab.
func systemdWriteLabOverlay(overlay string, unmask []string) error {
	units := filepath.Join(overlay, "etc/systemd/system")
	generators := filepath.Join(overlay, "etc/systemd/system-generators")
	for _, dir := range []string{units, generators} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	keep := map[string]bool{}
	for _, u := range unmask {
		keep[u] = true
	}
	masked := map[string]bool{}
	for _, dir := range []string{"/etc/systemd/system", "/usr/local/lib/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			name := e.Name()
			switch filepath.Ext(name) {
			case ".service", ".socket", ".timer", ".path", ".mount", ".automount", ".swap":
			default:
				continue
			}
			// tmp.mount stays: PrivateTmp= requires it, and the lab's /tmp
			// is a tmpfs already.
			if keep[name] || strings.HasPrefix(name, "systemd-journald") || name == "tmp.mount" || masked[name] {
				continue
			}
			masked[name] = true
			if err := os.Symlink("/dev/null", filepath.Join(units, name)); err != nil {
				return err
			}
		}
	}
	disabled := map[string]bool{}
	for _, dir := range []string{"/etc/systemd/system-generators", "/usr/local/lib/systemd/system-generators", "/usr/lib/systemd/system-generators", "/lib/systemd/system-generators"} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if disabled[e.Name()] {
				continue
			}
			disabled[e.Name()] = true
			if err := os.Symlink("/dev/null", filepath.Join(generators, e.Name())); err != nil {
				return err
			}
		}
	}
	files := map[string]string{
		"etc/systemd/system/edgefw-lab.target": "[Unit]\nDescription=edgefw test lab\nWants=systemd-journald.service\n",
		"etc/fstab":                            "",
		"etc/hostname":                         "edgefw-lab\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(overlay, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return os.Symlink("edgefw-lab.target", filepath.Join(units, "default.target"))
}

// systemdRepoFile returns the absolute path of a file of the repository.
func systemdRepoFile(t testing.TB, path string) string {
	t.Helper()
	abs, err := filepath.Abs(filepath.Join("..", path))
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func systemdCopyFile(t testing.TB, src, dst string, perm os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, perm); err != nil {
		t.Fatal(err)
	}
}

// systemdLookupUser reads a user's UID and GID from root/etc/passwd.
func systemdLookupUser(t testing.TB, root, name string) (uid, gid int) {
	t.Helper()
	passwd, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(passwd), "\n") {
		f := strings.Split(line, ":")
		if len(f) >= 4 && f[0] == name {
			uid, err1 := strconv.Atoi(f[2])
			gid, err2 := strconv.Atoi(f[3])
			if err := errors.Join(err1, err2); err != nil {
				t.Fatalf("%s/etc/passwd: %v", root, err)
			}
			return uid, gid
		}
	}
	t.Fatalf("no user %s in %s/etc/passwd", name, root)
	return 0, 0
}

// systemdStatusField returns the values of a /proc/PID/status field.
func systemdStatusField(status, name string) []string {
	for _, line := range strings.Split(status, "\n") {
		if rest, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.Fields(rest)
		}
	}
	return nil
}
