// Package keytest writes WireGuard key files for tests.
package keytest

import (
	"io/fs"
	"os"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// WriteKey writes a new WireGuard private key, in base64 as wg(8) does, to
// path with mode, and returns it. A preshared key is written the same way:
// both are 32 random bytes.
func WriteKey(t testing.TB, path string, mode fs.FileMode) wgtypes.Key {
	t.Helper()
	key, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(key.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// WriteFile's mode passes through the umask; Chmod does not.
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return key
}

// SearchableDir returns a new temporary directory that every user may
// search, for files judged on behalf of another user: t.TempDir's parent
// is private to the user running the test. It is removed when the test
// ends.
func SearchableDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "keytest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
