package nft

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// A TableChange is a commit that touched table inet edgefw, as nftables
// notified it, or a loss of notifications.
type TableChange struct {
	// Generation is the ruleset generation the commit made. After a loss,
	// it is the generation from which commits are heard again.
	Generation uint32
	// PID is the process that committed: the thread group of the thread
	// the kernel names, so a commit from any thread of a process carries
	// the process's id. 0 if the kernel did not say.
	PID int
	// By names the process as "command[pid]", the command as the kernel
	// gives it (cut at 15 bytes); "" if the kernel did not say.
	By string
	// Lost reports that notifications were lost (the socket overflowed,
	// or had to be opened again): any commit up to Generation may have
	// changed the table unheard. Check everything.
	Lost bool
}

// changesBuffer is how many changes wait for a slow reader. Beyond it the
// watch waits too, the kernel's notifications pile up in the socket, and
// if they overflow it the reader hears of a loss.
const changesBuffer = 64

// resubscribeDelay is the wait before subscribing again after the
// subscription's socket failed (not an overflow, which is drained and
// carries on), so that a lasting failure does not spin.
const resubscribeDelay = time.Second

// Changes follows nftables notifications in the Applier's network
// namespace until ctx ends, and reports every commit that touched table
// inet edgefw, set elements included, with the process that made it, and
// every loss of notifications. Commits to other tables are not reported,
// nor commits before Changes returns: compare the table once after
// subscribing. The channel is closed when ctx ends.
//
// The subscription is the Applier's watch (tableWatch) run on a socket of
// its own, so that it reads on whatever the Applier does. Should its
// socket fail, it subscribes again and reports a loss.
func (a *Applier) Changes(ctx context.Context) (<-chan TableChange, error) {
	return a.kernel.Changes(ctx)
}

// Changes follows nftables notifications in the kernel's namespace: see
// Kernel.Changes.
func (k *netlinkKernel) Changes(ctx context.Context) (<-chan TableChange, error) {
	return followChanges(ctx, func() (*tableWatch, error) { return openWatch(k.netns, k.Generation) }, resubscribeDelay)
}

// followChanges runs the watches that open returns, one after the other,
// the next one retry after the last one failed.
func followChanges(ctx context.Context, open func() (*tableWatch, error), retry time.Duration) (<-chan TableChange, error) {
	w, err := open()
	if err != nil {
		return nil, err
	}
	out := make(chan TableChange, changesBuffer)
	go func() {
		defer close(out)
		for {
			w.follow(ctx, out)
			_ = w.close()
			if w = reopen(ctx, open, retry); w == nil {
				return
			}
			// Commits between the two subscriptions went unheard.
			send(ctx, out, TableChange{Generation: w.floor, Lost: true})
		}
	}()
	return out, nil
}

// follow reports changes to out until ctx ends or the socket fails.
func (w *tableWatch) follow(ctx context.Context, out chan<- TableChange) {
	stop := context.AfterFunc(ctx, func() { _ = w.close() })
	defer stop()
	w.changed = func(c TableChange) { send(ctx, out, c) }
	for ctx.Err() == nil {
		if w.next() {
			continue
		}
		if err := w.receive(time.Time{}); err != nil {
			return
		}
	}
}

// reopen subscribes again, after retry and as often as it takes, until
// ctx ends (nil).
func reopen(ctx context.Context, open func() (*tableWatch, error), retry time.Duration) *tableWatch {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(retry):
		}
		if w, err := open(); err == nil {
			return w
		}
	}
}

func send(ctx context.Context, out chan<- TableChange, c TableChange) {
	select {
	case out <- c:
	case <-ctx.Done():
	}
}

// change describes the commit that ended with NEWGEN g.
func (w *tableWatch) change(g genInfo) TableChange {
	c := TableChange{Generation: g.id}
	if g.tid != 0 {
		c.PID = w.process(g.tid)
		c.By = fmt.Sprintf("%s[%d]", g.comm, c.PID)
	}
	return c
}

// threadGroup returns the process of the thread tid. The kernel names the
// thread that committed (task_pid_nr), not its process: edgefwd's own
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
