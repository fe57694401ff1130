package nft

import (
	"fmt"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// dumpBufferSize is the buffer a set's elements are read with. The kernel
// sizes each message of a dump by the reader's last buffer (up to 32 KiB),
// and resumes an interval set's dump by walking its tree from the start:
// with the page-sized buffer google/nftables reads with, a 100,000-range
// set took 20 to 40 s to read, and about eight times less with this one.
const dumpBufferSize = 1 << 20

// dumpSetElements reads the elements of a named set of table inet edgefw
// in the namespace netns (0: the caller's).
func dumpSetElements(netns int, set string) ([]nftables.SetElement, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: netns})
	if err != nil {
		return nil, fmt.Errorf("dial netfilter netlink: %w", err)
	}
	defer c.Close()
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_SET_ELEM_LIST_TABLE, Data: []byte(TableName + "\x00")},
		{Type: unix.NFTA_SET_ELEM_LIST_SET, Data: []byte(set + "\x00")},
	})
	if err != nil {
		return nil, err
	}
	req, err := c.Send(netlink.Message{
		Header: netlink.Header{Type: nftType(unix.NFT_MSG_GETSETELEM), Flags: netlink.Request | netlink.Dump},
		Data:   append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, attrs...),
	})
	if err != nil {
		return nil, fmt.Errorf("request elements of set %s: %w", set, err)
	}
	sock, err := newNetlinkSocket(c)
	if err != nil {
		return nil, err
	}
	elems, err := readSetElements(sock, req.Header.Sequence, set)
	if err != nil {
		return nil, fmt.Errorf("read elements of set %s: %w", set, err)
	}
	return elems, nil
}

// dumpReplyWait bounds the wait for each part of a dump: the kernel
// answers at once, however long the whole dump takes.
const dumpReplyWait = 30 * time.Second

// readSetElements reads the replies to the element dump request seq of
// set, up to the NLMSG_DONE that ends them.
//
// A dump the kernel marks interrupted (NLM_F_DUMP_INTR: the ruleset
// generation moved while it ran) is read to its end all the same: any
// commit moves the generation, and on a host where other tools commit
// every few milliseconds a large set's dump would never end uninterrupted.
// Whether a commit touched our table meanwhile is the Applier's read's to
// tell, from nftables notifications (see tableWatch).
func readSetElements(sock datagramReader, seq uint32, set string) ([]nftables.SetElement, error) {
	buf := make([]byte, dumpBufferSize)
	var out []nftables.SetElement
	for {
		n, err := sock.readDatagram(buf, time.Now().Add(dumpReplyWait))
		if err != nil {
			return nil, err
		}
		msgs, err := splitMessages(buf[:n])
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			if m.Header.Sequence != seq {
				continue
			}
			switch m.Header.Type {
			case netlink.Done:
				errno, err := decodeDone(m)
				if err != nil {
					return nil, err
				}
				if errno != 0 {
					return nil, errno
				}
				return out, nil
			case netlink.Error:
				a, err := decodeAck(m)
				if err != nil {
					return nil, err
				}
				if a.errno != 0 {
					return nil, a.errno
				}
				return out, nil
			case nftType(unix.NFT_MSG_NEWSETELEM):
				if out, err = decodeSetElems(out, m.Data, set); err != nil {
					return nil, err
				}
			}
		}
	}
}
