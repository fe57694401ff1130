package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Settle waits until the kernel's own threads are quiet: after a
// namespace holding a large nftables set is deleted, the kernel frees it
// asynchronously in kernel threads (once for 150 s here), and that work
// would land on the next measurement. Quiet means the kernel threads used
// less than 5% of one CPU over two consecutive half seconds. It returns
// how long it waited and whether the cap ran out first. Other users'
// processes do not count, so a busy shared machine still settles.
func Settle(maxWait time.Duration) (time.Duration, bool) {
	const (
		window = 500 * time.Millisecond
		quiet  = 0.05
	)
	start := time.Now()
	prev := kernelThreadTicks()
	calm := 0
	for time.Since(start) < maxWait {
		time.Sleep(window)
		cur := kernelThreadTicks()
		used := float64(cur-prev) / float64(clockTicks) / window.Seconds()
		prev = cur
		if used < quiet {
			calm++
			if calm >= 2 {
				return time.Since(start), true
			}
		} else {
			calm = 0
		}
	}
	return time.Since(start), false
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times (100 on every
// Linux architecture Go supports).
const clockTicks = 100

// kernelThreadTicks sums utime+stime of kthreadd and its children (the
// kernel's threads: kworkers, RCU).
func kernelThreadTicks() uint64 {
	var total uint64
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		ppid, ticks, ok := procStat(filepath.Join("/proc", e.Name(), "stat"))
		if ok && (pid == 2 || ppid == 2) {
			total += ticks
		}
	}
	return total
}

// ProcCPU returns the utime+stime of a process, in seconds.
func ProcCPU(pid int) (float64, bool) {
	_, ticks, ok := procStat(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	return float64(ticks) / clockTicks, ok
}

// procStat reads the parent PID and utime+stime from a /proc/PID/stat.
func procStat(path string) (ppid int, ticks uint64, ok bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, false
	}
	// The command name is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := bytes.Fields(data[i+1:])
	// After the name: state(0) ppid(1) … utime(11) stime(12).
	if len(f) < 13 {
		return 0, 0, false
	}
	p, err1 := strconv.Atoi(string(f[1]))
	u, err2 := strconv.ParseUint(string(f[11]), 10, 64)
	s, err3 := strconv.ParseUint(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return 0, 0, false
	}
	return p, u + s, true
}

// ProcRSS returns a process's resident set (VmRSS) in bytes.
func ProcRSS(pid int) (int64, bool) { return ProcStatus(pid, "VmRSS") }

// ProcStatus returns a size field of /proc/PID/status (VmRSS, RssAnon,
// RssFile...) in bytes.
func ProcStatus(pid int, field string) (int64, bool) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, false
	}
	for _, line := range bytes.Split(data, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte(field+":")); ok {
			f := bytes.Fields(v)
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(string(f[0]), 10, 64)
				return kb << 10, err == nil
			}
		}
	}
	return 0, false
}
