package daemon

import (
	"context"
	"fmt"
	"sync"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// committerLog remembers which process committed recent nftables
// generations, from the kernel's NEWGEN notifications, so a drift repair
// can say who changed the table.
type committerLog struct {
	mu   sync.Mutex
	byID map[uint32]string
	last string
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

// watchCommitters follows nftables notifications until ctx ends. It is
// best effort: without it, repairs still happen, only "who" is unknown.
func (d *Daemon) watchCommitters(ctx context.Context) {
	conn, err := nftables.New()
	if err != nil {
		return
	}
	mon := nftables.NewMonitor(nftables.WithMonitorObject(nftables.MonitorObjectAny))
	events, err := conn.AddGenerationalMonitor(mon)
	if err != nil {
		d.log.Debug("nftables monitor unavailable; drift repairs will not name the changer", "error", err)
		return
	}
	go func() {
		<-ctx.Done()
		_ = mon.Close()
	}()
	for ev := range events {
		if ev == nil || ev.GeneratedBy == nil {
			continue
		}
		if g, ok := ev.GeneratedBy.Data.(*nftables.GenMsg); ok && int(g.ProcPID) != unix.Getpid() {
			d.committers.record(g.ID, fmt.Sprintf("%s[%d]", g.ProcComm, g.ProcPID))
		}
	}
}
