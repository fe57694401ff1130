package nft

import (
	"errors"
	"sync"
)

// Applier writes rulesets to table inet edgefw of one network namespace:
// it reads the table from its Kernel, plans what differs (plan.go) and
// commits the plan as one transaction (write.go). It is safe for
// concurrent use; applies are serialised.
type Applier struct {
	mu     sync.Mutex
	kernel Kernel
	// shardAbove is the most ranges a set is written as one kernel set
	// (see shard.go).
	shardAbove int
}

// Option configures an Applier.
type Option func(*options)

type options struct {
	netns      int
	kernel     Kernel
	shardAbove int
}

// WithNetNS makes the Applier work, through netlink, in the network
// namespace open as fd.
func WithNetNS(fd int) Option { return func(o *options) { o.netns = fd } }

// WithKernel makes the Applier work on k instead of the kernel's
// nftables, e.g. on the fake of nft/nfttest; WithNetNS then does nothing.
func WithKernel(k Kernel) Option { return func(o *options) { o.kernel = k } }

// WithShardThreshold makes the Applier write sets of more than n ranges
// as several kernel sets (shards) of n/2 to n ranges each, instead of
// DefaultShardThreshold; n < 0 never shards. Tests lower it to shard
// small sets.
func WithShardThreshold(n int) Option { return func(o *options) { o.shardAbove = n } }

// NewApplier returns an Applier for the caller's network namespace unless
// WithNetNS or WithKernel says otherwise.
func NewApplier(opts ...Option) *Applier {
	o := options{shardAbove: DefaultShardThreshold}
	for _, opt := range opts {
		opt(&o)
	}
	if o.kernel == nil {
		o.kernel = newNetlinkKernel(o.netns)
	}
	return &Applier{kernel: o.kernel, shardAbove: o.shardAbove}
}

// Result says what an Apply did.
type Result struct {
	// Messages is the number of netlink messages written; 0 when the
	// kernel already held the ruleset.
	Messages int
	// Full is true when the table's contents were replaced rather than
	// patched (first apply, or an incremental patch the kernel refused).
	Full bool
	// Changes summarises what was written, one line per object.
	Changes []string
	// Summary says what changed in the policy's terms. After a full
	// rewrite it is still what the patch would have changed: what
	// differed, not everything that was written again.
	Summary Summary
	// Zeroed names the counters the apply created or reset, which count
	// again from zero: every counter of a table created (at boot, after a
	// drift repair of a deleted table), a new rule's, and one whose rules
	// now count something else. Whoever keeps counter history tells a
	// counter's lifetimes apart by it.
	Zeroed []string
	// Mark proves later that the table still holds the ruleset (see
	// Applier.Unchanged); nil when the apply cannot tell its generation
	// from another commit's, such as one that came during the read.
	Mark *Mark
}

// Changed reports whether anything was written.
func (r Result) Changed() bool { return r.Messages > 0 }

// Apply makes table inet edgefw hold exactly rs, in one transaction. It
// writes nothing when the kernel already matches, and otherwise only what
// differs: named counters that stay keep their values. If the kernel
// refuses the patch, the table's contents are replaced in one transaction
// instead; if that is refused too, the kernel still holds the previous
// ruleset and the error names what failed.
func (a *Applier) Apply(rs *Ruleset) (Result, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	// Read before the table, for the Mark: no generation, no Mark.
	before, genErr := a.kernel.Generation()
	ks, err := a.kernel.ReadTable()
	if err != nil {
		return Result{}, err
	}
	tx, res, err := a.prepare(ks, rs, false)
	if err != nil {
		return Result{}, err
	}
	if tx == nil {
		if genErr == nil {
			res.Mark = a.mark(rs, before, 0)
		}
		return res, nil
	}
	err = a.kernel.Commit(tx)
	if err == nil {
		if genErr == nil {
			res.Mark = a.mark(rs, before, 1)
		}
		return res, nil
	}
	var ke *KernelError
	if !errors.As(err, &ke) || !ks.Exists {
		return Result{}, err
	}
	// The patch was refused as a whole, so the kernel is as it was: try
	// replacing the contents, which depends less on what is there.
	ftx, fres, ferr := a.prepare(ks, rs, true)
	if ferr != nil {
		return Result{}, errors.Join(err, ferr)
	}
	if ftx != nil {
		if ferr = a.kernel.Commit(ftx); ferr != nil {
			return Result{}, ferr
		}
	}
	fres.Full, fres.Summary = true, res.Summary
	if genErr == nil && ftx != nil {
		// The refused patch committed nothing; if its refusal moved the
		// generation all the same, there is no Mark.
		fres.Mark = a.mark(rs, before, 1)
	}
	return fres, nil
}

// prepare plans rs over ks, its large sets sharded (shard.go), and
// encodes the plan. The transaction is nil when there is nothing to
// write.
func (a *Applier) prepare(ks *TableState, rs *Ruleset, full bool) (*Transaction, Result, error) {
	layout := planShards(rs, ks, a.shardAbove)
	moved := layout.resharded(rs, ks)
	rs = layout.apply(rs)
	ops, err := plan(ks, rs, full)
	if err != nil {
		return nil, Result{}, err
	}
	tx, err := encode(ops)
	if err != nil || tx.Messages() == 0 {
		return nil, Result{}, err
	}
	res := Result{Messages: tx.Messages(), Summary: summarize(ks, rs, ops, moved)}
	for _, op := range ops {
		res.Changes = append(res.Changes, op.Change())
		switch op := op.(type) {
		case AddCounter:
			res.Zeroed = append(res.Zeroed, op.Name)
		case ResetCounter:
			res.Zeroed = append(res.Zeroed, op.Name)
		}
	}
	return tx, res, nil
}

// Equal reports whether the kernel holds exactly rs.
func (a *Applier) Equal(rs *Ruleset) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ks, err := a.kernel.ReadTable()
	if err != nil {
		return false, err
	}
	tx, _, err := a.prepare(ks, rs, false)
	if err != nil {
		return false, err
	}
	return tx == nil, nil
}

// Delete removes table inet edgefw and everything in it. Deleting a table
// that is not there is not an error.
func (a *Applier) Delete() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	ks, err := a.kernel.ReadTable()
	if err != nil || !ks.Exists {
		return err
	}
	tx, err := encode([]Op{DeleteTable{}})
	if err != nil {
		return err
	}
	return a.kernel.Commit(tx)
}

// Close releases what the Applier's Kernel holds open (the netlink one's
// subscription to nftables notifications). The Applier stays usable.
func (a *Applier) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.kernel.Close()
}

// Counters reads every named counter of the table. The netlink Kernel
// reads them in one dump without set elements, so it stays fast with
// large sets.
func (a *Applier) Counters() (map[string]Counter, error) { return a.kernel.Counters() }

// Generation returns the kernel's nftables ruleset generation. It changes
// on every committed transaction by anyone, and not on reads, so an
// unchanged generation proves nothing was modified since it was read.
func (a *Applier) Generation() (uint32, error) { return a.kernel.Generation() }

// OtherHooked lists base chains of other tables at the input, forward and
// output hooks. Their drops apply on top of ours and ours on top of theirs,
// which operators must know when reading counters.
func (a *Applier) OtherHooked() ([]HookedTable, error) { return a.kernel.OtherHooked() }
