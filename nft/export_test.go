package nft

// What the tests of package nft_test need from inside: they run the same
// cases on the netlink Kernel and on nft/nfttest's fake, which package nft
// cannot import.

// NewNetlinkKernel returns the netlink Kernel of the namespace open as fd.
func NewNetlinkKernel(netns int) Kernel { return newNetlinkKernel(netns) }

// NewTransaction encodes ops, however wrong, as a transaction: what the
// kernel and the fake must refuse alike.
func NewTransaction(ops ...Op) (*Transaction, error) { return encode(ops) }

// ApplyFull commits the full replacement that Apply falls back to when
// the kernel refuses a patch.
func ApplyFull(a *Applier, rs *Ruleset) (Result, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ks, err := a.kernel.ReadTable()
	if err != nil {
		return Result{}, err
	}
	tx, res, err := a.prepare(ks, rs, true)
	if err != nil || tx == nil {
		return Result{}, err
	}
	if err := a.kernel.Commit(tx); err != nil {
		return Result{}, err
	}
	res.Full = true
	return res, nil
}
