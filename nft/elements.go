package nft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

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
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETSETELEM),
			Flags: netlink.Request | netlink.Dump,
		},
		Data: append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, attrs...),
	})
	if err != nil {
		return nil, fmt.Errorf("request elements of set %s: %w", set, err)
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, dumpBufferSize)
	var out []nftables.SetElement
	for {
		var n int
		var rerr error
		if err := raw.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), buf, 0)
			return rerr != unix.EAGAIN
		}); err != nil {
			return nil, err
		}
		if rerr != nil {
			return nil, fmt.Errorf("read elements of set %s: %w", set, rerr)
		}
		for data := buf[:n]; len(data) >= 16; {
			l := binary.NativeEndian.Uint32(data[0:4])
			if l < 16 || int(l) > len(data) {
				return nil, fmt.Errorf("read elements of set %s: malformed netlink message", set)
			}
			typ := binary.NativeEndian.Uint16(data[4:6])
			seq := binary.NativeEndian.Uint32(data[8:12])
			body := data[16:l]
			data = data[min(int(nlmsgAlign(l)), len(data)):]
			if seq != req.Header.Sequence {
				continue
			}
			switch typ {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				if len(body) < 4 {
					return nil, errors.New("short netlink error message")
				}
				if errno := int32(binary.NativeEndian.Uint32(body[0:4])); errno != 0 {
					return nil, fmt.Errorf("read elements of set %s: %w", set, syscall.Errno(-errno))
				}
				return out, nil
			}
			if len(body) < 4 {
				continue
			}
			if out, err = appendElements(out, body[4:]); err != nil {
				return nil, fmt.Errorf("read elements of set %s: %w", set, err)
			}
		}
	}
}

// appendElements decodes the element list of one NFT_MSG_NEWSETELEM.
func appendElements(out []nftables.SetElement, attrs []byte) ([]nftables.SetElement, error) {
	ad, err := netlink.NewAttributeDecoder(attrs)
	if err != nil {
		return nil, err
	}
	for ad.Next() {
		if ad.Type() != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
			continue
		}
		ad.Nested(func(list *netlink.AttributeDecoder) error {
			for list.Next() {
				if list.Type() != unix.NFTA_LIST_ELEM {
					continue
				}
				var e nftables.SetElement
				list.Nested(func(el *netlink.AttributeDecoder) error {
					el.ByteOrder = binary.BigEndian
					for el.Next() {
						switch el.Type() {
						case unix.NFTA_SET_ELEM_KEY:
							el.Nested(func(key *netlink.AttributeDecoder) error {
								for key.Next() {
									if key.Type() == unix.NFTA_DATA_VALUE {
										e.Key = key.Bytes()
									}
								}
								return nil
							})
						case unix.NFTA_SET_ELEM_FLAGS:
							e.IntervalEnd = el.Uint32()&unix.NFT_SET_ELEM_INTERVAL_END != 0
						}
					}
					return nil
				})
				out = append(out, e)
			}
			return nil
		})
	}
	return out, ad.Err()
}
