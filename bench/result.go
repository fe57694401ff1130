package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Usage is what one run of a process cost, from wait4's rusage.
type Usage struct {
	Wall   time.Duration
	User   time.Duration
	Sys    time.Duration
	MaxRSS int64 // bytes
}

// Side is one tool's samples in one row: edgefw's or the reference's.
type Side struct {
	// Tool says what was run, e.g. "edgefwd --once" or "nft -f".
	Tool string `json:"tool"`
	// Samples are the measured values, in the row's unit.
	Samples []float64 `json:"samples"`
	// User and Sys are the CPU seconds of each sample's process, when
	// measured; MaxRSS its peak resident set in bytes.
	User   []float64 `json:"userSeconds,omitempty"`
	Sys    []float64 `json:"sysSeconds,omitempty"`
	MaxRSS []int64   `json:"maxRSSBytes,omitempty"`
	// P99 is set for latency distributions (the samples are then
	// per-round medians and P99 covers every single measurement).
	P99 float64 `json:"p99,omitempty"`
}

// Add records one process run, its wall time in seconds as the sample.
func (s *Side) Add(u Usage) {
	s.AddScaled(u, time.Second)
}

// AddScaled records one process run with its wall time divided by unit
// (time.Millisecond for a row in ms).
func (s *Side) AddScaled(u Usage, unit time.Duration) {
	s.Samples = append(s.Samples, float64(u.Wall)/float64(unit))
	s.User = append(s.User, u.User.Seconds())
	s.Sys = append(s.Sys, u.Sys.Seconds())
	s.MaxRSS = append(s.MaxRSS, u.MaxRSS)
}

// AddWall records only a run's wall time divided by unit: for a client
// whose own CPU and memory say nothing (the work is in a daemon).
func (s *Side) AddWall(u Usage, unit time.Duration) {
	s.Samples = append(s.Samples, float64(u.Wall)/float64(unit))
}

// Median is the median sample, NaN without samples.
func (s Side) Median() float64 { return Median(s.Samples) }

// Min is the smallest sample, NaN without samples.
func (s Side) Min() float64 { return Min(s.Samples) }

// PeakRSS is the largest peak RSS of the runs in bytes, 0 if unmeasured.
func (s Side) PeakRSS() int64 {
	var m int64
	for _, v := range s.MaxRSS {
		m = max(m, v)
	}
	return m
}

// Row is one line of the results table.
type Row struct {
	Scenario string `json:"scenario"`
	// Size labels N, e.g. "100k"; N is its number.
	Size string `json:"size"`
	N    int    `json:"n"`
	// Unit of the samples: "s", "ms", "Gbit/s", "MiB", "% CPU".
	Unit      string `json:"unit"`
	Edgefw    Side   `json:"edgefw"`
	Reference Side   `json:"reference"`
	// HigherIsBetter marks throughput rows, where the ratio's target is a
	// minimum.
	HigherIsBetter bool `json:"higherIsBetter,omitempty"`
	// Target and Met: the goal for this row and whether the
	// medians meet it ("yes", "no", or "" when the row has no target).
	Target string `json:"target,omitempty"`
	Met    string `json:"met,omitempty"`
	Note   string `json:"note,omitempty"`
	// Error is set when the scenario failed; the samples may be partial.
	Error string `json:"error,omitempty"`
}

// Ratio is edgefw's median over the reference's, NaN when either is
// missing.
func (r Row) Ratio() float64 {
	e, ref := r.Edgefw.Median(), r.Reference.Median()
	if math.IsNaN(e) || math.IsNaN(ref) || ref == 0 {
		return math.NaN()
	}
	return e / ref
}

// Machine describes where the results were measured.
type Machine struct {
	Kernel      string    `json:"kernel"`
	Cores       int       `json:"cores"`
	MemoryGiB   float64   `json:"memoryGiB"`
	Date        time.Time `json:"date"`
	GitRevision string    `json:"gitRevision"`
	GoVersion   string    `json:"goVersion"`
	Tools       []string  `json:"tools,omitempty"`
}

// ScenarioTime is how long one scenario took.
type ScenarioTime struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
	Error   string  `json:"error,omitempty"`
}

// Report is a whole run: the machine, the rows and the time it took.
type Report struct {
	Machine   Machine        `json:"machine"`
	Flags     string         `json:"flags"`
	Rows      []Row          `json:"rows"`
	Scenarios []ScenarioTime `json:"scenarios"`
	Seconds   float64        `json:"seconds"`
	Notes     []string       `json:"notes,omitempty"`
}

// WriteFiles writes latest.md and latest.json into dir.
func (r *Report) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "latest.json"), append(js, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "latest.md"), []byte(r.Markdown()), 0o644)
}

// Markdown renders the report as a Markdown document with one table.
func (r *Report) Markdown() string {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "# edgefw benchmark results\n\n")
	fmt.Fprintf(&b, "Measured by `make bench` (`go run ./bench/cmd/edgefw-bench %s`) on %s: Linux %s, %d cores, %.0f GiB, git %s, %s; %s in all.\n\n",
		r.Flags, m.Date.UTC().Format("2006-01-02 15:04 UTC"), m.Kernel, m.Cores, m.MemoryGiB, m.GitRevision, m.GoVersion, seconds(r.Seconds))
	if len(m.Tools) > 0 {
		fmt.Fprintf(&b, "Reference tools: %s.\n\n", strings.Join(m.Tools, ", "))
	}
	b.WriteString("Each row: edgefw and the reference run alternately in the same run; median and minimum of the samples; " +
		"ratio = edgefw median / reference median; peak RSS is the largest max RSS (wait4) of the runs; " +
		"CPU is the median user / sys seconds per run.\n\n")
	b.WriteString("| scenario | N | edgefw | median | min | reference | median | min | ratio | edgefw peak RSS | ref peak RSS | edgefw user / sys | ref user / sys | target | met? | notes |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, row := range r.Rows {
		note := row.Note
		if row.Error != "" {
			note = strings.TrimSpace("**failed: " + oneLine(row.Error) + "** " + note)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			row.Scenario, row.Size, code(row.Edgefw.Tool),
			value(row.Edgefw.Median(), row.Unit, row.Edgefw.P99), value(row.Edgefw.Min(), row.Unit, 0),
			code(row.Reference.Tool),
			value(row.Reference.Median(), row.Unit, row.Reference.P99), value(row.Reference.Min(), row.Unit, 0),
			ratio(row.Ratio()), mib(row.Edgefw.PeakRSS()), mib(row.Reference.PeakRSS()),
			cpu(row.Edgefw), cpu(row.Reference), row.Target, row.Met, note)
	}
	if len(r.Notes) > 0 {
		b.WriteString("\nNotes:\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	b.WriteString("\nTime per scenario:\n\n| scenario | seconds | error |\n|---|---|---|\n")
	for _, s := range r.Scenarios {
		fmt.Fprintf(&b, "| %s | %.1f | %s |\n", s.Name, s.Seconds, oneLine(s.Error))
	}
	return b.String()
}

func code(s string) string {
	if s == "" {
		return ""
	}
	return "`" + s + "`"
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// value renders a sample value in its unit, with p99 when given.
func value(v float64, unit string, p99 float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	s := number(v) + " " + unit
	if p99 > 0 {
		s += " (p99 " + number(p99) + ")"
	}
	return s
}

// number prints three significant digits, more for large values.
func number(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	case a >= 0.01:
		return fmt.Sprintf("%.3f", v)
	case a == 0:
		return "0"
	}
	return fmt.Sprintf("%.2g", v)
}

func ratio(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "—"
	}
	return number(v) + "×"
}

func mib(b int64) string {
	if b <= 0 {
		return ""
	}
	return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20))
}

func cpu(s Side) string {
	if len(s.User) == 0 {
		return ""
	}
	return number(Median(s.User)) + " / " + number(Median(s.Sys)) + " s"
}

func seconds(s float64) string {
	d := time.Duration(s * float64(time.Second)).Round(time.Second)
	return d.String()
}
