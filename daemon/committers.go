package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"

	"github.com/edgefw/edgefw/nft"
)

// committerLog remembers which process committed recent nftables
// generations, from the kernel's NEWGEN notifications, so a drift repair
// can say who changed the table, and counts the commits that touched our
// table, so a burst of drift can say how many there were.
type committerLog struct {
	mu      sync.Mutex
	byID    map[uint32]string
	last    string
	touches uint64
}

func newCommitterLog() *committerLog { return &committerLog{byID: map[uint32]string{}} }

func (l *committerLog) record(id uint32, who string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.byID) > 256 {
		l.byID = map[uint32]string{}
	}
	l.byID[id] = who
	l.last = who
}

// touched counts a commit by another process to our table.
func (l *committerLog) touched() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.touches++
}

// takeTouches returns the commits to our table counted since it was last
// called.
func (l *committerLog) takeTouches() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.touches
	l.touches = 0
	return n
}

func (l *committerLog) describe(gen uint32) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if who, ok := l.byID[gen]; ok {
		return who
	}
	if l.last != "" {
		return l.last + " (most recent committer)"
	}
	return "unknown"
}

// resubscribeDelay is the wait before following nftables notifications
// again after a failure that is not an overflow, so that a lasting
// failure does not spin.
const resubscribeDelay = time.Second

// watchCommitters follows nftables notifications until ctx ends. Each
// commit by another process to our table triggers a drift check at once.
// It is best effort: without it, the periodic generation check still
// repairs drift, only later and without knowing who changed the table.
//
// A subscription ends when its socket overflows, as it does whenever a
// commit sends more notifications than the socket holds (our own repair of
// a set of a few thousand elements sends one per element): commits may
// then have been missed, so it subscribes again and has the table checked.
func (d *Daemon) watchCommitters(ctx context.Context) {
	resumed := false
	for {
		lost, err := d.followCommits(ctx, resumed)
		if err != nil {
			d.log.Debug("nftables monitor unavailable; drift repairs will not name the changer", "error", err)
			return
		}
		if ctx.Err() != nil {
			return
		}
		d.log.Debug("nftables notifications lost; following them again and checking the table", "error", lost)
		if !errors.Is(lost, unix.ENOBUFS) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(resubscribeDelay):
			}
		}
		resumed = true
	}
}

// followCommits subscribes to nftables notifications and handles them
// until the subscription ends, and returns why it ended; err is why it
// could not subscribe. When resumed, commits may have been missed before
// the subscription: the table is checked once it is in place.
func (d *Daemon) followCommits(ctx context.Context, resumed bool) (lost, err error) {
	// Lasting, so that closing the connection also closes the
	// subscription's socket: the monitor leaves it open when it fails.
	conn, err := nftables.New(nftables.AsLasting())
	if err != nil {
		return nil, err
	}
	defer conn.CloseLasting()
	mon := nftables.NewMonitor(nftables.WithMonitorObject(nftables.MonitorObjectAny))
	events, err := conn.AddGenerationalMonitor(mon)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.CloseLasting() })
	defer stop()
	if resumed {
		d.askDriftCheck()
	}
	lost = errors.New("nftables notifications ended")
	for ev := range events {
		if ev == nil || ev.GeneratedBy == nil {
			continue
		}
		if ev.GeneratedBy.Data == nil && ev.GeneratedBy.Error != nil {
			// The monitor's last event: the channel closes next.
			lost = ev.GeneratedBy.Error
			continue
		}
		d.noteCommit(ev)
	}
	return lost, nil
}

// noteCommit records who made a commit and, if it was another process's
// commit to our table, has the table checked.
func (d *Daemon) noteCommit(ev *nftables.MonitorEvents) {
	g, ok := ev.GeneratedBy.Data.(*nftables.GenMsg)
	if !ok {
		return
	}
	pid := threadGroup(g.ProcPID)
	if pid == unix.Getpid() {
		return
	}
	d.committers.record(g.ID, fmt.Sprintf("%s[%d]", g.ProcComm, pid))
	if !touchesOurTable(ev.Changes) {
		// kube-proxy, Docker and friends commit often; comparing our
		// table after each of their commits would be wasted work.
		return
	}
	d.committers.touched()
	d.askDriftCheck()
}

// askDriftCheck has the loop check the table for drift at once (as soon
// as its limits allow).
func (d *Daemon) askDriftCheck() {
	select {
	case d.foreignCommit <- struct{}{}:
	default: // a check is already due
	}
}

// touchesOurTable reports whether a commit changed table inet edgefw.
// Set element notifications do not name their table; element drift is
// left to the periodic full comparison.
func touchesOurTable(changes []*nftables.MonitorEvent) bool {
	ours := func(t *nftables.Table) bool {
		return t != nil && t.Name == nft.TableName && t.Family == nftables.TableFamilyINet
	}
	for _, c := range changes {
		if c.Error != nil {
			return true // cannot tell: check
		}
		switch v := c.Data.(type) {
		case *nftables.Table:
			if ours(v) {
				return true
			}
		case *nftables.Chain:
			if ours(v.Table) {
				return true
			}
		case *nftables.Rule:
			if ours(v.Table) {
				return true
			}
		case *nftables.Set:
			if ours(v.Table) {
				return true
			}
		case *nftables.CounterObj:
			if ours(v.Table) {
				return true
			}
		}
	}
	return false
}

// threadGroup returns the process of the thread tid. The kernel names the
// thread that committed (task_pid_nr), not its process: the daemon's own
// commits come from any of its threads, and a Go neighbour's from threads
// that `ps` does not list. A thread that has already gone is returned as
// it is.
func threadGroup(tid uint32) int {
	status, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(tid), 10) + "/status")
	if err != nil {
		return int(tid)
	}
	if pid, ok := parseTgid(status); ok {
		return pid
	}
	return int(tid)
}

// parseTgid reads the Tgid line of a /proc/PID/status file (proc(5)).
func parseTgid(status []byte) (int, bool) {
	for line := range strings.SplitSeq(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "Tgid:"); ok {
			pid, err := strconv.Atoi(strings.TrimSpace(v))
			return pid, err == nil
		}
	}
	return 0, false
}
