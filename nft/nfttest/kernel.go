// Package nfttest provides a fake nft.Kernel for tests that run without
// root, as net/http/httptest provides servers: table inet edgefw held in
// memory and changed by transactions that the fake checks as the kernel
// does.
//
// What it checks, as measured on the kernel (see the nft package's
// TestKernelAndFakeAgree, which runs the same cases on both):
//
//   - a chain, rule (handle), set or counter referred to but missing:
//     ENOENT; every op but adding the table needs the table;
//   - adding what exists is no error (google/nftables asks for creation,
//     not exclusive creation): a table, a counter (which keeps its value),
//     a set of the same kind, a chain of the same kind (which takes the
//     new policy); a set of another kind is EEXIST, a chain at another
//     hook, type or priority EOPNOTSUPP;
//   - deleting a chain that a rule of another chain or a map jumps to, a
//     set a rule looks up, a counter a rule counts into: EBUSY. Deleting
//     a chain deletes its own rules with it, as the kernel does when not
//     asked for a non-recursive delete;
//   - an address range that overlaps one the set holds: EEXIST (the very
//     same range is no error, an adjacent one neither); deleting a range
//     the set does not hold as such: ENOENT;
//   - a rule jumping to a base chain, or clamping the MSS in a base chain
//     other than forward, output or postrouting: EOPNOTSUPP; a limit of
//     rate 0: EINVAL; a name past 255 bytes: ERANGE;
//   - all or nothing: a refused transaction leaves the fake exactly as it
//     was, and the generation moves only on commits that succeed.
//
// Set elements are whole ranges here; the kernel holds a range's start and
// end as two elements, and deleting a range that spans two adjacent ones
// deletes their outer elements and leaves the inner two, where the fake
// says ENOENT. No plan does that: plans delete ranges as a read returns
// them, each as the set holds it.
//
// It does not model anonymous sets, what the kernel validates only at the
// end of a transaction (a statement in a regular chain, checked through
// the base chains that jump to it), nor rule handles exactly: they are
// unique and increasing in a table, as the kernel's, but not the same
// numbers.
package nfttest

import (
	"maps"
	"slices"
	"sync"

	"github.com/edgefw/edgefw/nft"
)

// Kernel is a fake nft.Kernel. Its zero value is not usable: call New.
// It is safe for concurrent use.
type Kernel struct {
	mu  sync.Mutex
	gen uint32
	// t is table inet edgefw; nil when there is none.
	t      *table
	others []nft.HookedTable
	// failReads and failCommits, when set, are what reads and commits
	// return, as a kernel that cannot be reached or refuses everything;
	// failChanges is what Changes returns.
	failReads, failCommits, failChanges error
	// subs follow the table's changes; drifter is who the drift helpers'
	// commits are notified as.
	subs    []*subscriber
	drifter committer
	// ns is the namespace the fake says it is.
	ns nft.Namespace
}

var _ nft.Kernel = (*Kernel)(nil)

// New returns a fake kernel without table inet edgefw, at generation 1.
func New() *Kernel {
	return &Kernel{gen: 1, drifter: committer{pid: 4242, by: "nft[4242]"}, ns: DefaultNamespace}
}

// DefaultNamespace is the namespace a new fake says it is.
var DefaultNamespace = nft.Namespace{Boot: "3f1c2a9e-0000-4000-8000-00000000f4ce", Cookie: 1, Dev: 4, Inode: 4026531840}

// ReadTable returns what the table holds, as the netlink Kernel reads it:
// set contents as ranges in order, each as it was added; meters without
// elements.
func (k *Kernel) ReadTable() (*nft.TableState, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.failReads != nil {
		return nil, k.failReads
	}
	return k.t.state(), nil
}

// Snapshot returns what the table holds, as ReadTable does, whatever
// FailReads says.
func (k *Kernel) Snapshot() *nft.TableState {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.t.state()
}

// Commit applies the transaction's ops in order, all or none. The first
// op the kernel would refuse ends it with a *nft.KernelError naming that
// op, and the fake is left as it was.
func (k *Kernel) Commit(tx *nft.Transaction) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.failCommits != nil {
		return k.failCommits
	}
	w := &work{t: k.t.clone()}
	for _, op := range tx.Ops() {
		if err := w.apply(op); err != nil {
			return kernelError(op.Change(), err)
		}
	}
	k.t = w.t
	k.gen++
	if len(tx.Ops()) > 0 {
		k.notify(self())
	}
	return nil
}

// Generation returns the ruleset generation: it moves on every commit
// that succeeds, an Applier's or a drift helper's.
func (k *Kernel) Generation() (uint32, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.failReads != nil {
		return 0, k.failReads
	}
	return k.gen, nil
}

// Namespace returns what SetNamespace gave, DefaultNamespace at first.
func (k *Kernel) Namespace() (nft.Namespace, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.failReads != nil {
		return nft.Namespace{}, k.failReads
	}
	return k.ns, nil
}

// SetNamespace makes the fake another namespace, or the same one after a
// reboot: what it holds stays.
func (k *Kernel) SetNamespace(ns nft.Namespace) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ns = ns
}

// Counters returns the values of the table's named counters, or
// nft.ErrNoTable.
func (k *Kernel) Counters() (map[string]nft.Counter, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.failReads != nil {
		return nil, k.failReads
	}
	if k.t == nil {
		return nil, nft.ErrNoTable
	}
	return maps.Clone(k.t.counters), nil
}

// OtherHooked returns what SetOtherHooked gave.
func (k *Kernel) OtherHooked() ([]nft.HookedTable, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.failReads != nil {
		return nil, k.failReads
	}
	return slices.Clone(k.others), nil
}

// Close does nothing: the fake holds nothing open.
func (k *Kernel) Close() error { return nil }

// SetOtherHooked sets the base chains of other tables that OtherHooked
// lists.
func (k *Kernel) SetOtherHooked(tables []nft.HookedTable) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.others = slices.Clone(tables)
}

// FailReads makes every read (ReadTable, Generation, Namespace,
// Counters, OtherHooked) fail with err, until FailReads(nil).
func (k *Kernel) FailReads(err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.failReads = err
}

// FailCommits makes every Commit fail with err, changing nothing, until
// FailCommits(nil). Drift helpers still work.
func (k *Kernel) FailCommits(err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.failCommits = err
}

// change runs one change of someone else's (a drift helper) as its own
// transaction: all or nothing, moving the generation when it succeeds.
func (k *Kernel) change(what string, f func(w *work) error) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	w := &work{t: k.t.clone()}
	if err := f(w); err != nil {
		return kernelError(what, err)
	}
	k.t = w.t
	k.gen++
	k.notify(k.drifter)
	return nil
}
