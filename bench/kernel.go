package bench

import (
	"fmt"

	"github.com/google/nftables"
)

// CountRanges reads a set of table inet edgefw back from the kernel in
// the namespace and returns how many ranges (interval starts) it holds.
// It reads through netlink: the nft CLI takes minutes at 1M elements.
func CountRanges(ns *NS, set string) (int, error) {
	c, err := nftables.New(nftables.WithNetNSFd(ns.FD()), nftables.AsLasting())
	if err != nil {
		return 0, err
	}
	defer c.CloseLasting()
	s, err := c.GetSetByName(&nftables.Table{Name: "edgefw", Family: nftables.TableFamilyINet}, set)
	if err != nil {
		return 0, fmt.Errorf("get set %s: %w", set, err)
	}
	elems, err := c.GetSetElements(s)
	if err != nil {
		return 0, fmt.Errorf("get elements of %s: %w", set, err)
	}
	n := 0
	for _, e := range elems {
		if !e.IntervalEnd {
			n++
		}
	}
	return n, nil
}
