package nft

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
)

// A Mark is what an Apply leaves behind to prove, later and in another
// process, that table inet edgefw still holds the ruleset it applied: the
// network namespace, the ruleset generation right after the apply, and the
// ruleset's Fingerprint. The generation moves on every commit by anyone,
// to any table of the namespace, and on nothing else (not on reads,
// traffic through counters, or a transaction that changes nothing): while
// it stays at the Mark's, nothing has been committed since, and the table
// still holds that ruleset. See Applier.Unchanged.
type Mark struct {
	Namespace  Namespace
	Generation uint32
	// Ruleset is the Fingerprint of the ruleset the table holds at
	// Generation.
	Ruleset string
}

// Namespace identifies a network namespace, also across processes. Its
// inode (with the device of nsfs) can be reused once the namespace is
// gone; its cookie (SO_NETNS_COOKIE) is never reused until the machine
// reboots, and Boot names the boot. A new namespace starts at generation
// 1 again, so without the cookie a record of generation 2 in a namespace
// that was deleted would match the second commit of whoever gets its
// inode next.
type Namespace struct {
	// Boot is the kernel's boot ID (/proc/sys/kernel/random/boot_id).
	Boot       string
	Cookie     uint64
	Dev, Inode uint64
}

// fingerprintVersion is part of every Fingerprint. Bump it when the same
// Ruleset is applied as another kernel table (the planner's comparison
// changes), so that Marks of older versions no longer match.
//
// 2: the Applier writes sets of more than DefaultShardThreshold ranges as
// shards (shard.go); a Mark of 1 may stand for the set as one.
const fingerprintVersion = "2"

// Fingerprint hashes everything of rs that an Apply writes: its nft text,
// the rule encoding (encodingVersion, which rule hashes carry), and the
// counters' descriptions that rules keep in their user data. Sets'
// elements are hashed as bytes rather than as text: rendering a million
// CIDRs takes longer than the rest of a no-op apply.
func Fingerprint(rs *Ruleset) string {
	h := sha256.New()
	fmt.Fprintf(h, "edgefw ruleset %s/%s\n", fingerprintVersion, encodingVersion)
	// Every field of the Ruleset is in its text but the sets' elements,
	// hashed below, and the RuleInfos.
	bare := *rs
	bare.Sets = make([]*AddrSet, len(rs.Sets))
	for i, s := range rs.Sets {
		c := *s
		c.Ranges = nil
		bare.Sets[i] = &c
	}
	bare.text().write(h)
	fmt.Fprintf(h, "%v\n", rs.Rules)
	for _, s := range rs.Sets {
		hashRanges(h, s)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// hashRanges hashes a set's ranges as their addresses' bytes, 4 or 16
// each as the set's family says: a million IPv4 ranges hash in a few
// milliseconds, which every apply of the daemon pays.
func hashRanges(h hash.Hash, s *AddrSet) {
	fmt.Fprintf(h, "set %s v6=%v %d\n", s.Name, s.V6, len(s.Ranges))
	buf := make([]byte, 0, 64<<10)
	for _, r := range s.Ranges {
		if s.V6 {
			buf = append(buf, r.From.AsSlice()...)
			buf = append(buf, r.To.AsSlice()...)
		} else {
			from, to := r.From.As4(), r.To.As4()
			buf = append(buf, from[:]...)
			buf = append(buf, to[:]...)
		}
		if len(buf) > cap(buf)-32 {
			h.Write(buf)
			buf = buf[:0]
		}
	}
	h.Write(buf)
}

// Unchanged reports whether the kernel provably still holds rs as an
// Apply left it at m: same namespace and boot, the generation still m's,
// and m made for the same ruleset. Then a read of the table would find
// nothing to write, and is not needed: for a large set it costs a second
// per 100,000 elements. When it reports false, the caller applies rs as
// usual, which reads and compares the table.
func (a *Applier) Unchanged(rs *Ruleset, m Mark) (bool, error) {
	if ok, err := a.Holds(m); !ok || err != nil {
		return false, err
	}
	return Fingerprint(rs) == m.Ruleset, nil
}

// Holds reports whether nothing has been committed in m's namespace since
// the commit m marks: same namespace and boot, the generation still m's.
// Then the kernel holds the ruleset m.Ruleset names, whatever it is.
func (a *Applier) Holds(m Mark) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ns, err := a.kernel.Namespace()
	if err != nil {
		return false, fmt.Errorf("identify the network namespace: %w", err)
	}
	if ns != m.Namespace {
		return false, nil
	}
	gen, err := a.kernel.Generation()
	if err != nil || gen != m.Generation {
		return false, err
	}
	return true, nil
}

// mark returns the Mark of rs if the generation is now exactly commits
// past before, read before the table was: then the table was read at
// before and nothing but our commit (if any) came since. A successful
// commit of a plan that is not empty changes the ruleset, so it moved the
// generation (nf_tables_commit bumps it once, and only a transaction that
// changes nothing leaves it): with exactly one move, that move is ours.
// If anything else may have committed, there is no Mark: an unknown
// generation is never recorded as ours.
func (a *Applier) mark(rs *Ruleset, before uint32, commits uint32) *Mark {
	now, err := a.kernel.Generation()
	if err != nil || now != before+commits {
		return nil
	}
	ns, err := a.kernel.Namespace()
	if err != nil {
		return nil
	}
	return &Mark{Namespace: ns, Generation: now, Ruleset: Fingerprint(rs)}
}
