// Package bench holds the parts of `make bench` (cmd/edgefw-bench) that
// are worth testing alone: statistics over repeated runs, the results
// table, the generators of policies, CIDR lists and peers, and the
// machinery that runs processes inside network namespaces and measures
// them (wall time and the kernel's rusage: user and system CPU, peak RSS).
package bench
