package daemon

import (
	"errors"
	"os"
	"runtime"
	"testing"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

func TestTouchesOurTable(t *testing.T) {
	ours := &nftables.Table{Name: "edgefw", Family: nftables.TableFamilyINet}
	theirs := &nftables.Table{Name: "kube-proxy", Family: nftables.TableFamilyIPv4}
	sameNameOtherFamily := &nftables.Table{Name: "edgefw", Family: nftables.TableFamilyIPv4}
	ev := func(data any) *nftables.MonitorEvent { return &nftables.MonitorEvent{Data: data} }
	for _, tc := range []struct {
		name    string
		changes []*nftables.MonitorEvent
		want    bool
	}{
		{"table deleted", []*nftables.MonitorEvent{ev(ours)}, true},
		{"our chain", []*nftables.MonitorEvent{ev(&nftables.Chain{Table: ours})}, true},
		{"our rule among others", []*nftables.MonitorEvent{ev(&nftables.Rule{Table: theirs}), ev(&nftables.Rule{Table: ours})}, true},
		{"our set", []*nftables.MonitorEvent{ev(&nftables.Set{Table: ours})}, true},
		{"our counter", []*nftables.MonitorEvent{ev(&nftables.CounterObj{Table: ours})}, true},
		{"unparsable change", []*nftables.MonitorEvent{{Error: errors.New("bad")}}, true},
		{"kube-proxy rules", []*nftables.MonitorEvent{ev(&nftables.Rule{Table: theirs}), ev(&nftables.Chain{Table: theirs})}, false},
		{"ip edgefw is not ours", []*nftables.MonitorEvent{ev(sameNameOtherFamily)}, false},
		{"elements name no table", []*nftables.MonitorEvent{ev([]nftables.SetElement{{Key: []byte{1}}})}, false},
		{"no changes", nil, false},
	} {
		if got := touchesOurTable(tc.changes); got != tc.want {
			t.Errorf("%s: touchesOurTable = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestThreadGroup checks that a commit from any thread of the daemon is
// its own: the kernel names the committing thread, and Go commits from
// whichever thread runs the goroutine.
func TestThreadGroup(t *testing.T) {
	tids := make(chan int)
	release := make(chan struct{})
	defer close(release)
	for range 4 {
		go func() {
			// Each goroutine holds a thread of its own until the end of
			// the test (locked and never unlocked: the runtime then
			// retires the thread).
			runtime.LockOSThread()
			tids <- unix.Gettid()
			<-release
		}()
	}
	others := 0
	for range 4 {
		tid := <-tids
		if tid != os.Getpid() {
			others++
		}
		if got := threadGroup(uint32(tid)); got != os.Getpid() {
			t.Errorf("threadGroup(%d) = %d, want this process %d", tid, got, os.Getpid())
		}
	}
	if others == 0 {
		t.Error("every goroutine ran on the main thread: the test proved nothing")
	}
	if got := threadGroup(1); got != 1 {
		t.Errorf("threadGroup(1) = %d, want 1 (init)", got)
	}
}

func TestParseTgid(t *testing.T) {
	for _, tc := range []struct {
		status string
		want   int
		ok     bool
	}{
		{"Name:\tkube-proxy\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nNgid:\t0\nPid:\t4250\n", 4242, true},
		{"Name:\tnft\nTgid:\t77\nPid:\t77\n", 77, true},
		{"Name:\tx\nPid:\t9\n", 0, false},
		{"Tgid:\tnot-a-number\n", 0, false},
	} {
		if got, ok := parseTgid([]byte(tc.status)); got != tc.want || ok != tc.ok {
			t.Errorf("parseTgid(%q) = %d, %v; want %d, %v", tc.status, got, ok, tc.want, tc.ok)
		}
	}
}
