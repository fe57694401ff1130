package nft

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/edgefw/edgefw/internal/netnstest"
)

// genMsg is the NEWGEN notification that ends commit gen of thread tid.
func genMsg(gen, tid uint32, comm string) netlink.Message {
	return nftMsg(unix.NFT_MSG_NEWGEN, unix.AF_UNSPEC, 0,
		be32(unix.NFTA_GEN_ID, gen), be32(unix.NFTA_GEN_PROC_PID, tid), str(unix.NFTA_GEN_PROC_NAME, comm))
}

// commit is the notifications of commit gen by nft (thread tid): changes,
// then NEWGEN.
func commit(gen, tid uint32, changes ...netlink.Message) []netlink.Message {
	return append(changes, genMsg(gen, tid, "nft"))
}

// Notifications of changes to our table and to others'.
var (
	ourElement  = elemsMsg(0, TableName, "blocklist-v4", elemAttr(addr1, false))
	ourChain    = nftMsg(unix.NFT_MSG_DELCHAIN, unix.NFPROTO_INET, 0, str(unix.NFTA_CHAIN_TABLE, TableName), str(unix.NFTA_CHAIN_NAME, "input"))
	kubeRule    = nftMsg(unix.NFT_MSG_NEWRULE, unix.NFPROTO_IPV4, 0, str(unix.NFTA_RULE_TABLE, "nat"))
	ipEdgefw    = nftMsg(unix.NFT_MSG_NEWTABLE, unix.NFPROTO_IPV4, 0, str(unix.NFTA_TABLE_NAME, TableName))
	inetOther   = elemsMsg(0, "neighbour", "svc", elemAttr(addr1, false))
	ipNoTable   = nftMsg(unix.NFT_MSG_NEWRULE, unix.NFPROTO_IPV4, 0, str(unix.NFTA_RULE_CHAIN, "input"))
	inetNoTable = nftMsg(unix.NFT_MSG_NEWRULE, unix.NFPROTO_INET, 0, str(unix.NFTA_RULE_CHAIN, "input"))
)

// generations returns a generation function that returns gens in turn.
func generations(gens ...uint32) func() (uint32, error) {
	return func() (uint32, error) {
		g := gens[0]
		if len(gens) > 1 {
			gens = gens[1:]
		}
		return g, nil
	}
}

// testWatch is a started watch over src whose reports are kept, and whose
// threads are their own processes plus 1000.
func testWatch(t *testing.T, src datagramReader, gens ...uint32) (*tableWatch, *[]TableChange) {
	t.Helper()
	w := newWatch(src, generations(gens...))
	w.process = func(tid uint32) int { return int(tid) + 1000 }
	var changes []TableChange
	w.changed = func(c TableChange) { changes = append(changes, c) }
	if err := w.start(); err != nil {
		t.Fatal(err)
	}
	return w, &changes
}

func syncTo(t *testing.T, w *tableWatch, gen uint32) {
	t.Helper()
	if err := w.sync(gen); err != nil {
		t.Fatalf("sync(%d): %v", gen, err)
	}
}

// TestWatchTellsOurCommits feeds a watch the notifications of commits to
// our table (a set element, a chain) and to others' (another family's
// table named like ours, another inet table's elements): only ours count,
// and each is reported with the process that made it.
func TestWatchTellsOurCommits(t *testing.T) {
	src := &fakeSocket{reads: datagrams(
		commit(5, 1, ourElement),
		commit(6, 2, kubeRule, ipEdgefw, ipNoTable),
		// Two commits in one datagram: sync stops after the one it waits for.
		append(commit(7, 3, inetOther), commit(8, 4, kubeRule, ourChain)...),
		commit(9, 5, inetNoTable),
	)}
	w, changes := testWatch(t, src, 4)
	syncTo(t, w, 7)
	if w.touches != 1 || w.done != 7 || len(w.pending) != 3 {
		t.Errorf("after sync(7): %d touches, done %d, %d pending; want 1, 7, 3", w.touches, w.done, len(w.pending))
	}
	syncTo(t, w, 9)
	if w.touches != 3 || w.losses != 0 {
		t.Errorf("after sync(9): %d touches, %d losses; want 3, 0", w.touches, w.losses)
	}
	want := []TableChange{{Generation: 5, PID: 1001, By: "nft[1001]"}, {Generation: 8, PID: 1004, By: "nft[1004]"},
		{Generation: 9, PID: 1005, By: "nft[1005]"}}
	if diff := cmp.Diff(want, *changes); diff != "" {
		t.Errorf("reported changes (-want +got):\n%s", diff)
	}
}

// TestWatchOverflow overflows the watch's socket: it counts a loss and
// reports it, drains what the socket held (the kernel would drop every
// later notification otherwise), and counts again only commits after the
// generation it reads then.
func TestWatchOverflow(t *testing.T) {
	src := &fakeSocket{reads: append(datagrams(commit(5, 1, ourElement)),
		fakeRead{err: unix.ENOBUFS},
		fakeRead{data: datagram(commit(6, 2, ourElement)...)},
		fakeRead{data: datagram(commit(7, 3, ourElement)...)},
		fakeRead{data: datagram(commit(8, 4, ourElement)...), afterDrain: true},
		fakeRead{data: datagram(commit(9, 5, ourElement)...), afterDrain: true},
	)}
	w, changes := testWatch(t, src, 4, 8)
	syncTo(t, w, 9)
	if w.touches != 2 || w.losses != 1 || w.floor != 8 || src.discarded != 2 {
		t.Errorf("%d touches, %d losses, floor %d, %d datagrams drained; want 2, 1, 8, 2", w.touches, w.losses, w.floor, src.discarded)
	}
	want := []TableChange{{Generation: 5, PID: 1001, By: "nft[1001]"}, {Generation: 8, Lost: true}, {Generation: 9, PID: 1005, By: "nft[1005]"}}
	if diff := cmp.Diff(want, *changes); diff != "" {
		t.Errorf("reported changes (-want +got):\n%s", diff)
	}
}

// TestWatchGarbled checks that notifications the watch cannot read count
// as changes to our table, never as nothing.
func TestWatchGarbled(t *testing.T) {
	garbledGen := genMsg(6, 2, "nft")
	garbledGen.Data = garbledGen.Data[:6]
	src := &fakeSocket{reads: []fakeRead{
		{data: datagram(kubeRule)[:20]},
		{data: datagram(genMsg(5, 1, "nft"))},
		{data: datagram(nftMsg(unix.NFT_MSG_NEWRULE, unix.NFPROTO_INET, 0, netlink.Attribute{Type: 1, Data: make([]byte, 3)}))[:24]},
		{data: datagram(garbledGen, genMsg(7, 3, "nft"))},
		{data: datagram(kubeRule, genMsg(8, 4, "nft"))},
	}}
	w, changes := testWatch(t, src, 4)
	syncTo(t, w, 8)
	if w.touches != 2 {
		t.Errorf("%d touches, want 2: garbled notifications must count", w.touches)
	}
	if len(*changes) != 2 || (*changes)[1].Generation != 7 {
		t.Errorf("reported %+v, want commits 5 and 7", *changes)
	}
}

func TestWatchSyncWaitsForNotifications(t *testing.T) {
	w, _ := testWatch(t, &fakeSocket{reads: datagrams(commit(5, 1, kubeRule))}, 4)
	if err := w.sync(6); err == nil || !strings.Contains(err.Error(), "none came") {
		t.Errorf("sync of a generation never notified = %v, want an error", err)
	}
	// Commits up to the floor are not waited for.
	w, _ = testWatch(t, &fakeSocket{}, 10)
	syncTo(t, w, 9)
}

// chanSocket is a datagramReader fed by a test, closed when done ends.
type chanSocket struct {
	reads <-chan fakeRead
	done  <-chan struct{}
}

func (s chanSocket) readDatagram(buf []byte, _ time.Time) (int, error) {
	select {
	case r, ok := <-s.reads:
		if !ok {
			return 0, os.ErrInvalid // the socket failed
		}
		if r.err != nil {
			return 0, r.err
		}
		return copy(buf, r.data), nil
	case <-s.done:
		return 0, net.ErrClosed
	}
}

func (s chanSocket) discard([]byte) error { return nil }

// TestFollowChanges runs followChanges on sockets fed by the test: it
// reports our commits, subscribes again when its socket fails and reports
// the loss, and closes its channel when its context ends.
func TestFollowChanges(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first, second := make(chan fakeRead, 4), make(chan fakeRead, 4)
	sockets := []chan fakeRead{first, second}
	floors := []uint32{10, 20}
	open := func() (*tableWatch, error) {
		w := newWatch(chanSocket{reads: sockets[0], done: ctx.Done()}, generations(floors[0]))
		sockets, floors = sockets[1:], floors[1:]
		w.process = func(tid uint32) int { return int(tid) }
		return w, w.start()
	}
	changes, err := followChanges(ctx, open, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	next := func() TableChange {
		t.Helper()
		select {
		case c := <-changes:
			return c
		case <-time.After(acceptTimeout):
			t.Fatal("no change reported")
			return TableChange{}
		}
	}
	first <- fakeRead{data: datagram(commit(11, 7, kubeRule)...)}
	first <- fakeRead{data: datagram(commit(12, 7, ourChain)...)}
	if c := next(); c != (TableChange{Generation: 12, PID: 7, By: "nft[7]"}) {
		t.Errorf("first change %+v, want commit 12 by nft[7]", c)
	}
	close(first)
	if c := next(); c != (TableChange{Generation: 20, Lost: true}) {
		t.Errorf("after the socket failed: %+v, want a loss up to 20", c)
	}
	second <- fakeRead{data: datagram(commit(21, 8, ourElement)...)}
	if c := next(); c != (TableChange{Generation: 21, PID: 8, By: "nft[8]"}) {
		t.Errorf("on the new subscription: %+v, want commit 21 by nft[8]", c)
	}
	cancel()
	for c := range changes {
		t.Errorf("change %+v after the context ended", c)
	}
}

// TestWatchSeesElementChanges proves on the kernel that set element
// notifications name their table: adding and deleting an element of our
// set with nft is reported, with nft's process, and a commit of elements
// to other tables (one of them ip edgefw) is not.
func TestWatchSeesElementChanges(t *testing.T) {
	netnstest.RequireTool(t, "nft")
	ns := netnstest.New(t, "elemwatch")
	fw := NewApplier(WithNetNS(ns.FD))
	if _, err := fw.Apply(compileYAML(t, incrementalBase)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes, err := fw.Changes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	nft := func(command string) (pid int, gen uint32) {
		t.Helper()
		cmd := ns.Command("nft", command)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nft %s: %v\n%s", command, err, out)
		}
		// ip netns exec execs nft: the process is nft's.
		return cmd.Process.Pid, generation(t, fw)
	}
	next := func() TableChange {
		t.Helper()
		select {
		case c := <-changes:
			return c
		case <-time.After(acceptTimeout):
			t.Fatal("no change reported")
			return TableChange{}
		}
	}

	pid, gen := nft("add element inet edgefw trusted-v4 { 192.0.2.200 }")
	if c, want := next(), (TableChange{Generation: gen, PID: pid, By: fmt.Sprintf("nft[%d]", pid)}); c != want {
		t.Errorf("after nft add element: %+v, want %+v", c, want)
	}
	_, other := nft("add table ip edgefw; add set ip edgefw s { type ipv4_addr; }; add element ip edgefw s { 10.0.0.1 };" +
		"add table inet neighbour; add set inet neighbour s { type ipv4_addr; }; add element inet neighbour s { 10.0.0.1 }")
	pid, gen = nft("delete element inet edgefw trusted-v4 { 192.0.2.200 }")
	if gen == other {
		t.Fatal("the generation did not move")
	}
	// Notifications come in generation order: had the other tables'
	// commit been reported, it would come first.
	if c, want := next(), (TableChange{Generation: gen, PID: pid, By: fmt.Sprintf("nft[%d]", pid)}); c != want {
		t.Errorf("after nft delete element: %+v, want %+v (commit %d to other tables must not be reported)", c, want, other)
	}
}

// TestThreadGroup checks that a commit from any thread of a process is
// the process's: the kernel names the committing thread, and Go commits
// from whichever thread runs the goroutine.
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
