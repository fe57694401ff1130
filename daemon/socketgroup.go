package daemon

import (
	"fmt"
	"os/user"
	"strconv"
)

// ControlOption configures ListenControl.
type ControlOption func(*controlOptions)

type controlOptions struct {
	group string
}

// WithSocketGroup names the group, by name or number, whose members may
// use the control socket, instead of SocketGroup (edgefwd --socket-group).
// Unlike SocketGroup, which may be missing (only root may then use the
// socket), a group named here must exist.
func WithSocketGroup(group string) ControlOption {
	return func(o *controlOptions) { o.group = group }
}

// lookupGroup returns the gid of a group given by name or number; -1 and
// an error when there is no such group. A number needs no entry in the
// group database.
func lookupGroup(group string) (int, error) {
	if g, err := user.LookupGroup(group); err == nil {
		gid, err := strconv.Atoi(g.Gid)
		if err != nil {
			return -1, fmt.Errorf("socket group %s: gid %q: %w", group, g.Gid, err)
		}
		return gid, nil
	}
	if gid, err := strconv.Atoi(group); err == nil && gid >= 0 {
		return gid, nil
	}
	return -1, fmt.Errorf("socket group %q: no such group", group)
}
