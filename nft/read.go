package nft

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Counter is the value of one named counter.
type Counter struct {
	Packets uint64
	Bytes   uint64
}

// ErrNoTable is returned when table inet edgefw does not exist.
var ErrNoTable = errors.New("table inet " + TableName + " does not exist")

// Counters reads every named counter of the table in one netlink dump.
// It does not read set elements, so it stays fast with large sets.
func (a *Applier) Counters() (map[string]Counter, error) {
	c, err := a.conn()
	if err != nil {
		return nil, err
	}
	objs, err := c.GetObjects(table)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return nil, ErrNoTable
		}
		return nil, fmt.Errorf("read counters: %w", err)
	}
	if len(objs) == 0 {
		// A dump of a missing table is empty rather than an error.
		if _, err := c.ListTableOfFamily(TableName, nftables.TableFamilyINet); err != nil {
			return nil, ErrNoTable
		}
	}
	out := make(map[string]Counter, len(objs))
	for _, o := range objs {
		if co, ok := o.(*nftables.CounterObj); ok {
			out[co.Name] = Counter{Packets: co.Packets, Bytes: co.Bytes}
		}
	}
	return out, nil
}

// Generation returns the kernel's nftables ruleset generation. It changes
// on every committed transaction by anyone, and not on reads, so an
// unchanged generation proves nothing was modified since it was read.
func (a *Applier) Generation() (uint32, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: a.netns})
	if err != nil {
		return 0, fmt.Errorf("dial netfilter netlink: %w", err)
	}
	defer c.Close()
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: nftType(unix.NFT_MSG_GETGEN), Flags: netlink.Request},
		Data:   []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0},
	})
	if err != nil {
		return 0, fmt.Errorf("get ruleset generation: %w", err)
	}
	for _, m := range msgs {
		if m.Header.Type != nftType(unix.NFT_MSG_NEWGEN) {
			continue
		}
		g, err := decodeGen(m.Data)
		if err != nil {
			return 0, fmt.Errorf("get ruleset generation: %w", err)
		}
		return g.id, nil
	}
	return 0, errors.New("get ruleset generation: no generation in reply")
}

// HookedTable is another table with a base chain at one of our hooks.
type HookedTable struct {
	Family   string
	Table    string
	Chain    string
	Hook     string
	Priority int32
	Policy   string
}

// OtherHooked lists base chains of other tables at the input, forward and
// output hooks. Their drops apply on top of ours and ours on top of theirs,
// which operators must know when reading counters.
func (a *Applier) OtherHooked() ([]HookedTable, error) {
	c, err := a.conn()
	if err != nil {
		return nil, err
	}
	chains, err := c.ListChains()
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	var out []HookedTable
	for _, ch := range chains {
		if ch.Hooknum == nil || (ch.Table.Name == TableName && ch.Table.Family == nftables.TableFamilyINet) {
			continue
		}
		hook := inetHookName(*ch.Hooknum)
		if hook != "input" && hook != "forward" && hook != "output" {
			continue
		}
		if ch.Table.Family == nftables.TableFamilyARP || ch.Table.Family == nftables.TableFamilyBridge || ch.Table.Family == nftables.TableFamilyNetdev {
			continue
		}
		prio, pol := basePriorityPolicy(ch)
		out = append(out, HookedTable{Family: familyName(ch.Table.Family), Table: ch.Table.Name, Chain: ch.Name, Hook: hook, Priority: prio, Policy: pol})
	}
	return out, nil
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyINet:
		return "inet"
	}
	return fmt.Sprint(f)
}
