package daemon

import (
	"golang.org/x/sys/unix"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
)

// SystemdNotifier sends sd_notify messages to $NOTIFY_SOCKET, if set.
func SystemdNotifier(state string) error {
	_, err := sddaemon.SdNotify(false, state)
	return err
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, as systemd expects
// with RELOADING=1 (sd_notify(3), "MONOTONIC_USEC=").
func monotonicUsec() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano() / 1000
}
