package nft

import (
	"fmt"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// A datagramReader reads the datagrams of a netlink socket: the kernel's
// (netlinkSocket), or constructed replies in tests. Its errors are what
// the socket says: os.ErrDeadlineExceeded when nothing came in time,
// unix.ENOBUFS when the socket overflowed and dropped messages.
type datagramReader interface {
	// readDatagram reads one datagram into buf, waiting until deadline
	// (none if zero).
	readDatagram(buf []byte, deadline time.Time) (int, error)
	// discard reads and drops what the socket holds, without waiting.
	discard(buf []byte) error
}

// A netlinkSocket reads datagrams straight from a netlink socket, rather
// than through netlink.Conn's Receive: with the caller's buffer, which the
// kernel sizes dump messages by (see dumpBufferSize); with ENOBUFS reported
// as such; and without Receive's decoding of acknowledgements (see
// decodeAck).
type netlinkSocket struct {
	c   *netlink.Conn
	raw syscall.RawConn
}

func newNetlinkSocket(c *netlink.Conn) (*netlinkSocket, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	return &netlinkSocket{c: c, raw: raw}, nil
}

// control runs f on the socket's file descriptor, to set options.
func (s *netlinkSocket) control(f func(fd int) error) error {
	var ferr error
	if err := s.raw.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

func (s *netlinkSocket) readDatagram(buf []byte, deadline time.Time) (int, error) {
	if err := s.c.SetReadDeadline(deadline); err != nil {
		return 0, err
	}
	var n int
	var rerr error
	if err := s.raw.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT|unix.MSG_TRUNC)
		return rerr != unix.EAGAIN
	}); err != nil {
		return 0, err
	}
	if rerr != nil {
		return 0, rerr
	}
	if n > len(buf) {
		// MSG_TRUNC: the kernel says how long the datagram was.
		return 0, fmt.Errorf("netlink datagram of %d bytes does not fit a buffer of %d", n, len(buf))
	}
	return n, nil
}

func (s *netlinkSocket) discard(buf []byte) error {
	// An earlier deadline would end the reads, not the socket's contents.
	if err := s.c.SetReadDeadline(time.Time{}); err != nil {
		return err
	}
	for {
		var rerr error
		if err := s.raw.Read(func(fd uintptr) bool {
			_, _, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
			return true
		}); err != nil {
			return err
		}
		switch rerr {
		case nil, unix.ENOBUFS:
		case unix.EAGAIN:
			return nil
		default:
			return rerr
		}
	}
}
