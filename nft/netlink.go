package nft

import (
	"errors"
	"maps"
	"slices"

	"github.com/google/nftables"
)

// netlinkKernel is the Kernel of a network namespace's nftables, over
// netlink: reads (read.go) through google/nftables and dumps of our own,
// commits as one batch on a socket of our own (transport.go).
type netlinkKernel struct {
	netns int // 0: the caller's namespace
	// watch follows the namespace's nftables notifications, to tell
	// commits to our table from other tools' commits; opened by the first
	// read.
	watch *tableWatch
	// known holds the elements of the named sets as this Kernel last
	// committed or read them, valid while watch has seen no other commit
	// touch our table (knownTouches, knownLosses): reading 100,000
	// elements back takes a second or more, and other tools commit all
	// the time.
	known                     map[string][]AddrRange
	knownTouches, knownLosses uint64
	// last is the last table read: what a commit's ops are planned on.
	last *lastRead
	// mapCounters are the MapCounters of our direct-map rules as the
	// last consistent read found them, by rule hash (see dumpRules).
	mapCounters map[string][]string
	// counters reads the named counters, on a socket of its own.
	counters counterReader
}

// lastRead is a read's set elements and the watch's counts at the read.
type lastRead struct {
	elems           map[string][]AddrRange
	touches, losses uint64
}

func newNetlinkKernel(netns int) *netlinkKernel {
	return &netlinkKernel{netns: netns, counters: counterReader{netns: netns}}
}

// conn opens a connection to nf_tables in the Kernel's namespace. It keeps
// one socket for all its requests for all its requests (a read of a
// dispatched ruleset asks for the rules of 10,000 chains one by one, and a
// socket each cost more than the reading); the caller closes it with
// CloseLasting.
func (k *netlinkKernel) conn() (*nftables.Conn, error) {
	if k.netns != 0 {
		return nftables.New(nftables.WithNetNSFd(k.netns), nftables.AsLasting())
	}
	return nftables.New(nftables.AsLasting())
}

// Commit sends the transaction and waits for the kernel's answer.
func (k *netlinkKernel) Commit(tx *Transaction) error {
	last := k.last
	k.known, k.last = nil, nil
	var q *quietSpan
	if tx.quietCommit() {
		q = k.watch.quiet()
	}
	err := tx.batch.send(k.netns)
	if q.resume(err == nil) != nil {
		// The watch missed what it cannot tell: start afresh.
		_ = k.Close()
		last = nil
	}
	if err != nil {
		// Nothing was applied: the last read still holds.
		k.last = last
		return err
	}
	k.remember(last, tx.ops)
	return nil
}

// remember caches the set contents that ops, just committed on top of
// the last read, leave, if our commit is the only one that touched our
// table since that read: then the kernel holds exactly that.
func (k *netlinkKernel) remember(last *lastRead, ops []Op) {
	if last == nil || k.watch == nil {
		return
	}
	now, err := k.Generation()
	if err != nil || k.watch.sync(now) != nil ||
		k.watch.losses != last.losses || k.watch.touches != last.touches+1 {
		return
	}
	k.known = elementsAfter(last.elems, ops)
	k.knownTouches, k.knownLosses = k.watch.touches, k.watch.losses
	k.last = &lastRead{elems: k.known, touches: k.knownTouches, losses: k.knownLosses}
}

// elementsAfter returns what the named sets hold after ops, committed on
// a table whose sets held before, as a read returns it (elementRanges):
// each range as it was added, in order.
func elementsAfter(before map[string][]AddrRange, ops []Op) map[string][]AddrRange {
	after := maps.Clone(before)
	if after == nil {
		after = map[string][]AddrRange{}
	}
	for i := 0; i < len(ops); i++ {
		switch op := ops[i].(type) {
		case DeleteTable:
			clear(after)
		case DeleteSet:
			delete(after, op.Name)
		case ReplaceElements:
			after[op.Set.Name] = slices.Clone(op.Set.Ranges)
		case AddSet:
			// A set that exists keeps its elements and gets these too.
			after[op.Set.Name] = withRanges(after[op.Set.Name], op.Set.Ranges)
		case AddElements:
			if patchGives(after[op.Set.Name], nil, op.Ranges, op.Set.Ranges) {
				after[op.Set.Name] = op.Set.Ranges
				continue
			}
			after[op.Set.Name] = withRanges(after[op.Set.Name], op.Ranges)
		case DeleteElements:
			// The planner patches a set with its deletions, then its
			// additions: together they make it what the ruleset says.
			var add []AddrRange
			next, paired := AddElements{}, false
			if i+1 < len(ops) {
				next, paired = ops[i+1].(AddElements)
				paired = paired && next.Set.Name == op.Set.Name
				add = next.Ranges
			}
			if paired && patchGives(after[op.Set.Name], op.Ranges, add, next.Set.Ranges) {
				after[op.Set.Name] = next.Set.Ranges
				i++
				continue
			}
			if !paired && patchGives(after[op.Set.Name], op.Ranges, nil, op.Set.Ranges) {
				after[op.Set.Name] = op.Set.Ranges
				continue
			}
			after[op.Set.Name] = withoutRanges(after[op.Set.Name], op.Ranges)
		}
	}
	return after
}

// patchGives reports whether have without del and with add is exactly
// want, all of them strictly sorted. Then the set holds want after the
// patch, and the known elements are want itself (never changed in place)
// rather than a copy: for a change of one element of a 100,000 set, the
// copies (ranges hold pointers) took 30 to 90 ms of a loaded daemon's
// reload, mostly helping the garbage collector.
func patchGives(have, del, add, want []AddrRange) bool {
	if len(have) == 0 || !strictlySorted(del) || !strictlySorted(add) || !strictlySorted(have) || !strictlySorted(want) {
		return false
	}
	w, j, k := 0, 0, 0
	emit := func(r AddrRange) bool {
		if w >= len(want) || want[w] != r {
			return false
		}
		w++
		return true
	}
	for _, r := range have {
		for j < len(del) && compareRanges(del[j], r) < 0 {
			j++
		}
		if j < len(del) && del[j] == r {
			continue
		}
		for k < len(add) && compareRanges(add[k], r) < 0 {
			if !emit(add[k]) {
				return false
			}
			k++
		}
		if k < len(add) && add[k] == r {
			k++
		}
		if !emit(r) {
			return false
		}
	}
	for ; k < len(add); k++ {
		if !emit(add[k]) {
			return false
		}
	}
	return w == len(want)
}

// withoutRanges returns have without the ranges of del, in a new list.
func withoutRanges(have, del []AddrRange) []AddrRange {
	del = slices.Clone(del)
	slices.SortFunc(del, compareRanges)
	if !strictlySorted(have) {
		gone := make(map[AddrRange]bool, len(del))
		for _, r := range del {
			gone[r] = true
		}
		return slices.DeleteFunc(slices.Clone(have), func(r AddrRange) bool { return gone[r] })
	}
	// One walk of both: hashing each of 100,000 ranges to look it up
	// took 30 ms on a loaded machine.
	out := make([]AddrRange, 0, len(have))
	j := 0
	for _, r := range have {
		for j < len(del) && compareRanges(del[j], r) < 0 {
			j++
		}
		if j < len(del) && del[j] == r {
			continue
		}
		out = append(out, r)
	}
	return out
}

// withRanges returns have with add added. The kernel refuses ranges that
// overlap others, and takes one it holds already as no change.
func withRanges(have, add []AddrRange) []AddrRange {
	if len(have) == 0 {
		// A set's ranges come merged and sorted; nothing changes them
		// in place (elementsAfter clones before it deletes).
		return add
	}
	add = slices.Clone(add)
	slices.SortFunc(add, compareRanges)
	if !strictlySorted(have) {
		out := slices.Concat(have, add)
		slices.SortFunc(out, compareRanges)
		return slices.Compact(out)
	}
	// One walk of both, rather than sorting 100,000 ranges again for
	// the one a change added.
	out := make([]AddrRange, 0, len(have)+len(add))
	i, j := 0, 0
	for i < len(have) && j < len(add) {
		switch c := compareRanges(have[i], add[j]); {
		case c < 0:
			out = append(out, have[i])
			i++
		case c > 0:
			out = append(out, add[j])
			j++
		default:
			j++
		}
	}
	out = append(out, have[i:]...)
	out = append(out, add[j:]...)
	return slices.Compact(out)
}

// Close releases the subscription to nftables notifications and the
// counters' socket. The Kernel stays usable: the next read subscribes
// again, and the next counters read opens a socket.
func (k *netlinkKernel) Close() error {
	k.known, k.last = nil, nil
	err := k.counters.close()
	if k.watch == nil {
		return err
	}
	err = errors.Join(err, k.watch.close())
	k.watch = nil
	return err
}
