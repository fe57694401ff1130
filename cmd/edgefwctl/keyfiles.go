package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"syscall"

	"github.com/edgefw/edgefw/policy"
	"github.com/edgefw/edgefw/wg"
)

// daemonUser is the user the packaged unit runs edgefwd as (User=edgefw).
const daemonUser = "edgefw"

// packagedDaemonUser returns the user the packaged unit runs edgefwd as,
// or an error if the unit is not installed. A purge keeps the user edgefw
// (Debian policy 9.2.2) but removes the unit: a daemon started by hand
// there does not run as edgefw.
func packagedDaemonUser() (*user.User, error) {
	// Where the .deb and the .rpm install it (packaging/nfpm.yaml).
	for _, unit := range []string{"/lib/systemd/system/edgefwd.service", "/usr/lib/systemd/system/edgefwd.service"} {
		if _, err := os.Stat(unit); err == nil {
			return user.Lookup(daemonUser)
		}
	}
	return nil, errors.New("edgefwd's unit is not installed")
}

// daemonKeyReader returns the user whose view of the tunnels' key files
// counts: edgefwd's, which reads them. edgefwctl usually runs as root or
// as an operator in group edgefw, while the packaged daemon runs as user
// edgefw and accepts only keys owned by root or by itself, that it can read:
// judged as edgefwctl's own user, a key the daemon generated would be
// refused by root, and a key only root can read would be accepted.
//
// The daemon's user is the owner of the control socket at socket when it
// exists, since the daemon creates it; otherwise, when the package's unit
// is installed, its user (packagedUser, normally packagedDaemonUser);
// otherwise the user running edgefwctl, as whoever starts edgefwd by hand.
func daemonKeyReader(socket string, packagedUser func() (*user.User, error)) wg.KeyReader {
	if info, err := os.Stat(socket); err == nil && info.Mode().Type() == fs.ModeSocket {
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			// The socket's group is the daemon's (Group=edgefw).
			r := wg.KeyReader{UID: int(st.Uid), GIDs: []int{int(st.Gid)}}
			if u, err := user.LookupId(strconv.Itoa(r.UID)); err == nil {
				r.GIDs = append(r.GIDs, groupIDs(u)...)
			}
			return r
		}
	}
	if u, err := packagedUser(); err == nil {
		if uid, err := strconv.Atoi(u.Uid); err == nil {
			return wg.KeyReader{UID: uid, GIDs: groupIDs(u)}
		}
	}
	return wg.ProcessKeyReader()
}

// groupIDs returns u's groups, or at least its primary group.
func groupIDs(u *user.User) []int {
	names, err := u.GroupIds()
	if err != nil {
		names = []string{u.Gid}
	}
	var ids []int
	for _, name := range names {
		if id, err := strconv.Atoi(name); err == nil {
			ids = append(ids, id)
		}
	}
	return ids
}

// loadChecked is loadPolicy followed by the tunnels' key files, checked as
// the daemon will read them (wg.CheckKeyFiles), for validate, plan and
// apply: a bad key is caught before the firewall changes, and reported like
// any other problem of the policy. Key files that edgefwctl may not look
// at (an operator, for a daemon running as edgefw) are returned as
// warnings: the daemon checks them when it applies the policy. Without
// keyFiles (validate and plan --no-key-files, for a policy checked off the
// host, in CI) the key files are not looked at.
func (a *app) loadChecked(file string, keyFiles bool) (*loaded, policy.ErrorList, error) {
	l, err := loadPolicy(file)
	if err != nil || !keyFiles {
		return l, nil, err
	}
	err = wg.CheckKeyFiles(l.pol.Tunnels, a.keyReader())
	if err == nil {
		return l, nil, nil
	}
	list, ok := errors.AsType[policy.ErrorList](err)
	if !ok {
		return nil, nil, err
	}
	var problems, warnings policy.ErrorList
	for _, e := range list {
		if errors.Is(e, wg.ErrKeyFileUnchecked) {
			warnings = append(warnings, e)
		} else {
			problems = append(problems, e)
		}
	}
	if len(problems) > 0 {
		return nil, warnings, &invalidPolicyError{file: file, problems: problems}
	}
	return l, warnings, nil
}

// loadCheckedText is loadChecked for commands that print problems as
// text: warnings, then problems, on stderr before the summary error.
func (a *app) loadCheckedText(file string, keyFiles bool) (*loaded, error) {
	l, warnings, err := a.loadChecked(file, keyFiles)
	for _, w := range warnings {
		fmt.Fprintf(a.stderr, "edgefwctl: warning: %s%s\n", w.Error(), uncheckedAdvice)
	}
	a.printProblems(err)
	return l, err
}

// uncheckedAdvice ends the warning about a key file edgefwctl could not check.
const uncheckedAdvice = "; edgefwd checks it when it applies the policy"
