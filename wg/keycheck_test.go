package wg

import (
	"errors"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefw/edgefw/internal/keytest"
	"github.com/edgefw/edgefw/policy"

	"github.com/edgefw/edgefw/internal/netnstest"
)

// nobody is the unprivileged user of Debian and most distributions.
const nobody = 65534

// keyCheckTunnel declares a tunnel of file whose privateKeyFile is written
// at line, column 21, and whose peers' presharedKeyFile at the lines after
// it, column 27.
func keyCheckTunnel(file string, line int, privateKeyFile string, presharedKeyFiles ...string) policy.Tunnel {
	t := policy.Tunnel{
		Name:              "wg" + strconv.Itoa(line),
		PrivateKeyFile:    privateKeyFile,
		Pos:               policy.Pos{File: file, Line: line - 1, Col: 5},
		PrivateKeyFilePos: policy.Pos{File: file, Line: line, Col: 21},
	}
	for i, psk := range presharedKeyFiles {
		t.Peers = append(t.Peers, policy.TunnelPeer{
			Name:                "peer" + strconv.Itoa(i),
			PresharedKeyFile:    psk,
			Pos:                 policy.Pos{File: file, Line: line + 2 + 3*i, Col: 9},
			PresharedKeyFilePos: policy.Pos{File: file, Line: line + 4 + 3*i, Col: 27},
		})
	}
	return t
}

// userLabelForTest is how messages name a uid: by name when it has one.
func userLabelForTest(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username + ", uid " + strconv.Itoa(uid)
	}
	return "uid " + strconv.Itoa(uid)
}

func userNameForTest(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return u.Username
	}
	return strconv.Itoa(uid)
}

func TestCheckKeyFiles(t *testing.T) {
	root := os.Geteuid() == 0
	other := KeyReader{UID: nobody, GIDs: []int{nobody}}
	tests := []struct {
		name string
		// asRoot: the case gives files to other users; asUser: the case
		// needs permissions that root overrides.
		asRoot, asUser bool
		// reader is who reads the files; nil means this process.
		reader *KeyReader
		// setup creates the files under dir and returns the tunnels.
		setup func(t *testing.T, dir string) []policy.Tunnel
		// want are the errors' texts; DIR stands for dir.
		want []string
	}{
		{
			name: "private and preshared keys as the daemon wants them",
			setup: func(t *testing.T, dir string) []policy.Tunnel {
				keytest.WriteKey(t, filepath.Join(dir, "wg0.key"), 0o600)
				keytest.WriteKey(t, filepath.Join(dir, "gw.psk"), 0o400)
				return []policy.Tunnel{keyCheckTunnel("p.yaml", 11, filepath.Join(dir, "wg0.key"), filepath.Join(dir, "gw.psk"))}
			},
		},
		{
			name: "missing private key: the daemon creates it and its directories",
			setup: func(t *testing.T, dir string) []policy.Tunnel {
				return []policy.Tunnel{keyCheckTunnel("p.yaml", 11, filepath.Join(dir, "keys", "sub", "wg0.key"))}
			},
		},
		{
			name: "private key readable by others",
			setup: func(t *testing.T, dir string) []policy.Tunnel {
				keytest.WriteKey(t, filepath.Join(dir, "wg0.key"), 0o644)
				return []policy.Tunnel{keyCheckTunnel("p.yaml", 11, filepath.Join(dir, "wg0.key"))}
			},
			want: []string{"p.yaml:11:21: tunnels[0].privateKeyFile: private key file DIR/wg0.key has mode 0644, readable by its group or others: key file is not private; run `chmod 600 DIR/wg0.key`"},
		},
		{
			name: "private key behind a symbolic link",
			setup: func(t *testing.T, dir string) []policy.Tunnel {
				keytest.WriteKey(t, filepath.Join(dir, "real.key"), 0o600)
				if err := os.Symlink(filepath.Join(dir, "real.key"), filepath.Join(dir, "wg0.key")); err != nil {
					t.Fatal(err)
				}
				return []policy.Tunnel{keyCheckTunnel("p.yaml", 11, filepath.Join(dir, "wg0.key"))}
			},
			want: []string{"p.yaml:11:21: tunnels[0].privateKeyFile: private key file DIR/wg0.key is a symbolic link: key files are not read through symbolic links, so that the permission checks apply to the file read; name the file itself"},
		},
		{
			name: "malformed private key",
			setup: func(t *testing.T, dir string) []policy.Tunnel {
				if err := os.WriteFile(filepath.Join(dir, "wg0.key"), []byte("c2VjcmV0LXNlY3JldA==\n"), 0o600); err != nil {
					t.Fatal(err)
				}
				return []policy.Tunnel{keyCheckTunnel("p.yaml", 11, filepath.Join(dir, "wg0.key"))}
			},
			want: []string{"p.yaml:11:21: tunnels[0].privateKeyFile: private key file DIR/wg0.key: not a base64-encoded 32-byte WireGuard key; a key file holds one key in base64, as `wg genkey` prints it"},
		},
		{
			name:   "missing private key in a directory the daemon may not write",
			asUser: true,
			setup: func(t *testing.T, dir string) []policy.Tunnel {
				if err := os.Mkdir(filepath.Join(dir, "ro"), 0o500); err != nil {
					t.Fatal(err)
				}
				return []policy.Tunnel{keyCheckTunnel("p.yaml", 11, filepath.Join(dir, "ro", "wg0.key"))}
			},
			want: []string{"p.yaml:11:21: tunnels[0].privateKeyFile: private key file DIR/ro/wg0.key does not exist, and the user reading it (SELF) cannot create it in directory DIR/ro (permission denied); create it with `edgefwctl keygen DIR/ro/wg0.key` and give it to that user, or let that user write to DIR/ro"},
		},
		{
			name: "private key under a file that is not a directory",
			setup: func(t *testing.T, dir string) []policy.Tunnel {
				if err := os.WriteFile(filepath.Join(dir, "keys"), nil, 0o600); err != nil {
					t.Fatal(err)
				}
				return []policy.Tunnel{keyCheckTunnel("p.yaml", 11, filepath.Join(dir, "keys", "wg0.key"))}
			},
			want: []string{"p.yaml:11:21: tunnels[0].privateKeyFile: private key file DIR/keys/wg0.key: lstat DIR/keys/wg0.key: not a directory"},
		},
		{
			name: "missing preshared key",
			setup: func(t *testing.T, dir string) []policy.Tunnel {
				keytest.WriteKey(t, filepath.Join(dir, "wg0.key"), 0o600)
				return []policy.Tunnel{keyCheckTunnel("p.yaml", 11, filepath.Join(dir, "wg0.key"), filepath.Join(dir, "gw.psk"))}
			},
			want: []string{"p.yaml:15:27: tunnels[0].peers[0].presharedKeyFile: preshared key file DIR/gw.psk: lstat DIR/gw.psk: no such file or directory (a preshared key must be identical on both peers, so edgefw does not create one: copy it from the other end, or create it with `wg genpsk` and distribute it)"},
		},
		{
			name: "malformed preshared key",
			setup: func(t *testing.T, dir string) []policy.Tunnel {
				keytest.WriteKey(t, filepath.Join(dir, "wg0.key"), 0o600)
				if err := os.WriteFile(filepath.Join(dir, "gw.psk"), []byte("not a key"), 0o600); err != nil {
					t.Fatal(err)
				}
				return []policy.Tunnel{keyCheckTunnel("p.yaml", 11, filepath.Join(dir, "wg0.key"), filepath.Join(dir, "gw.psk"))}
			},
			want: []string{"p.yaml:15:27: tunnels[0].peers[0].presharedKeyFile: preshared key file DIR/gw.psk: not a base64-encoded 32-byte WireGuard key; a key file holds one key in base64, as `wg genpsk` prints it"},
		},
		{
			name: "several bad files in two files of the policy: all reported, paths per file",
			setup: func(t *testing.T, dir string) []policy.Tunnel {
				keytest.WriteKey(t, filepath.Join(dir, "wg0.key"), 0o640)
				keytest.WriteKey(t, filepath.Join(dir, "wg1.key"), 0o600)
				keytest.WriteKey(t, filepath.Join(dir, "b.psk"), 0o604)
				return []policy.Tunnel{
					keyCheckTunnel("p.yaml", 11, filepath.Join(dir, "wg0.key"), filepath.Join(dir, "a.psk")),
					keyCheckTunnel("policy.d/10-site.yaml", 4, filepath.Join(dir, "wg1.key"), filepath.Join(dir, "wg1.key"), filepath.Join(dir, "b.psk")),
				}
			},
			want: []string{
				"p.yaml:11:21: tunnels[0].privateKeyFile: private key file DIR/wg0.key has mode 0640, readable by its group or others: key file is not private; run `chmod 600 DIR/wg0.key`",
				"p.yaml:15:27: tunnels[0].peers[0].presharedKeyFile: preshared key file DIR/a.psk: lstat DIR/a.psk: no such file or directory (a preshared key must be identical on both peers, so edgefw does not create one: copy it from the other end, or create it with `wg genpsk` and distribute it)",
				"policy.d/10-site.yaml:11:27: tunnels[0].peers[1].presharedKeyFile: preshared key file DIR/b.psk has mode 0604, readable by its group or others: key file is not private; run `chmod 600 DIR/b.psk`",
			},
		},
		{
			name:   "key owned by another user",
			asRoot: true,
			setup: func(t *testing.T, dir string) []policy.Tunnel {
				keytest.WriteKey(t, filepath.Join(dir, "wg0.key"), 0o600)
				if err := os.Chown(filepath.Join(dir, "wg0.key"), nobody, nobody); err != nil {
					t.Fatal(err)
				}
				return []policy.Tunnel{keyCheckTunnel("p.yaml", 11, filepath.Join(dir, "wg0.key"))}
			},
			want: []string{"p.yaml:11:21: tunnels[0].privateKeyFile: private key file DIR/wg0.key is owned by uid 65534, not by root: key file is not private; run `chown root:root DIR/wg0.key`"},
		},
		{
			name:   "for the daemon's user: its own key is fine",
			asRoot: true,
			reader: &other,
			setup: func(t *testing.T, dir string) []policy.Tunnel {
				if err := os.Mkdir(filepath.Join(dir, "keys"), 0o700); err != nil {
					t.Fatal(err)
				}
				keytest.WriteKey(t, filepath.Join(dir, "keys", "wg0.key"), 0o600)
				chownAll(t, nobody, filepath.Join(dir, "keys"), filepath.Join(dir, "keys", "wg0.key"))
				return []policy.Tunnel{keyCheckTunnel("p.yaml", 11, filepath.Join(dir, "keys", "wg0.key"))}
			},
		},
		{
			name:   "for the daemon's user: a missing key in its own directory is fine",
			asRoot: true,
			reader: &other,
			setup: func(t *testing.T, dir string) []policy.Tunnel {
				if err := os.Mkdir(filepath.Join(dir, "keys"), 0o700); err != nil {
					t.Fatal(err)
				}
				chownAll(t, nobody, filepath.Join(dir, "keys"))
				return []policy.Tunnel{keyCheckTunnel("p.yaml", 11, filepath.Join(dir, "keys", "wg0.key"))}
			},
		},
		{
			name:   "for the daemon's user: root's key is out of its reach",
			asRoot: true,
			reader: &other,
			setup: func(t *testing.T, dir string) []policy.Tunnel {
				keytest.WriteKey(t, filepath.Join(dir, "wg0.key"), 0o600)
				return []policy.Tunnel{keyCheckTunnel("p.yaml", 11, filepath.Join(dir, "wg0.key"))}
			},
			want: []string{"p.yaml:11:21: tunnels[0].privateKeyFile: private key file DIR/wg0.key is owned by uid 0 with mode 0600, so the user reading it (NOBODY) cannot read it; run `chown NOBODYNAME: DIR/wg0.key`"},
		},
		{
			name:   "for the daemon's user: another user's key",
			asRoot: true,
			reader: &other,
			setup: func(t *testing.T, dir string) []policy.Tunnel {
				keytest.WriteKey(t, filepath.Join(dir, "wg0.key"), 0o600)
				chownAll(t, 1, filepath.Join(dir, "wg0.key"))
				return []policy.Tunnel{keyCheckTunnel("p.yaml", 11, filepath.Join(dir, "wg0.key"))}
			},
			want: []string{"p.yaml:11:21: tunnels[0].privateKeyFile: private key file DIR/wg0.key is owned by uid 1, not by root or by the user reading it (uid 65534): key file is not private; run `chown NOBODYNAME: DIR/wg0.key` (or `chown root:root DIR/wg0.key` for a key only root reads)"},
		},
		{
			name:   "for the daemon's user: a directory it cannot search",
			asRoot: true,
			reader: &other,
			setup: func(t *testing.T, dir string) []policy.Tunnel {
				if err := os.Mkdir(filepath.Join(dir, "keys"), 0o700); err != nil {
					t.Fatal(err)
				}
				keytest.WriteKey(t, filepath.Join(dir, "keys", "wg0.key"), 0o600)
				chownAll(t, nobody, filepath.Join(dir, "keys", "wg0.key"))
				return []policy.Tunnel{keyCheckTunnel("p.yaml", 11, filepath.Join(dir, "keys", "wg0.key"))}
			},
			want: []string{"p.yaml:11:21: tunnels[0].privateKeyFile: private key file DIR/keys/wg0.key is in directory DIR/keys (owner uid 0, mode 0700), which the user reading it (NOBODY) cannot search; give that user search permission on DIR/keys, or keep the key where it can reach it"},
		},
		{
			name:   "for the daemon's user: a missing key it cannot create",
			asRoot: true,
			reader: &other,
			setup: func(t *testing.T, dir string) []policy.Tunnel {
				if err := os.Mkdir(filepath.Join(dir, "keys"), 0o755); err != nil {
					t.Fatal(err)
				}
				return []policy.Tunnel{keyCheckTunnel("p.yaml", 11, filepath.Join(dir, "keys", "sub", "wg0.key"))}
			},
			want: []string{"p.yaml:11:21: tunnels[0].privateKeyFile: private key file DIR/keys/sub/wg0.key does not exist, and the user reading it (NOBODY) cannot create it in directory DIR/keys (owner uid 0, mode 0755); create it with `edgefwctl keygen DIR/keys/sub/wg0.key` and give it to that user, or let that user write to DIR/keys"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.asRoot && !root {
				netnstest.Unavailable(t, "needs root to give files to other users")
			}
			if tt.asUser && !netnstest.AsUnprivileged(t) {
				return // root may write anywhere: run as nobody
			}
			dir := keytest.SearchableDir(t)
			tunnels := tt.setup(t, dir)
			before := listTree(t, dir)
			reader := ProcessKeyReader()
			if tt.reader != nil {
				reader = *tt.reader
			}
			err := CheckKeyFiles(tunnels, reader)

			var got []string
			if err != nil {
				list, ok := errors.AsType[policy.ErrorList](err)
				if !ok {
					t.Fatalf("error %T %v, want a policy.ErrorList", err, err)
				}
				for _, e := range list {
					got = append(got, e.Error())
				}
			}
			var want []string
			for _, w := range tt.want {
				w = strings.ReplaceAll(w, "DIR", dir)
				w = strings.ReplaceAll(w, "NOBODYNAME", userNameForTest(nobody))
				w = strings.ReplaceAll(w, "NOBODY", userLabelForTest(nobody))
				w = strings.ReplaceAll(w, "SELF", userLabelForTest(os.Geteuid()))
				want = append(want, w)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("CheckKeyFiles errors (-want +got):\n%s", diff)
			}
			if after := listTree(t, dir); !cmp.Equal(before, after) {
				t.Errorf("CheckKeyFiles changed %s (-before +after):\n%s", dir, cmp.Diff(before, after))
			}
		})
	}
}

// TestCheckKeyFilesNeverQuotesKeys: whatever is wrong with a file, its
// contents stay out of the error.
func TestCheckKeyFilesNeverQuotesKeys(t *testing.T) {
	dir := t.TempDir()
	keys := map[string]string{}
	for _, name := range []string{"readable.key", "readable.psk"} {
		keys[name] = keytest.WriteKey(t, filepath.Join(dir, name), 0o644).String()
	}
	garbage := "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlYw-not-a-key"
	if err := os.WriteFile(filepath.Join(dir, "garbage.key"), []byte(garbage), 0o600); err != nil {
		t.Fatal(err)
	}
	keys["garbage.key"] = garbage
	tunnels := []policy.Tunnel{
		keyCheckTunnel("p.yaml", 3, filepath.Join(dir, "readable.key"), filepath.Join(dir, "readable.psk")),
		keyCheckTunnel("p.yaml", 20, filepath.Join(dir, "garbage.key")),
	}
	err := CheckKeyFiles(tunnels, ProcessKeyReader())
	if err == nil {
		t.Fatal("no error")
	}
	for name, key := range keys {
		if strings.Contains(err.Error(), key) || strings.Contains(err.Error(), key[:8]) {
			t.Errorf("the error quotes the contents of %s:\n%v", name, err)
		}
	}
}

// TestCheckKeyFilesSharesTheDaemonsChecks: the check and the daemon's
// loaders refuse the same files with the same words.
func TestCheckKeyFilesSharesTheDaemonsChecks(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "wg0.key")
	keytest.WriteKey(t, path, 0o640)
	_, loadErr := LoadOrCreatePrivateKey(path)
	_, pskErr := readPresharedKey(path, os.Geteuid())
	err := CheckKeyFiles([]policy.Tunnel{keyCheckTunnel("p.yaml", 2, path, path)}, ProcessKeyReader())
	list, ok := errors.AsType[policy.ErrorList](err)
	if !ok || len(list) != 2 {
		t.Fatalf("CheckKeyFiles = %v, want two problems", err)
	}
	if list[0].Msg != loadErr.Error() || list[1].Msg != pskErr.Error() {
		t.Errorf("check says %q and %q,\nthe daemon says %q and %q", list[0].Msg, list[1].Msg, loadErr, pskErr)
	}
	for _, e := range list {
		if !errors.Is(e, ErrInsecureKeyFile) {
			t.Errorf("%v does not wrap ErrInsecureKeyFile", e)
		}
	}
}

// TestCheckKeyFilesUnchecked: a file this process may not look at is not
// judged on behalf of another user: the check says so instead.
func TestCheckKeyFilesUnchecked(t *testing.T) {
	if !netnstest.AsUnprivileged(t) {
		return // root may look at every file: run as nobody
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	err := CheckKeyFiles([]policy.Tunnel{keyCheckTunnel("p.yaml", 2, filepath.Join(dir, "wg0.key"))}, KeyReader{UID: 0, GIDs: []int{0}})
	if !errors.Is(err, ErrKeyFileUnchecked) {
		t.Fatalf("error %v, want ErrKeyFileUnchecked", err)
	}
	path := filepath.Join(dir, "wg0.key")
	if want := "p.yaml:2:21: tunnels[0].privateKeyFile: not checked: private key file " + path + ": lstat " + path + ": permission denied"; err.Error() != want {
		t.Errorf("error\n%s\nwant\n%s", err, want)
	}
}

func chownAll(t *testing.T, uid int, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.Chown(p, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
}

// listTree lists the names, modes and owners under dir.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var list []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		list = append(list, path+" "+info.Mode().String())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return list
}
