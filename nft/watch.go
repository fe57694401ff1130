package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// A tableWatch follows the kernel's nftables notifications
// (NFNLGRP_NFTABLES) in one network namespace, to tell the commits that
// touched table inet edgefw from the commits of every other tool.
//
// The ruleset generation moves on every commit in the namespace: on a host
// where kube-proxy or Docker commit every few hundred milliseconds, a read
// of a large set that retried whenever the generation moved never
// finished, and a cache of set contents that trusted only an unmoved
// generation was never used. The kernel sends a commit's notifications,
// each naming its table, and then NEWGEN with the commit's generation, all
// while it holds the commit lock: the notifications arrive in generation
// order, and once NEWGEN of generation g is read, every commit up to g is
// accounted for.
type tableWatch struct {
	c   *netlink.Conn
	raw syscall.RawConn
	buf []byte
	// pending holds received notifications not processed yet: sync stops
	// exactly after NEWGEN of the generation it waits for, so that the
	// commits after it count in the next window, not in this one.
	pending []byte
	// done is the generation of the last NEWGEN processed. Commits up to
	// floor are not waited for and not counted: they may have sent their
	// notifications before the subscription began, or into an overflow.
	done, floor uint32
	// touches counts the commits after floor that touched our table;
	// losses counts overflows of the socket, after which any commit may
	// have been missed.
	touches, losses uint64
	// cur records whether the commit whose notifications are being read
	// touched our table.
	cur bool
	// generation reads the namespace's current generation.
	generation func() (uint32, error)
}

// watchBufferSize is the receive buffer of the subscription. Between two
// reads by the Applier, notifications of other tools' commits queue up in
// it; if they overflow it, the next read only costs more (set elements are
// read back instead of trusted), it is never wrong.
const watchBufferSize = 8 << 20

// syncWait bounds the wait for a commit's notifications, which the kernel
// sends before the commit returns.
const syncWait = 2 * time.Second

func openWatch(netns int, generation func() (uint32, error)) (*tableWatch, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netns})
	if err != nil {
		return nil, fmt.Errorf("dial netfilter netlink: %w", err)
	}
	w := &tableWatch{c: c, buf: make([]byte, 1<<20), generation: generation}
	if err := w.setup(); err != nil {
		c.Close()
		return nil, fmt.Errorf("subscribe to nftables notifications: %w", err)
	}
	return w, nil
}

func (w *tableWatch) setup() error {
	var err error
	if w.raw, err = w.c.SyscallConn(); err != nil {
		return err
	}
	var sockErr error
	if err := w.raw.Control(func(fd uintptr) {
		sockErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, watchBufferSize)
	}); err != nil {
		return err
	}
	if sockErr != nil {
		return sockErr
	}
	if err := w.c.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		return err
	}
	// Commits up to now may have notified before the subscription.
	if w.floor, err = w.generation(); err != nil {
		return err
	}
	w.done = w.floor
	return nil
}

func (w *tableWatch) close() error { return w.c.Close() }

// newer reports whether generation a comes after b. Generations count up
// and wrap around.
func newer(a, b uint32) bool { return int32(a-b) > 0 }

// sync processes notifications until those of every commit up to
// generation gen are processed. After an overflow, commits up to the new
// floor are not waited for; the caller sees losses move.
func (w *tableWatch) sync(gen uint32) error {
	deadline := time.Now().Add(syncWait)
	for {
		if !newer(gen, w.done) || !newer(gen, w.floor) {
			return nil
		}
		if w.next() {
			continue
		}
		if err := w.receive(deadline); err != nil {
			return err
		}
	}
}

// receive reads what the socket holds into pending, waiting until the
// deadline for something to come.
func (w *tableWatch) receive(deadline time.Time) error {
	if err := w.c.SetReadDeadline(deadline); err != nil {
		return err
	}
	var n int
	var rerr error
	err := w.raw.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), w.buf, unix.MSG_DONTWAIT)
		return rerr != unix.EAGAIN
	})
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("nftables notifications: none came for %v", syncWait)
	case err != nil:
		return err
	case rerr == unix.ENOBUFS:
		// Notifications were dropped: which commits they belonged to is
		// unknown. The socket stays congested, and the kernel drops every
		// later notification without reporting ENOBUFS again, until its
		// queue is empty (netlink_broadcast_deliver, netlink_rcv_wake):
		// left full, it never told of another commit, and every read of
		// the table waited for one until it gave up. Drain it, then take
		// the floor: commits after it notify after the drain.
		w.losses++
		w.cur, w.pending = false, nil
		if err := w.drain(); err != nil {
			return err
		}
		floor, err := w.generation()
		if err != nil {
			return err
		}
		w.floor = floor
		return nil
	case rerr != nil:
		return fmt.Errorf("read nftables notifications: %w", rerr)
	}
	w.pending = append(w.pending, w.buf[:n]...)
	return nil
}

// drain discards what the socket holds, until a read finds it empty.
func (w *tableWatch) drain() error {
	for {
		var rerr error
		if err := w.raw.Read(func(fd uintptr) bool {
			_, _, rerr = unix.Recvfrom(int(fd), w.buf, unix.MSG_DONTWAIT)
			return true
		}); err != nil {
			return err
		}
		switch rerr {
		case nil, unix.ENOBUFS:
		case unix.EAGAIN:
			return nil
		default:
			return fmt.Errorf("read nftables notifications: %w", rerr)
		}
	}
}

// next processes one notification from pending, if it holds one.
func (w *tableWatch) next() bool {
	if len(w.pending) < 16 {
		return false
	}
	l := binary.NativeEndian.Uint32(w.pending[0:4])
	if l < 16 || int(l) > len(w.pending) {
		// Datagrams hold whole messages: this cannot be parsed, and
		// whatever it was, it may have touched our table.
		w.pending, w.cur = nil, true
		return false
	}
	typ := binary.NativeEndian.Uint16(w.pending[4:6])
	body := w.pending[16:l]
	w.pending = w.pending[min(int(nlmsgAlign(l)), len(w.pending)):]
	if len(w.pending) == 0 {
		w.pending = nil
	}
	if typ>>8 != unix.NFNL_SUBSYS_NFTABLES {
		return true
	}
	if typ&0xff == unix.NFT_MSG_NEWGEN {
		if gen, ok := genID(body); ok {
			// A commit up to floor may have lost notifications, or come
			// before the subscription: readers do not rely on it (see
			// Applier.read), and its end is no touch of theirs.
			if w.cur && newer(gen, w.floor) {
				w.touches++
			}
			w.cur = false
			w.done = gen
		}
		return true
	}
	if touchesOurTable(body) {
		w.cur = true
	}
	return true
}

// genID reads NFTA_GEN_ID of a NEWGEN notification.
func genID(body []byte) (uint32, bool) {
	if len(body) < 4 {
		return 0, false
	}
	ad, err := netlink.NewAttributeDecoder(body[4:])
	if err != nil {
		return 0, false
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		if ad.Type() == unix.NFTA_GEN_ID {
			return ad.Uint32(), true
		}
	}
	return 0, false
}

// touchesOurTable reports whether a notification is about table inet
// edgefw or something in it. Every nftables object message carries its
// table's name as attribute 1 (NFTA_TABLE_NAME, NFTA_CHAIN_TABLE,
// NFTA_RULE_TABLE, NFTA_SET_TABLE, NFTA_SET_ELEM_LIST_TABLE,
// NFTA_OBJ_TABLE, NFTA_FLOWTABLE_TABLE); one without it is taken as ours.
func touchesOurTable(body []byte) bool {
	if len(body) < 4 {
		return true
	}
	if body[0] != unix.NFPROTO_INET {
		return false
	}
	ad, err := netlink.NewAttributeDecoder(body[4:])
	if err != nil {
		return true
	}
	for ad.Next() {
		if ad.Type() == 1 {
			return ad.String() == TableName
		}
	}
	return true
}
