package daemon

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/policy"
	"github.com/edgefw/edgefw/wg"
)

// scaleKernel is a host with rules user rules, their counters, and one
// tunnel of peers peers: the scale issue 13 sets the scrape's target at
// (1,000 rules and 100 peers).
func scaleKernel(rules, peers int) *fakeKernel {
	k := &fakeKernel{counters: map[string]nft.Counter{}}
	for i := range rules {
		name := fmt.Sprintf("rule-%04d", i)
		k.rules = append(k.rules, nft.RuleInfo{Name: name, Direction: policy.Input, Action: policy.Accept, Kind: nft.KindUser})
		k.counters[name] = nft.Counter{Packets: uint64(i), Bytes: uint64(100 * i)}
	}
	t := wg.TunnelStatus{Name: "wg0", Backend: "userspace", PublicKey: "pub"}
	for i := range peers {
		t.Peers = append(t.Peers, wg.PeerStatus{Name: fmt.Sprintf("peer-%03d", i), PublicKey: fmt.Sprint(i),
			LastHandshake: scrapeTime.Add(-time.Duration(i) * time.Second), Up: true, ReceiveBytes: int64(i), TransmitBytes: int64(i)})
	}
	k.tunnels = []wg.TunnelStatus{t}
	return k
}

// BenchmarkScrape serves /metrics from the collector over a fake kernel
// of 1,000 rules and 100 peers: what the daemon adds to the kernel reads.
// served is how the daemon serves it (WithKernelMetrics), registered the
// collector on the registry. Prometheus asks for gzip; curl does not.
func BenchmarkScrape(b *testing.B) {
	for _, way := range []string{"served", "registered"} {
		for _, encoding := range []string{"identity", "gzip"} {
			b.Run(way+"/"+encoding, func(b *testing.B) {
				reg := NewRegistry()
				c := NewCollector(scaleKernel(1000, 100), nil, time.Now)
				g := WithKernelMetrics(reg, c)
				if way == "registered" {
					reg.MustRegister(c)
					g = reg
				}
				handler := NewMetricsHandler(g, nil)
				b.ReportAllocs()
				for b.Loop() {
					rec := httptest.NewRecorder()
					req := httptest.NewRequest("GET", "/metrics", nil)
					req.Header.Set("Accept-Encoding", encoding)
					handler.ServeHTTP(rec, req)
					if rec.Code != 200 {
						b.Fatal(rec.Code)
					}
				}
			})
		}
	}
}
