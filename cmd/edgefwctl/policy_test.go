package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefw/edgefw/daemon"
	"github.com/edgefw/edgefw/internal/netnstest"
	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/policy"
)

const (
	validPolicy   = "testdata/valid.yaml"
	invalidPolicy = "testdata/invalid.yaml"
)

// compiled is what plan must print for file.
func compiled(t *testing.T, file string) string {
	t.Helper()
	pol, err := policy.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := nft.Compile(pol)
	if err != nil {
		t.Fatal(err)
	}
	return rs.String()
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     string
		stderrHas  []string // lines stderr must contain, in order
		stderrLast string   // the summary line
	}{
		{
			name:   "valid",
			args:   []string{"validate", validPolicy},
			stdout: "testdata/valid.yaml: valid (3 rules, 1 set, 1 tunnel)\n",
		},
		{
			name: "invalid",
			args: []string{"validate", invalidPolicy},
			code: 1,
			stderrHas: []string{
				"testdata/invalid.yaml:6:35: rules[0].ports[0].port: port 70000 is out of range",
				"testdata/invalid.yaml:10:5: rules[1].colour: unknown field \"colour\"",
			},
			stderrLast: "edgefwctl: testdata/invalid.yaml: invalid policy (2 problems)",
		},
		{
			name:       "missing",
			args:       []string{"validate", "testdata/missing.yaml"},
			code:       1,
			stderrHas:  []string{"testdata/missing.yaml: cannot read policy: no such file or directory"},
			stderrLast: "edgefwctl: testdata/missing.yaml: invalid policy (1 problem)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := run(t, tt.args...)
			if res.code != tt.code {
				t.Errorf("exit code = %d, want %d; stderr:\n%s", res.code, tt.code, res.stderr)
			}
			if res.stdout != tt.stdout {
				t.Errorf("stdout = %q, want %q", res.stdout, tt.stdout)
			}
			lines := splitLines(res.stderr)
			if len(lines) != len(tt.stderrHas)+min(len(tt.stderrLast), 1) {
				t.Fatalf("stderr has %d lines, want %d:\n%s", len(lines), len(tt.stderrHas)+1, res.stderr)
			}
			for i, want := range tt.stderrHas {
				if !strings.HasPrefix(lines[i], want) {
					t.Errorf("stderr line %d = %q, want it to start with %q", i+1, lines[i], want)
				}
			}
			if tt.stderrLast != "" && lines[len(lines)-1] != tt.stderrLast {
				t.Errorf("last stderr line = %q, want %q", lines[len(lines)-1], tt.stderrLast)
			}
		})
	}
}

func TestValidateJSON(t *testing.T) {
	tests := []struct {
		file string
		code int
		want validationResult
	}{
		{validPolicy, 0, validationResult{File: validPolicy, Valid: true, Rules: 3, Sets: 1, Tunnels: 1, Problems: []validationIssue{}}},
		{invalidPolicy, 1, validationResult{File: invalidPolicy, Problems: []validationIssue{
			{File: invalidPolicy, Line: 6, Column: 35, Path: "rules[0].ports[0].port"},
			{File: invalidPolicy, Line: 10, Column: 5, Path: "rules[1].colour"},
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			res := run(t, "validate", "-o", "json", tt.file)
			if res.code != tt.code {
				t.Errorf("exit code = %d, want %d", res.code, tt.code)
			}
			var got validationResult
			if err := json.Unmarshal([]byte(res.stdout), &got); err != nil {
				t.Fatalf("stdout is not JSON: %v\n%s", err, res.stdout)
			}
			for i := range got.Problems {
				p := &got.Problems[i]
				if p.Message == "" || !strings.HasPrefix(p.Text, p.File+":") {
					t.Errorf("problem %d = %+v: want a message and a FILE:LINE:COL text", i, p)
				}
				p.Message, p.Text = "", ""
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("validate -o json (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlan(t *testing.T) {
	res := run(t, "plan", validPolicy)
	if res.code != 0 || res.stderr != "" {
		t.Fatalf("plan: code %d, stderr %q", res.code, res.stderr)
	}
	if diff := cmp.Diff(compiled(t, validPolicy), res.stdout); diff != "" {
		t.Errorf("plan output is not nft.Compile(...).String() (-want +got):\n%s", diff)
	}

	if res := run(t, "plan", invalidPolicy); res.code != 1 || res.stdout != "" {
		t.Errorf("plan of an invalid policy: code %d, stdout %q; want 1 and nothing", res.code, res.stdout)
	}

	t.Run("nft accepts it", func(t *testing.T) {
		netnstest.RequireTool(t, "nft")
		ns := netnstest.New(t, "plan")
		file := filepath.Join(t.TempDir(), "edgefw.nft")
		if err := os.WriteFile(file, []byte(res.stdout), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := ns.Run("nft", "-c", "-f", file); err != nil {
			t.Errorf("nft -c -f rejects the plan: %v\n%s", err, out)
		}
	})
}

// TestDiff compares a policy with the kernel as the daemon reads it, not
// with the daemon's model: drift shows, and so does what applying the
// policy would write.
func TestDiff(t *testing.T) {
	want := compiled(t, validPolicy)
	abs, err := filepath.Abs(validPolicy)
	if err != nil {
		t.Fatal(err)
	}
	kubeAPI := "\t\ttcp dport 6443 counter name \"kube-api\" accept"
	foreign := "\t\t# rule handle 42: not written by edgefw (5 expressions)"
	// The kernel lost kube-api's rule and holds a foreign one in its
	// place; the daemon's model is still the policy's ruleset.
	drifted := strings.Replace(want, kubeAPI+"\n", foreign+"\n", 1)
	repair := []string{"delete rule 42 of chain input", `add rule "kube-api" in chain input`}

	f := newFakeDaemon(t)
	f.ruleset = want
	t.Run("drift", func(t *testing.T) {
		f.post[daemon.PathDiff] = fakeAnswer{http.StatusOK, &daemon.Diff{Kernel: drifted, Changes: repair, Messages: 2}}
		res := run(t, "--socket", f.socket, "diff", validPolicy)
		if res.code != 0 || res.stderr != "" {
			t.Fatalf("code %d, stderr %q", res.code, res.stderr)
		}
		for _, want := range []string{
			"--- kernel (via " + f.socket + ")\n",
			"+++ testdata/valid.yaml\n",
			"\n-" + foreign + "\n+" + kubeAPI + "\n",
			"\napplying testdata/valid.yaml would write 2 netlink messages:\n  delete rule 42 of chain input\n  add rule \"kube-api\" in chain input\n",
		} {
			if !strings.Contains(res.stdout, want) {
				t.Errorf("diff output lacks %q:\n%s", want, res.stdout)
			}
		}
		bodies := f.requestsTo(daemon.PathDiff)
		var req daemon.DiffRequest
		if len(bodies) == 0 || json.Unmarshal(bodies[len(bodies)-1], &req) != nil || req.Path != abs || !sentFile(t, req.PolicyRequest, validPolicy) {
			t.Errorf("the daemon was not sent the policy's file to compare: %d requests, last to %s", len(bodies), req.Path)
		}

		res = run(t, "--socket", f.socket, "diff", "-o", "json", validPolicy)
		var got diffResult
		if err := json.Unmarshal([]byte(res.stdout), &got); err != nil {
			t.Fatalf("%v: %s", err, res.stdout)
		}
		if diff := cmp.Diff(diffResult{Added: []string{kubeAPI}, Removed: []string{foreign}, Planned: repair}, got); diff != "" {
			t.Errorf("diff -o json (-want +got):\n%s", diff)
		}
	})
	t.Run("equal", func(t *testing.T) {
		f.post[daemon.PathDiff] = fakeAnswer{http.StatusOK, &daemon.Diff{Kernel: want, Changes: []string{}}}
		res := run(t, "--socket", f.socket, "diff", validPolicy)
		if res.code != 0 || res.stdout != "no changes\n" {
			t.Errorf("diff = %d %q, want 0 %q", res.code, res.stdout, "no changes\n")
		}
		res = run(t, "--socket", f.socket, "diff", "-o", "json", validPolicy)
		if res.stdout != "{\n  \"added\": [],\n  \"removed\": [],\n  \"planned\": []\n}\n" {
			t.Errorf("diff -o json = %q", res.stdout)
		}
	})
	t.Run("older daemon", func(t *testing.T) {
		// A daemon without /v1/diff: compare with its running ruleset,
		// as before, and say so.
		f.post[daemon.PathDiff] = fakeAnswer{http.StatusNotFound, daemon.ErrorResponse{Error: "404 page not found"}}
		f.ruleset = strings.Replace(want, "\tcounter kube-api {", "\tcounter kube-api-old {", 1)
		defer func() { f.ruleset = want }()
		res := run(t, "--socket", f.socket, "diff", validPolicy)
		if res.code != 0 || !strings.Contains(res.stderr, "warning: edgefwd cannot compare with the kernel") {
			t.Errorf("code %d, stderr %q; want 0 and a warning", res.code, res.stderr)
		}
		for _, want := range []string{"--- running (" + f.socket + ")\n", "\n-\tcounter kube-api-old {\n+\tcounter kube-api {\n"} {
			if !strings.Contains(res.stdout, want) {
				t.Errorf("diff output lacks %q:\n%s", want, res.stdout)
			}
		}
	})
	t.Run("refused", func(t *testing.T) {
		f.post[daemon.PathDiff] = fakeAnswer{http.StatusInternalServerError, daemon.ErrorResponse{Error: "read table inet edgefw: permission denied"}}
		res := run(t, "--socket", f.socket, "diff", validPolicy)
		if res.code != 1 || res.stdout != "" || !strings.Contains(res.stderr, "read table inet edgefw: permission denied") {
			t.Errorf("diff = %d, stdout %q, stderr %q; want 1 and the daemon's error", res.code, res.stdout, res.stderr)
		}
	})
}

func TestApply(t *testing.T) {
	abs, err := filepath.Abs(validPolicy)
	if err != nil {
		t.Fatal(err)
	}
	deadline := testNow.Add(2 * time.Minute)
	tests := []struct {
		name   string
		args   []string
		answer fakeAnswer
		code   int
		stdout string
		stderr string
		// timeout is the ConfirmTimeout the daemon must receive; -1 for
		// no request at all.
		timeout time.Duration
	}{
		{
			name:    "plain",
			args:    []string{"apply", validPolicy},
			answer:  fakeAnswer{200, daemon.ApplyResponse{OK: true, Apply: &daemon.ApplyInfo{OK: true, DurationSeconds: 0.012, Messages: 9, Changes: []string{"add rule kube-api"}}}},
			stdout:  "applied " + abs + "\nwrote 9 netlink messages in one transaction (12 ms)\n  add rule kube-api\n",
			timeout: 0,
		},
		{
			name:    "confirm timeout",
			args:    []string{"apply", validPolicy, "--confirm-timeout", "2m"},
			answer:  fakeAnswer{200, daemon.ApplyResponse{OK: true, Apply: &daemon.ApplyInfo{OK: true, DurationSeconds: 0.0004}, Pending: &daemon.Pending{Path: abs, Deadline: deadline, SecondsLeft: 119.9996}}},
			stdout:  "applied " + abs + "\nthe kernel already matched: nothing written (<1 ms)\nrun `edgefwctl confirm` within 2m0s or the previous policy is restored at " + deadline.Local().Format("15:04:05") + "\n",
			timeout: 2 * time.Minute,
		},
		{
			name:    "daemon refuses",
			args:    []string{"apply", validPolicy},
			answer:  fakeAnswer{200, daemon.ApplyResponse{OK: false, Error: "netlink: operation not permitted"}},
			code:    1,
			stderr:  "edgefwctl: apply testdata/valid.yaml: netlink: operation not permitted\n",
			timeout: 0,
		},
		{
			name:    "daemon refuses as edgefwd does",
			args:    []string{"apply", validPolicy},
			answer:  fakeAnswer{http.StatusUnprocessableEntity, daemon.ApplyResponse{Error: "tunnel wg0: operation not supported"}},
			code:    1,
			stderr:  "edgefwctl: apply testdata/valid.yaml: tunnel wg0: operation not supported\n",
			timeout: 0,
		},
		{
			name:    "daemon error status",
			args:    []string{"apply", validPolicy},
			answer:  fakeAnswer{http.StatusConflict, daemon.ErrorResponse{Error: "a removal is in progress"}},
			code:    1,
			stderr:  "edgefwctl: apply testdata/valid.yaml: a removal is in progress\n",
			timeout: 0,
		},
		{
			name:    "invalid policy never reaches the daemon",
			args:    []string{"apply", invalidPolicy},
			code:    1,
			timeout: -1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeDaemon(t)
			f.post[daemon.PathApply] = tt.answer
			res := run(t, append([]string{"--socket", f.socket}, tt.args...)...)
			if res.code != tt.code {
				t.Errorf("exit code = %d, want %d; stderr %q", res.code, tt.code, res.stderr)
			}
			if tt.timeout < 0 {
				if n := len(f.requestsTo(daemon.PathApply)); n != 0 {
					t.Errorf("%d apply requests reached the daemon, want none", n)
				}
				return
			}
			if res.stdout != tt.stdout {
				t.Errorf("stdout = %q\nwant     %q", res.stdout, tt.stdout)
			}
			if res.stderr != tt.stderr {
				t.Errorf("stderr = %q, want %q", res.stderr, tt.stderr)
			}
			bodies := f.requestsTo(daemon.PathApply)
			if len(bodies) != 1 {
				t.Fatalf("%d apply requests, want 1", len(bodies))
			}
			var req daemon.ApplyRequest
			if err := json.Unmarshal(bodies[0], &req); err != nil {
				t.Fatal(err)
			}
			if req.Path != abs || time.Duration(req.ConfirmTimeout) != tt.timeout {
				t.Errorf("request path %q timeout %s, want %q %s", req.Path, time.Duration(req.ConfirmTimeout), abs, tt.timeout)
			}
			if !sentFile(t, req.PolicyRequest, validPolicy) {
				t.Errorf("the request does not carry %s alone", validPolicy)
			}
		})
	}
}

func TestApplyJSON(t *testing.T) {
	f := newFakeDaemon(t)
	want := daemon.ApplyResponse{OK: true, Message: "applied", Pending: &daemon.Pending{Path: "/x", Deadline: testNow, SecondsLeft: 60}}
	f.post[daemon.PathApply] = fakeAnswer{200, want}
	res := run(t, "--socket", f.socket, "apply", "-o", "json", validPolicy, "--confirm-timeout", "1m")
	var got daemon.ApplyResponse
	if err := json.Unmarshal([]byte(res.stdout), &got); err != nil {
		t.Fatalf("%v: %q", err, res.stdout)
	}
	if res.code != 0 {
		t.Errorf("exit code %d", res.code)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("apply -o json (-want +got):\n%s", diff)
	}
}

func TestCompileProblems(t *testing.T) {
	pol, err := policy.Load(validPolicy)
	if err != nil {
		t.Fatal(err)
	}
	compileErr := errors.Join(
		fmt.Errorf("rule %q: %w", "kube-api", errors.New("limit.perSource is not supported yet")),
		errors.New("too many sets"),
	)
	var got []string
	for _, p := range compileProblems(validPolicy, pol, compileErr) {
		got = append(got, p.Error())
	}
	want := []string{
		"testdata/valid.yaml:15:5: rules[1]: cannot compile: limit.perSource is not supported yet",
		"testdata/valid.yaml: cannot compile: too many sets",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("compileProblems (-want +got):\n%s", diff)
	}
}

func TestApplyJSONFailure(t *testing.T) {
	f := newFakeDaemon(t)
	want := daemon.ApplyResponse{Error: "netlink: file exists", Apply: &daemon.ApplyInfo{Trigger: "apply", Error: "netlink: file exists"}}
	f.post[daemon.PathApply] = fakeAnswer{http.StatusUnprocessableEntity, want}
	res := run(t, "--socket", f.socket, "apply", "-o", "json", validPolicy)
	if res.code != 1 || res.stderr != "edgefwctl: apply testdata/valid.yaml: netlink: file exists\n" {
		t.Errorf("code %d, stderr %q", res.code, res.stderr)
	}
	var got daemon.ApplyResponse
	if err := json.Unmarshal([]byte(res.stdout), &got); err != nil {
		t.Fatalf("%v: %q", err, res.stdout)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("apply -o json of a failure (-want +got):\n%s", diff)
	}
}
