package main

import (
	"errors"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefw/edgefw/daemon"
	"github.com/edgefw/edgefw/internal/keytest"
	"github.com/edgefw/edgefw/wg"

	"github.com/edgefw/edgefw/internal/netnstest"
)

// keyFilesPolicy has one tunnel whose privateKeyFile is at 4:21 and whose
// peer's presharedKeyFile is at 10:27; both are relative to the policy.
const keyFilesPolicy = `version: 1
tunnels:
  - name: wg0
    privateKeyFile: wg0.key
    listenPort: 51820
    addresses: [10.0.0.2/24]
    peers:
      - name: gw
        publicKey: "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
        presharedKeyFile: gw.psk
        allowedIPs: [10.0.0.0/24]
`

// nobody is the unprivileged user of Debian and most distributions.
const nobody = 65534

// TestKeyFilesChecked: validate, plan and apply refuse a policy whose key
// files edgefwd would refuse, each problem at its field, and apply sends
// nothing to the daemon then.
func TestKeyFilesChecked(t *testing.T) {
	root := os.Geteuid() == 0
	nobodyName := strconv.Itoa(nobody)
	if u, err := user.LookupId(nobodyName); err == nil {
		nobodyName = u.Username
	}
	tests := []struct {
		name   string
		asRoot bool
		// setup writes the key files into dir; f is the daemon, whose
		// socket's owner is the user edgefwd runs as.
		setup func(t *testing.T, dir string, f *fakeDaemon)
		// want are the problems printed, DIR standing for the policy's
		// directory; none means valid.
		want []string
	}{
		{
			name: "fine",
			setup: func(t *testing.T, dir string, _ *fakeDaemon) {
				keytest.WriteKey(t, filepath.Join(dir, "wg0.key"), 0o600)
				keytest.WriteKey(t, filepath.Join(dir, "gw.psk"), 0o400)
			},
		},
		{
			name: "private key missing: edgefwd creates it",
			setup: func(t *testing.T, dir string, _ *fakeDaemon) {
				keytest.WriteKey(t, filepath.Join(dir, "gw.psk"), 0o600)
			},
		},
		{
			name: "private key mode 0644",
			setup: func(t *testing.T, dir string, _ *fakeDaemon) {
				keytest.WriteKey(t, filepath.Join(dir, "wg0.key"), 0o644)
				keytest.WriteKey(t, filepath.Join(dir, "gw.psk"), 0o600)
			},
			want: []string{"DIR/policy.yaml:4:21: tunnels[0].privateKeyFile: private key file DIR/wg0.key has mode 0644, readable by its group or others: key file is not private; run `chmod 600 DIR/wg0.key`"},
		},
		{
			name: "private key is a symbolic link",
			setup: func(t *testing.T, dir string, _ *fakeDaemon) {
				keytest.WriteKey(t, filepath.Join(dir, "real.key"), 0o600)
				if err := os.Symlink("real.key", filepath.Join(dir, "wg0.key")); err != nil {
					t.Fatal(err)
				}
				keytest.WriteKey(t, filepath.Join(dir, "gw.psk"), 0o600)
			},
			want: []string{"DIR/policy.yaml:4:21: tunnels[0].privateKeyFile: private key file DIR/wg0.key is a symbolic link: key files are not read through symbolic links, so that the permission checks apply to the file read; name the file itself"},
		},
		{
			name: "preshared key malformed",
			setup: func(t *testing.T, dir string, _ *fakeDaemon) {
				keytest.WriteKey(t, filepath.Join(dir, "wg0.key"), 0o600)
				if err := os.WriteFile(filepath.Join(dir, "gw.psk"), []byte("not a key\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"DIR/policy.yaml:10:27: tunnels[0].peers[0].presharedKeyFile: preshared key file DIR/gw.psk: not a base64-encoded 32-byte WireGuard key; a key file holds one key in base64, as `wg genpsk` prints it"},
		},
		{
			name: "preshared key missing, private key readable: both reported",
			setup: func(t *testing.T, dir string, _ *fakeDaemon) {
				keytest.WriteKey(t, filepath.Join(dir, "wg0.key"), 0o640)
			},
			want: []string{
				"DIR/policy.yaml:4:21: tunnels[0].privateKeyFile: private key file DIR/wg0.key has mode 0640, readable by its group or others: key file is not private; run `chmod 600 DIR/wg0.key`",
				"DIR/policy.yaml:10:27: tunnels[0].peers[0].presharedKeyFile: preshared key file DIR/gw.psk: lstat DIR/gw.psk: no such file or directory (a preshared key must be identical on both peers, so edgefw does not create one: copy it from the other end, or create it with `wg genpsk` and distribute it)",
			},
		},
		{
			name:   "private key owned by another user",
			asRoot: true,
			setup: func(t *testing.T, dir string, _ *fakeDaemon) {
				keytest.WriteKey(t, filepath.Join(dir, "wg0.key"), 0o600)
				if err := os.Chown(filepath.Join(dir, "wg0.key"), nobody, nobody); err != nil {
					t.Fatal(err)
				}
				keytest.WriteKey(t, filepath.Join(dir, "gw.psk"), 0o600)
			},
			want: []string{"DIR/policy.yaml:4:21: tunnels[0].privateKeyFile: private key file DIR/wg0.key is owned by uid 65534, not by root: key file is not private; run `chown root:root DIR/wg0.key`"},
		},
		{
			name:   "edgefwd runs as another user: its keys are fine, root's are out of its reach",
			asRoot: true,
			setup: func(t *testing.T, dir string, f *fakeDaemon) {
				if err := os.Chown(f.socket, nobody, nobody); err != nil {
					t.Fatal(err)
				}
				keytest.WriteKey(t, filepath.Join(dir, "wg0.key"), 0o600)
				if err := os.Chown(filepath.Join(dir, "wg0.key"), nobody, nobody); err != nil {
					t.Fatal(err)
				}
				keytest.WriteKey(t, filepath.Join(dir, "gw.psk"), 0o600)
			},
			want: []string{"DIR/policy.yaml:10:27: tunnels[0].peers[0].presharedKeyFile: preshared key file DIR/gw.psk is owned by uid 0 with mode 0600, so the user reading it (" + nobodyName + ", uid 65534) cannot read it; run `chown " + nobodyName + ": DIR/gw.psk`"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.asRoot && !root {
				netnstest.Unavailable(t, "needs root to give files to other users")
			}
			for _, command := range []string{"validate", "plan", "apply"} {
				t.Run(command, func(t *testing.T) {
					dir := keytest.SearchableDir(t)
					file := filepath.Join(dir, "policy.yaml")
					if err := os.WriteFile(file, []byte(keyFilesPolicy), 0o644); err != nil {
						t.Fatal(err)
					}
					f := newFakeDaemon(t)
					tt.setup(t, dir, f)

					res := run(t, "--socket", f.socket, command, file)

					requests := len(f.requestsTo(daemon.PathApply))
					if _, err := os.Lstat(filepath.Join(dir, "wg0.key")); errors.Is(err, fs.ErrNotExist) {
						defer func() {
							if _, err := os.Lstat(filepath.Join(dir, "wg0.key")); !errors.Is(err, fs.ErrNotExist) {
								t.Errorf("%s created the missing private key", command)
							}
						}()
					}
					if len(tt.want) == 0 {
						if res.code != 0 || res.stderr != "" {
							t.Fatalf("exit code %d, stderr %q; want 0 and nothing", res.code, res.stderr)
						}
						if want := map[string]int{"apply": 1}[command]; requests != want {
							t.Errorf("%d apply requests reached the daemon, want %d", requests, want)
						}
						return
					}
					want := slices.Clone(tt.want)
					want = append(want, "edgefwctl: "+file+": invalid policy ("+plural(len(tt.want), "problem")+")")
					for i := range want {
						want[i] = strings.ReplaceAll(want[i], "DIR", dir)
					}
					if res.code != 1 {
						t.Errorf("exit code %d, want 1", res.code)
					}
					if diff := cmp.Diff(want, splitLines(res.stderr)); diff != "" {
						t.Errorf("stderr (-want +got):\n%s", diff)
					}
					if res.stdout != "" {
						t.Errorf("stdout %q, want nothing", res.stdout)
					}
					if requests != 0 {
						t.Errorf("%d apply requests reached the daemon, want none", requests)
					}
				})
			}
		})
	}
}

// TestKeyFilesCheckedJSON: validate -o json lists key file problems like
// every other problem.
func TestKeyFilesCheckedJSON(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(file, []byte(keyFilesPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	keytest.WriteKey(t, filepath.Join(dir, "wg0.key"), 0o600)
	f := newFakeDaemon(t)
	res := run(t, "--socket", f.socket, "validate", "-o", "json", file)
	if res.code != 1 {
		t.Errorf("exit code %d, want 1", res.code)
	}
	psk := filepath.Join(dir, "gw.psk")
	msg := "preshared key file " + psk + ": lstat " + psk + ": no such file or directory (a preshared key must be identical on both peers, so edgefw does not create one: copy it from the other end, or create it with `wg genpsk` and distribute it)"
	want := `{
  "file": "` + file + `",
  "valid": false,
  "rules": 0,
  "sets": 0,
  "tunnels": 0,
  "problems": [
    {
      "file": "` + file + `",
      "line": 10,
      "column": 27,
      "path": "tunnels[0].peers[0].presharedKeyFile",
      "message": "` + msg + `",
      "text": "` + file + `:10:27: tunnels[0].peers[0].presharedKeyFile: ` + msg + `"
    }
  ]
}
`
	if diff := cmp.Diff(want, res.stdout); diff != "" {
		t.Errorf("validate -o json (-want +got):\n%s", diff)
	}
}

// TestKeyFilesUncheckedWarn: a key file that edgefwctl may not look at,
// for a daemon that runs as another user, is left to the daemon with a
// warning; the policy is valid otherwise and apply goes ahead.
func TestKeyFilesUncheckedWarn(t *testing.T) {
	if !netnstest.AsUnprivileged(t) {
		return // root may look at every file: run as nobody
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "policy.yaml")
	// No preshared key: for a daemon running as root, this user's would be
	// refused.
	pol := strings.NewReplacer("wg0.key", "keys/wg0.key", "        presharedKeyFile: gw.psk\n", "").Replace(keyFilesPolicy)
	if err := os.WriteFile(file, []byte(pol), 0o644); err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(dir, "keys")
	if err := os.Mkdir(keys, 0o000); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(keys, 0o700) })
	// The daemon reads the keys as root.
	daemonIsRoot := func(a *app) {
		a.keyReader = func() wg.KeyReader { return wg.KeyReader{UID: 0, GIDs: []int{0}} }
	}
	key := filepath.Join(keys, "wg0.key")
	warning := "edgefwctl: warning: " + file + ":4:21: tunnels[0].privateKeyFile: not checked: private key file " + key + ": lstat " + key + ": permission denied; edgefwd checks it when it applies the policy\n"

	res := runApp(t, "", daemonIsRoot, "validate", file)
	if res.code != 0 || res.stdout != file+": valid (0 rules, 0 sets, 1 tunnel)\n" || res.stderr != warning {
		t.Errorf("validate: code %d, stdout %q, stderr %q;\nwant 0, valid, %q", res.code, res.stdout, res.stderr, warning)
	}

	f := newFakeDaemon(t)
	res = runApp(t, "", daemonIsRoot, "--socket", f.socket, "apply", file)
	if res.code != 0 || res.stderr != warning || len(f.requestsTo(daemon.PathApply)) != 1 {
		t.Errorf("apply: code %d, stderr %q, %d requests; want 0, %q, 1", res.code, res.stderr, len(f.requestsTo(daemon.PathApply)), warning)
	}
}

// TestKeyReader: the key files are judged for the user edgefwd runs as.
func TestKeyReader(t *testing.T) {
	t.Run("the control socket's owner", func(t *testing.T) {
		if os.Geteuid() != 0 {
			netnstest.Unavailable(t, "needs root to give the socket to another user")
		}
		f := newFakeDaemon(t)
		if err := os.Chown(f.socket, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		got := daemonKeyReader(f.socket, notPackaged)
		if got.UID != nobody || !slices.Contains(got.GIDs, nobody) {
			t.Errorf("reader %+v, want uid and group %d", got, nobody)
		}
	})
	t.Run("without a socket, the packaged unit's user", func(t *testing.T) {
		got := daemonKeyReader(filepath.Join(t.TempDir(), "no.sock"), func() (*user.User, error) {
			return &user.User{Uid: "4242", Gid: "4243", Username: "edgefw-test-absent"}, nil
		})
		if got.UID != 4242 || !slices.Contains(got.GIDs, 4243) {
			t.Errorf("reader %+v, want uid 4242 in group 4243", got)
		}
	})
	t.Run("without either, this user", func(t *testing.T) {
		if got, want := daemonKeyReader(filepath.Join(t.TempDir(), "no.sock"), notPackaged), wg.ProcessKeyReader(); !cmp.Equal(got, want) {
			t.Errorf("reader %+v, want this process's %+v", got, want)
		}
	})
}

// TestNoKeyFiles: validate and plan --no-key-files check the policy alone,
// for CI where the host's keys are absent; apply has no such flag.
func TestNoKeyFiles(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(file, []byte(keyFilesPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := file + ":10:27: tunnels[0].peers[0].presharedKeyFile: "
	if res := run(t, "validate", file); res.code != 1 || !strings.Contains(res.stderr, missing) {
		t.Fatalf("validate without the preshared key: code %d, stderr %q; want 1 and %q…", res.code, res.stderr, missing)
	}
	if res := run(t, "validate", "--no-key-files", file); res.code != 0 || res.stdout != file+": valid (0 rules, 0 sets, 1 tunnel)\n" || res.stderr != "" {
		t.Errorf("validate --no-key-files: code %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	if res := run(t, "validate", "--no-key-files", "-o", "json", file); res.code != 0 || !strings.Contains(res.stdout, `"valid": true`) {
		t.Errorf("validate --no-key-files -o json: code %d, stdout %q", res.code, res.stdout)
	}
	if res := run(t, "plan", "--no-key-files", file); res.code != 0 || !strings.Contains(res.stdout, "table inet edgefw {") {
		t.Errorf("plan --no-key-files: code %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	if res := run(t, "apply", "--no-key-files", file); res.code != 1 || !strings.Contains(res.stderr, "unknown flag: --no-key-files") {
		t.Errorf("apply --no-key-files: code %d, stderr %q; want an unknown flag", res.code, res.stderr)
	}
}
