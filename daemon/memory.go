package daemon

import (
	"runtime/debug"

	"github.com/edgefw/edgefw/nft"
)

// releaseAfterRanges is the size of the address sets from which an apply
// or a comparison of the table returns its memory to the OS at once.
// Writing or reading back 100,000 ranges briefly takes tens of MiB that
// the runtime would otherwise keep, and return only slowly: the idle
// daemon's RSS was 40 to 64 MiB with a 100k set, about what the apply
// peaked at. Below it, the release (a full collection) is not worth it.
const releaseAfterRanges = 10_000

// releaseMemory returns freed memory to the OS after work on rs, if its
// sets are large.
func releaseMemory(rs *nft.Ruleset) {
	if rs == nil {
		return
	}
	n := 0
	for _, s := range rs.Sets {
		n += len(s.Ranges)
	}
	if n >= releaseAfterRanges {
		debug.FreeOSMemory()
	}
}
