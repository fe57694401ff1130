package wg

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// ErrInsecureKeyFile is returned (wrapped) when a key file can be read by
// someone other than root and the user running edgefw: its group or others
// may read it, or another user owns it. WireGuard's own wg(8) only warns;
// edgefw refuses, because a leaked private key lets anyone impersonate the
// host to the whole cluster.
var ErrInsecureKeyFile = errors.New("key file is not private")

// keyFileMode and keyDirMode are the permissions of the key files and
// directories this package creates: only the owner (root) may read them.
const (
	keyFileMode fs.FileMode = 0o600
	keyDirMode  fs.FileMode = 0o700
)

// LoadOrCreatePrivateKey returns the WireGuard private key stored in path.
// A missing file is created with a new key, mode 0600, in a directory created
// with mode 0700 if it does not exist yet. A file that its group or others may
// read, or that is owned by a user other than root and the one running this
// process, is refused with an error wrapping ErrInsecureKeyFile that names the
// path, its mode or owner and the fix. A symbolic link is not followed. The
// key's contents never appear in an error.
func LoadOrCreatePrivateKey(path string) (wgtypes.Key, error) {
	key, err := readKeyFile(path, "private key", os.Geteuid())
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
			return readKeyFile(path, "private key", os.Geteuid())
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
	key, err := readKeyFile(path, "private key", os.Geteuid())
	if err != nil {
		return "", err
	}
	return key.PublicKey().String(), nil
}

// readPresharedKey reads a peer's preshared key for the user reader (see
// readKeyFile). Unlike a private key, a missing preshared key file is an
// error and is never created: the key must be the same on both ends of the
// tunnel, so a fresh random one could only break the session.
func readPresharedKey(path string, reader int) (wgtypes.Key, error) {
	key, err := readKeyFile(path, "preshared key", reader)
	if errors.Is(err, fs.ErrNotExist) {
		return wgtypes.Key{}, fmt.Errorf("%w (a preshared key must be identical on both peers, so edgefw does not create one: copy it from the other end, or create it with `wg genpsk` and distribute it)", err)
	}
	return key, err
}

// maxKeyFileSize bounds what is read of a key file: a base64 key is 44
// bytes; anything much longer is not a key file.
const maxKeyFileSize = 1024

// readKeyFile reads a base64 WireGuard key from path after checking that it
// is private to root or reader, the uid of the user that reads it (the one
// running this process, or the daemon's when CheckKeyFiles checks on its
// behalf). kind ("private key", "preshared key") only appears in errors.
// Errors describe the file, never its contents.
//
// A symbolic link is not followed, and the checks apply to the opened file
// (fstat), so that what is read is what was checked. A file that is no key
// at all is reported as such before its permissions: advising to chmod, say,
// /etc/shadow would be wrong.
func readKeyFile(path, kind string, reader int) (wgtypes.Key, error) {
	// Lstat first so that a FIFO or device is refused without opening it
	// (opening has side effects, or blocks).
	info, err := os.Lstat(path)
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("%s file %s: %w", kind, path, err)
	}
	if err := checkKeyFileType(path, kind, info); err != nil {
		return wgtypes.Key{}, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return wgtypes.Key{}, fmt.Errorf("%s file %s is a symbolic link: %s", kind, path, symlinkAdvice)
		}
		return wgtypes.Key{}, fmt.Errorf("%s file %s: %w", kind, path, err)
	}
	defer f.Close()
	if info, err = f.Stat(); err != nil {
		return wgtypes.Key{}, fmt.Errorf("%s file %s: %w", kind, path, err)
	}
	if err := checkKeyFileType(path, kind, info); err != nil {
		return wgtypes.Key{}, err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("%s file %s: %w", kind, path, err)
	}
	// The parse error is dropped on purpose: it may quote the offending input.
	key, err := wgtypes.ParseKey(strings.TrimSpace(string(data)))
	if err != nil || len(data) > maxKeyFileSize {
		return wgtypes.Key{}, fmt.Errorf("%s file %s: not a base64-encoded 32-byte WireGuard key; a key file holds one key in base64, as `%s` prints it", kind, path, keyTool(kind))
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return wgtypes.Key{}, fmt.Errorf("%s file %s has mode %04o, readable by its group or others: %w; run `chmod 600 %s`", kind, path, perm, ErrInsecureKeyFile, path)
	}
	if err := checkKeyFileOwner(path, kind, info, reader); err != nil {
		return wgtypes.Key{}, err
	}
	return key, nil
}

// keyTool names the wg(8) command that prints a key of kind.
func keyTool(kind string) string {
	if kind == "preshared key" {
		return "wg genpsk"
	}
	return "wg genkey"
}

const symlinkAdvice = "key files are not read through symbolic links, so that the permission checks apply to the file read; name the file itself"

// checkKeyFileType refuses anything but a regular file.
func checkKeyFileType(path, kind string, info fs.FileInfo) error {
	switch {
	case info.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%s file %s is a symbolic link: %s", kind, path, symlinkAdvice)
	case !info.Mode().IsRegular():
		return fmt.Errorf("%s file %s: not a regular file", kind, path)
	}
	return nil
}

// checkKeyFileOwner refuses a key file owned by anyone but root or reader,
// the uid of the user reading it: its owner may read it whatever its mode,
// and may replace it.
func checkKeyFileOwner(path, kind string, info fs.FileInfo, reader int) error {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s file %s: cannot tell its owner", kind, path)
	}
	if st.Uid == 0 || int64(st.Uid) == int64(reader) {
		return nil
	}
	if reader == 0 {
		return fmt.Errorf("%s file %s is owned by uid %d, not by root: %w; run `chown root:root %s`", kind, path, st.Uid, ErrInsecureKeyFile, path)
	}
	// The daemon runs as its own user (User=edgefw) and reads only the keys
	// that user owns; suggesting root would leave the file unreadable to it.
	return fmt.Errorf("%s file %s is owned by uid %d, not by root or by the user reading it (uid %d): %w; run `chown %s: %s` (or `chown root:root %s` for a key only root reads)", kind, path, st.Uid, reader, ErrInsecureKeyFile, userName(reader), path, path)
}

// userName is uid's user name, or uid in decimal if it has none.
func userName(uid int) string {
	name := strconv.Itoa(uid)
	if u, err := user.LookupId(name); err == nil {
		return u.Username
	}
	return name
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
