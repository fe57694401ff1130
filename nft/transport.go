package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// A batch collects the netlink messages of one transaction, each tagged
// with what it does, so that a kernel error can name the rule, set or
// chain it came from.
//
// Messages are built by an nftables.Conn whose socket is a recorder
// (WithTestDial): google/nftables encodes every object, and the batch is
// then sent on a socket of our own. That gives three things its Flush
// lacks: the failing message of a rejected transaction, buffers sized to
// the batch (its defaults overflow at about 10k set elements, see LAB.md),
// and an exact count of what is written.
type batch struct {
	conn     *nftables.Conn
	recorded []netlink.Message
	msgs     []netlink.Message
	what     []string
	setIDs   uint32
}

func newBatch() (*batch, error) {
	b := &batch{}
	conn, err := nftables.New(nftables.WithTestDial(b.record))
	if err != nil {
		return nil, err
	}
	b.conn = conn
	return b, nil
}

// record is the recorder socket: it keeps what is sent and acknowledges
// every message so that Flush believes it succeeded.
func (b *batch) record(req []netlink.Message) ([]netlink.Message, error) {
	if req != nil {
		b.recorded = append(b.recorded, req...)
		return nil, nil
	}
	return []netlink.Message{{Header: netlink.Header{Type: netlink.Error}, Data: make([]byte, 20)}}, nil
}

// add queues the messages that f produces, tagged with what.
func (b *batch) add(what string, f func(c *nftables.Conn) error) error {
	if err := f(b.conn); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	b.recorded = b.recorded[:0]
	if err := b.conn.Flush(); err != nil {
		return fmt.Errorf("%s: encode: %w", what, err)
	}
	for _, m := range b.recorded {
		if isBatchDelimiter(m.Header.Type) {
			continue
		}
		// Sequence numbers are assigned afresh by the socket that sends.
		m.Header.Sequence, m.Header.Length, m.Header.PID = 0, 0, 0
		// google/nftables asks the kernel to echo every rule it adds
		// (NLM_F_ECHO), for its handle. We do not read the echoes, and a
		// batch of 10,000 rules filled the receive buffer with them, so
		// that the transaction's acknowledgement was dropped and its
		// outcome never came (with anyone subscribed to nftables
		// notifications, the echoes take more room).
		m.Header.Flags &^= netlink.Echo
		b.msgs = append(b.msgs, m)
		b.what = append(b.what, what)
	}
	return nil
}

// addSet queues a set and its elements. Its ID, which rules of the same
// transaction may refer to it by, is numbered by the batch: google/nftables
// numbers sets it gives an ID with a package variable that concurrent
// Appliers would race on, and a duplicate ID could make a rule look up
// another rule's anonymous set.
//
// Elements go maxElemsPerMessage to a message (see there), also for an
// anonymous set: the kernel takes elements for it until a rule binds it,
// later in the same transaction. google/nftables refuses to add elements
// to an anonymous set, so those messages are made for a copy of the set
// not marked anonymous; they name the set by its ID all the same.
func (b *batch) addSet(c *nftables.Conn, s *nftables.Set, elems []nftables.SetElement) error {
	b.setIDs++
	s.ID = b.setIDs
	if s.Anonymous {
		s.Name = "__set%d" // the kernel names it
	}
	first := elems[:min(len(elems), maxElemsPerMessage)]
	if s.Constant && len(elems) > len(first) {
		// A constant set is sized by the elements given with it, and
		// refuses more (ENFILE) unless told its full size.
		s.Size = uint32(len(elems))
	}
	if err := c.AddSet(s, first); err != nil {
		return err
	}
	rest := *s
	rest.Anonymous = false
	return addElements(c, &rest, elems[len(first):])
}

func isBatchDelimiter(t netlink.HeaderType) bool {
	return t == unix.NFNL_MSG_BATCH_BEGIN || t == unix.NFNL_MSG_BATCH_END
}

// Len is the number of messages queued.
func (b *batch) Len() int { return len(b.msgs) }

// KernelError is a transaction the kernel rejected. Nothing of it was
// applied: nftables transactions are all or nothing.
type KernelError struct {
	// What names the object whose message failed, e.g. `rule "ssh" in chain input`.
	What  string
	Errno syscall.Errno
	// Message is the kernel's extended ack message, if it gave one.
	Message string
}

// Error implements error.
func (e *KernelError) Error() string {
	s := fmt.Sprintf("kernel rejected %s: %v", e.What, e.Errno)
	if e.Message != "" {
		s += " (" + e.Message + ")"
	}
	return s
}

// Unwrap lets errors.Is match the errno.
func (e *KernelError) Unwrap() error { return e.Errno }

// send writes the batch as one transaction on a netfilter socket in the
// given network namespace (0: the caller's) and waits for its outcome.
//
// Only the last message asks for an acknowledgement. The kernel reports
// every failing message anyway, in order, before the acknowledgement of
// the last one; acknowledging all of them would queue one reply per
// message at once, and a batch of some 10,000 messages overflowed the
// receive buffer with ENOBUFS after a commit that had succeeded.
func (b *batch) send(netns int) error {
	if len(b.msgs) == 0 {
		return nil
	}
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netns})
	if err != nil {
		return fmt.Errorf("dial netfilter netlink: %w", err)
	}
	defer c.Close()
	size := 0
	for _, m := range b.msgs {
		size += int(nlmsgAlign(uint32(16 + len(m.Data))))
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var sockErr error
	if err := raw.Control(func(fd uintptr) {
		// The whole batch goes in one sendmsg; the kernel refuses it with
		// EMSGSIZE unless the send buffer holds it. Errors can be many
		// when many messages fail; beyond the receive buffer they are
		// dropped silently (NO_ENOBUFS): the first ones are what matter.
		sockErr = errors.Join(
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, size+1<<20),
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20),
			unix.SetsockoptInt(int(fd), unix.SOL_NETLINK, unix.NETLINK_NO_ENOBUFS, 1),
			unix.SetsockoptInt(int(fd), unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1),
			unix.SetsockoptInt(int(fd), unix.SOL_NETLINK, unix.NETLINK_EXT_ACK, 1))
	}); err != nil {
		return err
	}
	if sockErr != nil {
		return fmt.Errorf("configure netlink socket: %w", sockErr)
	}

	msgs := make([]netlink.Message, 0, len(b.msgs)+2)
	msgs = append(msgs, delimiter(unix.NFNL_MSG_BATCH_BEGIN))
	for i, m := range b.msgs {
		if i == len(b.msgs)-1 {
			m.Header.Flags |= netlink.Acknowledge
		} else {
			m.Header.Flags &^= netlink.Acknowledge
		}
		msgs = append(msgs, m)
	}
	msgs = append(msgs, delimiter(unix.NFNL_MSG_BATCH_END))
	sent, err := c.SendMessages(msgs)
	if err != nil {
		return fmt.Errorf("send transaction of %d messages: %w", len(msgs), err)
	}
	bySeq := make(map[uint32]int, len(sent))
	for i, m := range sent {
		bySeq[m.Header.Sequence] = i - 1 // index into b.msgs; -1: the batch itself
	}
	return b.awaitOutcome(c, raw, bySeq, sent[len(sent)-2].Header.Sequence)
}

func delimiter(t uint16) netlink.Message {
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(t), Flags: netlink.Request},
		// struct nfgenmsg: family unspec, version 0, res_id NFNL_SUBSYS_NFTABLES.
		Data: []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES},
	}
}

func nlmsgAlign(n uint32) uint32 { return (n + 3) &^ 3 }

// awaitOutcome reads the kernel's replies until the last message's
// acknowledgement (or error), or an error about the batch as a whole. The
// first error names the transaction's failure. Should the last reply have
// been dropped for want of buffer space, a short deadline after the first
// error ends the wait.
func (b *batch) awaitOutcome(c *netlink.Conn, raw syscall.RawConn, bySeq map[uint32]int, lastSeq uint32) error {
	buf := make([]byte, 1<<16)
	var first *KernelError
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := c.SetReadDeadline(deadline); err != nil {
			return err
		}
		var n int
		var rerr error
		err := raw.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
			return rerr != unix.EAGAIN
		})
		if err != nil {
			if first != nil && errors.Is(err, os.ErrDeadlineExceeded) {
				return first
			}
			return fmt.Errorf("read the transaction's outcome: %w", err)
		}
		if rerr != nil {
			return fmt.Errorf("read the transaction's outcome: %w", rerr)
		}
		for data := buf[:n]; len(data) >= 16; {
			l := binary.NativeEndian.Uint32(data[0:4])
			if l < 16 || int(l) > len(data) {
				break
			}
			typ := binary.NativeEndian.Uint16(data[4:6])
			flags := binary.NativeEndian.Uint16(data[6:8])
			body := data[16:l]
			data = data[min(int(nlmsgAlign(l)), len(data)):]
			if typ != unix.NLMSG_ERROR || len(body) < 20 {
				continue
			}
			errno := int32(binary.NativeEndian.Uint32(body[0:4]))
			seq := binary.NativeEndian.Uint32(body[4+8 : 4+12])
			i, known := bySeq[seq]
			if errno != 0 && first == nil {
				first = &KernelError{What: "the transaction", Errno: syscall.Errno(-errno), Message: extAckMessage(body, flags)}
				if known && i >= 0 && i < len(b.what) {
					first.What = b.what[i]
				}
				deadline = time.Now().Add(500 * time.Millisecond)
			}
			if seq == lastSeq || (errno != 0 && (!known || i < 0)) {
				if first != nil {
					return first
				}
				return nil
			}
		}
	}
}

// extAckMessage returns NLMSGERR_ATTR_MSG of an error message, if present.
func extAckMessage(body []byte, flags uint16) string {
	const (
		nlmFCapped  = 0x100
		nlmFAckTLVs = 0x200
		attrMsg     = 1
	)
	if flags&nlmFAckTLVs == 0 {
		return ""
	}
	off := 20 // errno + the request's header
	if flags&nlmFCapped == 0 {
		off = 4 + int(binary.NativeEndian.Uint32(body[4:8]))
	}
	for off+4 <= len(body) {
		l := int(binary.NativeEndian.Uint16(body[off : off+2]))
		t := binary.NativeEndian.Uint16(body[off+2:off+4]) & 0x3fff
		if l < 4 || off+l > len(body) {
			break
		}
		if t == attrMsg {
			v := body[off+4 : off+l]
			for len(v) > 0 && v[len(v)-1] == 0 {
				v = v[:len(v)-1]
			}
			return string(v)
		}
		off += int(nlmsgAlign(uint32(l)))
	}
	return ""
}
