package nft

import (
	"bufio"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgefw/edgefw/internal/netnstest"
)

// monitor follows `nft monitor` in a namespace. nft prints nothing while
// nothing changes, so sentinel tables (ip family, outside anything under
// test) mark where a watched stretch begins and ends: every event between
// the two sentinels is certain to be seen.
type monitor struct {
	ns    *netnstest.NS
	lines chan string
	marks int
}

func startMonitor(t *testing.T, ns *netnstest.NS) *monitor {
	t.Helper()
	cmd := ns.Command("nft", "monitor")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nft monitor: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	m := &monitor{ns: ns, lines: make(chan string, 1024)}
	go func() {
		defer close(m.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			m.lines <- sc.Text()
		}
	}()
	// The monitor subscribes some time after it starts; until a sentinel
	// shows up, events may be missed, so add sentinels until one does.
	for range 100 {
		if _, ok := m.mark(t, 100*time.Millisecond); ok {
			return m
		}
	}
	t.Fatal("nft monitor never reported a change")
	return nil
}

// mark adds a sentinel table and returns the events printed before it.
func (m *monitor) mark(t *testing.T, wait time.Duration) ([]string, bool) {
	t.Helper()
	m.marks++
	name := fmt.Sprintf("monitor_sentinel_%d", m.marks)
	m.ns.MustRun(t, "nft", "add", "table", "ip", name)
	var seen []string
	deadline := time.After(wait)
	for {
		select {
		case l, ok := <-m.lines:
			if !ok {
				t.Fatal("nft monitor ended")
			}
			if l == "add table ip "+name {
				return seen, true
			}
			seen = append(seen, l)
		case <-deadline:
			return seen, false
		}
	}
}

// changes returns every event since the previous mark, except sentinels'.
func (m *monitor) changes(t *testing.T) []string {
	t.Helper()
	seen, ok := m.mark(t, acceptTimeout)
	if !ok {
		t.Fatal("nft monitor did not report the sentinel")
	}
	var out []string
	for _, l := range seen {
		if strings.HasPrefix(l, "# new generation") || strings.Contains(l, "monitor_sentinel_") {
			continue
		}
		out = append(out, l)
	}
	return out
}
