// Package audit attributes denied traffic: per rule, the exact packets
// and bytes the kernel counted, and which sources and destination ports
// the logged sample came from, over rolling windows (1 minute, 1 hour,
// 24 hours) and days kept for 400 days, in fixed memory per rule, in
// snapshots that survive restarts. It is pure: no I/O, no clock of its
// own (New takes one), no goroutines. The daemon feeds it and serves its
// views; `edgefwctl drops` and `edgefwctl report` show them.
//
// # What goes in
//
// Record takes one packet the kernel logged (nflog: rule, time, source,
// protocol, destination port). The log rule is rate-limited, so under a
// flood the sample is a fraction of what was denied. Observe takes the
// rules' kernel counters, read every minute or so; the increase since a
// rule's last reading is spread over the interval between the readings
// (the counters say how much, not when), so each level of buckets sums to
// the increases exactly. A reading lower than the last, or of another
// Epoch, is a counter recreated with its table and counts from zero, as
// Prometheus's increase() reads it: never a negative day. A rule's first
// reading is a baseline. After a restore the snapshot's last reading is
// the baseline: a daemon restart neither loses nor counts twice what the
// kernel counted meanwhile, because the kernel's counters outlive the
// daemon; a host reboot recreates them, and its first reading, lower,
// counts from zero (or, if the counter is already past its old value,
// only an Epoch that changed tells: the daemon should pass the boot ID
// with the counter object's handle).
//
// # How it is kept
//
// Each rule has a ring of buckets per resolution. The open bucket of each
// ring counts the sample in three Space-Saving sketches (see Sketch): by
// source, by (protocol, port) and by (source, protocol, port); when it
// closes, its heaviest keys stay. Every sample goes to the open bucket of
// every ring directly, so the open hour and the open day are as exact as
// their sketches:
//
//	bucket   ring  live k  kept  window it serves
//	10 s        7      32    32  1 minute (with the open minute)
//	1 min      61      64    16  1 hour (the edges)
//	10 min      7     128    64  1 hour
//	1 h        25     256    64  24 hours (with the open day)
//	1 day     400     512    10  days, and periods of days
//
// In a sketch of k counters every key heavier than 1/k of the bucket's
// sample is kept, and each count bounds the true one within the weight it
// inherited (ErrorBound). A view merges the buckets covering its period
// (MergeSummaries); a key's error there is at most the sum of the
// buckets' floors, each under the bucket's sample ÷ (kept+1). Ties are
// broken by key, so views and snapshots are the same for the same state.
//
// A period is covered by the fewest buckets kept, beginning with the
// finest bucket that holds its start: the 1-minute window is rounded out
// to 10 seconds, the hour to a minute, 24 hours to an hour, longer
// periods to days, and each view says which period it covers. Days are
// UTC days.
//
// # Memory and snapshots
//
// A rule with every bucket full holds 21,186 keys in closed buckets and
// 2,976 in its sketches: measured, 1.17 MB of heap whatever the address
// family (keys are fixed-size and hold no pointers, so the garbage
// collector does not scan them); MaxBytesPerRule bounds it. A rule that
// is only counted (no sample) takes 21 KB. Rules beyond WithMaxRules
// (256 by default) replace the least recently active; rules with nothing
// newer than the days kept are dropped.
//
// MarshalBinary writes a compact binary snapshot with a CRC-32: a full
// rule takes at most about 200 KB with IPv4 sources and 400 KB with IPv6
// (10 full rules: 1.98 MB and 3.92 MB, measured), a rule only counted a
// 4 KB. UnmarshalBinary refuses anything else with ErrCorrupt, changing
// nothing, and ages what it restores with the clock: buckets that ended
// since close, buckets older than their ring go.
//
// # Minutes
//
// MinuteSummariser is apart from the Attributor: it sums the same samples
// per calendar minute by flow (rule, source, protocol, destination port),
// exactly, for a log that says once a minute who was denied where. It
// lists a minute's heaviest flows (50 by default) and sums the rest in
// one figure, so a flood from random sources costs the log one more line,
// not one per source.
//
// # Shares
//
// Every view gives the sample's share, sampled ÷ counted packets for the
// same buckets, so a consumer can say "top sources from a 12% sample".
// The counted packets run to the rule's last reading (countedTo): for an
// exact share of a short window, observe the counters just before asking.
package audit
