package bench

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/edgefw/edgefw/nft"
)

// getBatch is how many elements one NFT_MSG_GETSETELEM request asks for.
const getBatch = 200

// CheckElements asks the kernel, in the namespace, for the start of every
// prefix in an interval set of table inet edgefw (or its shards), by key (a lookup each,
// unlike a dump of an interval set, which walks the tree again for every
// message and takes minutes at 1M). It returns how many the kernel did
// not find. A lost element is ENOENT for its request; the requests are
// split until each missing element is found alone.
func CheckElements(ns *NS, set string, prefixes []netip.Prefix) (missing int, err error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: ns.FD()})
	if err != nil {
		return 0, fmt.Errorf("dial netfilter netlink: %w", err)
	}
	defer c.Close()
	// Every element found is a reply of its own: room for a batch's.
	if err := forceReadBuffer(c, 8<<20); err != nil {
		return 0, err
	}
	var check func(string, []netip.Prefix) error
	check = func(set string, ps []netip.Prefix) error {
		err := getElements(c, set, ps)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.ENOENT) {
			return err
		}
		if len(ps) == 1 {
			missing++
			return nil
		}
		if err := check(set, ps[:len(ps)/2]); err != nil {
			return err
		}
		return check(set, ps[len(ps)/2:])
	}
	names, err := setNames(ns)
	if err != nil {
		return 0, err
	}
	// A large set is sharded (see nft's shard.go): each prefix is looked
	// up in the kernel set that holds its start.
	bySet := map[string][]netip.Prefix{}
	var order []string
	for _, p := range prefixes {
		ks := nft.KernelSet(set, names, p.Addr())
		if _, ok := bySet[ks]; !ok {
			order = append(order, ks)
		}
		bySet[ks] = append(bySet[ks], p)
	}
	for _, ks := range order {
		ps := bySet[ks]
		for i := 0; i < len(ps); i += getBatch {
			if err := check(ks, ps[i:min(i+getBatch, len(ps))]); err != nil {
				return missing, fmt.Errorf("get elements of %s: %w", ks, err)
			}
		}
	}
	return missing, nil
}

// setNames lists the names of the sets of table inet edgefw.
func setNames(ns *NS) ([]string, error) {
	c, err := nftables.New(nftables.WithNetNSFd(ns.FD()))
	if err != nil {
		return nil, err
	}
	sets, err := c.GetSets(&nftables.Table{Name: nft.TableName, Family: nftables.TableFamilyINet})
	if err != nil {
		return nil, fmt.Errorf("list the sets of table inet %s: %w", nft.TableName, err)
	}
	names := make([]string, len(sets))
	for i, s := range sets {
		names[i] = s.Name
	}
	return names, nil
}

func getElements(c *netlink.Conn, set string, ps []netip.Prefix) error {
	ae := netlink.NewAttributeEncoder()
	ae.String(unix.NFTA_SET_ELEM_LIST_TABLE, "edgefw")
	ae.String(unix.NFTA_SET_ELEM_LIST_SET, set)
	ae.Nested(unix.NFTA_SET_ELEM_LIST_ELEMENTS, func(ae *netlink.AttributeEncoder) error {
		for _, p := range ps {
			key := p.Addr().AsSlice()
			ae.Nested(unix.NFTA_LIST_ELEM, func(ae *netlink.AttributeEncoder) error {
				ae.Nested(unix.NFTA_SET_ELEM_KEY, func(ae *netlink.AttributeEncoder) error {
					ae.Bytes(unix.NFTA_DATA_VALUE, key)
					return nil
				})
				return nil
			})
		}
		return nil
	})
	attrs, err := ae.Encode()
	if err != nil {
		return err
	}
	if _, err := c.Send(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETSETELEM), Flags: netlink.Request | netlink.Acknowledge},
		Data:   append([]byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}, attrs...),
	}); err != nil {
		return err
	}
	// One reply per element found, then the ACK (or the first error).
	for {
		msgs, err := c.Receive()
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.Header.Type == netlink.Error {
				return nil
			}
		}
	}
}

func forceReadBuffer(c *netlink.Conn, size int) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size)
	}); err != nil {
		return err
	}
	return serr
}
