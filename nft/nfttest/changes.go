package nfttest

import (
	"context"
	"fmt"
	"os"

	"github.com/edgefw/edgefw/nft"
)

// subscriberBuffer is how many changes wait for a slow subscriber; beyond
// it the subscriber is told of a loss, as a socket that overflowed.
const subscriberBuffer = 256

// committer is who a commit is notified as: the process and its name.
type committer struct {
	pid int
	by  string
}

// subscriber is one Changes caller.
type subscriber struct {
	ch   chan nft.TableChange
	lost bool
}

// Changes reports every commit that changes the table, as the kernel's
// notifications do: an Applier's commits as made by this process (which
// the daemon recognises as its own), the drift helpers' as made by
// another process (nft[4242] unless SetDrifter says otherwise). Commits
// that change nothing of table inet edgefw are not reported. The channel
// closes when ctx ends.
func (k *Kernel) Changes(ctx context.Context) (<-chan nft.TableChange, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.failChanges != nil {
		return nil, k.failChanges
	}
	s := &subscriber{ch: make(chan nft.TableChange, subscriberBuffer)}
	k.subs = append(k.subs, s)
	context.AfterFunc(ctx, func() {
		k.mu.Lock()
		defer k.mu.Unlock()
		for i, x := range k.subs {
			if x == s {
				k.subs = append(k.subs[:i], k.subs[i+1:]...)
				close(s.ch)
				return
			}
		}
	})
	return s.ch, nil
}

// FailChanges makes Changes fail with err, as when notifications cannot
// be followed, until FailChanges(nil). Subscriptions already made go on.
func (k *Kernel) FailChanges(err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.failChanges = err
}

// SetDrifter sets the process the drift helpers' commits are notified as.
func (k *Kernel) SetDrifter(pid int, comm string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.drifter = committer{pid: pid, by: fmt.Sprintf("%s[%d]", comm, pid)}
}

// NotifyLost tells every subscriber that notifications were lost, as an
// overflowed socket does.
func (k *Kernel) NotifyLost() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, s := range k.subs {
		k.deliver(s, nft.TableChange{Generation: k.gen, Lost: true})
	}
}

// notify tells the subscribers of a commit by c at the current
// generation. The caller holds k.mu.
func (k *Kernel) notify(c committer) {
	for _, s := range k.subs {
		k.deliver(s, nft.TableChange{Generation: k.gen, PID: c.pid, By: c.by})
	}
}

// deliver sends ch to s without blocking; a full buffer is a loss, told
// at the next change that fits.
func (k *Kernel) deliver(s *subscriber, ch nft.TableChange) {
	if s.lost {
		select {
		case s.ch <- nft.TableChange{Generation: k.gen, Lost: true}:
			s.lost = false
		default:
			return
		}
	}
	select {
	case s.ch <- ch:
	default:
		s.lost = true
	}
}

// self is who an Applier's commits are notified as: this process, as the
// kernel names a daemon's commits.
func self() committer {
	return committer{pid: os.Getpid(), by: fmt.Sprintf("%s[%d]", "edgefwd", os.Getpid())}
}
