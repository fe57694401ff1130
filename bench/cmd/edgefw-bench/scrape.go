package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/edgefw/edgefw/bench"
)

// metricsAddress is where the daemons of the bench serve /metrics, each
// on the loopback of its own namespace.
const metricsAddress = "127.0.0.1:9477"

// scrapeConfig is one daemon of the scrape scenario.
type scrapeConfig struct {
	label     string
	rules     int
	peers     int
	setSize   int
	edgefw    int // scrapes
	reference int // nft -j list counters runs
	target    bool
}

// runScrape measures GET /metrics of a running daemon against `nft -j
// list counters` in the same namespace.
func runScrape(e *env) ([]bench.Row, error) {
	configs := []scrapeConfig{
		{"1k rules", 1000, 0, 0, 60, 6, false},
		{"10k rules", 10_000, 0, 0, 60, 4, false},
		{"1k rules + 100 peers + 100k set", 1000, 100, 100_000, 60, 3, true},
		{"1k rules + 1000 peers + 100k set", 1000, 1000, 100_000, 60, 3, false},
	}
	var rows []bench.Row
	for _, c := range configs {
		if e.quick {
			c.edgefw, c.reference = 20, 2
		}
		row := bench.Row{Scenario: "scrape /metrics (p50, p99)", Size: c.label, N: c.rules, Unit: "ms",
			Edgefw: bench.Side{Tool: "GET /metrics"}, Reference: bench.Side{Tool: "nft -j list counters"}}
		if c.target {
			row.Target = "p50 ≤ 5 ms"
		}
		if err := e.scrape(c, &row); err != nil {
			row.Error = err.Error()
		}
		if c.target {
			row.Met = "no"
			if m := row.Edgefw.Median(); m <= 5 {
				row.Met = "yes"
			} else if m != m {
				row.Met = "—"
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func (e *env) scrape(c scrapeConfig, row *bench.Row) error {
	dir, err := e.lab.TempDir("scrape")
	if err != nil {
		return err
	}
	spec := bench.PolicySpec{PortRules: c.rules, FirstPort: 1024}
	if c.setSize > 0 {
		if err := os.WriteFile(filepath.Join(dir, "blocklist.txt"), bench.SetFile(bench.RandomPrefixes(uint64(c.setSize)+2, c.setSize)), 0o644); err != nil {
			return err
		}
		spec.SetFile = "blocklist.txt"
	}
	if c.peers > 0 {
		if spec.Tunnel, err = e.tunnelSpec(dir, c.peers); err != nil {
			return err
		}
	}
	ns, _, stop, err := e.daemonInNewNS("m", dir, spec)
	if err != nil {
		return err
	}
	defer stop()
	client := nsHTTPClient(ns)
	defer client.CloseIdleConnections()
	get := func() (time.Duration, error) {
		start := time.Now()
		resp, err := client.Get("http://" + metricsAddress + "/metrics")
		if err != nil {
			return 0, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET /metrics: %s", resp.Status)
		}
		return time.Since(start), err
	}
	if _, err := get(); err != nil { // warm-up: the connection
		return err
	}
	var all []float64
	per := c.edgefw / c.reference
	for i := range c.reference {
		for range per {
			d, err := get()
			if err != nil {
				return err
			}
			all = append(all, float64(d)/float64(time.Millisecond))
		}
		u, _, err := ns.Measure(nil, "nft", "-j", "list", "counters")
		if err != nil {
			return err
		}
		row.Reference.AddScaled(u, time.Millisecond)
		_ = i
	}
	row.Edgefw.Samples = all
	row.Edgefw.P99 = bench.Percentile(all, 99)
	row.Note = fmt.Sprintf("%d scrapes over one kept-alive connection, interleaved with %d nft runs", len(all), c.reference)
	if c.peers > 0 {
		row.Note += fmt.Sprintf("; one userspace tunnel with %d peers", c.peers)
	}
	return nil
}

// nsHTTPClient dials from inside ns (its loopback is not ours).
func nsHTTPClient(ns *bench.NS) *http.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := ns.Do(func() error {
				var err error
				c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
		MaxIdleConnsPerHost: 1,
		DisableCompression:  true,
	}
	return &http.Client{Transport: tr, Timeout: time.Minute}
}

// tunnelSpec generates a userspace tunnel with n peers: a private key
// file in dir, a unique interface name (the control sockets in
// /var/run/wireguard are shared by every namespace).
func (e *env) tunnelSpec(dir string, n int) (*bench.TunnelSpec, error) {
	key, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		return nil, err
	}
	keyFile := filepath.Join(dir, "wg.key")
	if err := os.WriteFile(keyFile, []byte(key.String()+"\n"), 0o600); err != nil {
		return nil, err
	}
	peers, err := genPeers(n)
	if err != nil {
		return nil, err
	}
	name := e.lab.Name("w")
	// A daemon killed outright leaves its control socket behind.
	e.lab.Defer(func() { _ = os.Remove(filepath.Join(wgSocketDir, name+".sock")) })
	return &bench.TunnelSpec{Name: name, KeyFile: keyFile, ListenPort: 51820, Address: "10.127.0.1/16", Peers: peers}, nil
}

// genPeers makes n peers with fresh public keys and one /32 each.
func genPeers(n int) ([]bench.Peer, error) {
	peers := make([]bench.Peer, n)
	for i := range peers {
		k, err := wgtypes.GeneratePrivateKey()
		if err != nil {
			return nil, err
		}
		peers[i] = bench.Peer{Name: fmt.Sprintf("peer-%d", i), PublicKey: k.PublicKey().String(), AllowedIP: bench.PeerAllowedIP(i)}
	}
	return peers, nil
}

// runFootprint measures the idle daemon holding a 100k set and one
// userspace tunnel with 10 peers: its resident set after settling, and
// its CPU over an idle period.
func runFootprint(e *env) ([]bench.Row, error) {
	const n, peers = 100_000, 10
	rss := bench.Row{Scenario: "idle daemon: RSS (VmRSS)", Size: "100k set + 10 peers", N: n, Unit: "MiB",
		Edgefw: bench.Side{Tool: "edgefwd"}, Target: "≤ 40 MiB"}
	cpu := bench.Row{Scenario: "idle daemon: CPU (user+sys)", Size: "100k set + 10 peers", N: n, Unit: "% of a core",
		Edgefw: bench.Side{Tool: "edgefwd"}, Target: "≈ 0 (< 0.5%)"}
	err := e.footprint(n, peers, &rss, &cpu)
	if err != nil {
		rss.Error, cpu.Error = err.Error(), err.Error()
	}
	rss.Met, cpu.Met = "—", "—"
	if len(rss.Edgefw.Samples) > 0 {
		rss.Met = yesNo(rss.Edgefw.Median() <= 40)
	}
	if len(cpu.Edgefw.Samples) > 0 {
		cpu.Met = yesNo(cpu.Edgefw.Median() < 0.5)
	}
	return []bench.Row{rss, cpu}, nil
}

func (e *env) footprint(n, peers int, rss, cpu *bench.Row) error {
	dir, err := e.lab.TempDir("idle")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "blocklist.txt"), bench.SetFile(bench.RandomPrefixes(uint64(n)+3, n)), 0o644); err != nil {
		return err
	}
	spec := bulkSpec
	spec.SetFile = "blocklist.txt"
	if spec.Tunnel, err = e.tunnelSpec(dir, peers); err != nil {
		return err
	}
	_, d, stop, err := e.daemonInNewNS("i", dir, spec)
	if err != nil {
		return err
	}
	defer stop()
	time.Sleep(5 * time.Second) // past start-up's garbage
	cpu0, ok0 := bench.ProcCPU(d.pid())
	t0 := time.Now()
	time.Sleep(e.idle)
	cpu1, ok1 := bench.ProcCPU(d.pid())
	elapsed := time.Since(t0)
	r, okr := bench.ProcRSS(d.pid())
	if !ok0 || !ok1 || !okr {
		return fmt.Errorf("cannot read /proc/%d", d.pid())
	}
	rss.Edgefw.Samples = []float64{float64(r) / (1 << 20)}
	cpu.Edgefw.Samples = []float64{(cpu1 - cpu0) / elapsed.Seconds() * 100}
	note := fmt.Sprintf("one daemon: %d-CIDR set, 2 port rules, one userspace tunnel with %d peers, metrics on; measured %.0f s after start-up + 5 s", n, peers, elapsed.Seconds())
	anon, _ := bench.ProcStatus(d.pid(), "RssAnon")
	file, _ := bench.ProcStatus(d.pid(), "RssFile")
	rss.Note = fmt.Sprintf("VmRSS (of which anonymous %.1f MiB, file-backed %.1f MiB: the mapped binary); %s", float64(anon)/(1<<20), float64(file)/(1<<20), note)
	cpu.Note = "utime+stime from /proc/PID/stat; " + note
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// daemonInNewNS starts edgefwd with spec's policy and metrics on
// metricsAddress in a new namespace; stop stops it, deletes the namespace
// and waits for the kernel to settle.
func (e *env) daemonInNewNS(name, dir string, spec bench.PolicySpec) (*bench.NS, *edgefwdProc, func(), error) {
	ns, err := e.lab.NewNS(name)
	if err != nil {
		return nil, nil, nil, err
	}
	d, err := e.startDaemon(ns, dir, bench.Policy(spec), metricsAddress)
	if err != nil {
		ns.Delete()
		e.settle()
		return nil, nil, nil, err
	}
	return ns, d, func() { d.stop(); ns.Delete(); e.settle() }, nil
}
