package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefw/edgefw/internal/netnstest"
)

// Bounds the flood test asserts.
const (
	// floodPackets is what hping3 sends, from random sources.
	floodPackets = 100_000
	// floodRSSCap bounds the daemon's resident memory during and after
	// the flood, floodRSSGrowthCap what the flood may add to it. Measured
	// here: 17.5 MB before the flood, 18.2 MB at most during it. The
	// attribution holds at most audit.MaxBytesPerRule (1.5 MB) per rule
	// whatever the sources, and the minute summary at most 10,000 flows
	// (about 1 MB): memory that grew with the sources would pass 16 MB.
	floodRSSCap       = 64 << 20
	floodRSSGrowthCap = 16 << 20
	// floodLinesCap bounds the journal lines of denied traffic a minute:
	// 50 flows and one line for the rest.
	floodLinesCap = 51
)

// vmRSS reads a process's resident memory from /proc.
func vmRSS(pid int) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// rssPeak samples a process's resident memory until stopped.
type rssPeak struct {
	mu   sync.Mutex
	peak uint64
	stop chan struct{}
	done chan struct{}
}

func watchRSS(t *testing.T, pid int) *rssPeak {
	r := &rssPeak{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if rss, err := vmRSS(pid); err == nil {
				r.mu.Lock()
				r.peak = max(r.peak, rss)
				r.mu.Unlock()
			}
			select {
			case <-r.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(r.end)
	return r
}

func (r *rssPeak) end() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
	<-r.done
}

func (r *rssPeak) Peak() uint64 {
	r.end()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.peak
}

// deniedLogLine is a journal line of denied traffic, as --log-format json
// writes it.
type deniedLogLine struct {
	Msg     string   `json:"msg"`
	Type    []string `json:"event.type"`
	Start   string   `json:"event.start"`
	Packets uint64   `json:"network.packets"`
	Sources int      `json:"edgefw.more.sources"`
}

// deniedLogLines returns the daemon's lines of denied traffic by minute
// (event.start).
func deniedLogLines(log string) map[string][]deniedLogLine {
	byMinute := map[string][]deniedLogLine{}
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l deniedLogLine
		if json.Unmarshal(sc.Bytes(), &l) != nil || len(l.Type) != 2 || l.Type[1] != "denied" {
			continue
		}
		byMinute[l.Start] = append(byMinute[l.Start], l)
	}
	return byMinute
}

// TestDropsFloodBounded floods the default input drop with 100,000 SYNs
// from random sources (hping3 --rand-source) from a peer namespace: the
// daemon's resident memory stays under floodRSSCap, its journal lines of
// denied traffic stay at floodLinesCap a minute however many sources,
// the last of them summing the rest, and drops still gives the exact
// total with the small share the log sampled.
func TestDropsFloodBounded(t *testing.T) {
	netnstest.RequireRoot(t)
	netnstest.RequireTool(t, "nft", "hping3")
	host := netnstest.New(t, "flood")
	peer := netnstest.New(t, "fpeer")
	hostIf, _ := netnstest.Link(t, host, []string{"192.0.2.1/24"}, peer, []string{"192.0.2.2/24"})
	// Random sources have no route back: the reverse-path filter, off by
	// default, must stay off for them to reach the input hook.
	host.MustRun(t, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf."+hostIf+".rp_filter=0")
	p := startEdgefwdReady(t, edgefwdSetup{NS: host, Policy: dropsPolicy, Args: []string{"--log-format", "json"}})
	pid := p.cmd.Process.Pid
	time.Sleep(2 * time.Second) // the start's allocations settle
	before, err := vmRSS(pid)
	if err != nil {
		t.Fatal(err)
	}
	counted := nftCounter(t, p, "edgefw-default-input")

	// Start early in a minute, so the flood's log falls in one minute.
	if now := time.Now(); now.Second() > 40 {
		time.Sleep(now.Truncate(time.Minute).Add(time.Minute + time.Second).Sub(now))
	}
	minute := time.Now().UTC().Truncate(time.Minute)
	peak := watchRSS(t, pid)
	out, err := peer.Run("hping3", "--rand-source", "-S", "-p", "9400", "-i", "u10", "-c", strconv.Itoa(floodPackets), "-q", "192.0.2.1")
	// hping3 exits 1 when nothing answers, as nothing does here.
	if !strings.Contains(out, fmt.Sprintf("%d packets transmitted", floodPackets)) {
		t.Fatalf("hping3: %v\n%s", err, out)
	}
	time.Sleep(2 * time.Second) // the log's backlog reaches the daemon
	during := peak.Peak()
	flooded := nftCounter(t, p, "edgefw-default-input") - counted
	t.Logf("edgefwd VmRSS %.1f MB before the flood, %.1f MB at most during it; edgefw-default-input counted %d of %d packets (martian sources are dropped before)",
		float64(before)/(1<<20), float64(during)/(1<<20), flooded, floodPackets)
	if during > floodRSSCap || during > before+floodRSSGrowthCap {
		t.Errorf("edgefwd VmRSS went from %d to %d MB: over the cap of %d MB, or of %d MB more", before>>20, during>>20, floodRSSCap>>20, floodRSSGrowthCap>>20)
	}
	if flooded < floodPackets/2 {
		t.Fatalf("the default drop counted %d packets of the flood, want most of %d", flooded, floodPackets)
	}

	v := dropsView(t, p, "--since", "1h", "--rule", "edgefw-default-input")
	r, _ := dropsRule(v, "edgefw-default-input")
	if r.Packets < flooded || r.Sampled == 0 || r.Share == nil || *r.Share > 0.01 {
		t.Errorf("drops under a flood: %d packets (counter %d), %d logged, share %v; want the counter's total and a share under 1%%",
			r.Packets, flooded, r.Sampled, r.Share)
	}

	// The flood's minute is logged just after it ends.
	start := minute.Format(time.RFC3339)
	daemonPoll(t, 2*time.Minute, "the flood minute's lines of denied traffic", func() (bool, string) {
		return len(deniedLogLines(p.Log())[start]) > 0, ""
	})
	time.Sleep(time.Second) // a minute's lines are written together
	byMinute := deniedLogLines(p.Log())
	for m, lines := range byMinute {
		if len(lines) > floodLinesCap {
			t.Errorf("minute %s: %d lines of denied traffic, over the cap of %d", m, len(lines), floodLinesCap)
		}
	}
	lines := byMinute[start]
	last := lines[len(lines)-1]
	if len(lines) != floodLinesCap || !strings.HasPrefix(last.Msg, "denied traffic: ") || last.Sources == 0 {
		t.Errorf("the flood minute has %d lines ending with %+v; want %d, the last for the other sources", len(lines), last, floodLinesCap)
	}
	var logged uint64
	for _, l := range lines {
		logged += l.Packets
	}
	t.Logf("flood minute %s: %d lines for %d logged packets, the last: %q", start, len(lines), logged, last.Msg)
}
