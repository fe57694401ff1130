package wg

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/edgefw/edgefw/internal/keytest"
	"github.com/edgefw/edgefw/internal/netnstest"
)

func TestLoadOrCreatePrivateKeyCreatesMissingFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etc", "keys")
	path := filepath.Join(dir, "wg0.key")

	key, err := LoadOrCreatePrivateKey(path)
	if err != nil {
		t.Fatalf("LoadOrCreatePrivateKey: %v", err)
	}
	if key == (wgtypes.Key{}) {
		t.Fatal("got the zero key")
	}
	assertMode(t, path, 0o600)
	assertMode(t, dir, 0o700|fs.ModeDir)

	again, err := LoadOrCreatePrivateKey(path)
	if err != nil {
		t.Fatalf("LoadOrCreatePrivateKey (existing file): %v", err)
	}
	if again != key {
		t.Error("second load returned a different key: the file was replaced")
	}
	pub, err := PublicKeyFromFile(path)
	if err != nil {
		t.Fatalf("PublicKeyFromFile: %v", err)
	}
	if pub != key.PublicKey().String() {
		t.Errorf("PublicKeyFromFile = %s, want %s", pub, key.PublicKey())
	}
}

func TestLoadOrCreatePrivateKeyRefusesReadableFile(t *testing.T) {
	for _, mode := range []fs.FileMode{0o644, 0o640, 0o604} {
		path := filepath.Join(t.TempDir(), "wg0.key")
		key, _ := wgtypes.GeneratePrivateKey()
		if err := os.WriteFile(path, []byte(key.String()+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadOrCreatePrivateKey(path)
		if !errors.Is(err, ErrInsecureKeyFile) {
			t.Fatalf("mode %04o: error = %v, want ErrInsecureKeyFile", mode, err)
		}
		msg := err.Error()
		for _, want := range []string{path, fmt.Sprintf("mode %04o", mode), "chmod 600"} {
			if !strings.Contains(msg, want) {
				t.Errorf("mode %04o: error %q does not mention %q", mode, msg, want)
			}
		}
		if strings.Contains(msg, key.String()) {
			t.Errorf("error contains the key")
		}
		if _, err := PublicKeyFromFile(path); !errors.Is(err, ErrInsecureKeyFile) {
			t.Errorf("PublicKeyFromFile mode %04o: error = %v, want ErrInsecureKeyFile", mode, err)
		}
	}
}

func TestGenerateKeyFileRoundTripAndNoOverwrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	path := filepath.Join(dir, "host.key")
	pub, err := GenerateKeyFile(path)
	if err != nil {
		t.Fatalf("GenerateKeyFile: %v", err)
	}
	assertMode(t, path, 0o600)
	assertMode(t, dir, 0o700|fs.ModeDir)
	if _, err := wgtypes.ParseKey(pub); err != nil {
		t.Fatalf("public key %q does not parse: %v", pub, err)
	}
	got, err := PublicKeyFromFile(path)
	if err != nil {
		t.Fatalf("PublicKeyFromFile: %v", err)
	}
	if got != pub {
		t.Errorf("PublicKeyFromFile = %s, GenerateKeyFile said %s", got, pub)
	}

	before, _ := os.ReadFile(path)
	if _, err := GenerateKeyFile(path); !errors.Is(err, fs.ErrExist) {
		t.Errorf("GenerateKeyFile over an existing file: error = %v, want fs.ErrExist", err)
	}
	after, _ := os.ReadFile(path)
	if string(before) != string(after) {
		t.Error("GenerateKeyFile replaced an existing key")
	}
}

func TestKeyFileErrorsDoNotQuoteContents(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.key")
	secret := "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlYw-not-a-key"
	if err := os.WriteFile(path, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadOrCreatePrivateKey(path)
	if err == nil {
		t.Fatal("garbage key accepted")
	}
	if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "c2VjcmV0") {
		t.Errorf("error quotes the file contents: %v", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the file", err)
	}
}

func TestPresharedKeyIsNeverCreated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wg0-gw.psk")
	_, err := readPresharedKey(path, os.Geteuid())
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing preshared key: error = %v, want fs.ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), "both peers") {
		t.Errorf("error %q does not explain why the file is not created", err)
	}
	if _, statErr := os.Stat(path); !errors.Is(statErr, fs.ErrNotExist) {
		t.Error("a preshared key file was created")
	}

	psk, _ := wgtypes.GenerateKey()
	if err := os.WriteFile(path, []byte(psk.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readPresharedKey(path, os.Geteuid()); !errors.Is(err, ErrInsecureKeyFile) {
		t.Errorf("readable preshared key: error = %v, want ErrInsecureKeyFile", err)
	}
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	got, err := readPresharedKey(path, os.Geteuid())
	if err != nil || got != psk {
		t.Errorf("readPresharedKey = %v (err %v), want the key written", got == psk, err)
	}
}

func assertMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode() & (fs.ModePerm | fs.ModeDir); got != want {
		t.Errorf("%s: mode %v, want %v", path, got, want)
	}
}

// A 0600 key file owned by another unprivileged user is that user's to read
// and to replace: refused unless owned by root or the daemon's own user.
func TestKeyFileOwnedByAnotherUserIsRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		netnstest.Unavailable(t, "needs root to give a file to another user")
	}
	const nobody = 65534
	path := filepath.Join(t.TempDir(), "wg0.key")
	key := keytest.WriteKey(t, path, 0o600)
	if err := os.Chown(path, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	_, err := LoadOrCreatePrivateKey(path)
	if !errors.Is(err, ErrInsecureKeyFile) {
		t.Fatalf("owned by uid %d: error = %v, want ErrInsecureKeyFile", nobody, err)
	}
	msg := err.Error()
	for _, want := range []string{path, "uid 65534", "chown root:root " + path} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if strings.Contains(msg, key.String()) {
		t.Error("error contains the key")
	}
	if _, err := readPresharedKey(path, os.Geteuid()); !errors.Is(err, ErrInsecureKeyFile) {
		t.Errorf("preshared key owned by uid %d: error = %v, want ErrInsecureKeyFile", nobody, err)
	}

	// Root's and our own files are fine.
	if err := os.Chown(path, 0, 0); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadOrCreatePrivateKey(path); err != nil || got != key {
		t.Errorf("owned by root: key matches %v, error %v", got == key, err)
	}
}

// The checks apply to the file read: a symbolic link is not followed, so it
// cannot point the daemon at a file the checks never saw.
func TestKeyFileSymlinkIsNotFollowed(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "real.key")
	keytest.WriteKey(t, target, 0o600)
	link := filepath.Join(dir, "wg0.key")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	_, err := LoadOrCreatePrivateKey(link)
	if err == nil {
		t.Fatal("a key file behind a symbolic link was read")
	}
	if !strings.Contains(err.Error(), link) || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("error %q does not say that %s is a symbolic link", err, link)
	}
	if _, err := PublicKeyFromFile(link); err == nil {
		t.Error("PublicKeyFromFile followed a symbolic link")
	}

	// A dangling link is not a missing file: nothing is created through it.
	dangling := filepath.Join(dir, "wg1.key")
	if err := os.Symlink(filepath.Join(dir, "nowhere.key"), dangling); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreatePrivateKey(dangling); err == nil {
		t.Error("a key was loaded or created through a dangling symbolic link")
	}
	if _, err := os.Lstat(filepath.Join(dir, "nowhere.key")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a file was created behind a dangling symbolic link: %v", err)
	}
}

// A file that is no key at all (`edgefwctl pubkey /etc/shadow`) is reported
// as such, not with advice to chmod it.
func TestNotAKeyBeatsPermissionAdvice(t *testing.T) {
	for _, mode := range []fs.FileMode{0o600, 0o640, 0o644} {
		path := filepath.Join(t.TempDir(), "shadow")
		if err := os.WriteFile(path, []byte("root:$y$j9T$secret:19700:0:99999:7:::\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := PublicKeyFromFile(path)
		if err == nil {
			t.Fatalf("mode %04o: accepted", mode)
		}
		msg := err.Error()
		if !strings.Contains(msg, "not a base64-encoded 32-byte WireGuard key") || strings.Contains(msg, "chmod") || errors.Is(err, ErrInsecureKeyFile) {
			t.Errorf("mode %04o: error %q, want only that the file is not a WireGuard key", mode, msg)
		}
		if strings.Contains(msg, "secret") {
			t.Errorf("error quotes the file: %q", msg)
		}
	}
}

func TestKeyFileNotRegularIsNotOpened(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "wg0.key")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		netnstest.Unavailable(t, "mkfifo: %v", err)
	}
	// Opening a FIFO without a writer would block forever.
	done := make(chan error, 1)
	go func() { _, err := PublicKeyFromFile(fifo); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("FIFO: error %v, want not a regular file", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reading a FIFO as a key file blocked")
	}
}
