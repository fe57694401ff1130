package main

import (
	"strings"
	"testing"

	"github.com/edgefw/edgefw/bench"
)

func TestSizeLabel(t *testing.T) {
	for n, want := range map[int]string{10_000: "10k", 100_000: "100k", 1_000_000: "1M", 1500: "1500", 1000: "1k"} {
		if got := sizeLabel(n); got != want {
			t.Errorf("sizeLabel(%d) = %q, want %q", n, got, want)
		}
	}
}

func bulkRow(n int, edgefw, ref float64) bench.Row {
	return bench.Row{N: n, Size: sizeLabel(n), Edgefw: bench.Side{Samples: []float64{edgefw}}, Reference: bench.Side{Samples: []float64{ref}}}
}

func TestPerElementRow(t *testing.T) {
	flat := perElementRow([]bench.Row{bulkRow(10_000, 0.1, 0.2), bulkRow(100_000, 1.2, 2), bulkRow(1_000_000, 11, 20)})
	if flat.Met != "yes" || flat.Size != "10k–100k–1M" || len(flat.Edgefw.Samples) != 3 || flat.Edgefw.Samples[0] != 10 {
		t.Errorf("flat cost: %+v", flat)
	}
	steep := perElementRow([]bench.Row{bulkRow(10_000, 0.1, 0.2), bulkRow(1_000_000, 35, 12)})
	if steep.Met != "no" || !strings.Contains(steep.Note, "1M: 35.00 µs") {
		t.Errorf("steep cost: %+v", steep)
	}
}

func TestMetRatio(t *testing.T) {
	r := bulkRow(10, 1, 4)
	if got := metRatio(r, 0.5, true); got != "yes" {
		t.Errorf("0.25× against 0.5×: %s", got)
	}
	if got := metRatio(r, 0.5, false); got != "no" {
		t.Errorf("with the extra condition false: %s", got)
	}
	if got := metRatio(r, 0.1, true); got != "no" {
		t.Errorf("0.25× against 0.1×: %s", got)
	}
	if got := metRatio(bench.Row{}, 0.1, true); got != "—" {
		t.Errorf("nothing measured: %s", got)
	}
}

func TestSetconf(t *testing.T) {
	peers, err := genPeers(3)
	if err != nil {
		t.Fatal(err)
	}
	conf := string(setconf([32]byte{}, peers))
	if strings.Count(conf, "[Peer]") != 3 || !strings.Contains(conf, "AllowedIPs = 10.128.0.1/32") || !strings.HasPrefix(conf, "[Interface]\nPrivateKey = ") {
		t.Errorf("setconf:\n%s", conf)
	}
}
