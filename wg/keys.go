package wg

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// ErrInsecureKeyFile is returned (wrapped) when a key file can be read by its
// group or by others. WireGuard's own wg(8) only warns; edgefw refuses, because
// a leaked private key lets anyone impersonate the host to the whole cluster.
var ErrInsecureKeyFile = errors.New("key file is readable by group or others")

// keyFileMode and keyDirMode are the permissions of the key files and
// directories this package creates: only the owner (root) may read them.
const (
	keyFileMode fs.FileMode = 0o600
	keyDirMode  fs.FileMode = 0o700
)

// LoadOrCreatePrivateKey returns the WireGuard private key stored in path.
// A missing file is created with a new key, mode 0600, in a directory created
// with mode 0700 if it does not exist yet. A file that its group or others may
// read is refused with an error wrapping ErrInsecureKeyFile that names the
// path, its mode and the fix. The key's contents never appear in an error.
func LoadOrCreatePrivateKey(path string) (wgtypes.Key, error) {
	key, err := readKeyFile(path, "private key")
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, err
	}
	key, err = wgtypes.GeneratePrivateKey()
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("generate private key for %s: %w", path, err)
	}
	if err := writeNewKeyFile(path, key); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another process created it between our read and write: use theirs,
			// since a key that was already handed out must not change.
			return readKeyFile(path, "private key")
		}
		return wgtypes.Key{}, err
	}
	return key, nil
}

// GenerateKeyFile writes a new private key to path and returns its public key
// in base64. It refuses to overwrite an existing file, because replacing a
// host's key silently cuts it off from every peer that knows the old one. The
// file is written with mode 0600 and its directory is created with mode 0700.
func GenerateKeyFile(path string) (publicKey string, err error) {
	key, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		return "", fmt.Errorf("generate private key for %s: %w", path, err)
	}
	if err := writeNewKeyFile(path, key); err != nil {
		return "", err
	}
	return key.PublicKey().String(), nil
}

// PublicKeyFromFile returns, in base64, the public key of the private key
// stored in path. The file must exist and pass the same permission check as
// LoadOrCreatePrivateKey.
func PublicKeyFromFile(path string) (string, error) {
	key, err := readKeyFile(path, "private key")
	if err != nil {
		return "", err
	}
	return key.PublicKey().String(), nil
}

// readPresharedKey reads a peer's preshared key. Unlike a private key, a
// missing preshared key file is an error and is never created: the key must be
// the same on both ends of the tunnel, so a fresh random one could only break
// the session.
func readPresharedKey(path string) (wgtypes.Key, error) {
	key, err := readKeyFile(path, "preshared key")
	if errors.Is(err, fs.ErrNotExist) {
		return wgtypes.Key{}, fmt.Errorf("%w (a preshared key must be identical on both peers, so edgefw does not create one: copy it from the other end, or create it with `wg genpsk` and distribute it)", err)
	}
	return key, err
}

// readKeyFile reads a base64 WireGuard key from path after checking that only
// its owner can read it. kind ("private key", "preshared key") only appears in
// errors. Errors describe the file, never its contents.
func readKeyFile(path, kind string) (wgtypes.Key, error) {
	info, err := os.Stat(path)
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("%s file %s: %w", kind, path, err)
	}
	if !info.Mode().IsRegular() {
		return wgtypes.Key{}, fmt.Errorf("%s file %s: not a regular file", kind, path)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return wgtypes.Key{}, fmt.Errorf("%s file %s has mode %04o: %w; run `chmod 600 %s`", kind, path, perm, ErrInsecureKeyFile, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("%s file %s: %w", kind, path, err)
	}
	// The parse error is dropped on purpose: it may quote the offending input.
	key, err := wgtypes.ParseKey(strings.TrimSpace(string(data)))
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("%s file %s: not a base64-encoded 32-byte WireGuard key", kind, path)
	}
	return key, nil
}

// writeNewKeyFile writes key in base64 to a new file at path with mode 0600,
// creating its directory with mode 0700. An existing file is never replaced:
// the error then wraps fs.ErrExist.
func writeNewKeyFile(path string, key wgtypes.Key) (err error) {
	if err := os.MkdirAll(filepath.Dir(path), keyDirMode); err != nil {
		return fmt.Errorf("create key directory for %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, keyFileMode)
	if err != nil {
		return fmt.Errorf("create key file %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			// A half-written key file would be loaded as garbage next time.
			_ = os.Remove(path)
		}
	}()
	if _, err := f.WriteString(key.String() + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync key file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close key file %s: %w", path, err)
	}
	return nil
}
