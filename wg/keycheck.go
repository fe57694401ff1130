package wg

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/edgefw/edgefw/policy"
)

// ErrKeyFileUnchecked is returned (wrapped) by CheckKeyFiles for a key file
// that this process may not look at while it checks on behalf of another
// user (an operator's edgefwctl, for the daemon's user): the file was not
// judged, neither good nor bad. The daemon checks it again when it applies
// the policy.
var ErrKeyFileUnchecked = errors.New("not checked")

// KeyReader is the user that reads the tunnels' key files and creates the
// missing private keys: the daemon's. CheckKeyFiles judges the files from
// its point of view.
type KeyReader struct {
	UID int
	// GIDs are the user's groups. They matter only when another user
	// checks on its behalf, to judge permissions by the mode bits.
	GIDs []int
}

// ProcessKeyReader returns the user running this process, who reads the
// key files when this process is the daemon.
func ProcessKeyReader() KeyReader {
	r := KeyReader{UID: os.Geteuid(), GIDs: []int{os.Getegid()}}
	if groups, err := os.Getgroups(); err == nil {
		r.GIDs = append(r.GIDs, groups...)
	}
	return r
}

// CheckKeyFiles checks the key files of tunnels as Manager.Apply reads them
// when run by reader, so that a policy with a bad key is refused before
// anything is applied. It creates and changes nothing.
//
// Each file goes through the very checks the daemon's loaders run (a
// regular file, not a symbolic link, one base64 key, no permissions for its
// group or others, owned by root or the reader). A missing preshared key
// file is an error, as it is for the daemon. A missing private key file is
// fine when the reader could create it, as LoadOrCreatePrivateKey would:
// the nearest existing directory on its path must be one the reader may
// write and search.
//
// When reader is not the user running this process (edgefwctl run by root
// for the daemon's user edgefw), the files are read with this process's
// rights and then judged for the reader by their owners, groups and modes:
// the reader must be able to search every directory on the way, and to
// read the file or, for a missing private key, to write the directory it
// would be created in. ACLs and the daemon's sandbox (systemd's
// ProtectSystem) are not considered. A file this process may not look at
// is reported with an error wrapping ErrKeyFileUnchecked.
//
// The result is nil or a policy.ErrorList with one *policy.Error per bad
// file, at the field that names it: tunnels[0].privateKeyFile or
// tunnels[0].peers[1].presharedKeyFile, tunnels counted per policy file as
// the policy package's own errors count them. Errors never contain a key.
func CheckKeyFiles(tunnels []policy.Tunnel, reader KeyReader) error {
	var errs policy.ErrorList
	report := func(pos policy.Pos, path string, err error) {
		if err != nil {
			errs = append(errs, &policy.Error{Pos: pos, Path: path, Msg: err.Error(), Err: err})
		}
	}
	perFile := map[string]int{}
	for _, t := range tunnels {
		tp := fmt.Sprintf("tunnels[%d]", perFile[t.Pos.File])
		perFile[t.Pos.File]++
		report(t.PrivateKeyFilePos, tp+".privateKeyFile", reader.checkPrivateKeyFile(t.PrivateKeyFile))
		for i, p := range t.Peers {
			if p.PresharedKeyFile != "" {
				report(p.PresharedKeyFilePos, fmt.Sprintf("%s.peers[%d].presharedKeyFile", tp, i), reader.checkPresharedKeyFile(p.PresharedKeyFile))
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

func (r KeyReader) checkPrivateKeyFile(path string) error {
	const kind = "private key"
	_, err := readKeyFile(path, kind, r.UID)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return r.checkCreatable(path, kind)
	case err != nil:
		return r.unchecked(err)
	}
	return r.checkReadable(path, kind)
}

func (r KeyReader) checkPresharedKeyFile(path string) error {
	const kind = "preshared key"
	if _, err := readPresharedKey(path, r.UID); err != nil {
		return r.unchecked(err)
	}
	return r.checkReadable(path, kind)
}

// isProcess reports whether r runs this process: then the reads and the
// access checks of the kernel decide, not the mode bits.
func (r KeyReader) isProcess() bool { return r.UID == os.Geteuid() }

// unchecked wraps err with ErrKeyFileUnchecked when it only says that this
// process, checking for another user, may not look at the file.
func (r KeyReader) unchecked(err error) error {
	if !r.isProcess() && errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%w: %w", ErrKeyFileUnchecked, err)
	}
	return err
}

// checkReadable judges, for a reader other than this process, whether it
// may reach and read the key file at path, which this process has read.
func (r KeyReader) checkReadable(path, kind string) error {
	if r.isProcess() {
		return nil // the read itself was the test
	}
	if err := r.checkSearchable(path, kind, filepath.Dir(path)); err != nil {
		return err
	}
	info, st, err := lstat(path)
	if err != nil {
		return r.unchecked(fmt.Errorf("%s file %s: %w", kind, path, err))
	}
	if r.may(st, permRead) {
		return nil
	}
	advice := fmt.Sprintf("run `chown %s: %s`", userName(r.UID), path)
	if int(st.Uid) == r.UID {
		advice = fmt.Sprintf("run `chmod 600 %s`", path)
	}
	return fmt.Errorf("%s file %s is owned by uid %d with mode %04o, so the user reading it (%s) cannot read it; %s",
		kind, path, st.Uid, info.Mode().Perm(), userLabel(r.UID), advice)
}

// checkSearchable checks, for a reader other than this process, that it
// may search dir and every directory above it, top first.
func (r KeyReader) checkSearchable(path, kind, dir string) error {
	dirs := []string{dir}
	for d := dir; filepath.Dir(d) != d; d = filepath.Dir(d) {
		dirs = append(dirs, filepath.Dir(d))
	}
	for _, d := range slices.Backward(dirs) {
		// Stat, not Lstat: the kernel follows a symbolic link to a
		// directory and needs search permission on the directory.
		info, err := os.Stat(d)
		if err != nil {
			return r.unchecked(fmt.Errorf("%s file %s: %w", kind, path, err))
		}
		st, err := statOf(info)
		if err != nil {
			return fmt.Errorf("%s file %s: directory %s: %w", kind, path, d, err)
		}
		if !r.may(st, permSearch) {
			return fmt.Errorf("%s file %s is in directory %s (owner uid %d, mode %04o), which the user reading it (%s) cannot search; give that user search permission on %s, or keep the key where it can reach it",
				kind, path, d, st.Uid, info.Mode().Perm(), userLabel(r.UID), d)
		}
	}
	return nil
}

// checkCreatable checks that the reader could create the missing private
// key file at path as LoadOrCreatePrivateKey does: the missing directories,
// then the file, in the nearest directory that exists.
func (r KeyReader) checkCreatable(path, kind string) error {
	dir := filepath.Dir(path)
	info, err := os.Stat(dir)
	for errors.Is(err, fs.ErrNotExist) && filepath.Dir(dir) != dir {
		if _, lerr := os.Lstat(dir); lerr == nil {
			return fmt.Errorf("%s file %s does not exist, and cannot be created: %s is a symbolic link to nothing; name a path in existing or missing directories", kind, path, dir)
		}
		dir = filepath.Dir(dir)
		info, err = os.Stat(dir)
	}
	if err != nil {
		return r.unchecked(fmt.Errorf("%s file %s: %w", kind, path, err))
	}
	cannot := func(why string) error {
		return fmt.Errorf("%s file %s does not exist, and the user reading it (%s) cannot create it in directory %s (%s); create it with `edgefwctl keygen %s` and give it to that user, or let that user write to %s",
			kind, path, userLabel(r.UID), dir, why, path, dir)
	}
	if r.isProcess() {
		// The kernel's answer covers what the mode bits do not: ACLs,
		// capabilities, read-only mounts.
		if err := unix.Faccessat(unix.AT_FDCWD, dir, unix.W_OK|unix.X_OK, unix.AT_EACCESS); err != nil {
			return cannot(err.Error())
		}
		return nil
	}
	if err := r.checkSearchable(path, kind, dir); err != nil {
		return err
	}
	st, err := statOf(info)
	if err != nil {
		return fmt.Errorf("%s file %s: directory %s: %w", kind, path, dir, err)
	}
	if !r.may(st, permWrite|permSearch) {
		return cannot(fmt.Sprintf("owner uid %d, mode %04o", st.Uid, info.Mode().Perm()))
	}
	return nil
}

// Permission bits of one class (owner, group, others) of a file mode.
const (
	permRead   = 0o4
	permWrite  = 0o2
	permSearch = 0o1
)

// may reports whether r may access a file with stat st for want (a mask of
// permRead, permWrite, permSearch) as the kernel decides from the mode
// bits: the owner's bits if r owns it, else the group's if r is in its
// group, else the others'. Root may do anything (CAP_DAC_OVERRIDE). ACLs
// are not considered.
func (r KeyReader) may(st *syscall.Stat_t, want uint32) bool {
	if r.UID == 0 {
		return true
	}
	bits := st.Mode
	switch {
	case int(st.Uid) == r.UID:
		bits >>= 6
	case slices.Contains(r.GIDs, int(st.Gid)):
		bits >>= 3
	}
	return bits&want == want
}

func lstat(path string) (fs.FileInfo, *syscall.Stat_t, error) {
	info, err := os.Lstat(path)
	if err != nil {
		return nil, nil, err
	}
	st, err := statOf(info)
	return info, st, err
}

func statOf(info fs.FileInfo) (*syscall.Stat_t, error) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, errors.New("cannot tell its owner")
	}
	return st, nil
}

// userLabel names uid in messages: "edgefw, uid 998", or "uid 998" for a
// uid without a name.
func userLabel(uid int) string {
	if name := userName(uid); name != strconv.Itoa(uid) {
		return name + ", uid " + strconv.Itoa(uid)
	}
	return "uid " + strconv.Itoa(uid)
}
