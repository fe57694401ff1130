package nft

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Counters are read at every Prometheus scrape, and a scrape's budget is a
// few milliseconds. google/nftables' GetObjects took 2.3 to 3.3 ms for a
// thousand counters: a new socket per call, a page-sized receive buffer
// (so many small datagrams) and every object unmarshalled through its
// generic decoder. A counterReader asks for the counter objects of our
// table only (the kernel filters the dump by table and type) on one socket
// kept open across reads, with a buffer the kernel fills with 32 KiB
// datagrams, and decodes only each counter's name, packets and bytes.

// counterReader reads the named counters of table inet edgefw in one
// namespace. It is safe for concurrent use: reads take turns on its socket.
type counterReader struct {
	netns int // 0: the caller's

	mu   sync.Mutex
	conn *netlink.Conn // nil until the first read, and after a failed one
	sock *netlinkSocket
	buf  []byte
	// last is how many counters the last read found: the next read's map
	// is made that big rather than grown a thousand counters at a time.
	last int
}

// Counters reads every named counter of the table in one netlink dump.
// It does not read set elements, so it stays fast with large sets.
func (k *netlinkKernel) Counters() (map[string]Counter, error) {
	return k.counters.read()
}

// read dumps the counters. A socket that failed is closed, whatever it
// still holds with it, and the next read opens a new one.
func (r *counterReader) read() (map[string]Counter, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out, err := r.readLocked()
	if err != nil && !errors.Is(err, ErrNoTable) {
		r.closeLocked()
	}
	return out, err
}

func (r *counterReader) readLocked() (map[string]Counter, error) {
	if r.conn == nil {
		c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: r.netns})
		if err != nil {
			return nil, fmt.Errorf("dial netfilter netlink: %w", err)
		}
		sock, err := newNetlinkSocket(c)
		if err != nil {
			c.Close()
			return nil, err
		}
		r.conn, r.sock = c, sock
		if r.buf == nil {
			r.buf = make([]byte, dumpBufferSize)
		}
	}
	req, err := r.conn.Send(counterDumpRequest())
	if err != nil {
		return nil, fmt.Errorf("request counters: %w", err)
	}
	out, err := readCounters(r.sock, r.buf, req.Header.Sequence, r.last)
	if err != nil {
		return nil, fmt.Errorf("read counters: %w", err)
	}
	r.last = len(out)
	if len(out) > 0 {
		return out, nil
	}
	// A dump filtered by a table that does not exist is empty rather than
	// an error: ask for the table itself.
	req, err = r.conn.Send(tableRequest())
	if err != nil {
		return nil, fmt.Errorf("request table inet %s: %w", TableName, err)
	}
	exists, err := readTableReply(r.sock, r.buf, req.Header.Sequence)
	if err != nil {
		return nil, fmt.Errorf("read table inet %s: %w", TableName, err)
	}
	if !exists {
		return nil, ErrNoTable
	}
	return out, nil
}

// close closes the socket; the next read opens another.
func (r *counterReader) close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closeLocked()
}

func (r *counterReader) closeLocked() error {
	if r.conn == nil {
		return nil
	}
	err := r.conn.Close()
	r.conn, r.sock = nil, nil
	return err
}

// counterDumpRequest asks for the counter objects of table inet edgefw:
// nf_tables_dump_obj filters by family (nfgenmsg), table (NFTA_OBJ_TABLE)
// and type (NFTA_OBJ_TYPE), so quotas and limits, and other tables'
// counters, are not sent at all.
func counterDumpRequest() netlink.Message {
	// Encoding two fixed attributes cannot fail.
	attrs, _ := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_OBJ_TABLE, Data: []byte(TableName + "\x00")},
		{Type: unix.NFTA_OBJ_TYPE, Data: []byte{0, 0, 0, unix.NFT_OBJECT_COUNTER}},
	})
	return netlink.Message{
		Header: netlink.Header{Type: nftType(unix.NFT_MSG_GETOBJ), Flags: netlink.Request | netlink.Dump},
		Data:   append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, attrs...),
	}
}

// tableRequest asks for table inet edgefw: the reply is the table, or
// ENOENT.
func tableRequest() netlink.Message {
	attrs, _ := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_TABLE_NAME, Data: []byte(TableName + "\x00")},
	})
	return netlink.Message{
		Header: netlink.Header{Type: nftType(unix.NFT_MSG_GETTABLE), Flags: netlink.Request | netlink.Acknowledge},
		Data:   append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, attrs...),
	}
}

// readCounters reads the replies to the counter dump request seq up to the
// NLMSG_DONE that ends them, into a map made for about n counters. An
// interrupted dump is read to its end: each counter's value is as the
// kernel read it, and which counters exist is the ruleset's to say.
func readCounters(sock datagramReader, buf []byte, seq uint32, n int) (map[string]Counter, error) {
	out := make(map[string]Counter, n)
	err := readReplies(sock, buf, seq, func(m netlink.Message) error {
		if m.Header.Type != nftType(unix.NFT_MSG_NEWOBJ) {
			return nil
		}
		name, c, err := decodeCounter(m.Data)
		if err != nil {
			return err
		}
		out[name] = c
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// readTableReply reads the reply to the table request seq: whether the
// table exists.
func readTableReply(sock datagramReader, buf []byte, seq uint32) (bool, error) {
	exists := false
	err := readReplies(sock, buf, seq, func(m netlink.Message) error {
		if m.Header.Type == nftType(unix.NFT_MSG_NEWTABLE) {
			exists = true
		}
		return nil
	})
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	return exists, err
}

// readReplies passes each reply to the request seq to f, up to the
// NLMSG_DONE that ends a dump or the NLMSG_ERROR that acknowledges or
// refuses a request; a refusal or a failed dump is its errno. Replies to
// other requests are skipped.
func readReplies(sock datagramReader, buf []byte, seq uint32, f func(netlink.Message) error) error {
	for {
		n, err := sock.readDatagram(buf, time.Now().Add(dumpReplyWait))
		if err != nil {
			return err
		}
		msgs, err := splitMessages(buf[:n])
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.Header.Sequence != seq {
				continue
			}
			switch m.Header.Type {
			case netlink.Done:
				errno, err := decodeDone(m)
				if err != nil {
					return err
				}
				if errno != 0 {
					return errno
				}
				return nil
			case netlink.Error:
				a, err := decodeAck(m)
				if err != nil {
					return err
				}
				if a.errno != 0 {
					return a.errno
				}
				return nil
			default:
				if err := f(m); err != nil {
					return err
				}
			}
		}
	}
}

// decodeCounter decodes an NFT_MSG_NEWOBJ of a counter dump of table inet
// edgefw: the counter's name and values (struct nft_counter's packets and
// bytes, big-endian 64-bit, in NFTA_OBJ_DATA).
func decodeCounter(data []byte) (name string, c Counter, err error) {
	family, ad, err := nfgen(data)
	if err != nil {
		return "", c, err
	}
	if family != unix.NFPROTO_INET {
		return "", c, malformed("object of family %d", family)
	}
	var table string
	var typ uint32
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_OBJ_TABLE:
			table = ad.String()
		case unix.NFTA_OBJ_NAME:
			name = ad.String()
		case unix.NFTA_OBJ_TYPE:
			typ = ad.Uint32()
		case unix.NFTA_OBJ_DATA:
			ad.Nested(func(d *netlink.AttributeDecoder) error {
				for d.Next() {
					switch d.Type() {
					case unix.NFTA_COUNTER_PACKETS:
						c.Packets = d.Uint64()
					case unix.NFTA_COUNTER_BYTES:
						c.Bytes = d.Uint64()
					}
				}
				return nil
			})
		}
	}
	if err := ad.Err(); err != nil {
		return "", Counter{}, malformed("object: %v", err)
	}
	if table != TableName || typ != unix.NFT_OBJECT_COUNTER || name == "" {
		return "", Counter{}, malformed("object %q of type %d of table %q in a counter dump of table %s", name, typ, table, TableName)
	}
	return name, c, nil
}
