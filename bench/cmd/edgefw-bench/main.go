// Command edgefw-bench is `make bench`: it measures edgefw side by side
// with the tool an operator would otherwise use (nft -f, nft add element,
// nft list counters, iptables, wg setconf), alternating the two in the
// same run, inside network namespaces of its own, and writes the table
// bench/results/latest.md and its JSON twin latest.json.
//
// Run as root after make build:
//
//	go run ./bench/cmd/edgefw-bench -out bench/results
//	go run ./bench/cmd/edgefw-bench -quick -only set,rules
//
// Everything it creates (namespaces, veth pairs, processes, WireGuard
// devices and their sockets, temporary directories) is removed on exit,
// on error and on SIGINT. After deleting a namespace that held a large
// set it waits for the kernel to free it before the next measurement.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/edgefw/edgefw/bench"
)

// scenario is one group of rows of the table.
type scenario struct {
	name string
	run  func(*env) ([]bench.Row, error)
}

func scenarios() []scenario {
	return []scenario{
		{"set", runSetApply},
		{"rules", runRules},
		{"daemon-change", runDaemonChange},
		{"scrape", runScrape},
		{"peers", runPeers},
		{"footprint", runFootprint},
		{"datapath", runDatapath},
	}
}

// env is what scenarios share: the lab, the binaries and the settings.
type env struct {
	lab       *bench.Lab
	edgefwd   string
	edgefwctl string
	self      string
	quick     bool
	settleMax time.Duration
	sizes     map[int]bool
	idle      time.Duration
	start     time.Time
}

func (e *env) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(e.start).Seconds(), fmt.Sprintf(format, args...))
}

// settle waits for the kernel to free what a deleted namespace held.
func (e *env) settle() {
	waited, ok := bench.Settle(e.settleMax)
	if !ok {
		e.logf("kernel still busy after %v; going on", waited.Round(time.Second))
	} else if waited > 1100*time.Millisecond {
		e.logf("kernel settled after %v", waited.Round(100*time.Millisecond))
	}
}

// want reports whether size n is selected (-sizes); all when unset.
func (e *env) want(n int) bool { return len(e.sizes) == 0 || e.sizes[n] }

func main() {
	if len(os.Args) > 1 && os.Args[1] == bench.LaunchArg {
		os.Exit(bench.Launch(os.Args[2:]))
	}
	if len(os.Args) > 2 && os.Args[1] == "-serve-wg" {
		os.Exit(serveWG(os.Args[2]))
	}
	os.Exit(run())
}

func run() int {
	e, selected, out, ok := parseFlags()
	if !ok {
		return 1
	}
	e.lab = bench.NewLab("efb")
	defer e.lab.Close()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		sig := <-sigs
		fmt.Fprintf(os.Stderr, "edgefw-bench: %v; removing the lab\n", sig)
		e.lab.Close()
		os.Exit(130)
	}()
	floor := e.setLauncher()
	report := &bench.Report{Machine: machine(), Flags: strings.Join(os.Args[1:], " ")}
	e.settle()
	for _, s := range scenarios() {
		if len(selected) > 0 && !selected[s.name] {
			continue
		}
		e.runScenario(s, report)
		// Partial results survive a later failure or interrupt.
		report.Seconds = time.Since(e.start).Seconds()
		report.Notes = append(notes(), floor)
		if err := report.WriteFiles(out); err != nil {
			fmt.Fprintln(os.Stderr, "edgefw-bench:", err)
			return 1
		}
	}
	e.logf("done: %s/latest.md", out)
	return 0
}

// runScenario runs one scenario and adds its rows and time to report; a
// failed scenario adds its error and the run goes on.
func (e *env) runScenario(s scenario, report *bench.Report) {
	e.logf("scenario %s", s.name)
	start := time.Now()
	rows, err := s.run(e)
	st := bench.ScenarioTime{Name: s.name, Seconds: time.Since(start).Seconds()}
	if err != nil {
		st.Error = err.Error()
		e.logf("scenario %s failed: %v", s.name, err)
		if len(rows) == 0 {
			rows = []bench.Row{{Scenario: s.name, Error: err.Error()}}
		}
	}
	for _, r := range rows {
		e.logf("  %s %s: edgefw %.4g %s, reference %.4g %s, ratio %.3g %s", r.Scenario, r.Size,
			r.Edgefw.Median(), r.Unit, r.Reference.Median(), r.Unit, r.Ratio(), r.Error)
	}
	report.Rows = append(report.Rows, rows...)
	report.Scenarios = append(report.Scenarios, st)
	e.logf("scenario %s took %.1fs", s.name, st.Seconds)
}

// parseFlags reads the command line into an env (without its lab), the
// selected scenarios and the output directory.
func parseFlags() (e *env, selected map[string]bool, out string, ok bool) {
	outDir := flag.String("out", "bench/results", "directory for latest.md and latest.json")
	bin := flag.String("bin", "bin", "directory holding edgefwd and edgefwctl (make build)")
	only := flag.String("only", "", "comma-separated scenarios to run: "+names())
	quick := flag.Bool("quick", false, "fewer repetitions and no 1M sizes, for development")
	sizes := flag.String("sizes", "", "comma-separated set sizes to run (e.g. 10000,100000); all by default")
	settleMax := flag.Duration("settle-max", 60*time.Second, "longest wait for the kernel to settle after deleting a namespace")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "edgefw-bench: needs root (it creates network namespaces)")
		return nil, nil, "", false
	}
	e = &env{quick: *quick, settleMax: *settleMax, start: time.Now(), idle: 20 * time.Second}
	if e.quick {
		e.idle = 5 * time.Second
	}
	for _, s := range splitList(*sizes) {
		var n int
		if _, err := fmt.Sscan(s, &n); err != nil {
			fmt.Fprintf(os.Stderr, "edgefw-bench: -sizes: %q is not a number\n", s)
			return nil, nil, "", false
		}
		if e.sizes == nil {
			e.sizes = map[int]bool{}
		}
		e.sizes[n] = true
	}
	var err error
	for _, b := range []struct {
		path *string
		name string
	}{{&e.edgefwd, "edgefwd"}, {&e.edgefwctl, "edgefwctl"}} {
		if *b.path, err = filepath.Abs(filepath.Join(*bin, b.name)); err == nil {
			_, err = os.Stat(*b.path)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "edgefw-bench: %v (run make build first)\n", err)
			return nil, nil, "", false
		}
	}
	if e.self, err = os.Executable(); err != nil {
		fmt.Fprintln(os.Stderr, "edgefw-bench:", err)
		return nil, nil, "", false
	}
	selected = map[string]bool{}
	for _, s := range splitList(*only) {
		if !strings.Contains(","+names()+",", ","+s+",") {
			fmt.Fprintf(os.Stderr, "edgefw-bench: -only: no scenario %q (have %s)\n", s, names())
			return nil, nil, "", false
		}
		selected[s] = true
	}
	return e, selected, *outDir, true
}

func names() string {
	var n []string
	for _, s := range scenarios() {
		n = append(n, s.name)
	}
	return strings.Join(n, ",")
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func machine() bench.Machine {
	m := bench.Machine{Cores: runtime.NumCPU(), Date: time.Now().UTC(), GoVersion: runtime.Version()}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		m.Kernel = charsToString(u.Release[:])
	}
	var si syscall.Sysinfo_t
	if syscall.Sysinfo(&si) == nil {
		m.MemoryGiB = float64(si.Totalram) * float64(si.Unit) / (1 << 30)
	}
	if rev, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
		m.GitRevision = strings.TrimSpace(string(rev))
	}
	for _, t := range [][]string{{"nft", "--version"}, {"iptables", "--version"}, {"wg", "--version"}, {"iperf3", "--version"}} {
		if out, err := exec.Command(t[0], t[1:]...).Output(); err == nil {
			m.Tools = append(m.Tools, strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0]))
		}
	}
	return m
}

func charsToString(cs []int8) string {
	b := make([]byte, 0, len(cs))
	for _, c := range cs {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}

// notes explain how the rows were measured.
func notes() []string {
	return []string{
		"Processes are timed whole: fork/exec to wait4, which also gives user and system CPU and peak RSS. Each is started inside the scenario's namespace through a small launcher (edgefw-launch, built by the bench), which times it and reports its rusage: a child started straight from the bench would count the bench's own memory in its peak RSS (vfork shares it until exec).",
		"Bulk apply: each sample is a fresh namespace; edgefw is `edgefwd --once --policy P --state-dir D`, the reference `nft -f` of what `edgefwctl plan P` prints. After each edgefw run every element of the set is looked up in the kernel over netlink (NFT_MSG_GETSETELEM by key, outside the timing); a run that lost elements fails the row.",
		"No-op: the reference is `nft -f` of the same file into the namespace that already holds it (nft re-adds the elements and appends the rules again).",
		"Running daemon rows time the client (`edgefwctl reload`, an HTTP GET of /metrics) from start to answer; their CPU and memory columns are left empty (the work is in the daemon).",
		"After deleting a namespace that held a set, the bench waits until the kernel's threads are quiet (the set is freed asynchronously), up to -settle-max. Measured here: freeing a deleted namespace's 1M-element set took 0.24 s of kernel-thread CPU, done within the first half second.",
		"The machine is shared and noisy: compare minimums as well as medians.",
	}
}

// setLauncher builds the small launcher that starts measured commands
// (from the module, as make bench runs it); without a Go toolchain the
// bench's own binary serves. It returns a note on the launcher's own
// peak RSS, the floor under every peak RSS measured.
func (e *env) setLauncher() string {
	how := "edgefw-launch"
	dir, err := e.lab.TempDir("launch")
	if err == nil {
		path := filepath.Join(dir, "edgefw-launch")
		if _, err = runOut("go", "build", "-o", path, "./bench/cmd/edgefw-launch"); err == nil {
			e.lab.SetLauncher(path)
		}
	}
	if err != nil {
		e.logf("could not build edgefw-launch (%v); the bench's own binary launches, with a higher RSS floor", err)
		e.lab.SetLauncher(e.self, bench.LaunchArg)
		how = "the bench binary"
	}
	ns, err := e.lab.NewNS("f")
	if err != nil {
		return "peak RSS floor unknown: " + err.Error()
	}
	defer ns.Delete()
	u, _, err := ns.Measure(nil, "true")
	if err != nil {
		return "peak RSS floor unknown: " + err.Error()
	}
	return fmt.Sprintf("Commands are started by %s; its own resident memory when it starts a command, %.1f MiB (true(1) measured through it), is the floor under every peak RSS in the table.", how, float64(u.MaxRSS)/(1<<20))
}
