package nft

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// A tableWatch follows the kernel's nftables notifications
// (NFNLGRP_NFTABLES) in one network namespace, to tell the commits that
// touched table inet edgefw from the commits of every other tool. It is
// the package's one reader of notifications: the Applier's reads drive one
// (sync), and Changes runs one for whoever wants to hear of changes.
//
// The ruleset generation moves on every commit in the namespace: on a host
// where kube-proxy or Docker commit every few hundred milliseconds, a read
// of a large set that retried whenever the generation moved never
// finished, and a cache of set contents that trusted only an unmoved
// generation was never used. The kernel sends a commit's notifications,
// each naming its table (set elements included: see decodeObjectTable),
// and then NEWGEN with the commit's generation, all while it holds the
// commit lock: the notifications arrive in generation order, and once
// NEWGEN of generation g is read, every commit up to g is accounted for.
type tableWatch struct {
	c   *netlink.Conn
	src datagramReader
	buf []byte
	// pending holds received notifications not processed yet: sync stops
	// exactly after NEWGEN of the generation it waits for, so that the
	// commits after it count in the next window, not in this one.
	pending []notification
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
	// changed, if set, is told of every commit counted in touches, and of
	// every loss.
	changed func(TableChange)
	// process returns the process of a committing thread (threadGroup).
	process func(tid uint32) int
}

// A notification is a received message, or garbled: a datagram, or the
// rest of one, that could not be split into messages.
type notification struct {
	m       netlink.Message
	garbled bool
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
	sock, err := newNetlinkSocket(c)
	if err == nil {
		err = sock.control(func(fd int) error {
			return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, watchBufferSize)
		})
	}
	if err == nil {
		err = c.JoinGroup(unix.NFNLGRP_NFTABLES)
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("subscribe to nftables notifications: %w", err)
	}
	w := newWatch(sock, generation)
	w.c = c
	if err := w.start(); err != nil {
		c.Close()
		return nil, fmt.Errorf("subscribe to nftables notifications: %w", err)
	}
	return w, nil
}

// newWatch returns a watch reading notifications from src; start begins
// it once subscribed.
func newWatch(src datagramReader, generation func() (uint32, error)) *tableWatch {
	return &tableWatch{src: src, buf: make([]byte, 1<<20), generation: generation, process: threadGroup}
}

func (w *tableWatch) start() error {
	// Commits up to now may have notified before the subscription.
	floor, err := w.generation()
	if err != nil {
		return err
	}
	w.floor, w.done = floor, floor
	return nil
}

func (w *tableWatch) close() error {
	if w.c == nil {
		return nil
	}
	return w.c.Close()
}

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
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return fmt.Errorf("nftables notifications: none came for %v", syncWait)
			}
			return err
		}
	}
}

// receive reads what the socket holds into pending, waiting until the
// deadline (none if zero) for something to come.
func (w *tableWatch) receive(deadline time.Time) error {
	n, err := w.src.readDatagram(w.buf, deadline)
	switch {
	case errors.Is(err, unix.ENOBUFS):
		return w.overflowed()
	case errors.Is(err, os.ErrDeadlineExceeded):
		return err
	case err != nil:
		return fmt.Errorf("read nftables notifications: %w", err)
	}
	msgs, err := splitMessages(bytes.Clone(w.buf[:n]))
	for _, m := range msgs {
		w.pending = append(w.pending, notification{m: m})
	}
	if err != nil {
		w.pending = append(w.pending, notification{garbled: true})
	}
	return nil
}

// overflowed handles ENOBUFS: notifications were dropped, and which
// commits they belonged to is unknown. The socket stays congested, and the
// kernel drops every later notification without reporting ENOBUFS again,
// until its queue is empty (netlink_broadcast_deliver, netlink_rcv_wake):
// left full, it never told of another commit, and every read of the table
// waited for one until it gave up. Drain it, then take the floor: commits
// after it notify after the drain.
func (w *tableWatch) overflowed() error {
	w.losses++
	w.cur, w.pending = false, nil
	if err := w.src.discard(w.buf); err != nil {
		return fmt.Errorf("read nftables notifications: %w", err)
	}
	floor, err := w.generation()
	if err != nil {
		return err
	}
	w.floor = floor
	if w.changed != nil {
		w.changed(TableChange{Generation: floor, Lost: true})
	}
	return nil
}

// next processes one notification from pending, if it holds one.
func (w *tableWatch) next() bool {
	if len(w.pending) == 0 {
		return false
	}
	n := w.pending[0]
	w.pending[0] = notification{}
	w.pending = w.pending[1:]
	if n.garbled {
		// Whatever it was, it may have touched our table.
		w.cur = true
		return true
	}
	msg, ok := isNftables(n.m.Header.Type)
	if !ok {
		return true
	}
	if msg != unix.NFT_MSG_NEWGEN {
		if w.touchesOurTable(n.m.Data) {
			w.cur = true
		}
		return true
	}
	g, err := decodeGen(n.m.Data)
	if err != nil {
		// The commit's end cannot be placed: count its changes, if any,
		// with the next one's.
		return true
	}
	// A commit up to floor may have lost notifications, or come before the
	// subscription: readers do not rely on it (see Applier.read), and its
	// end is no touch of theirs.
	if w.cur && newer(g.id, w.floor) {
		w.touches++
		if w.changed != nil {
			w.changed(w.change(g))
		}
	}
	w.cur = false
	w.done = g.id
	return true
}

// touchesOurTable reports whether a notification is about table inet
// edgefw or something in it. One that names no table, or cannot be
// decoded, is taken as ours.
func (w *tableWatch) touchesOurTable(data []byte) bool {
	family, table, named, err := decodeObjectTable(data)
	switch {
	case err != nil:
		return true
	case family != unix.NFPROTO_INET:
		return false
	}
	return !named || table == TableName
}
