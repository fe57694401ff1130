package wg

import (
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgefw/edgefw/internal/netnstest"
)

// fakeDeviceNode is a device node as os.Stat would describe it.
type fakeDeviceNode struct {
	mode     fs.FileMode
	uid, gid uint32
}

func (n fakeDeviceNode) Name() string       { return "tun" }
func (n fakeDeviceNode) Size() int64        { return 0 }
func (n fakeDeviceNode) Mode() fs.FileMode  { return n.mode }
func (n fakeDeviceNode) ModTime() time.Time { return time.Time{} }
func (n fakeDeviceNode) IsDir() bool        { return false }
func (n fakeDeviceNode) Sys() any           { return &syscall.Stat_t{Uid: n.uid, Gid: n.gid} }

func TestTunCreateError(t *testing.T) {
	tun0600 := fakeDeviceNode{mode: fs.ModeDevice | fs.ModeCharDevice | 0o600}
	advice := "check its mode: the kernel makes it 0666 crw-rw-rw- (devtmpfs, udev), " +
		"and a daemon without CAP_DAC_OVERRIDE, such as the packaged unit's User=edgefw, cannot open it otherwise; " +
		"a systemd unit needs PrivateDevices= off and DeviceAllow=/dev/net/tun rw; " +
		"creating the link needs CAP_NET_ADMIN"
	for _, tc := range []struct {
		name   string
		err    error
		device fs.FileInfo
		want   string
	}{
		{
			"open denied by the mode", syscall.EACCES, tun0600,
			"create tun device wg0: /dev/net/tun: permission denied (it is crw------- 0:0; " + advice + ")",
		},
		{
			"denied by the device cgroup or without CAP_NET_ADMIN", syscall.EPERM,
			fakeDeviceNode{mode: fs.ModeDevice | fs.ModeCharDevice | 0o666, gid: 5},
			"create tun device wg0: /dev/net/tun: operation not permitted (it is crw-rw-rw- 0:5; " + advice + ")",
		},
		{
			"device not examined", syscall.EACCES, nil,
			"create tun device wg0: /dev/net/tun: permission denied (" + advice + ")",
		},
		{
			"not a denial", syscall.EBUSY, tun0600,
			"create tun device wg0: device or resource busy",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tunCreateError("wg0", tc.err, tc.device)
			if err.Error() != tc.want {
				t.Errorf("got  %s\nwant %s", err, tc.want)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("%v does not wrap %v", err, tc.err)
			}
		})
	}
}

// tunHelperEnv names the interface TestTunHelperProcess creates; it is set
// only in the helper.
const tunHelperEnv = "EDGEFW_WG_TUN_HELPER"

// tunHelperResult is what TestTunHelperProcess prints on stdout.
type tunHelperResult struct {
	Error  string // "" when the device was created
	EACCES bool   // errors.Is(err, syscall.EACCES)
}

// TestTunHelperProcess is not a test. Run with tunHelperEnv set, it starts
// a userspace device as edgefwd does, closes it, and prints the outcome.
func TestTunHelperProcess(t *testing.T) {
	name := os.Getenv(tunHelperEnv)
	if name == "" {
		t.Skip("helper process of TestTunDeniedToUnprivilegedUser")
	}
	var res tunHelperResult
	dev, err := goUserspace{}.Start(name, DefaultMTU, slog.New(slog.DiscardHandler))
	if err != nil {
		res = tunHelperResult{Error: err.Error(), EACCES: errors.Is(err, syscall.EACCES)}
	} else {
		dev.Close()
	}
	json.NewEncoder(os.Stdout).Encode(res)
	os.Exit(0)
}

// tunSandboxScript runs the helper as the packaged unit runs edgefwd: a user
// that is not root, with only CAP_NET_ADMIN (so no CAP_DAC_OVERRIDE), in a
// private mount and network namespace where /dev/net/tun is a node of mode
// $1 on a tmpfs and /run is a tmpfs: the host's device node, its /run and
// its links are never touched. $2 is the test binary; it is copied into the
// private /run because the user cannot reach go test's build directory.
const tunSandboxScript = `set -e
mount -t tmpfs -o mode=0755 edgefw-test-dev /dev/net
mknod -m "$1" /dev/net/tun c 10 200
mount -t tmpfs -o mode=0755 edgefw-test-run /run
cp "$2" /run/wg.test
mkdir -m 0700 /run/wireguard
chown 65534:65534 /run/wireguard
exec setpriv --reuid=65534 --regid=65534 --clear-groups \
	--inh-caps=-all,+net_admin --ambient-caps=+net_admin --bounding-set=-all,+net_admin \
	-- /run/wg.test -test.run='^TestTunHelperProcess$' -test.timeout=1m
`

// TestTunDeniedToUnprivilegedUser creates a userspace device as a user
// without CAP_DAC_OVERRIDE, as the packaged unit's User=edgefw: with the
// device node at 0600, as on some fresh machines, the error names the
// device and what to check; at 0666, as the kernel makes it, it works.
func TestTunDeniedToUnprivilegedUser(t *testing.T) {
	if testing.Short() {
		t.Skip("kernel test skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		netnstest.Unavailable(t, "kernel test: needs root for private mounts and setpriv")
	}
	netnstest.RequireTool(t, "unshare", "setpriv", "mknod", "mount")
	if _, err := os.Stat(tunCloneDevice); err != nil {
		netnstest.Unavailable(t, "needs %s for userspace WireGuard: %v", tunCloneDevice, err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mode      string
		wantError string // prefix; "" means created
	}{
		{"0600", "create tun device efwtun0: " + tunCloneDevice + ": permission denied ("},
		{"0666", ""},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--net", "--",
				"sh", "-c", tunSandboxScript, "sh", tc.mode, exe)
			cmd.Env = append(os.Environ(), tunHelperEnv+"=efwtun0")
			out, err := cmd.Output()
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			var res tunHelperResult
			line, _, _ := strings.Cut(string(out), "\n")
			if err != nil || json.Unmarshal([]byte(line), &res) != nil {
				t.Fatalf("helper: %v\n%s%s", err, out, stderr)
			}
			if tc.wantError == "" {
				if res.Error != "" {
					t.Errorf("with %s at %s: %s, want the device created", tunCloneDevice, tc.mode, res.Error)
				}
				return
			}
			if !strings.HasPrefix(res.Error, tc.wantError) || !res.EACCES {
				t.Errorf("with %s at %s: %q (EACCES: %v), want %q… wrapping EACCES", tunCloneDevice, tc.mode, res.Error, res.EACCES, tc.wantError)
			}
			for _, want := range []string{"crw------- 0:0", "0666", "CAP_DAC_OVERRIDE", "DeviceAllow="} {
				if !strings.Contains(res.Error, want) {
					t.Errorf("the error does not say %q: %s", want, res.Error)
				}
			}
			t.Logf("as an unprivileged user, with %s at %s: %s", tunCloneDevice, tc.mode, res.Error)
		})
	}
}
