package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgefw/edgefw/bench"
)

// Ports of the data-path traffic: iperf3's and the connect test's. No
// port rule and no blocklist entry matches them or the lab's 10/8
// addresses, so each new connection walks every rule before it is
// accepted.
const (
	iperfPort   = 5201
	connectPort = 7000
)

// server is one receiving namespace of the data-path lab.
type server struct {
	label string
	ns    *bench.NS
	addr  string
	ln    net.Listener
	// throughput in Gbit/s per round; connect latencies in ms, all and
	// the p50 and p99 of each round.
	gbps               []float64
	connects           []float64
	roundP50, roundP99 []float64
}

// runDatapath measures throughput (iperf3) and TCP connect latency from
// a client namespace to three servers joined by veth pairs: no firewall;
// edgefw with a 100k blocklist and 100 port rules; the linear iptables
// equivalent (the DaemonSet approach). Rounds alternate the servers.
func runDatapath(e *env) ([]bench.Row, error) {
	rounds, seconds, connects := 3, 3, 2000
	if e.quick {
		rounds, seconds, connects = 1, 2, 500
	}
	servers, err := e.datapath(rounds, seconds, connects)
	edgefwTool := "edgefw: 100k set + 100 rules"
	iptTool := "iptables: 10k -s CIDR -j DROP + 100 rules"
	var none, efw, ipt *server
	if len(servers) == 3 {
		none, efw, ipt = servers[0], servers[1], servers[2]
	} else {
		none, efw, ipt = &server{}, &server{}, &server{}
	}
	row := func(scenario, unit, tool string, s *server, pick func(*server) []float64, target string) bench.Row {
		return bench.Row{Scenario: scenario, Size: "100k / 10k", N: 100_000, Unit: unit,
			Edgefw: bench.Side{Tool: tool, Samples: pick(s)}, Reference: bench.Side{Tool: "no firewall", Samples: pick(none)},
			Target: target}
	}
	gbps := func(s *server) []float64 { return s.gbps }
	p50 := func(s *server) []float64 { return s.roundP50 }
	p99 := func(s *server) []float64 { return s.roundP99 }
	rows := []bench.Row{
		row("data path: iperf3 throughput", "Gbit/s", edgefwTool, efw, gbps, "≥ 0.95× no firewall"),
		row("data path: iperf3 throughput", "Gbit/s", iptTool, ipt, gbps, ""),
		row("data path: TCP connect p50", "ms", edgefwTool, efw, p50, ""),
		row("data path: TCP connect p50", "ms", iptTool, ipt, p50, ""),
		row("data path: TCP connect p99", "ms", edgefwTool, efw, p99, "≤ 1.1× no firewall"),
		row("data path: TCP connect p99", "ms", iptTool, ipt, p99, ""),
	}
	for i := range rows {
		rows[i].HigherIsBetter = i < 2
		if err != nil {
			rows[i].Error = err.Error()
		}
		rows[i].Note = fmt.Sprintf("%d interleaved rounds: iperf3 -t %d, then %d sequential connects (samples are per-round values); ratio is to no firewall", rounds, seconds, connects)
		if strings.HasPrefix(rows[i].Edgefw.Tool, "iptables") {
			rows[i].Note += "; iptables (the DaemonSet approach): the blocklist as 10k `-A INPUT -s CIDR -j DROP` lines first, so every packet walks them, then established, the 100 port rules, the test ports, policy DROP"
		} else {
			rows[i].Note += "; edgefw accepts established packets first, so only new connections walk the rules"
		}
	}
	rows[0].Met = minRatio(rows[0], 0.95)
	rows[4].Met = metRatio(rows[4], 1.1, true)
	return rows, err
}

func minRatio(r bench.Row, limit float64) string {
	ratio := r.Ratio()
	if ratio != ratio {
		return "—"
	}
	return yesNo(ratio >= limit)
}

func (e *env) datapath(rounds, seconds, connects int) ([]*server, error) {
	client, err := e.lab.NewNS("c")
	if err != nil {
		return nil, err
	}
	defer client.Delete()
	var servers []*server
	for i, label := range []string{"none", "edgefw", "iptables"} {
		ns, err := e.lab.NewNS("v")
		if err != nil {
			return nil, err
		}
		defer ns.Delete()
		s := &server{label: label, ns: ns, addr: fmt.Sprintf("10.201.%d.1", i)}
		if err := e.lab.Veth(client, fmt.Sprintf("10.201.%d.2/24", i), ns, s.addr+"/24"); err != nil {
			return nil, err
		}
		servers = append(servers, s)
	}
	defer e.settle()
	if err := e.datapathFirewalls(servers[1].ns, servers[2].ns); err != nil {
		return nil, err
	}
	for _, s := range servers {
		iperf := exec.Command("iperf3", "-s", "-B", s.addr, "-p", fmt.Sprint(iperfPort))
		if err := s.ns.Start(iperf); err != nil {
			return nil, err
		}
		if err := s.ns.Do(func() error {
			var err error
			s.ln, err = net.Listen("tcp4", net.JoinHostPort(s.addr, fmt.Sprint(connectPort)))
			return err
		}); err != nil {
			return nil, err
		}
		defer s.ln.Close()
		go func(ln net.Listener) {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}(s.ln)
	}
	time.Sleep(500 * time.Millisecond) // iperf3 servers listening
	for round := range rounds {
		for i := range servers {
			s := servers[(i+round)%len(servers)]
			g, err := iperf(client, s.addr, seconds)
			if err != nil {
				return servers, fmt.Errorf("%s: %w", s.label, err)
			}
			s.gbps = append(s.gbps, g)
			lat, err := connectLatencies(client, s.addr, connects)
			if err != nil {
				return servers, fmt.Errorf("%s: %w", s.label, err)
			}
			s.connects = append(s.connects, lat...)
			s.roundP50 = append(s.roundP50, bench.Percentile(lat, 50))
			s.roundP99 = append(s.roundP99, bench.Percentile(lat, 99))
			e.logf("datapath round %d %s: %.2f Gbit/s, connect p50 %.3f ms p99 %.3f ms", round+1, s.label, g, last(s.roundP50), last(s.roundP99))
		}
	}
	return servers, nil
}

// datapathFirewalls loads edgefw (edgefwd --once) and the iptables
// equivalent into their servers' namespaces.
func (e *env) datapathFirewalls(efwNS, iptNS *bench.NS) error {
	prefixes := bench.RandomPrefixes(4, 100_000)
	f, err := e.writeSetPolicy("dp", prefixes, bench.PolicySpec{PortRules: 100, FirstPort: 20000, AcceptPorts: []int{iperfPort, connectPort}})
	if err != nil {
		return err
	}
	if _, _, err := efwNS.Measure(nil, e.edgefwd, "--once", "--policy", f.policy, "--state-dir", filepath.Join(f.dir, "state")); err != nil {
		return err
	}
	if err := countBack(efwNS, prefixes); err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n")
	for _, p := range prefixes[:10_000] {
		fmt.Fprintf(&b, "-A INPUT -s %s -j DROP\n", p)
	}
	b.WriteString("-A INPUT -i lo -j ACCEPT\n-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n-A INPUT -p tcp --dport 22 -j ACCEPT\n")
	for i := range 100 {
		fmt.Fprintf(&b, "-A INPUT -p tcp --dport %d -j ACCEPT\n", 20000+i)
	}
	fmt.Fprintf(&b, "-A INPUT -p tcp --dport %d -j ACCEPT\n-A INPUT -p tcp --dport %d -j ACCEPT\nCOMMIT\n", iperfPort, connectPort)
	if _, out, err := iptNS.Measure([]byte(b.String()), "iptables-restore"); err != nil {
		return fmt.Errorf("iptables-restore: %w: %s", err, out)
	}
	return nil
}

// iperf runs an iperf3 client in ns against addr and returns the
// received throughput in Gbit/s.
func iperf(ns *bench.NS, addr string, seconds int) (float64, error) {
	var out string
	var err error
	for try := range 5 {
		if _, out, err = ns.Measure(nil, "iperf3", "-c", addr, "-p", fmt.Sprint(iperfPort), "-t", fmt.Sprint(seconds), "-J"); err == nil {
			break
		}
		time.Sleep(time.Duration(try+1) * 300 * time.Millisecond) // the server may still be starting, or busy
	}
	if err != nil {
		return 0, err
	}
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		return 0, fmt.Errorf("iperf3 -J: %w", err)
	}
	if res.Error != "" || res.End.SumReceived.BitsPerSecond == 0 {
		return 0, fmt.Errorf("iperf3: %q", res.Error)
	}
	return res.End.SumReceived.BitsPerSecond / 1e9, nil
}

// connectLatencies dials addr n times in a row from ns and returns each
// connect's duration in ms.
func connectLatencies(ns *bench.NS, addr string, n int) ([]float64, error) {
	lat := make([]float64, 0, n)
	target := net.JoinHostPort(addr, fmt.Sprint(connectPort))
	err := ns.Do(func() error {
		d := net.Dialer{Timeout: 5 * time.Second}
		for range n {
			start := time.Now()
			c, err := d.Dial("tcp4", target)
			if err != nil {
				return err
			}
			lat = append(lat, float64(time.Since(start))/float64(time.Millisecond))
			// RST instead of FIN: no TIME_WAIT piling up over thousands
			// of connections from one address.
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			c.Close()
		}
		return nil
	})
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("connect to %s timed out: is the test traffic dropped? %w", target, err)
	}
	return lat, err
}
