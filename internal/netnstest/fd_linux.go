package netnstest

import (
	"os"

	"golang.org/x/sys/unix"
)

func dupFD(f *os.File) (int, error) { return unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0) }

func closeFD(fd int) error { return unix.Close(fd) }

func setns(fd int) error { return unix.Setns(fd, unix.CLONE_NEWNET) }

func isMainThread() bool { return unix.Gettid() == unix.Getpid() }
