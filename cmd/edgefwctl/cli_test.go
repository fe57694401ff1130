package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/edgefw/edgefw/daemon"
	"github.com/edgefw/edgefw/wg"
)

// testNow is the clock of commands run by runApp; fake daemon timestamps
// are set relative to it.
var testNow = time.Date(2026, 5, 6, 14, 0, 0, 0, time.UTC)

// result is what one edgefwctl invocation printed and returned.
type result struct {
	stdout, stderr string
	code           int
}

// run executes edgefwctl in-process with args, as a user would type them.
func run(t *testing.T, args ...string) result {
	t.Helper()
	return runApp(t, "", nil, args...)
}

// runApp executes edgefwctl with stdin and the app adjusted by setup. The
// clock is testNow and stdin is not a terminal unless setup says so.
func runApp(t *testing.T, stdin string, setup func(*app), args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	a := newApp(&stdout, &stderr)
	a.now = func() time.Time { return testNow }
	// Whether this machine has edgefw's package installed must not
	// matter: the key files are judged for the owner of the daemon's
	// socket, or else for this user.
	a.keyReader = func() wg.KeyReader { return daemonKeyReader(a.socket, notPackaged) }
	if setup != nil {
		setup(a)
	}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(strings.NewReader(stdin))
	code := execute(context.Background(), root, &stderr)
	return result{stdout.String(), stderr.String(), code}
}

// notPackaged stands for a host without edgefw's package installed.
func notPackaged() (*user.User, error) { return nil, errors.New("not installed") }

// fakeDaemon serves canned control API answers on a Unix socket and
// records the requests it gets.
type fakeDaemon struct {
	socket string

	mu       sync.Mutex
	status   *daemon.Status
	ruleset  string
	peers    []wg.TunnelStatus
	drops    *daemon.DropsView
	post     map[string]fakeAnswer // by path; absent means 200 {"ok":true}
	requests []fakeRequest
}

type fakeAnswer struct {
	code int
	body any
}

type fakeRequest struct {
	method, path, query string
	body                []byte
}

func newFakeDaemon(t *testing.T) *fakeDaemon {
	t.Helper()
	f := &fakeDaemon{post: map[string]fakeAnswer{}}
	f.socket = serveUnix(t, http.HandlerFunc(f.serve))
	return f
}

// serveUnix serves h on a new Unix socket until the test ends, and returns
// the socket's path.
func serveUnix(t *testing.T, h http.Handler) string {
	t.Helper()
	// Unix socket paths are limited to 108 bytes: t.TempDir() under a long
	// subtest name can exceed that.
	dir, err := os.MkdirTemp("", "efwctl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "edgefwd.sock")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return socket
}

func (f *fakeDaemon) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, fakeRequest{r.Method, r.URL.Path, r.URL.RawQuery, body})
	answer := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	if r.Method == http.MethodGet {
		switch r.URL.Path {
		case daemon.PathStatus:
			answer(http.StatusOK, f.status)
		case daemon.PathPlan:
			answer(http.StatusOK, daemon.Ruleset{Text: f.ruleset})
		case daemon.PathPeers:
			answer(http.StatusOK, f.peers)
		case daemon.PathDenied:
			if f.drops == nil {
				answer(http.StatusOK, daemon.DropsView{Rules: []daemon.RuleDrops{}})
				return
			}
			answer(http.StatusOK, f.drops)
		default:
			answer(http.StatusNotFound, daemon.ErrorResponse{Error: "no such path"})
		}
		return
	}
	if a, ok := f.post[r.URL.Path]; ok {
		answer(a.code, a.body)
		return
	}
	answer(http.StatusOK, daemon.ApplyResponse{OK: true})
}

// queriesTo returns the query strings of the requests made to path.
func (f *fakeDaemon) queriesTo(path string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var qs []string
	for _, r := range f.requests {
		if r.path == path {
			qs = append(qs, r.query)
		}
	}
	return qs
}

// requestsTo returns the bodies of the requests made to path.
func (f *fakeDaemon) requestsTo(path string) [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	var bodies [][]byte
	for _, r := range f.requests {
		if r.path == path {
			bodies = append(bodies, r.body)
		}
	}
	return bodies
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // the whole of stderr
	}{
		{"unknown command", []string{"frobnicate"}, "edgefwctl: unknown command \"frobnicate\" for \"edgefwctl\"\n"},
		{"unknown flag", []string{"status", "--bogus"}, "edgefwctl: unknown flag: --bogus (see 'edgefwctl status --help')\n"},
		{"bad output", []string{"status", "-o", "yaml"}, "edgefwctl: invalid argument \"yaml\" for \"-o, --output\" flag: output format \"yaml\": must be text or json (see 'edgefwctl status --help')\n"},
		{"missing file", []string{"validate"}, "edgefwctl: validate takes one argument, the policy file; got 0 (see 'edgefwctl validate --help')\n"},
		{"extra argument", []string{"status", "now"}, "edgefwctl: unknown command \"now\" for \"edgefwctl status\" (see 'edgefwctl status --help')\n"},
		{"bad shell", []string{"completion", "powershell"}, "edgefwctl: invalid argument \"powershell\" for \"edgefwctl completion\" (see 'edgefwctl completion --help')\n"},
		{"negative duration", []string{"apply", "x.yaml", "--confirm-timeout=-1m"}, "edgefwctl: --confirm-timeout -1m0s: must not be negative (see 'edgefwctl apply --help')\n"},
		{"bad duration", []string{"apply", "x.yaml", "--confirm-timeout", "soon"}, "edgefwctl: invalid argument \"soon\" for \"--confirm-timeout\" flag: time: invalid duration \"soon\" (see 'edgefwctl apply --help')\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := run(t, tt.args...)
			if res.code != 1 {
				t.Errorf("exit code = %d, want 1", res.code)
			}
			if res.stderr != tt.want {
				t.Errorf("stderr = %q, want %q", res.stderr, tt.want)
			}
			if res.stdout != "" {
				t.Errorf("stdout = %q, want nothing", res.stdout)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{nil, {"--help"}, {"help", "apply"}, {"apply", "--help"}} {
		res := run(t, args...)
		if res.code != 0 || !strings.Contains(res.stdout, "Usage:") || res.stderr != "" {
			t.Errorf("edgefwctl %s: code %d, stdout %q, stderr %q; want help on stdout", strings.Join(args, " "), res.code, res.stdout, res.stderr)
		}
	}
}

func TestEveryCommandHasExample(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Example == "" {
			t.Errorf("%q has no Example", c.CommandPath())
		}
		if c.Short == "" {
			t.Errorf("%q has no Short", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd(io.Discard, io.Discard))
}

func TestEveryDataCommandHasOutputFlag(t *testing.T) {
	root := newRootCmd(io.Discard, io.Discard)
	for _, name := range []string{"validate", "diff", "apply", "confirm", "rollback", "reload", "remove", "status", "peers", "drops", "keygen", "pubkey", "version"} {
		cmd, _, err := root.Find([]string{name})
		if err != nil {
			t.Fatal(err)
		}
		if cmd.Flags().ShorthandLookup("o") == nil {
			t.Errorf("%s has no -o flag", name)
		}
	}
}

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		t.Run(shell, func(t *testing.T) {
			res := run(t, "completion", shell)
			if res.code != 0 || res.stderr != "" {
				t.Fatalf("code %d, stderr %q", res.code, res.stderr)
			}
			if !strings.Contains(res.stdout, "edgefwctl") || len(res.stdout) < 1000 {
				t.Errorf("completion %s printed %d bytes, want a script naming edgefwctl", shell, len(res.stdout))
			}
		})
	}
}

func TestGenMan(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "man")
	res := run(t, "gen-man", dir)
	if res.code != 0 {
		t.Fatalf("code %d, stderr %q", res.code, res.stderr)
	}
	for _, page := range []string{"edgefwctl.8", "edgefwctl-status.8", "edgefwctl-apply.8", "edgefwctl-completion.8"} {
		data, err := os.ReadFile(filepath.Join(dir, page))
		if err != nil {
			t.Error(err)
			continue
		}
		if !bytes.Contains(data, []byte(".SH EXAMPLE")) {
			t.Errorf("%s has no EXAMPLE section", page)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "edgefwctl-gen-man.8")); err == nil {
		t.Error("the hidden gen-man command got a man page")
	}
	// Hidden from the command list, too.
	if res := run(t, "--help"); strings.Contains(res.stdout, "gen-man") {
		t.Error("--help lists gen-man")
	}
}

func TestVersion(t *testing.T) {
	f := newFakeDaemon(t)
	f.status = &daemon.Status{Version: "1.4.0"}
	res := run(t, "--socket", f.socket, "version")
	if want := "edgefwctl dev\nedgefwd   1.4.0\n"; res.code != 0 || res.stdout != want {
		t.Errorf("version = %d %q, want 0 %q", res.code, res.stdout, want)
	}

	res = run(t, "--socket", f.socket, "version", "-o", "json")
	var info versionInfo
	if err := json.Unmarshal([]byte(res.stdout), &info); err != nil || info != (versionInfo{Edgefwctl: "dev", Edgefwd: "1.4.0"}) {
		t.Errorf("version -o json = %q (%v)", res.stdout, err)
	}

	// Without a daemon, version still succeeds and says why it knows less.
	missing := filepath.Join(t.TempDir(), "none.sock")
	res = run(t, "--socket", missing, "version")
	if res.code != 0 || !strings.HasPrefix(res.stdout, "edgefwctl dev\nedgefwd   unknown: edgefwd is not running") {
		t.Errorf("version without daemon = %d %q", res.code, res.stdout)
	}
}

func TestDaemonNotRunning(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "edgefwd.sock")
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()

	tests := []struct {
		socket string
		args   []string
		want   string
	}{
		{missing, []string{"status"}, "edgefwctl: status: edgefwd is not running (no socket at " + missing + "); start it with: systemctl start edgefwd\n"},
		{missing, []string{"confirm"}, "edgefwctl: confirm: edgefwd is not running (no socket at " + missing + "); start it with: systemctl start edgefwd\n"},
		{stale, []string{"peers"}, "edgefwctl: peers: edgefwd is not running (stale socket " + stale + ")\n"},
	}
	for _, tt := range tests {
		res := run(t, append([]string{"--socket", tt.socket}, tt.args...)...)
		if res.code != 1 || res.stderr != tt.want {
			t.Errorf("%v: code %d, stderr %q; want 1, %q", tt.args, res.code, res.stderr, tt.want)
		}
	}
}
