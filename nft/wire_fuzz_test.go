package nft

import (
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

var updateFuzzCorpus = flag.Bool("update-fuzz-corpus", false, "rewrite testdata/fuzz/FuzzDecode/seed-* from fuzzSeeds")

// FuzzDecode gives anything to every decoder, and as one datagram to the
// readers that use them (awaitOutcome, readSetElements, the watch): they
// may refuse it, never panic, and what they split holds together. Its
// seed corpus, testdata/fuzz/FuzzDecode, holds replies and notifications
// as the kernel sends them (fuzzSeeds), and whatever crashed it once.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		msgs, err := splitMessages(b)
		total := 0
		for _, m := range msgs {
			total += int(m.Header.Length)
			_, _ = decodeAck(m)
			_, _ = decodeDone(m)
			_, _ = decodeGen(m.Data)
			_, _, _, _ = decodeObjectTable(m.Data)
			_, _ = decodeSetElems(nil, m.Data, "trusted")
			_, _, _, _ = decodeRule(m.Data)
			_, _ = decodeObjMapElems(nil, m.Data, "__objmap0")
			_, _, _ = decodeCounter(m.Data)
		}
		if total > len(b) || err == nil && total != len(b) {
			t.Fatalf("%d bytes split into messages of %d bytes (error %v)", len(b), total, err)
		}

		bt, bySeq, last := testBatch()
		_ = bt.awaitOutcome(&fakeSocket{reads: []fakeRead{{data: b}}}, bySeq, last)
		_, _ = readSetElements(&fakeSocket{reads: []fakeRead{{data: b}}}, 5, "trusted")
		_, _ = readRules(&fakeSocket{reads: []fakeRead{{data: b}}}, make([]byte, len(b)+1), 9)
		_, _ = readCounters(&fakeSocket{reads: []fakeRead{{data: b}}}, make([]byte, len(b)), 11, 0)
		w := &tableWatch{src: &fakeSocket{reads: []fakeRead{{data: b}}}, buf: make([]byte, len(b)), generation: generations(4),
			process: func(tid uint32) int { return int(tid) }, changed: func(TableChange) {}}
		if err := w.start(); err != nil {
			t.Fatal(err)
		}
		_ = w.sync(1 << 30)
	})
}

// fuzzSeeds are datagrams as the kernel sends them: replies to a batch
// (with sequence numbers of testBatch), an element dump (sequence 5, set
// trusted), a rule dump (sequence 9), a counter dump (sequence 11) and
// notifications.
func fuzzSeeds() map[string][]byte {
	part := elemsMsg(5, TableName, "trusted", elemAttr(addr1, false), elemAttr(addr2, true))
	part.Header.Flags = netlink.Multi | netlink.DumpInterrupted
	return map[string][]byte{
		"ack":                 datagram(ackFor(request(13), ackOpts{capped: true})),
		"error-extack-capped": datagram(ackFor(request(12), ackOpts{errno: unix.ENOENT, capped: true, msg: "Unknown chain", offs: 36}), ackFor(request(13), ackOpts{capped: true})),
		"error-extack-quoted": datagram(ackFor(request(11), ackOpts{errno: unix.EEXIST, msg: "Set exists", offs: 20})),
		"dump": datagram(part, netlink.Message{Header: netlink.Header{Type: netlink.Done, Flags: netlink.Multi, Sequence: 5},
			Data: make([]byte, 4)}),
		"rules": datagram(ruleMsg(9, TableName, "input", 4, "ssh"), netlink.Message{Header: netlink.Header{Type: netlink.Done, Flags: netlink.Multi, Sequence: 9},
			Data: make([]byte, 4)}),
		"counters": datagram(counterMsg(11, TableName, "ssh", unix.NFT_OBJECT_COUNTER, 3, 180),
			netlink.Message{Header: netlink.Header{Type: netlink.Done, Flags: netlink.Multi, Sequence: 11}, Data: make([]byte, 4)}),
		"dump-failed": datagram(netlink.Message{Header: netlink.Header{Type: netlink.Done, Flags: netlink.Multi, Sequence: 5}, Data: errnoBytes(unix.EINTR)}),
		"notifications": datagram(append(commit(5, 1, ourElement, ourChain),
			commit(6, 2, kubeRule, ipEdgefw, inetOther, inetNoTable)...)...),
	}
}

// TestFuzzCorpus checks that the seed corpus holds fuzzSeeds; with
// -update-fuzz-corpus, it writes them.
func TestFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	for name, b := range fuzzSeeds() {
		path := filepath.Join(dir, "seed-"+name)
		want := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
		if *updateFuzzCorpus {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != want {
			t.Errorf("%s does not hold the seed %s (%v): run go test ./nft -run TestFuzzCorpus -args -update-fuzz-corpus", path, name, err)
		}
	}
}
