package wg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// A tunnel with a thousand peers has a thousand routes. Sent one request
// at a time, each waiting for its answer, they took 100 to 170 µs each
// on the lab machines, about half of what configuring the peers
// themselves took. routeBatch sends them in batches, one sendmsg each,
// and then reads the kernel's answers, one per route, by sequence
// number: each route still succeeds or fails on its own.

// routeBatchSize is how many route messages go out before their answers
// are read. Each answer takes about a kilobyte of the socket's receive
// buffer (208 KiB by default), which answers to a batch must not overflow
// (ENOBUFS would lose them).
const routeBatchSize = 128

// routeReplyBuffer holds the answers to one batch. An error answer
// carries the request it refuses (about 60 bytes).
const routeReplyBuffer = 64 << 10

// nlmsgHeaderLen, rtmsgLen: sizes of struct nlmsghdr and struct rtmsg.
const (
	nlmsgHeaderLen = 16
	rtmsgLen       = 12
)

// changeRoutes adds (or deletes) a main-table route marked RouteProtocol
// through the link of index ifindex for every prefix of dsts, as route()
// describes it, and returns one error per prefix (nil where the kernel
// accepted it), or an error of the socket, after which nothing more is
// known.
func changeRoutes(ifindex int, add bool, dsts []netip.Prefix) ([]error, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open rtnetlink socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("bind rtnetlink socket: %w", err)
	}
	errs := make([]error, len(dsts))
	reply := make([]byte, routeReplyBuffer)
	for start := 0; start < len(dsts); start += routeBatchSize {
		batch := dsts[start:min(start+routeBatchSize, len(dsts))]
		var req []byte
		for i, dst := range batch {
			req = appendRouteMessage(req, uint32(start+i+1), ifindex, add, dst)
		}
		if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return nil, fmt.Errorf("send %d route changes: %w", len(batch), err)
		}
		if err := readRouteAnswers(fd, reply, start, len(batch), errs); err != nil {
			return nil, err
		}
	}
	return errs, nil
}

// readRouteAnswers reads the answers to the n messages of sequence
// numbers first+1 to first+n into errs[first:first+n].
func readRouteAnswers(fd int, buf []byte, first, n int, errs []error) error {
	for answered := 0; answered < n; {
		got, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read route answers: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:got])
		if err != nil {
			return fmt.Errorf("parse route answers: %w", err)
		}
		for _, m := range msgs {
			i := int(m.Header.Seq) - 1
			if m.Header.Type != unix.NLMSG_ERROR || i < first || i >= first+n || len(m.Data) < 4 {
				continue
			}
			if errno := -int32(binary.NativeEndian.Uint32(m.Data[:4])); errno != 0 {
				errs[i] = syscall.Errno(errno)
			}
			answered++
		}
	}
	return nil
}

// appendRouteMessage appends an RTM_NEWROUTE (NLM_F_CREATE|NLM_F_EXCL, as
// `ip route add`) or RTM_DELROUTE request of sequence number seq for dst
// through the link ifindex: what netlinkLinks.route describes.
func appendRouteMessage(b []byte, seq uint32, ifindex int, add bool, dst netip.Prefix) []byte {
	typ, flags := uint16(unix.RTM_DELROUTE), uint16(unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	if add {
		typ, flags = unix.RTM_NEWROUTE, flags|unix.NLM_F_CREATE|unix.NLM_F_EXCL
	}
	dst = dst.Masked()
	addr := dst.Addr().AsSlice()
	family, scope := byte(unix.AF_INET6), byte(unix.RT_SCOPE_UNIVERSE)
	if dst.Addr().Is4() {
		// What `ip route add PREFIX dev wg0` chooses for a device route.
		family, scope = unix.AF_INET, unix.RT_SCOPE_LINK
	}
	dstAttr := rtattrLen(len(addr))
	length := nlmsgHeaderLen + rtmsgLen + dstAttr + rtattrLen(4)
	start := len(b)
	b = binary.NativeEndian.AppendUint32(b, uint32(length))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, seq)
	b = binary.NativeEndian.AppendUint32(b, 0) // port id: the kernel's
	b = append(b, family, byte(dst.Bits()), 0, 0, unix.RT_TABLE_MAIN, RouteProtocol, scope, unix.RTN_UNICAST)
	b = binary.NativeEndian.AppendUint32(b, 0) // rtm_flags
	b = appendRtattr(b, unix.RTA_DST, addr)
	b = appendRtattr(b, unix.RTA_OIF, binary.NativeEndian.AppendUint32(nil, uint32(ifindex)))
	if len(b)-start != length {
		panic("wg: route message length")
	}
	return b
}

// rtattrLen is the aligned size of an attribute holding n bytes.
func rtattrLen(n int) int { return (4 + n + 3) &^ 3 }

func appendRtattr(b []byte, typ uint16, data []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(4+len(data)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for range rtattrLen(len(data)) - 4 - len(data) {
		b = append(b, 0)
	}
	return b
}
