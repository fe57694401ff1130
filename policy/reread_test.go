package policy

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// peerKeyText is the base64 public key of peer i.
func peerKeyText(i int) string {
	var k [32]byte
	k[0], k[1], k[2] = byte(i), byte(i>>8), 7
	return base64.StdEncoding.EncodeToString(k[:])
}

// flowPeer and blockPeer write peer i as one line and as a block of lines.
func flowPeer(i int) string {
	return fmt.Sprintf("      - {name: p%d, publicKey: %q, allowedIPs: [10.9.%d.%d/32]}\n", i, peerKeyText(i), i/250, i%250+1)
}

func blockPeer(i int) string {
	return fmt.Sprintf("      - name: p%d\n        publicKey: %q\n        # the peer's network\n        allowedIPs:\n          - 10.9.%d.%d/32\n        persistentKeepalive: 25s\n",
		i, peerKeyText(i), i/250, i%250+1)
}

// rereadPolicy is a policy with rules before and after two tunnels, whose
// peers are peers1 and peers2 (written out), and a set file.
func rereadPolicy(peers1, peers2 string) string {
	return "version: 1\n" +
		"sets:\n  blocked: {file: blocked.txt}\n" +
		"rules:\n  - {name: ssh, direction: input, ports: [{protocol: tcp, port: 22}], action: accept}\n" +
		"tunnels:\n" +
		"  - name: wg0\n    privateKeyFile: /etc/edgefw/keys/wg0.key\n    listenPort: 51820\n    addresses: [10.8.0.1/16]\n    peers:\n" + peers1 +
		"    mtu: 1400\n" +
		"  - name: wg1\n    privateKeyFile: keys/wg1.key\n    listenPort: 51821\n    addresses: [10.7.0.1/16]\n    peers:\n" + peers2 +
		"# the end\n"
}

type rereadEnv struct {
	t      *testing.T
	dir    string
	path   string
	reader *Reader
}

func newRereadEnv(t *testing.T, policy string) *rereadEnv {
	t.Helper()
	dir := t.TempDir()
	e := &rereadEnv{t: t, dir: dir, path: filepath.Join(dir, "policy.yaml"), reader: &Reader{}}
	e.write("blocked.txt", "192.0.2.0/24\n")
	e.write("policy.yaml", policy)
	e.check("first read")
	return e
}

func (e *rereadEnv) write(name, data string) {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.dir, name), []byte(data), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// check reads the policy with the Reader and in full, wants the same
// policy, bundle and errors, and says whether the Reader spliced.
func (e *rereadEnv) check(what string) (spliced bool) {
	e.t.Helper()
	before := e.reader.spliced
	got, gotBundle, gotErr := e.reader.ReadBundle(e.path)
	want, wantBundle, wantErr := ReadBundle(e.path)
	if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
		e.t.Fatalf("%s: Reader's error:\n%v\nfull read's:\n%v", what, gotErr, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		e.t.Fatalf("%s: Reader's policy differs from a full read's:\n%s", what, policyDiff(got, want))
	}
	if !reflect.DeepEqual(gotBundle, wantBundle) {
		e.t.Fatalf("%s: Reader's bundle differs from a full read's", what)
	}
	return e.reader.spliced > before
}

// policyDiff names the first tunnel peers that differ, or prints both.
func policyDiff(got, want *Policy) string {
	if got != nil && want != nil && len(got.Tunnels) == len(want.Tunnels) {
		for i := range got.Tunnels {
			g, w := got.Tunnels[i], want.Tunnels[i]
			for j := range min(len(g.Peers), len(w.Peers)) {
				if !reflect.DeepEqual(g.Peers[j], w.Peers[j]) {
					return fmt.Sprintf("tunnel %d peer %d: %+v, want %+v", i, j, g.Peers[j], w.Peers[j])
				}
			}
			if len(g.Peers) != len(w.Peers) {
				return fmt.Sprintf("tunnel %d: %d peers, want %d", i, len(g.Peers), len(w.Peers))
			}
			g.Peers, w.Peers = nil, nil
			if !reflect.DeepEqual(g, w) {
				return fmt.Sprintf("tunnel %d: %+v, want %+v", i, g, w)
			}
		}
	}
	return fmt.Sprintf("%+v\nwant\n%+v", got, want)
}

func peerRange(write func(int) string, from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		b.WriteString(write(i))
	}
	return b.String()
}

// TestReaderSplicesPeers: changes to whole peers of one list read as a full
// read does, decoding only the entries changed.
func TestReaderSplicesPeers(t *testing.T) {
	flow := peerRange(flowPeer, 0, 20)
	block := peerRange(blockPeer, 100, 110)
	lastBlock := block + blockPeer(110) + "        endpoint: 192.0.2.1:51820\n"
	e := newRereadEnv(t, rereadPolicy(flow, block))
	// Each case changes one list of the one before.
	for _, c := range []struct {
		what          string
		peers1, peer2 string
	}{
		{"one peer added at the end of the first list", flow + flowPeer(20), block},
		{"one peer added at the start", flowPeer(21) + flow + flowPeer(20), block},
		{"one peer added in the middle", flowPeer(21) + peerRange(flowPeer, 0, 7) + flowPeer(22) + peerRange(flowPeer, 7, 21), block},
		{"a peer removed", flowPeer(21) + peerRange(flowPeer, 0, 7) + peerRange(flowPeer, 8, 21), block},
		{"the last peer removed", flowPeer(21) + peerRange(flowPeer, 0, 7) + peerRange(flowPeer, 8, 20), block},
		{"the first peer removed", peerRange(flowPeer, 0, 7) + peerRange(flowPeer, 8, 20), block},
		{"a block peer added at the end of the last list", peerRange(flowPeer, 0, 7) + peerRange(flowPeer, 8, 20), block + blockPeer(110)},
		{"a field of a block peer changed", peerRange(flowPeer, 0, 7) + peerRange(flowPeer, 8, 20),
			strings.Replace(block+blockPeer(110), "persistentKeepalive: 25s", "persistentKeepalive: 30s", 3)},
		{"a field added to the last block peer", peerRange(flowPeer, 0, 7) + peerRange(flowPeer, 8, 20),
			lastBlock},
		{"a comment and a peer added", peerRange(flowPeer, 0, 7) + "      # new\n" + flowPeer(7) + peerRange(flowPeer, 8, 20), lastBlock},
		{"a peer replaced by two", peerRange(flowPeer, 0, 7) + flowPeer(30) + flowPeer(31) + peerRange(flowPeer, 8, 20), lastBlock},
		{"the only peer left of a list", peerRange(flowPeer, 0, 7) + flowPeer(30) + flowPeer(31) + peerRange(flowPeer, 8, 20), blockPeer(110)},
	} {
		e.write("policy.yaml", rereadPolicy(c.peers1, c.peer2))
		if !e.check(c.what) {
			t.Errorf("%s: read in full", c.what)
		}
		if e.check(c.what + ", read again") {
			t.Errorf("%s: nothing changed, yet spliced", c.what)
		}
	}
}

// TestReaderReadsInFull: changes that are not whole peers of one list, or
// that a check across the tunnel refuses, are read in full, with a full
// read's errors.
func TestReaderReadsInFull(t *testing.T) {
	flow := peerRange(flowPeer, 0, 20)
	block := peerRange(blockPeer, 100, 110)
	base := rereadPolicy(flow, block)
	for _, c := range []struct {
		what   string
		change func(e *rereadEnv)
	}{
		{"a peer with another's key", func(e *rereadEnv) {
			e.write("policy.yaml", rereadPolicy(flow+strings.Replace(flowPeer(20), peerKeyText(20), peerKeyText(3), 1), block))
		}},
		{"a peer with another's name", func(e *rereadEnv) {
			e.write("policy.yaml", rereadPolicy(flow+strings.Replace(flowPeer(20), "p20", "p3", 1), block))
		}},
		{"a peer with another's allowed IP", func(e *rereadEnv) {
			e.write("policy.yaml", rereadPolicy(flow+strings.Replace(flowPeer(20), "10.9.0.21/32", "10.9.0.4/32", 1), block))
		}},
		{"an invalid peer", func(e *rereadEnv) {
			e.write("policy.yaml", rereadPolicy(flow+strings.Replace(flowPeer(20), "allowedIPs", "allowedIP", 1), block))
		}},
		{"a YAML syntax error in a peer", func(e *rereadEnv) {
			e.write("policy.yaml", rereadPolicy(flow+"      - {name: p20, publicKey: \"x\n", block))
		}},
		{"a tunnel field after the last peer", func(e *rereadEnv) {
			e.write("policy.yaml", rereadPolicy(flow, block+"    mtu: 1300\n"))
		}},
		{"a field outside the peers", func(e *rereadEnv) {
			e.write("policy.yaml", strings.Replace(base, "listenPort: 51821", "listenPort: 51822", 1))
		}},
		{"every peer removed", func(e *rereadEnv) {
			e.write("policy.yaml", rereadPolicy("", block))
		}},
		{"a peer in an anchor", func(e *rereadEnv) {
			e.write("policy.yaml", rereadPolicy(flow+"      - &x {name: p20, publicKey: \"x\", allowedIPs: [10.0.0.1/32]}\n", block))
		}},
		{"a second document", func(e *rereadEnv) {
			e.write("policy.yaml", rereadPolicy(flow+"---\n", block))
		}},
		{"a peer as a dash alone on its line", func(e *rereadEnv) {
			e.write("policy.yaml", rereadPolicy(flow+"      -\n        name: p20\n        publicKey: \""+peerKeyText(20)+"\"\n        allowedIPs: [10.9.9.9/32]\n", block))
		}},
		{"a peer less indented", func(e *rereadEnv) {
			e.write("policy.yaml", rereadPolicy(flow+strings.TrimPrefix(flowPeer(20), "  "), block))
		}},
		{"the set file changed", func(e *rereadEnv) {
			e.write("blocked.txt", "198.51.100.0/24\n")
		}},
		{"the set file changed too", func(e *rereadEnv) {
			e.write("blocked.txt", "198.51.100.0/24\n")
			e.write("policy.yaml", rereadPolicy(flow+flowPeer(20), block))
		}},
		{"a drop-in added", func(e *rereadEnv) {
			if err := os.Mkdir(filepath.Join(e.dir, "policy.d"), 0o755); err != nil {
				t.Fatal(err)
			}
			e.write("policy.d/10-more.yaml", "version: 1\nrules:\n  - {name: web, direction: input, ports: [{protocol: tcp, port: 80}], action: accept}\n")
			e.write("policy.yaml", rereadPolicy(flow+flowPeer(20), block))
		}},
		{"the set file gone", func(e *rereadEnv) {
			if err := os.Remove(filepath.Join(e.dir, "blocked.txt")); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(c.what, func(t *testing.T) {
			e := newRereadEnv(t, base)
			c.change(e)
			if e.check(c.what) {
				t.Errorf("spliced; want a full read")
			}
			// The Reader reads the original again (in full if the change
			// failed, as there is nothing kept to splice into).
			e.write("blocked.txt", "192.0.2.0/24\n")
			_ = os.RemoveAll(filepath.Join(e.dir, "policy.d"))
			e.write("policy.yaml", base)
			e.check(c.what + ", undone")
		})
	}
}

// TestReaderRandomEdits: random line edits of peer lists (entries added,
// removed, duplicated, moved; lines of block entries removed or copied)
// read as a full read does, policy or errors.
func TestReaderRandomEdits(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	lines := func(s string) []string { return strings.SplitAfter(s, "\n")[:strings.Count(s, "\n")] }
	peers1 := lines(peerRange(flowPeer, 0, 15))
	peers2 := lines(peerRange(blockPeer, 100, 106))
	e := newRereadEnv(t, rereadPolicy(strings.Join(peers1, ""), strings.Join(peers2, "")))
	next := 200
	spliced := 0
	good1, good2 := peers1, peers2
	for i := range 300 {
		list := &peers1
		if rng.IntN(3) == 0 {
			list = &peers2
		}
		l := *list
		switch op := rng.IntN(6); {
		case op == 0 || len(l) < 2: // a new entry
			at := rng.IntN(len(l) + 1)
			var add []string
			if list == &peers1 {
				add = lines(flowPeer(next))
			} else {
				add = lines(blockPeer(next))
			}
			next++
			*list = slices.Insert(l, at, add...)
		case op == 1: // a line removed
			k := rng.IntN(len(l))
			*list = slices.Delete(slices.Clone(l), k, k+1)
		case op == 2: // a line copied elsewhere (a duplicate, or a field twice)
			*list = slices.Insert(slices.Clone(l), rng.IntN(len(l)+1), l[rng.IntN(len(l))])
		case op == 3: // a line moved
			k := rng.IntN(len(l))
			moved := l[k]
			rest := slices.Delete(slices.Clone(l), k, k+1)
			*list = slices.Insert(rest, rng.IntN(len(rest)+1), moved)
		case op == 4: // a value changed
			k := rng.IntN(len(l))
			c := slices.Clone(l)
			c[k] = strings.Replace(c[k], "10.9.", fmt.Sprintf("10.%d.", 10+rng.IntN(3)), 1)
			*list = c
		default: // a comment
			*list = slices.Insert(slices.Clone(l), rng.IntN(len(l)+1), "      # note\n")
		}
		e.write("policy.yaml", rereadPolicy(strings.Join(peers1, ""), strings.Join(peers2, "")))
		if e.check(fmt.Sprintf("edit %d", i)) {
			spliced++
		}
		if _, err := Load(e.path); err != nil {
			// Back to the last valid version, so that edits go on from
			// a policy the Reader can splice into.
			peers1, peers2 = good1, good2
			e.write("policy.yaml", rereadPolicy(strings.Join(peers1, ""), strings.Join(peers2, "")))
			e.check(fmt.Sprintf("edit %d undone", i))
		}
		good1, good2 = peers1, peers2
	}
	if spliced == 0 {
		t.Errorf("no edit was spliced")
	}
	t.Logf("%d of 300 edits spliced", spliced)
}

// BenchmarkReaderOnePeerAdded re-reads a policy whose tunnel of 10,000
// peers gains one, then loses it again.
func BenchmarkReaderOnePeerAdded(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	head := "version: 1\ntunnels:\n  - name: wg0\n    privateKeyFile: /k\n    addresses: [10.8.0.1/16]\n    peers:\n"
	base := []byte(head + peerRange(flowPeer, 0, 10_000))
	more := []byte(head + peerRange(flowPeer, 0, 10_001))
	if err := os.WriteFile(path, base, 0o644); err != nil {
		b.Fatal(err)
	}
	r := &Reader{}
	if _, _, err := r.ReadBundle(path); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, data := range [][]byte{more, base} {
			if err := os.WriteFile(path, data, 0o644); err != nil {
				b.Fatal(err)
			}
			if _, _, err := r.ReadBundle(path); err != nil {
				b.Fatal(err)
			}
		}
	}
	if r.spliced == 0 {
		b.Fatal("read in full")
	}
}
