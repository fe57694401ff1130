package daemon

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefw/edgefw/policy"
)

// sentFiles is the policy of a request whose main file, at a path of the
// sender's that the daemon does not read, holds content; it is not checked
// before it is sent.
func sentFiles(t *testing.T, content string) PolicyRequest {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sent", "policy.yaml")
	return PolicyRequest{Path: path, Files: policy.Bundle{path: []byte(content)}}
}

// sentSite is a policy of three files, a main file, a drop-in and a set
// file, sent from a directory that does not exist on the daemon's side.
func sentSite(t *testing.T) PolicyRequest {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "site")
	main := filepath.Join(dir, "policy.yaml")
	return PolicyRequest{Path: main, Files: policy.Bundle{
		main: []byte(policyA),
		filepath.Join(dir, "policy.d", "10-block.yaml"): []byte(
			"sets: {block: {file: ../block.txt}}\nrules:\n  - {name: drop-block, direction: input, action: drop, from: [{set: block}]}\n"),
		filepath.Join(dir, "block.txt"): []byte("192.0.2.0/24\n"),
	}}
}

// cmpPrefix compares netip.Prefix values, whose fields are unexported.
var cmpPrefix = cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })

// serveControl serves d's control API on a new socket until the test ends,
// and returns the socket's path.
func serveControl(t *testing.T, d *Daemon) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "edgefwd.sock")
	srv, err := ListenControl(d, sock, d.log)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() { srv.Close() })
	return sock
}

func sha(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// TestApplyRequestFiles checks that the daemon parses the files it is sent,
// drop-ins and set files included, without reading the sender's disk, and
// that status names them with the hashes of the bytes sent.
func TestApplyRequestFiles(t *testing.T) {
	h := newHarness(t)
	d := h.run(t)
	req := &ApplyRequest{PolicyRequest: sentSite(t)}
	resp := d.send(context.Background(), event{kind: "apply", apply: req, caller: alice})
	if !resp.OK || resp.Message != "applied "+req.Path {
		t.Fatalf("apply: %+v", resp)
	}
	for _, want := range []string{`counter name "web" accept`, `counter name "drop-block" drop`, "192.0.2.0/24"} {
		if text := h.text(t, d); !strings.Contains(text, want) {
			t.Errorf("the firewall lacks %q:\n%s", want, text)
		}
	}
	dir := filepath.Dir(req.Path)
	var want []FileHash
	for _, f := range []string{req.Path, filepath.Join(dir, "policy.d", "10-block.yaml"), filepath.Join(dir, "block.txt")} {
		want = append(want, FileHash{Path: f, SHA256: sha(req.Files[f])})
	}
	if diff := cmp.Diff(want, d.Status(context.Background()).Policy.Files); diff != "" {
		t.Errorf("status policy files (-want +got):\n%s", diff)
	}
}

// TestApplyRequestRefused checks that a request whose policy is invalid is
// refused with errors naming the sender's files, lines and columns, and
// leaves the firewall as it was.
func TestApplyRequestRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		req  func(t *testing.T) PolicyRequest
		// want is the error; MAIN and DIR stand for the main file and its
		// directory.
		want string
	}{
		{
			name: "a problem in a drop-in",
			req: func(t *testing.T) PolicyRequest {
				r := sentSite(t)
				dropIn := filepath.Join(filepath.Dir(r.Path), "policy.d", "10-block.yaml")
				r.Files[dropIn] = bytes.Replace(r.Files[dropIn], []byte("action: drop"), []byte("action: deny"), 1)
				return r
			},
			want: `DIR/policy.d/10-block.yaml:3:50: rules[0].action: "deny" is not a valid action; valid values are accept, drop, reject`,
		},
		{
			name: "a set file missing",
			req: func(t *testing.T) PolicyRequest {
				r := sentSite(t)
				delete(r.Files, filepath.Join(filepath.Dir(r.Path), "block.txt"))
				return r
			},
			want: "DIR/policy.d/10-block.yaml:1:22: sets.block.file: cannot read set file DIR/block.txt: missing from the files sent with the policy (file does not exist)",
		},
		{
			name: "a file the policy does not name",
			req: func(t *testing.T) PolicyRequest {
				r := sentSite(t)
				r.Files["/etc/shadow"] = []byte("root:x:0:0\n")
				return r
			},
			want: "/etc/shadow: not a file of the policy: a bundle holds only the main file, the drop-ins beside it (policy.d/*.yaml) and the set files they name",
		},
		{
			name: "an invalid parsed policy from an older edgefwctl",
			req: func(t *testing.T) PolicyRequest {
				return PolicyRequest{Path: "/tampered.yaml", Policy: &policy.Policy{Version: 1,
					Defaults: policy.Defaults{Input: policy.Drop, Forward: policy.Accept, Output: policy.Accept},
					Rules:    []policy.Rule{{Name: "x; drop", Direction: policy.Input, Action: policy.Accept}}}}
			},
			want: `rules[0].name: "x; drop" is not a valid name; use lowercase letters, digits and -, starting with a letter, like ssh-from-mgmt`,
		},
		{
			name: "files and a parsed policy",
			req: func(t *testing.T) PolicyRequest {
				r := sentSite(t)
				r.Policy = &policy.Policy{}
				return r
			},
			want: "the request carries both the policy's files and a parsed policy; send the files only",
		},
		{
			name: "no policy",
			req:  func(t *testing.T) PolicyRequest { return PolicyRequest{Path: "/p.yaml"} },
			want: "no policy in the request: send the policy's files",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			d := h.run(t)
			before := h.generation(t)
			req := &ApplyRequest{PolicyRequest: tc.req(t)}
			resp := d.send(context.Background(), event{kind: "apply", apply: req})
			want := strings.NewReplacer("MAIN", req.Path, "DIR", filepath.Dir(req.Path)).Replace(tc.want)
			if resp.OK || resp.Error != want {
				t.Errorf("apply: ok %v, error:\n%s\nwant:\n%s", resp.OK, resp.Error, want)
			}
			if h.generation(t) != before {
				t.Error("a refused policy reached the firewall")
			}
		})
	}
}

// TestApplyParsedPolicyOfOlderEdgefwctl sends what an edgefwctl from
// before file bundles sends, {"path", "policy"}, through the control
// socket: the daemon applies it, checked by policy.Validate, and says that
// edgefwctl should be upgraded.
func TestApplyParsedPolicyOfOlderEdgefwctl(t *testing.T) {
	h := newHarness(t)
	d := h.run(t)
	sock := serveControl(t, d)

	file := filepath.Join(t.TempDir(), "b.yaml")
	if err := os.WriteFile(file, []byte(policyB), 0o644); err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(map[string]any{"path": file, "policy": pol})
	if err != nil {
		t.Fatal(err)
	}
	var resp ApplyResponse
	if err := NewClient(sock).do(context.Background(), http.MethodPost, PathApply, json.RawMessage(body), &resp); err != nil {
		t.Fatal(err)
	}
	want := "applied " + file + "; " + parsedPolicyNote
	if !resp.OK || resp.Message != want {
		t.Errorf("apply: ok %v, message %q; want %q", resp.OK, resp.Message, want)
	}
	if text := h.text(t, d); !strings.Contains(text, `counter name "metrics" accept`) {
		t.Errorf("the parsed policy is not in force:\n%s", text)
	}
}

// TestDecodeRequest checks the answers to a request too large to read and
// to one that is not JSON.
func TestDecodeRequest(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		code       int
		want       string
	}{
		{"too large", `{"path": "/p.yaml", "files": {"/p.yaml": "` + strings.Repeat("A", 2<<20) + `"}}`, http.StatusRequestEntityTooLarge,
			"apply request larger than the limit of 1 MiB: the policy's files travel in it base64-encoded, a third larger than on disk"},
		{"not JSON", "policy: yes", http.StatusBadRequest, "bad apply request: invalid character 'p' looking for beginning of value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			var req ApplyRequest
			if decodeRequest(w, httptest.NewRequest(http.MethodPost, PathApply, strings.NewReader(tc.body)), "apply", 1<<20, &req) {
				t.Fatal("decodeRequest accepted the request")
			}
			var got ErrorResponse
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if w.Code != tc.code || got.Error != tc.want {
				t.Errorf("answer %d %q, want %d %q", w.Code, got.Error, tc.code, tc.want)
			}
		})
	}
}

// TestBootInstallsSavedPolicyAsSaved checks that the last good policy is
// installed at boot as it was saved, positions included, not a re-encoded
// copy; and that a saved policy altered into an invalid one is refused with
// the field and the position it was saved with.
func TestBootInstallsSavedPolicyAsSaved(t *testing.T) {
	h := newHarness(t)
	if err := h.daemon(t).Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	saved, err := loadLastGood(h.state)
	if err != nil || saved == nil {
		t.Fatalf("no last good policy: %v", err)
	}
	h.flush(t) // a reboot empties the kernel
	h.write(t, "version: 2\n")
	d := h.daemon(t)
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(saved.Policy, d.cur.pol, cmpPrefix); diff != "" {
		t.Errorf("booted policy differs from the saved one (-saved +booted):\n%s", diff)
	}

	saved.Policy.Rules[0].Name = "Bad_Name"
	if err := saveLastGood(h.state, saved); err != nil {
		t.Fatal(err)
	}
	h.flush(t)
	var logs bytes.Buffer
	d, err = New(Config{PolicyPath: h.policy, StateDir: h.state, Firewall: h.fw, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := "saved policy of " + h.policy + " in " + h.state + ": " + h.policy + `:3:5: rules[0].name: \"Bad_Name\" is not a valid name;`
	if !strings.Contains(logs.String(), want) {
		t.Errorf("the log lacks %s:\n%s", want, logs.String())
	}
	if text := h.text(t, d); !strings.Contains(text, `"edgefw-failsafe"`) || strings.Contains(text, "Bad_Name") {
		t.Errorf("want the safe ruleset, not the altered policy:\n%s", text)
	}
}
