package nft

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"

	"github.com/edgefw/edgefw/policy"
)

// maxElemsPerMessage keeps one SetAddElements call well under the 16-bit
// netlink attribute length: past 64 KiB google/nftables silently wraps it
// and the kernel gets a fraction of the elements (LAB.md).
const maxElemsPerMessage = 1000

// udataHash is the user data type under which a rule's hash is stored.
// nft(8) shows only the types it knows (comment, ebtables policy), so the
// hash stays out of `nft list ruleset`.
const udataHash userdata.Type = 0xed

// udataCounted is the user data type under which a counted rule records
// the direction and action of its counter ("input accept"), as the
// metrics label them. A counter whose rules recorded another direction or
// action counted something else: it is reset (deleted and added again)
// rather than kept, so that a series does not start at another's total.
const udataCounted userdata.Type = 0xee

// Applier writes rulesets to table inet edgefw of one network namespace.
// It is safe for concurrent use; applies are serialised.
type Applier struct {
	netns int
	mu    sync.Mutex
	// watch follows the namespace's nftables notifications, to tell
	// commits to our table from other tools' commits; opened by the first
	// read.
	watch *tableWatch
	// known holds the elements of the named sets as this Applier last
	// committed or read them, valid while watch has seen no other commit
	// touch our table (knownTouches, knownLosses): reading 100,000
	// elements back takes a second or more, and other tools commit all
	// the time.
	known                     map[string][]AddrRange
	knownTouches, knownLosses uint64
}

// Option configures an Applier.
type Option func(*Applier)

// WithNetNS makes the Applier work in the network namespace open as fd.
func WithNetNS(fd int) Option { return func(a *Applier) { a.netns = fd } }

// NewApplier returns an Applier for the caller's network namespace unless
// WithNetNS says otherwise.
func NewApplier(opts ...Option) *Applier {
	a := &Applier{}
	for _, o := range opts {
		o(a)
	}
	return a
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
}

// Changed reports whether anything was written.
func (r Result) Changed() bool { return r.Messages > 0 }

var table = &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName}

func (a *Applier) conn() (*nftables.Conn, error) {
	if a.netns != 0 {
		return nftables.New(nftables.WithNetNSFd(a.netns))
	}
	return nftables.New()
}

// Apply makes table inet edgefw hold exactly rs, in one transaction. It
// writes nothing when the kernel already matches, and otherwise only what
// differs: named counters that stay keep their values. If the kernel
// refuses the patch, the table's contents are replaced in one transaction
// instead; if that is refused too, the kernel still holds the previous
// ruleset and the error names what failed.
func (a *Applier) Apply(rs *Ruleset) (Result, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ks, err := a.read()
	if err != nil {
		return Result{}, err
	}
	b, res, err := plan(ks, rs, false)
	if err != nil {
		return Result{}, err
	}
	if b.Len() == 0 {
		return Result{}, nil
	}
	a.known = nil
	err = b.send(a.netns)
	if err == nil {
		res.Messages = b.Len()
		a.remember(ks, rs)
		return res, nil
	}
	var ke *KernelError
	if !errors.As(err, &ke) || !ks.exists {
		return Result{}, err
	}
	// The patch was refused as a whole, so the kernel is as it was: try
	// replacing the contents, which depends less on what is there.
	fb, fres, ferr := plan(ks, rs, true)
	if ferr != nil {
		return Result{}, errors.Join(err, ferr)
	}
	if ferr = fb.send(a.netns); ferr != nil {
		return Result{}, ferr
	}
	fres.Messages, fres.Full = fb.Len(), true
	a.remember(ks, rs)
	return fres, nil
}

// remember caches the set contents of rs, just committed on top of ks, if
// our commit is the only one that touched our table since ks was read:
// then the kernel holds exactly what we wrote.
func (a *Applier) remember(ks *kernelState, rs *Ruleset) {
	now, err := a.Generation()
	if err != nil || a.watch.sync(now) != nil ||
		a.watch.losses != ks.losses || a.watch.touches != ks.touches+1 {
		return
	}
	a.known = make(map[string][]AddrRange, len(rs.Sets))
	for _, s := range rs.Sets {
		a.known[s.Name] = slices.Clone(s.Ranges)
	}
	a.knownTouches, a.knownLosses = a.watch.touches, a.watch.losses
}

// Close releases the Applier's subscription to nftables notifications.
// The Applier stays usable: the next read subscribes again.
func (a *Applier) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.known = nil
	if a.watch == nil {
		return nil
	}
	err := a.watch.close()
	a.watch = nil
	return err
}

// Delete removes table inet edgefw and everything in it. Deleting a table
// that is not there is not an error.
func (a *Applier) Delete() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	ks, err := a.read()
	if err != nil || !ks.exists {
		return err
	}
	b, err := newBatch()
	if err != nil {
		return err
	}
	if err := b.add("delete table inet edgefw", func(c *nftables.Conn) error { c.DelTable(table); return nil }); err != nil {
		return err
	}
	a.known = nil
	return b.send(a.netns)
}

// kernelState is what table inet edgefw holds now.
type kernelState struct {
	gen uint32 // the ruleset generation it was read at
	// touches and losses are the watch's counts when it was read: a commit
	// after it that touched our table moves them.
	touches, losses uint64
	exists          bool
	chains          map[string]*nftables.Chain
	rules           map[string][]*nftables.Rule
	sets            map[string]*nftables.Set
	elems           map[string][]AddrRange
	counters        map[string]bool
}

// read reads table inet edgefw. The reads are several dumps; if anyone
// commits to our table between them, they may not fit together, so they
// are repeated until no commit between the generations before and after
// them touched our table. Commits to other tables do not matter: with
// kube-proxy committing every few hundred milliseconds, the generation
// alone would rarely stay put for the seconds a large set takes to read.
func (a *Applier) read() (*kernelState, error) {
	if a.watch == nil {
		w, err := openWatch(a.netns, a.Generation)
		if err != nil {
			return nil, err
		}
		a.watch = w
	}
	w := a.watch
	for range 10 {
		gen, err := a.Generation()
		if err != nil {
			return nil, err
		}
		if err := w.sync(gen); err != nil || newer(w.floor, gen) {
			// Notifications were lost after gen: commits up to the floor
			// cannot be told apart, so start after it.
			continue
		}
		touches, losses := w.touches, w.losses
		if touches != a.knownTouches || losses != a.knownLosses {
			// Someone else touched our table since we wrote or read it.
			a.known = nil
		}
		ks, err := a.readAt(gen)
		if err != nil {
			return nil, err
		}
		after, err := a.Generation()
		if err != nil {
			return nil, err
		}
		if w.sync(after) == nil && w.touches == touches && w.losses == losses {
			ks.gen, ks.touches, ks.losses = after, touches, losses
			// What was read holds until a commit touches our table: the
			// next read need not read the elements again. (Our own commit
			// of a large set overflows the watch with its element
			// notifications; then this is how the Applier learns again.)
			a.known = maps.Clone(ks.elems)
			a.knownTouches, a.knownLosses = touches, losses
			return ks, nil
		}
	}
	return nil, errors.New("read table inet " + TableName + ": the table kept changing while it was read")
}

func (a *Applier) readAt(gen uint32) (*kernelState, error) {
	c, err := a.conn()
	if err != nil {
		return nil, err
	}
	ks := &kernelState{
		gen:    gen,
		chains: map[string]*nftables.Chain{}, rules: map[string][]*nftables.Rule{},
		sets: map[string]*nftables.Set{}, elems: map[string][]AddrRange{}, counters: map[string]bool{},
	}
	if _, err := c.ListTableOfFamily(TableName, nftables.TableFamilyINet); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return ks, nil
		}
		return nil, fmt.Errorf("read table inet %s: %w", TableName, err)
	}
	ks.exists = true
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("list chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table.Name != TableName {
			continue
		}
		ks.chains[ch.Name] = ch
		rules, err := c.GetRules(table, ch)
		if err != nil {
			return nil, fmt.Errorf("list rules of chain %s: %w", ch.Name, err)
		}
		ks.rules[ch.Name] = rules
	}
	sets, err := c.GetSets(table)
	if err != nil {
		return nil, fmt.Errorf("list sets: %w", err)
	}
	for _, s := range sets {
		if s.Anonymous {
			continue
		}
		ks.sets[s.Name] = s
		if s.Dynamic {
			// A meter's elements are the kernel's per-source state, not
			// part of the ruleset.
			continue
		}
		if known, ok := a.known[s.Name]; ok {
			ks.elems[s.Name] = known
			continue
		}
		elems, err := dumpSetElements(a.netns, s.Name)
		if err != nil {
			return nil, fmt.Errorf("list elements of set %s: %w", s.Name, err)
		}
		ks.elems[s.Name] = elementRanges(elems, s.KeyType.Bytes == 16)
	}
	objs, err := c.GetObjects(table)
	if err != nil {
		return nil, fmt.Errorf("list counters: %w", err)
	}
	for _, o := range objs {
		if co, ok := o.(*nftables.CounterObj); ok {
			ks.counters[co.Name] = true
		}
	}
	return ks, nil
}

// Equal reports whether the kernel holds exactly rs.
func (a *Applier) Equal(rs *Ruleset) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ks, err := a.read()
	if err != nil {
		return false, err
	}
	b, _, err := plan(ks, rs, false)
	if err != nil {
		return false, err
	}
	return b.Len() == 0, nil
}

func ruleHash(r *nftables.Rule) string {
	return string(userdata.Get(r.UserData, udataHash))
}

// countedAs is what udataCounted records for a counter.
func countedAs(info RuleInfo) string { return string(info.Direction) + " " + string(info.Action) }

// counterRefs returns the names of the named counters a kernel rule
// counts into.
func counterRefs(r *nftables.Rule) []string {
	var out []string
	for _, e := range r.Exprs {
		if o, ok := e.(*expr.Objref); ok && o.Type == unix.NFT_OBJECT_COUNTER {
			out = append(out, o.Name)
		}
	}
	return out
}

// countedBefore maps each counter to what the kernel's rules recorded of
// it (udataCounted). Counters whose rules recorded nothing (written before
// the record existed, or by someone else) are left out: unknown is kept.
func countedBefore(ks *kernelState) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for _, rules := range ks.rules {
		for _, r := range rules {
			as := userdata.Get(r.UserData, udataCounted)
			if as == nil {
				continue
			}
			for _, name := range counterRefs(r) {
				if out[name] == nil {
					out[name] = map[string]bool{}
				}
				out[name][string(as)] = true
			}
		}
	}
	return out
}

// countersToReset returns the kept counters whose rules counted under
// another direction or action than rs gives them.
func countersToReset(ks *kernelState, rs *Ruleset) map[string]bool {
	before := countedBefore(ks)
	reset := map[string]bool{}
	for _, info := range rs.Rules {
		was := before[info.Name]
		if !ks.counters[info.Name] || len(was) == 0 {
			continue
		}
		if len(was) > 1 || !was[countedAs(info)] {
			reset[info.Name] = true
		}
	}
	return reset
}

// plan builds the transaction that turns ks into rs. With full, every rule
// and named set is rewritten; counters are kept either way.
//
// The order of the messages matters, because the kernel refuses to delete
// what is still referenced (EBUSY), also within a transaction:
//
//  1. add the table and new counters; patch the elements of kept sets;
//     set the policy of kept chains;
//  2. delete the rules we do not want from the chains we keep;
//  3. flush every chain we do not want (or must replace): their rules may
//     jump to one another or look up sets;
//  4. delete the sets and meters we do not want (or must recreate): a map
//     may refer to chains;
//  5. delete the chains we do not want (or must replace);
//  6. delete the counters we do not want, and delete and add again those
//     whose direction or action changed (their rules were deleted in 2):
//     nothing refers to them now;
//  7. add chains, sets and meters, then insert the rules.
func plan(ks *kernelState, rs *Ruleset, full bool) (*batch, Result, error) {
	if err := rs.validate(); err != nil {
		return nil, Result{}, err
	}
	b, err := newBatch()
	if err != nil {
		return nil, Result{}, err
	}
	var res Result
	note := func(s string) { res.Changes = append(res.Changes, s) }
	q := func(what string, f func(c *nftables.Conn) error) error {
		note(what)
		return b.add(what, f)
	}
	var errs []error
	try := func(err error) { errs = append(errs, err) }
	infos := make(map[string]RuleInfo, len(rs.Rules))
	for _, info := range rs.Rules {
		infos[info.Name] = info
	}
	reset := countersToReset(ks, rs)

	// 1. Additions nothing depends on, and changes in place.
	if !ks.exists {
		try(q("add table inet "+TableName, func(c *nftables.Conn) error { c.AddTable(table); return nil }))
	}
	for _, name := range rs.Counters {
		if !ks.counters[name] {
			try(q(fmt.Sprintf("add counter %q", name), func(c *nftables.Conn) error {
				c.AddObj(&nftables.CounterObj{Table: table, Name: name})
				return nil
			}))
		}
	}

	// Sets: patch changed ones element by element; those of another
	// kind are recreated.
	wantSets := map[string]bool{}
	recreate := map[string]bool{}
	for _, s := range rs.Sets {
		wantSets[s.Name] = true
		ns := kernelSet(s)
		old, ok := ks.sets[s.Name]
		switch {
		case ok && (old.KeyType.Name != ns.KeyType.Name || !old.Interval || old.Dynamic):
			recreate[s.Name] = true
		case ok && full:
			try(q(fmt.Sprintf("replace elements of set %s", s.Name), func(c *nftables.Conn) error {
				c.FlushSet(ns)
				return addElements(c, ns, addrElements(s.Ranges))
			}))
		case ok:
			del, add := diffRanges(ks.elems[s.Name], s.Ranges)
			if len(del) > 0 {
				try(q(fmt.Sprintf("delete %d ranges from set %s", len(del), s.Name), func(c *nftables.Conn) error {
					return deleteElements(c, ns, addrElements(del))
				}))
			}
			if len(add) > 0 {
				try(q(fmt.Sprintf("add %d ranges to set %s", len(add), s.Name), func(c *nftables.Conn) error {
					return addElements(c, ns, addrElements(add))
				}))
			}
		}
	}

	// Meters: keep those that are as wanted, with their state; recreate
	// the others.
	for _, m := range rs.Meters {
		wantSets[m.Name] = true
		if old, ok := ks.sets[m.Name]; ok && !sameMeter(old, m) {
			recreate[m.Name] = true
		}
	}

	// Chains: update the policy of kept ones; a chain whose hook, type
	// or priority differs cannot change in place and is replaced.
	wantChains := map[string]bool{}
	var addChains []*Chain
	replace := map[string]bool{}
	for _, ch := range rs.Chains {
		wantChains[ch.Name] = true
		old, ok := ks.chains[ch.Name]
		switch {
		case !ok:
			addChains = append(addChains, ch)
		case !sameKind(old, ch):
			replace[ch.Name] = true
			addChains = append(addChains, ch)
		case !ch.Regular() && (old.Policy == nil || *old.Policy != chainPolicy(ch.Policy)):
			try(q(fmt.Sprintf("set policy of chain %s to %s", ch.Name, ch.Policy), func(c *nftables.Conn) error {
				c.AddChain(kernelChain(ch))
				return nil
			}))
		}
	}

	// 2. Rules: delete what is not wanted from the chains we keep, and
	// work out where the missing ones go. Sets to be recreated force their
	// chains to be rewritten.
	type insert struct {
		ch     *Chain
		r      *Rule
		before uint64 // handle of the kept rule it goes before; 0: append
	}
	var inserts []insert
	for _, ch := range rs.Chains {
		var old []*nftables.Rule
		if !replace[ch.Name] {
			old = ks.rules[ch.Name]
		}
		// Rules that count into a counter being reset are rewritten: the
		// counter cannot go while they refer to it. An empty hash never
		// matches.
		oldHashes := make([]string, len(old))
		for i, r := range old {
			oldHashes[i] = ruleHash(r)
			for _, name := range counterRefs(r) {
				if reset[name] {
					oldHashes[i] = ""
				}
			}
		}
		newHashes := make([]string, len(ch.Rules))
		for i, r := range ch.Rules {
			if !reset[r.Counter] {
				newHashes[i] = r.Hash()
			}
		}
		keepOld, keepNew := lcs(oldHashes, newHashes)
		if full || referencesAny(ch, recreate) {
			keepOld, keepNew = make([]bool, len(old)), make([]bool, len(ch.Rules))
		}
		for i, r := range old {
			if !keepOld[i] {
				try(q(fmt.Sprintf("delete rule %d of chain %s", r.Handle, ch.Name), func(c *nftables.Conn) error { return c.DelRule(r) }))
			}
		}
		// Walk the new rules backwards to know the next kept rule's handle.
		var next uint64
		oi := len(old) - 1
		pending := []insert{}
		for ni := len(ch.Rules) - 1; ni >= 0; ni-- {
			if keepNew[ni] {
				for oi >= 0 && !(keepOld[oi] && oldHashes[oi] == newHashes[ni]) {
					oi--
				}
				next = old[oi].Handle
				oi--
				continue
			}
			pending = append(pending, insert{ch: ch, r: ch.Rules[ni], before: next})
		}
		slices.Reverse(pending)
		inserts = append(inserts, pending...)
	}

	// 3. Flush the chains that go: after this, no rule of ours jumps to
	// them or looks up a set that goes.
	var dropChains []*nftables.Chain
	for _, name := range slices.Sorted(maps.Keys(ks.chains)) {
		if !wantChains[name] || replace[name] {
			dropChains = append(dropChains, ks.chains[name])
		}
	}
	for _, old := range dropChains {
		try(q("flush chain "+old.Name, func(c *nftables.Conn) error { c.FlushChain(old); return nil }))
	}

	// 4. Sets and meters that go.
	for _, name := range slices.Sorted(maps.Keys(ks.sets)) {
		if s := ks.sets[name]; !wantSets[name] || recreate[name] {
			try(q("delete set "+name, func(c *nftables.Conn) error { c.DelSet(s); return nil }))
		}
	}

	// 5. Chains that go.
	for _, old := range dropChains {
		try(q("delete chain "+old.Name, func(c *nftables.Conn) error { c.DelChain(old); return nil }))
	}

	// 6. Counters that go, and those that start again from zero.
	want := map[string]bool{}
	for _, n := range rs.Counters {
		want[n] = true
	}
	for _, name := range slices.Sorted(maps.Keys(ks.counters)) {
		if !want[name] {
			try(q(fmt.Sprintf("delete counter %q", name), func(c *nftables.Conn) error {
				c.DeleteObject(&nftables.CounterObj{Table: table, Name: name})
				return nil
			}))
		}
	}
	for _, name := range rs.Counters {
		if reset[name] {
			try(q(fmt.Sprintf("reset counter %q: now counts %s", name, countedAs(infos[name])), func(c *nftables.Conn) error {
				c.DeleteObject(&nftables.CounterObj{Table: table, Name: name})
				c.AddObj(&nftables.CounterObj{Table: table, Name: name})
				return nil
			}))
		}
	}

	// 7. What is new: chains, sets, meters, then the rules that use them.
	for _, ch := range addChains {
		try(q("add chain "+ch.Name, func(c *nftables.Conn) error { c.AddChain(kernelChain(ch)); return nil }))
	}
	for _, s := range rs.Sets {
		if _, ok := ks.sets[s.Name]; ok && !recreate[s.Name] {
			continue
		}
		try(q(fmt.Sprintf("add set %s (%d ranges)", s.Name, len(s.Ranges)), func(c *nftables.Conn) error {
			ns := kernelSet(s)
			if err := b.addSet(c, ns, nil); err != nil {
				return err
			}
			return addElements(c, ns, addrElements(s.Ranges))
		}))
	}
	for _, m := range rs.Meters {
		if _, ok := ks.sets[m.Name]; ok && !recreate[m.Name] {
			continue
		}
		try(q("add meter "+m.Name, func(c *nftables.Conn) error { return b.addSet(c, kernelMeter(m), nil) }))
	}
	for _, in := range inserts {
		what := fmt.Sprintf("rule %q in chain %s", in.r.Owner, in.ch.Name)
		try(q("add "+what, func(c *nftables.Conn) error {
			eb := &exprBuilder{table: table, addSet: func(s *nftables.Set, elems []nftables.SetElement) error {
				return b.addSet(c, s, elems)
			}}
			exprs, err := eb.ruleExprs(in.r)
			if err != nil {
				return err
			}
			udata := userdata.Append(nil, udataHash, []byte(in.r.Hash()))
			if info, ok := infos[in.r.Counter]; ok {
				udata = userdata.Append(udata, udataCounted, []byte(countedAs(info)))
			}
			kr := &nftables.Rule{Table: table, Chain: kernelChain(in.ch), Exprs: exprs, UserData: udata}
			if in.before != 0 {
				kr.Position = in.before
				c.InsertRule(kr)
			} else {
				c.AddRule(kr)
			}
			return nil
		}))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, Result{}, err
	}
	return b, res, nil
}

// validate catches rulesets that the diff cannot express: names are keys
// of the diff, so a duplicate would silently merge two objects into one.
// What only the kernel knows (references, limits) the kernel checks.
func (rs *Ruleset) validate() error {
	var errs []error
	dup := func(kind string, names []string) {
		seen := map[string]bool{}
		for _, n := range names {
			if seen[n] {
				errs = append(errs, fmt.Errorf("invalid ruleset: two %ss named %q", kind, n))
			}
			seen[n] = true
		}
	}
	dup("counter", rs.Counters)
	var sets, chains []string
	for _, s := range rs.Sets {
		sets = append(sets, s.Name)
	}
	for _, ch := range rs.Chains {
		chains = append(chains, ch.Name)
	}
	dup("set", sets)
	dup("chain", chains)
	regular := map[string]bool{}
	for _, ch := range rs.Chains {
		switch {
		case ch.Regular() && ch.Policy != "":
			errs = append(errs, fmt.Errorf("invalid ruleset: regular chain %s has policy %q", ch.Name, ch.Policy))
		case ch.Regular():
			regular[ch.Name] = true
		case !slices.Contains(policy.Directions, ch.Hook):
			errs = append(errs, fmt.Errorf("invalid ruleset: chain %s has hook %q, not input, forward or output", ch.Name, ch.Hook))
		case ch.Policy != policy.Accept && ch.Policy != policy.Drop:
			errs = append(errs, fmt.Errorf("invalid ruleset: chain %s has policy %q, not accept or drop", ch.Name, ch.Policy))
		}
	}
	for _, ch := range rs.Chains {
		for _, r := range ch.Rules {
			err := r.checkVerdict()
			if err == nil && r.Jump != "" && (!regular[r.Jump] || ch.Regular()) {
				// Only base chains jump, and only to our regular chains:
				// no loop, and nothing the diff does not know.
				err = fmt.Errorf("jump to %s, which is not a regular chain of the ruleset reached from a base chain", r.Jump)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("invalid ruleset: rule %q in chain %s: %w", r.Owner, ch.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

func referencesAny(ch *Chain, sets map[string]bool) bool {
	if len(sets) == 0 {
		return false
	}
	for _, r := range ch.Rules {
		for _, m := range r.Matches {
			switch m := m.(type) {
			case AddrMatch:
				if sets[m.Set] {
					return true
				}
			case MeterMatch:
				if sets[m.Set] {
					return true
				}
			}
		}
	}
	return false
}

// sameKind reports whether a kernel chain is the chain ch would be, its
// policy aside: a regular chain, or a base chain at the same hook, type
// and priority.
func sameKind(k *nftables.Chain, ch *Chain) bool {
	if ch.Regular() {
		return k.Hooknum == nil
	}
	return k.Hooknum != nil && *k.Hooknum == *hookOf(ch.Hook) &&
		k.Type == nftables.ChainTypeFilter &&
		k.Priority != nil && *k.Priority == *nftables.ChainPriorityFilter
}

func hookOf(d policy.Direction) *nftables.ChainHook {
	switch d {
	case policy.Output:
		return nftables.ChainHookOutput
	case policy.Forward:
		return nftables.ChainHookForward
	default:
		return nftables.ChainHookInput
	}
}

// chainPolicy is the kernel policy of a chain's default verdict. Only
// accept is accept: anything else fails closed to drop (validate refuses
// such a ruleset before it gets here).
func chainPolicy(a policy.Action) nftables.ChainPolicy {
	if a == policy.Accept {
		return nftables.ChainPolicyAccept
	}
	return nftables.ChainPolicyDrop
}

func kernelChain(ch *Chain) *nftables.Chain {
	if ch.Regular() {
		return &nftables.Chain{Name: ch.Name, Table: table}
	}
	p := chainPolicy(ch.Policy)
	return &nftables.Chain{
		Name: ch.Name, Table: table, Type: nftables.ChainTypeFilter,
		Hooknum: hookOf(ch.Hook), Priority: nftables.ChainPriorityFilter, Policy: &p,
	}
}

func kernelSet(s *AddrSet) *nftables.Set {
	key := nftables.TypeIPAddr
	if s.V6 {
		key = nftables.TypeIP6Addr
	}
	return &nftables.Set{Table: table, Name: s.Name, Interval: true, KeyType: key}
}

func kernelMeter(m *Meter) *nftables.Set {
	key := nftables.TypeIPAddr
	if m.V6 {
		key = nftables.TypeIP6Addr
	}
	return &nftables.Set{Table: table, Name: m.Name, KeyType: key, KeyByteOrder: binaryutil.BigEndian,
		Dynamic: true, HasTimeout: m.Timeout > 0, Timeout: m.Timeout, Size: m.Size}
}

// sameMeter reports whether a kernel set is the meter m.
func sameMeter(s *nftables.Set, m *Meter) bool {
	want := kernelMeter(m)
	return s.Dynamic && !s.Interval && s.KeyType.Name == want.KeyType.Name &&
		s.HasTimeout == want.HasTimeout && s.Timeout == want.Timeout && s.Size == want.Size
}

func addElements(c *nftables.Conn, s *nftables.Set, elems []nftables.SetElement) error {
	for chunk := range slices.Chunk(elems, maxElemsPerMessage) {
		if err := c.SetAddElements(s, chunk); err != nil {
			return err
		}
	}
	return nil
}

func deleteElements(c *nftables.Conn, s *nftables.Set, elems []nftables.SetElement) error {
	for chunk := range slices.Chunk(elems, maxElemsPerMessage) {
		if err := c.SetDeleteElements(s, chunk); err != nil {
			return err
		}
	}
	return nil
}
