package bench

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func sampleReport() *Report {
	return &Report{
		Machine: Machine{Kernel: "6.1.0", Cores: 2, MemoryGiB: 24, Date: time.Date(2026, 12, 7, 20, 0, 0, 0, time.UTC), GitRevision: "abc1234", GoVersion: "go1.26"},
		Flags:   "-quick",
		Rows: []Row{
			{Scenario: "bulk apply, interval set", Size: "10k", N: 10_000, Unit: "s",
				Edgefw:    Side{Tool: "edgefwd --once", Samples: []float64{0.2, 0.1, 0.3}, User: []float64{0.05, 0.04, 0.06}, Sys: []float64{0.1, 0.1, 0.2}, MaxRSS: []int64{30 << 20, 32 << 20, 31 << 20}},
				Reference: Side{Tool: "nft -f", Samples: []float64{0.4, 0.2}, User: []float64{0.1, 0.1}, Sys: []float64{0.05, 0.05}, MaxRSS: []int64{20 << 20, 21 << 20}},
				Target:    "≤ 0.5× nft -f", Met: "yes"},
			{Scenario: "scrape", Size: "1k rules", N: 1000, Unit: "ms",
				Edgefw: Side{Tool: "GET /metrics", Samples: []float64{4, 5, 6}, P99: 9},
				Error:  "daemon did not start | exit 1"},
		},
		Scenarios: []ScenarioTime{{Name: "bulk-set", Seconds: 12.5}, {Name: "scrape", Seconds: 3, Error: "daemon did not start"}},
		Seconds:   15.5,
		Notes:     []string{"a note"},
	}
}

func TestMarkdown(t *testing.T) {
	md := sampleReport().Markdown()
	for _, want := range []string{
		"Linux 6.1.0, 2 cores, 24 GiB, git abc1234",
		"| bulk apply, interval set | 10k | `edgefwd --once` | 0.200 s | 0.100 s | `nft -f` | 0.300 s | 0.200 s | 0.667× | 32 MiB | 21 MiB | 0.050 / 0.100 s | 0.100 / 0.050 s | ≤ 0.5× nft -f | yes |  |",
		"| scrape | 1k rules | `GET /metrics` | 5.00 ms (p99 9.00) | 4.00 ms |  | — | — | — |",
		"**failed: daemon did not start / exit 1**",
		"- a note",
		"| bulk-set | 12.5 |  |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	// Every table line has the header's number of cells.
	var cells int
	for _, line := range strings.Split(md, "\n") {
		if !strings.HasPrefix(line, "| scenario | N |") && (cells == 0 || !strings.HasPrefix(line, "|")) {
			if cells != 0 && !strings.HasPrefix(line, "|") {
				cells = -1
			}
			continue
		}
		n := strings.Count(line, "|")
		if cells == 0 {
			cells = n
			continue
		}
		if cells > 0 && n != cells {
			t.Errorf("line has %d bars, header %d: %s", n, cells, line)
		}
	}
}

func TestWriteFiles(t *testing.T) {
	dir := t.TempDir()
	r := sampleReport()
	if err := r.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	js, err := os.ReadFile(filepath.Join(dir, "latest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Rows) != 2 || back.Rows[0].Edgefw.Median() != 0.2 || back.Machine.GitRevision != "abc1234" {
		t.Errorf("JSON round trip: %+v", back)
	}
	md, err := os.ReadFile(filepath.Join(dir, "latest.md"))
	if err != nil {
		t.Fatal(err)
	}
	if string(md) != r.Markdown() {
		t.Error("latest.md differs from Markdown()")
	}
}

func TestRatio(t *testing.T) {
	r := sampleReport().Rows[0]
	if got := r.Ratio(); math.Abs(got-0.2/0.3) > 1e-9 {
		t.Errorf("ratio %v", got)
	}
	if got := sampleReport().Rows[1].Ratio(); !math.IsNaN(got) {
		t.Errorf("ratio without reference = %v, want NaN", got)
	}
}
