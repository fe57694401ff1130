package daemon

import (
	"runtime/debug"
	"time"

	"github.com/edgefw/edgefw/nft"
)

// releaseAfterRanges is the size of the address sets from which an apply
// or a comparison of the table returns its memory to the OS at once.
// Writing or reading back 100,000 ranges briefly takes tens of MiB that
// the runtime would otherwise keep, and return only slowly: the idle
// daemon's RSS was 40 to 64 MiB with a 100k set, about what the apply
// peaked at. Below it, the release (a full collection) is not worth it.
// Only free memory is returned: what an apply's garbage left dirty and a
// long-lived allocation then took stays resident for good. The largest
// such allocation, a userspace WireGuard device's 24 MiB of packet
// buffers, was most of the idle daemon's anonymous memory until wg
// released memory before creating a device (wg/userspace.go).
const releaseAfterRanges = 10_000

// releaseMemory returns freed memory to the OS after work on rs, if its
// sets are large.
func releaseMemory(rs *nft.Ruleset) {
	if large(rs) {
		debug.FreeOSMemory()
	}
}

// releaseQuiet is how long the loop waits after an apply of large sets
// before it returns their memory to the OS, and a later apply restarts
// the wait. Released at once, the memory came back through page faults
// in the next apply: one changed line of a 100k set file in a burst of
// changes took 380-560 ms end to end instead of 130-160 ms on this
// machine (loading the set and compiling it three to five times slower).
// The idle daemon's RSS is the same a few seconds later.
const releaseQuiet = 10 * time.Second

// releaseLater is releaseMemory once the loop has answered the request
// that applied rs and no other apply came for releaseQuiet: the release
// (a full collection, 10 to 20 ms with a 100k set) is not part of what
// `edgefwctl reload` waits for, nor are the page faults that bring the
// memory back.
func (d *Daemon) releaseLater(rs *nft.Ruleset) {
	if large(rs) {
		d.releaseDue = true
	}
}

// afterAnswer does what applies left for after the loop's answer: the
// sync of the last good policy. It reports whether the release of memory
// is to wait releaseQuiet from now.
func (d *Daemon) afterAnswer() bool {
	if d.syncDue {
		d.syncDue = false
		if err := syncLastGood(d.cfg.StateDir); err != nil {
			d.log.Warn("could not sync the last good ruleset to the disk", "error", err)
		}
	}
	due := d.releaseDue
	d.releaseDue = false
	return due
}

// large reports whether rs's sets are large enough for their memory to
// be returned at once.
func large(rs *nft.Ruleset) bool {
	if rs == nil {
		return false
	}
	n := 0
	for _, s := range rs.Sets {
		n += len(s.Ranges)
	}
	return n >= releaseAfterRanges
}
