package nft

import (
	"errors"
	"fmt"
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
	// own holds the messages an op encodes itself (set elements, see
	// rangeMessages), which follow those google/nftables encodes for it.
	own []netlink.Message
}

func newBatch() (*batch, error) {
	b := &batch{}
	conn, err := nftables.New(nftables.WithTestDial(b.record), nftables.AsLasting())
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
	return b.take(what)
}

// take queues the messages queued on b.conn so far, tagged with what.
func (b *batch) take(what string) error {
	b.recorded = b.recorded[:0]
	if err := b.conn.Flush(); err != nil {
		return fmt.Errorf("%s: encode: %w", what, err)
	}
	for _, m := range b.recorded {
		if isBatchDelimiter(m.Header.Type) {
			continue
		}
		b.queue(what, m)
	}
	for _, m := range b.own {
		b.msgs = append(b.msgs, m)
		b.what = append(b.what, what)
	}
	b.own = b.own[:0]
	return nil
}

// addRanges queues the element messages (msg: NFT_MSG_NEWSETELEM or
// NFT_MSG_DELSETELEM) of ranges of a named set, after what the op has
// queued through google/nftables.
func (b *batch) addRanges(msg int, s *nftables.Set, rs []AddrRange) {
	b.own = append(b.own, rangeMessages(msg, s.Name, s.ID, rs)...)
}

// queue queues one message, tagged with what.
func (b *batch) queue(what string, m netlink.Message) {
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
	// Offset is where in the failing message the attribute the kernel
	// refused begins, in bytes from the message's header, if it said.
	Offset int
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
	sock, err := newNetlinkSocket(c)
	if err != nil {
		return err
	}
	if err := sock.control(func(fd int) error {
		// The whole batch goes in one sendmsg; the kernel refuses it with
		// EMSGSIZE unless the send buffer holds it. Errors can be many
		// when many messages fail; beyond the receive buffer they are
		// dropped silently (NO_ENOBUFS): the first ones are what matter.
		return errors.Join(
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, size+1<<20),
			unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20),
			unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_NO_ENOBUFS, 1),
			unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1),
			unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_EXT_ACK, 1))
	}); err != nil {
		return fmt.Errorf("configure netlink socket: %w", err)
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
	return b.awaitOutcome(sock, bySeq, sent[len(sent)-2].Header.Sequence)
}

func delimiter(t uint16) netlink.Message {
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(t), Flags: netlink.Request},
		// struct nfgenmsg: family unspec, version 0, res_id NFNL_SUBSYS_NFTABLES.
		Data: []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES},
	}
}

func nlmsgAlign(n uint32) uint32 { return (n + 3) &^ 3 }

// outcomeWait bounds the wait for a transaction's outcome, and
// moreErrorsWait the wait for the last message's reply once an error has
// come (it may have been dropped for want of buffer space).
const (
	outcomeWait    = 30 * time.Second
	moreErrorsWait = 500 * time.Millisecond
)

// awaitOutcome reads the kernel's replies until the last message's
// acknowledgement (or error), or an error about the batch as a whole.
// bySeq maps sequence numbers to indexes into b.msgs (-1: a batch
// delimiter). The first error names the transaction's failure: nothing of
// it was applied, whatever else the socket says afterwards.
func (b *batch) awaitOutcome(sock datagramReader, bySeq map[uint32]int, lastSeq uint32) error {
	buf := make([]byte, 1<<16)
	var first *KernelError
	deadline := time.Now().Add(outcomeWait)
	for {
		n, err := sock.readDatagram(buf, deadline)
		if err != nil {
			if first != nil {
				return first
			}
			return fmt.Errorf("read the transaction's outcome: %w", err)
		}
		msgs, err := splitMessages(buf[:n])
		if err != nil {
			// Replies come in order: a garbled one may have been the
			// outcome, and whether the transaction applied is unknown.
			return fmt.Errorf("read the transaction's outcome: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Type != netlink.Error {
				continue
			}
			a, err := decodeAck(m)
			if err != nil {
				return fmt.Errorf("read the transaction's outcome: %w", err)
			}
			i, known := bySeq[a.seq]
			if a.errno != 0 && first == nil {
				first = &KernelError{What: "the transaction", Errno: a.errno, Message: a.message, Offset: int(a.offset)}
				if known && i >= 0 && i < len(b.what) {
					first.What = b.what[i]
				}
				deadline = time.Now().Add(moreErrorsWait)
			}
			if a.seq == lastSeq || (a.errno != 0 && (!known || i < 0)) {
				if first != nil {
					return first
				}
				return nil
			}
		}
	}
}
