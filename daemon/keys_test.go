package daemon

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/edgefw/edgefw/internal/keytest"
	"github.com/edgefw/edgefw/policy"
	"github.com/edgefw/edgefw/wg"
)

// policyTunnel adds a tunnel to policyA; its privateKeyFile is at 9:21 and
// its peer's presharedKeyFile at 14:27, both relative to the policy.
const policyTunnel = policyA + `tunnels:
  - name: wg0
    privateKeyFile: wg0.key
    addresses: [10.0.0.2/24]
    peers:
      - name: gw
        publicKey: "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
        presharedKeyFile: gw.psk
        allowedIPs: [10.0.0.0/24]
`

// recordingTunnels records what it is asked to configure.
type recordingTunnels struct {
	mu      sync.Mutex
	applied [][]policy.Tunnel
}

func (r *recordingTunnels) Apply(_ context.Context, tunnels []policy.Tunnel) (wg.Report, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied = append(r.applied, tunnels)
	return wg.Report{}, nil
}
func (r *recordingTunnels) Refresh(context.Context) (wg.Report, error)        { return wg.Report{}, nil }
func (r *recordingTunnels) Status(context.Context) ([]wg.TunnelStatus, error) { return nil, nil }
func (r *recordingTunnels) Close() error                                      { return nil }

func (r *recordingTunnels) applies() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.applied)
}

// TestBadKeyFileRejectsPolicyWhole: a policy whose key files the tunnels
// would refuse is refused before the firewall changes, from the policy
// files or from edgefwctl apply; ruleset and tunnels stay as they were.
func TestBadKeyFileRejectsPolicyWhole(t *testing.T) {
	tests := []struct {
		name string
		// apply sends the policy over the socket instead of reloading it.
		apply bool
		// keys writes the key files into dir.
		keys func(t *testing.T, dir string)
		// want is the error, POLICY standing for the policy's file and
		// DIR for its directory.
		want string
	}{
		{
			name: "reload, private key readable by others",
			keys: func(t *testing.T, dir string) {
				keytest.WriteKey(t, filepath.Join(dir, "wg0.key"), 0o644)
				keytest.WriteKey(t, filepath.Join(dir, "gw.psk"), 0o600)
			},
			want: "POLICY:9:21: tunnels[0].privateKeyFile: private key file DIR/wg0.key has mode 0644, readable by its group or others: key file is not private; run `chmod 600 DIR/wg0.key`",
		},
		{
			name: "reload, preshared key missing",
			keys: func(t *testing.T, dir string) {
				keytest.WriteKey(t, filepath.Join(dir, "wg0.key"), 0o600)
			},
			want: "POLICY:14:27: tunnels[0].peers[0].presharedKeyFile: preshared key file DIR/gw.psk: lstat DIR/gw.psk: no such file or directory (a preshared key must be identical on both peers, so edgefw does not create one: copy it from the other end, or create it with `wg genpsk` and distribute it)",
		},
		{
			name:  "apply, private key behind a symbolic link",
			apply: true,
			keys: func(t *testing.T, dir string) {
				keytest.WriteKey(t, filepath.Join(dir, "real.key"), 0o600)
				if err := os.Symlink("real.key", filepath.Join(dir, "wg0.key")); err != nil {
					t.Fatal(err)
				}
				keytest.WriteKey(t, filepath.Join(dir, "gw.psk"), 0o600)
			},
			// The daemon parses the files sent, so the position is the
			// operator's, as edgefwctl reports it when it can look at
			// the key file itself.
			want: "POLICY:9:21: tunnels[0].privateKeyFile: private key file DIR/wg0.key is a symbolic link: key files are not read through symbolic links, so that the permission checks apply to the file read; name the file itself",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			tunnels := &recordingTunnels{}
			d, err := New(Config{PolicyPath: h.policy, StateDir: h.state, Firewall: h.fw, Tunnels: tunnels})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			runLoop(t, d)
			before, tunnelApplies := h.generation(t), tunnels.applies()

			var resp ApplyResponse
			file := h.policy
			if tt.apply {
				req := applyReq(t, policyTunnel, 0)
				file = req.Path
				tt.keys(t, filepath.Dir(file))
				resp = d.send(ctx, event{kind: "apply", apply: req})
			} else {
				h.write(t, policyTunnel)
				tt.keys(t, h.dir)
				resp = d.Reload(ctx, "test")
			}

			want := strings.NewReplacer("POLICY", file, "DIR", filepath.Dir(file)).Replace(tt.want)
			if resp.OK || resp.Error != want {
				t.Errorf("response ok=%v error\n%s\nwant\n%s", resp.OK, resp.Error, want)
			}
			if h.generation(t) != before || !h.holds(t, policyA) {
				t.Errorf("a policy with a bad key file changed the firewall: %+v", h.kernel.Snapshot())
			}
			if n := tunnels.applies(); n != tunnelApplies {
				t.Errorf("a policy with a bad key file reached the tunnels (%d applies, want %d)", n, tunnelApplies)
			}
			if st := d.Status(ctx); st.LastApply == nil || st.LastApply.OK || !strings.Contains(st.LastApply.Error, "privateKeyFile") && !strings.Contains(st.LastApply.Error, "presharedKeyFile") {
				t.Errorf("status does not show the rejected policy: %+v", st.LastApply)
			}
		})
	}
}

// runLoop starts d and its loop; the loop stops when the test ends.
func runLoop(t *testing.T, d *Daemon) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	if err := d.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.loop(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// TestBootRestoresLastGoodDespiteKeyFile: the last good ruleset is brought
// back at boot even if a key file went bad since: the firewall comes first,
// the tunnels report the key on their own.
func TestBootRestoresLastGoodDespiteKeyFile(t *testing.T) {
	h := newHarness(t)
	h.write(t, policyTunnel)
	keytest.WriteKey(t, filepath.Join(h.dir, "wg0.key"), 0o600)
	keytest.WriteKey(t, filepath.Join(h.dir, "gw.psk"), 0o600)
	ctx := context.Background()
	d1, err := New(Config{PolicyPath: h.policy, StateDir: h.state, Firewall: h.fw, Tunnels: &recordingTunnels{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d1.Start(ctx); err != nil {
		t.Fatal(err)
	}
	good := h.kernel.Snapshot()
	if err := os.Chmod(filepath.Join(h.dir, "gw.psk"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.flush(t) // a reboot empties the kernel

	tunnels := &recordingTunnels{}
	d2, err := New(Config{PolicyPath: h.policy, StateDir: h.state, Firewall: h.fw, Tunnels: tunnels})
	if err != nil {
		t.Fatal(err)
	}
	if err := d2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got := h.kernel.Snapshot(); !reflect.DeepEqual(got, good) {
		t.Fatalf("boot did not install the last good ruleset: %+v, want %+v", got, good)
	}
	if tunnels.applies() != 1 {
		t.Errorf("tunnels applied %d times, want once (the last good policy's)", tunnels.applies())
	}
	if st := d2.Status(ctx); st.LastApply == nil || st.LastApply.OK || !strings.Contains(st.LastApply.Error, "presharedKeyFile") {
		t.Errorf("status does not show that the policy file was refused for its key: %+v", st.LastApply)
	}
}
