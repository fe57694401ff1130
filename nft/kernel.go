package nft

import (
	"context"
	"time"
)

// Kernel is the nftables side of an Applier: table inet edgefw in one
// network namespace. The Applier reads the table, plans what must change
// (pure, see plan) and commits that plan as one transaction.
//
// The netlink implementation (the default, and WithNetNS) talks to the
// kernel; nft/nfttest has a fake that checks transactions as the kernel
// does, for tests without root. The Applier calls ReadTable, Commit and
// Close one at a time; Generation, Counters and OtherHooked may come at
// any time.
type Kernel interface {
	// ReadTable returns what table inet edgefw holds, read consistently:
	// no commit to the table falls between the parts of the read.
	ReadTable() (*TableState, error)
	// Commit writes the transaction: all of it or, when the kernel
	// refuses a message, nothing. A refusal is a *KernelError naming the
	// op whose message failed.
	Commit(tx *Transaction) error
	// Generation returns the nftables ruleset generation, which moves on
	// every commit by anyone.
	Generation() (uint32, error)
	// Namespace identifies the network namespace the Kernel works in.
	Namespace() (Namespace, error)
	// Counters returns the values of the table's named counters;
	// ErrNoTable when there is no table.
	Counters() (map[string]Counter, error)
	// OtherHooked lists base chains of other tables at our hooks.
	OtherHooked() ([]HookedTable, error)
	// Changes reports, until ctx ends, every commit that touches table
	// inet edgefw (set elements included) with the process that made it,
	// and every loss of notifications; see TableChange. Commits before it
	// returns are not reported. The channel is closed when ctx ends.
	Changes(ctx context.Context) (<-chan TableChange, error)
	// Close releases what the Kernel holds open; it stays usable.
	Close() error
}

// TableState is what table inet edgefw holds, as a Kernel reads it: what
// the planner compares a Ruleset with. A table that does not exist has
// Exists false and nothing else.
type TableState struct {
	Exists bool
	// Counters are the named counters and their values.
	Counters map[string]Counter
	// Sets are the named sets, meters and maps; anonymous sets, which
	// belong to their rules, are left out.
	Sets   map[string]*SetState
	Chains map[string]*ChainState
}

// ChainState is a chain of the table and its rules, in order.
type ChainState struct {
	Name string
	// Base is what makes a base chain; nil for a regular chain.
	Base  *BaseChain
	Rules []RuleState
}

// BaseChain is where a base chain hooks, as nft names it.
type BaseChain struct {
	Type     string // filter, nat or route
	Hook     string // input, forward, output, prerouting, postrouting, ingress
	Priority int32
	Policy   string // accept or drop
}

// RuleState is a rule of a chain as the kernel lists it.
type RuleState struct {
	Handle uint64
	// Hash is the hash edgefw stored in the rule's user data (udataHash);
	// "" for a rule edgefw did not write.
	Hash string
	// Counted is what edgefw recorded of the meaning of the rule's
	// counter (udataCounted), e.g. "input accept"; "" when nothing.
	Counted string
	// Counters are the named counters the rule counts into by name.
	Counters []string
	// MapCounters are the named counters the rule counts into through
	// an anonymous object map (a direct map's, see dispatch.go), each
	// once, in the order of their keys. They are apart from Counters,
	// which say what one kernel rule of a policy rule touches: a direct
	// map's rule stands for many policy rules' keys.
	MapCounters []string
	// Exprs is the number of the rule's expressions.
	Exprs int
}

// SetState is a named set, meter or map of the table.
type SetState struct {
	Name string
	// KeyType is nft's name of the key's type: ipv4_addr, ipv6_addr,
	// inet_service...
	KeyType string
	// IsMap is true for a map, whose values are of DataType.
	IsMap                                   bool
	DataType                                string
	Constant, Dynamic, Interval, HasTimeout bool
	Timeout                                 time.Duration
	// Size is the most elements the set holds; 0: no limit declared.
	Size uint32
	// Elements are the contents of a set that is not dynamic, as address
	// ranges of the key's family (what edgefw makes), in order, each as
	// the set holds it: two adjacent ranges are two. nil for a meter,
	// whose elements are the kernel's per-source state.
	Elements []AddrRange
}

// A Transaction is a plan encoded as the netlink messages of one nftables
// transaction, ready for a Kernel to commit.
type Transaction struct {
	ops   []Op
	batch *batch
}

// Ops returns what the transaction does, in order.
func (tx *Transaction) Ops() []Op { return tx.ops }

// Messages is the number of netlink messages the transaction writes.
func (tx *Transaction) Messages() int { return tx.batch.Len() }
