package nft

import (
	"errors"
	"fmt"
	"maps"
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

// Generation returns the kernel's nftables ruleset generation. It changes
// on every committed transaction by anyone, and not on reads, so an
// unchanged generation proves nothing was modified since it was read.
func (k *netlinkKernel) Generation() (uint32, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: k.netns})
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
func (k *netlinkKernel) OtherHooked() ([]HookedTable, error) {
	c, err := k.conn()
	if err != nil {
		return nil, err
	}
	defer c.CloseLasting()
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

// ReadTable reads table inet edgefw. The reads are several dumps; if
// anyone commits to our table between them, they may not fit together, so
// they are repeated until no commit between the generations before and
// after them touched our table. Commits to other tables do not matter:
// with kube-proxy committing every few hundred milliseconds, the
// generation alone would rarely stay put for the seconds a large set
// takes to read.
func (k *netlinkKernel) ReadTable() (*TableState, error) {
	if k.watch == nil {
		w, err := openWatch(k.netns, k.Generation)
		if err != nil {
			return nil, err
		}
		k.watch = w
	}
	w := k.watch
	for range 10 {
		gen, err := k.Generation()
		if err != nil {
			return nil, err
		}
		if err := w.sync(gen); err != nil || newer(w.floor, gen) {
			// Notifications were lost after gen: commits up to the floor
			// cannot be told apart, so start after it.
			continue
		}
		touches, losses := w.touches, w.losses
		if touches != k.knownTouches || losses != k.knownLosses {
			// Someone else touched our table since we wrote or read it.
			k.known, k.mapCounters = nil, nil
		}
		ks, elems, mapCounters, err := k.readOnce()
		if err != nil {
			return nil, err
		}
		after, err := k.Generation()
		if err != nil {
			return nil, err
		}
		if w.sync(after) == nil && w.touches == touches && w.losses == losses {
			// What was read holds until a commit touches our table: the
			// next read need not read the elements again. (Our own commit
			// of a large set overflows the watch with its element
			// notifications; then this is how the Kernel learns again.)
			k.mapCounters = mapCounters
			k.known = maps.Clone(elems)
			k.knownTouches, k.knownLosses = touches, losses
			k.last = &lastRead{elems: elems, touches: touches, losses: losses}
			return ks, nil
		}
	}
	return nil, errors.New("read table inet " + TableName + ": the table kept changing while it was read")
}

// readOnce reads the table once, and returns the elements of its sets
// apart too, for the cache of known elements, and the counters of its
// direct maps by rule hash.
func (k *netlinkKernel) readOnce() (*TableState, map[string][]AddrRange, map[string][]string, error) {
	c, err := k.conn()
	if err != nil {
		return nil, nil, nil, err
	}
	defer c.CloseLasting()
	ks := &TableState{Counters: map[string]Counter{}, Sets: map[string]*SetState{}, Chains: map[string]*ChainState{}}
	elems := map[string][]AddrRange{}
	if _, err := c.ListTableOfFamily(TableName, nftables.TableFamilyINet); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return &TableState{}, elems, nil, nil
		}
		return nil, nil, nil, fmt.Errorf("read table inet %s: %w", TableName, err)
	}
	ks.Exists = true
	mapCounters, err := k.readChains(c, ks)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := k.readSets(c, ks, elems); err != nil {
		return nil, nil, nil, err
	}
	objs, err := c.GetObjects(table)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("list counters: %w", err)
	}
	for _, o := range objs {
		if co, ok := o.(*nftables.CounterObj); ok {
			ks.Counters[co.Name] = Counter{Packets: co.Packets, Bytes: co.Bytes}
		}
	}
	return ks, elems, mapCounters, nil
}

func (k *netlinkKernel) readChains(c *nftables.Conn, ks *TableState) (map[string][]string, error) {
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	rules, mapCounters, err := dumpRules(k.netns, k.mapCounters)
	if err != nil {
		return nil, err
	}
	for _, ch := range chains {
		if ch.Table.Name != TableName {
			continue
		}
		ks.Chains[ch.Name] = &ChainState{Name: ch.Name, Base: baseChain(ch), Rules: rules[ch.Name]}
	}
	return mapCounters, nil
}

func (k *netlinkKernel) readSets(c *nftables.Conn, ks *TableState, elems map[string][]AddrRange) error {
	sets, err := c.GetSets(table)
	if err != nil {
		return fmt.Errorf("list sets: %w", err)
	}
	for _, s := range sets {
		if s.Anonymous {
			continue
		}
		ss := setState(s)
		ks.Sets[s.Name] = ss
		if s.Dynamic {
			// A meter's elements are the kernel's per-source state, not
			// part of the ruleset.
			continue
		}
		if known, ok := k.known[s.Name]; ok {
			ss.Elements, elems[s.Name] = known, known
			continue
		}
		raw, err := dumpSetElements(k.netns, s.Name)
		if err != nil {
			return fmt.Errorf("list elements of set %s: %w", s.Name, err)
		}
		ss.Elements = elementRanges(raw, s.KeyType.Bytes == 16)
		elems[s.Name] = ss.Elements
	}
	return nil
}

// baseChain returns where a kernel chain hooks; nil for a regular chain.
func baseChain(ch *nftables.Chain) *BaseChain {
	if ch.Hooknum == nil {
		return nil
	}
	prio, policy := basePriorityPolicy(ch)
	return &BaseChain{Type: string(ch.Type), Hook: inetHookName(*ch.Hooknum), Priority: prio, Policy: policy}
}

func setState(s *nftables.Set) *SetState {
	return &SetState{Name: s.Name, KeyType: s.KeyType.Name, IsMap: s.IsMap, DataType: s.DataType.Name,
		Constant: s.Constant, Dynamic: s.Dynamic, Interval: s.Interval, HasTimeout: s.HasTimeout,
		Timeout: s.Timeout, Size: s.Size}
}
