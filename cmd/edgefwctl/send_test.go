package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefw/edgefw/daemon"
	"github.com/edgefw/edgefw/policy"
)

// sentFile reports whether sent carries file, and only file, as its bytes
// are on disk, and no parsed policy.
func sentFile(t *testing.T, sent daemon.PolicyRequest, file string) bool {
	t.Helper()
	abs, err := filepath.Abs(file)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return sent.Policy == nil && cmp.Equal(policy.Bundle{abs: data}, sent.Files)
}

// policyWithDropIn writes a policy of four files into a new directory and
// returns the main file and the files the daemon must be sent, by path.
func policyWithDropIn(t *testing.T) (string, policy.Bundle) {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"policy.yaml": "version: 1\nrules:\n  - {name: web, direction: input, action: accept, ports: [{protocol: tcp, port: 443}]}\n",
		"policy.d/10-block.yaml": "sets: {block: {file: block.txt}}\n" +
			"rules:\n  - {name: drop-block, direction: input, action: drop, from: [{set: block}]}\n",
		"policy.d/block.txt": "# blocked\n192.0.2.0/24\n",
		// Neither a drop-in nor named by one: not sent.
		"policy.d/notes.txt": "not part of the policy\n",
	}
	want := policy.Bundle{}
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if name != "policy.d/notes.txt" {
			want[path] = []byte(content)
		}
	}
	return filepath.Join(dir, "policy.yaml"), want
}

// TestApplyAndDiffSendTheFiles checks that apply and diff send the daemon
// the bytes of the policy's files, the drop-ins and set files included,
// and no parsed policy.
func TestApplyAndDiffSendTheFiles(t *testing.T) {
	main, want := policyWithDropIn(t)
	for _, tc := range []struct {
		command, path string
		answer        fakeAnswer
	}{
		{"apply", daemon.PathApply, fakeAnswer{http.StatusOK, daemon.ApplyResponse{OK: true}}},
		{"diff", daemon.PathDiff, fakeAnswer{http.StatusOK, daemon.Diff{Changes: []string{}}}},
	} {
		t.Run(tc.command, func(t *testing.T) {
			f := newFakeDaemon(t)
			f.post[tc.path] = tc.answer
			if res := run(t, "--socket", f.socket, tc.command, main); res.code != 0 {
				t.Fatalf("%s: exit %d, stderr %q", tc.command, res.code, res.stderr)
			}
			bodies := f.requestsTo(tc.path)
			if len(bodies) != 1 {
				t.Fatalf("%d requests, want 1", len(bodies))
			}
			var got daemon.PolicyRequest
			if err := json.Unmarshal(bodies[0], &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(daemon.PolicyRequest{Path: main, Files: want}, got); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
		})
	}
}

// olderDaemon answers as an edgefwd from before the policy's files were
// sent: it reads only a parsed policy.
type olderDaemon struct {
	socket string

	mu       sync.Mutex
	requests []daemon.PolicyRequest
}

func newOlderDaemon(t *testing.T) *olderDaemon {
	t.Helper()
	o := &olderDaemon{}
	o.socket = serveUnix(t, http.HandlerFunc(o.serve))
	return o
}

func (o *olderDaemon) serve(w http.ResponseWriter, r *http.Request) {
	var req daemon.PolicyRequest
	_ = json.NewDecoder(r.Body).Decode(&req)
	o.mu.Lock()
	o.requests = append(o.requests, req)
	o.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case req.Policy == nil && r.URL.Path == daemon.PathApply:
		w.WriteHeader(http.StatusUnprocessableEntity)
		_ = json.NewEncoder(w).Encode(daemon.ApplyResponse{Error: "apply: no policy in request"})
	case req.Policy == nil:
		w.WriteHeader(http.StatusUnprocessableEntity)
		_ = json.NewEncoder(w).Encode(daemon.ErrorResponse{Error: "diff: invalid policy: no policy in request"})
	case r.URL.Path == daemon.PathApply:
		_ = json.NewEncoder(w).Encode(daemon.ApplyResponse{OK: true})
	default:
		_ = json.NewEncoder(w).Encode(daemon.Diff{Changes: []string{}})
	}
}

// TestOlderDaemonIsSentTheParsedPolicy checks that an edgefwd older than
// edgefwctl, which finds no policy in the files sent, is sent the parsed
// policy it reads, with a warning.
func TestOlderDaemonIsSentTheParsedPolicy(t *testing.T) {
	main, _ := policyWithDropIn(t)
	for _, command := range []string{"apply", "diff"} {
		t.Run(command, func(t *testing.T) {
			o := newOlderDaemon(t)
			res := run(t, "--socket", o.socket, command, main)
			if res.code != 0 {
				t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
			}
			if want := "edgefwctl: warning: edgefwd is older than edgefwctl and reads only a parsed policy, so it was sent one, and its errors cannot name lines; restart edgefwd to run the version installed\n"; res.stderr != want {
				t.Errorf("stderr = %q, want %q", res.stderr, want)
			}
			o.mu.Lock()
			defer o.mu.Unlock()
			if len(o.requests) != 2 || o.requests[0].Files == nil || o.requests[1].Files != nil || o.requests[1].Policy == nil {
				t.Fatalf("requests %+v; want the files, then the parsed policy alone", o.requests)
			}
			var rules []string
			for _, r := range o.requests[1].Policy.Rules {
				rules = append(rules, r.Name)
			}
			if strings.Join(rules, ",") != "web,drop-block" || o.requests[1].Path != main {
				t.Errorf("parsed policy of %s with rules %v", o.requests[1].Path, rules)
			}
		})
	}
}
