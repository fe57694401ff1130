package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefw/edgefw/audit"
	"github.com/edgefw/edgefw/policy"
	"github.com/edgefw/edgefw/wg"

	"github.com/edgefw/edgefw/internal/netnstest"
)

// serveOnTestSocket runs handler on a Unix socket in a temporary directory and
// returns the socket's path.
func serveOnTestSocket(t *testing.T, handler http.Handler) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "edgefwd.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(handler)
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return sock
}

func answerJSONForClient(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func TestClientStatus(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	want := &Status{
		Version:       "1.2.3",
		StartedAt:     at,
		UptimeSeconds: 42,
		Policy:        PolicySource{Path: "/etc/edgefw/policy.yaml", Hash: "abc", Files: []FileHash{{Path: "/etc/edgefw/policy.yaml", SHA256: "abc"}}},
		LastApply:     &ApplyInfo{Time: at, DurationSeconds: 0.012, OK: true, Trigger: "start", Messages: 7},
		Rules:         []RuleStatus{{Name: "ssh", Direction: "input", Action: "accept", Kind: "user", Packets: 3, Bytes: 180}},
		Tunnels: []wg.TunnelStatus{{Name: "wg0", Backend: "kernel", ListenPort: 51820, Peers: []wg.PeerStatus{
			{Name: "gw", Endpoint: "192.0.2.1:51820", LastHandshake: at, ReceiveBytes: 10, TransmitBytes: 20, Up: true},
		}}},
		Warnings:    []string{},
		OtherTables: []HookedChain{},
	}
	sock := serveOnTestSocket(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != PathStatus {
			answerJSONForClient(w, http.StatusNotFound, ErrorResponse{Error: "no such path " + r.Method + " " + r.URL.Path})
			return
		}
		answerJSONForClient(w, http.StatusOK, want)
	}))
	got, err := NewClient(sock).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Status() mismatch (-want +got):\n%s", diff)
	}
}

func TestClientRequests(t *testing.T) {
	_, files, err := policy.ReadBundle("../policy/testdata/spec-example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ok := &ApplyResponse{OK: true, Message: "done"}
	tests := []struct {
		name       string
		call       func(*Client) (any, error)
		method     string
		path       string
		wantBody   string // substring of the request body; "" means no body
		respond    any
		want       any
		wantErrSub string
	}{
		{
			name:    "reload",
			call:    func(c *Client) (any, error) { return c.Reload(context.Background()) },
			method:  http.MethodPost,
			path:    PathReload,
			respond: ok,
			want:    ok,
		},
		{
			name: "apply",
			call: func(c *Client) (any, error) {
				return c.Apply(context.Background(), ApplyRequest{PolicyRequest: PolicyRequest{Path: "/tmp/p.yaml", Files: files}, ConfirmTimeout: Duration(2 * time.Minute)})
			},
			method:   http.MethodPost,
			path:     PathApply,
			wantBody: `"confirmTimeout":"2m0s"`,
			respond:  &ApplyResponse{OK: true, Pending: &Pending{Path: "/tmp/p.yaml", SecondsLeft: 120}},
			want:     &ApplyResponse{OK: true, Pending: &Pending{Path: "/tmp/p.yaml", SecondsLeft: 120}},
		},
		{
			name:    "confirm",
			call:    func(c *Client) (any, error) { return c.Confirm(context.Background()) },
			method:  http.MethodPost,
			path:    PathConfirm,
			respond: ok,
			want:    ok,
		},
		{
			name:    "rollback",
			call:    func(c *Client) (any, error) { return c.Rollback(context.Background()) },
			method:  http.MethodPost,
			path:    PathRollback,
			respond: ok,
			want:    ok,
		},
		{
			name: "remove",
			call: func(c *Client) (any, error) {
				return c.Remove(context.Background(), RemoveRequest{Confirm: RemoveConfirmation})
			},
			method:   http.MethodPost,
			path:     PathRemove,
			wantBody: `"confirm":"remove-firewall"`,
			respond:  ok,
			want:     ok,
		},
		{
			name:    "ruleset",
			call:    func(c *Client) (any, error) { return c.Ruleset(context.Background()) },
			method:  http.MethodGet,
			path:    PathPlan,
			respond: &Ruleset{Text: "table inet edgefw {\n}\n"},
			want:    &Ruleset{Text: "table inet edgefw {\n}\n"},
		},
		{
			name: "diff",
			call: func(c *Client) (any, error) {
				return c.Diff(context.Background(), DiffRequest{PolicyRequest{Path: "/tmp/p.yaml", Files: files}})
			},
			method:   http.MethodPost,
			path:     PathDiff,
			wantBody: `"path":"/tmp/p.yaml"`,
			respond:  &Diff{Kernel: "table inet edgefw {\n}\n", Changes: []string{"add counter \"ssh\""}, Messages: 1},
			want:     &Diff{Kernel: "table inet edgefw {\n}\n", Changes: []string{"add counter \"ssh\""}, Messages: 1},
		},
		{
			name:    "peers",
			call:    func(c *Client) (any, error) { return c.Peers(context.Background()) },
			method:  http.MethodGet,
			path:    PathPeers,
			respond: []wg.TunnelStatus{{Name: "wg0", Peers: []wg.PeerStatus{{Name: "gw"}}}},
			want:    []wg.TunnelStatus{{Name: "wg0", Peers: []wg.PeerStatus{{Name: "gw"}}}},
		},
		{
			name:       "confirm with nothing pending",
			call:       func(c *Client) (any, error) { return c.Confirm(context.Background()) },
			method:     http.MethodPost,
			path:       PathConfirm,
			respond:    ErrorResponse{Error: "nothing awaits confirmation"},
			wantErrSub: "nothing awaits confirmation",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotMethod, gotPath, gotBody string
			sock := serveOnTestSocket(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				gotMethod, gotPath = r.Method, r.URL.Path
				body, _ := io.ReadAll(r.Body)
				gotBody = string(body)
				code := http.StatusOK
				if tt.wantErrSub != "" {
					code = http.StatusConflict
				}
				answerJSONForClient(w, code, tt.respond)
			}))
			got, err := tt.call(NewClient(sock))
			if gotMethod != tt.method || gotPath != tt.path {
				t.Errorf("request = %s %s, want %s %s", gotMethod, gotPath, tt.method, tt.path)
			}
			if tt.wantBody == "" && gotBody != "" {
				t.Errorf("request body = %q, want none", gotBody)
			}
			if !strings.Contains(gotBody, tt.wantBody) {
				t.Errorf("request body = %s, want it to contain %s", gotBody, tt.wantBody)
			}
			if tt.wantErrSub != "" {
				if err == nil || err.Error() != tt.wantErrSub {
					t.Fatalf("error = %v, want %q", err, tt.wantErrSub)
				}
				apiErr, ok := errors.AsType[*APIError](err)
				if !ok || apiErr.StatusCode != http.StatusConflict {
					t.Errorf("error = %#v, want an *APIError with status 409", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("response mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestClientApplyFilesRoundTrip checks that the policy's files reach the
// daemon byte for byte.
func TestClientApplyFilesRoundTrip(t *testing.T) {
	_, files, err := policy.ReadBundle("../policy/testdata/spec-example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var got ApplyRequest
	sock := serveOnTestSocket(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			answerJSONForClient(w, http.StatusBadRequest, ErrorResponse{Error: err.Error()})
			return
		}
		answerJSONForClient(w, http.StatusOK, ApplyResponse{OK: true})
	}))
	req := ApplyRequest{PolicyRequest: PolicyRequest{Path: "/etc/edgefw/policy.yaml", Files: files}, ConfirmTimeout: Duration(90 * time.Second)}
	if _, err := NewClient(sock).Apply(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(req, got); diff != "" {
		t.Errorf("ApplyRequest after the wire (-sent +received):\n%s", diff)
	}
}

// TestClientRefusesOversizedRequest checks that a request larger than the
// daemon accepts is refused before it is sent, saying why.
func TestClientRefusesOversizedRequest(t *testing.T) {
	req := ApplyRequest{PolicyRequest: PolicyRequest{Path: "/p.yaml", Files: policy.Bundle{"/p.yaml": make([]byte, 3<<20)}}}
	_, err := encodeRequest(PathApply, req, 4<<20)
	want := "/v1/apply request of 5 MiB is larger than the limit of 4 MiB that edgefwd accepts: the policy's files travel in it base64-encoded, a third larger than on disk"
	if err == nil || err.Error() != want {
		t.Errorf("encodeRequest = %v, want %s", err, want)
	}
	if _, err := encodeRequest(PathApply, req, 5<<20); err != nil {
		t.Errorf("encodeRequest under the limit: %v", err)
	}
}

func TestClientFailedApplyKeepsResponse(t *testing.T) {
	want := &ApplyResponse{Error: "tunnel wg0: operation not supported", Apply: &ApplyInfo{Trigger: "apply", Error: "tunnel wg0: operation not supported"}}
	sock := serveOnTestSocket(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answerJSONForClient(w, http.StatusUnprocessableEntity, want)
	}))
	got, err := NewClient(sock).Reload(context.Background())
	if apiErr, ok := errors.AsType[*APIError](err); !ok || apiErr.StatusCode != http.StatusUnprocessableEntity || err.Error() != want.Error {
		t.Fatalf("error = %v, want an *APIError %q", err, want.Error)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("response with the error (-want +got):\n%s", diff)
	}
}

func TestClientHTTPErrors(t *testing.T) {
	tests := []struct {
		name string
		code int
		body string
		want string
	}{
		{"error response", http.StatusBadRequest, `{"error":"policy: rules[0].name: invalid"}`, "policy: rules[0].name: invalid"},
		{"plain text", http.StatusInternalServerError, "boom\n", "edgefwd answered 500 Internal Server Error: boom"},
		{"empty", http.StatusServiceUnavailable, "", "edgefwd answered 503 Service Unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := serveOnTestSocket(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.code)
				fmt.Fprint(w, tt.body)
			}))
			_, err := NewClient(sock).Status(context.Background())
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestClientMissingSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "edgefwd.sock")
	_, err := NewClient(sock).Status(context.Background())
	want := "edgefwd is not running (no socket at " + sock + "); start it with: systemctl start edgefwd"
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %q", err, want)
	}
	se, ok := errors.AsType[*SocketError](err)
	if !ok || !se.NotRunning() || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error = %#v, want a not-running *SocketError wrapping fs.ErrNotExist", err)
	}
}

func TestClientStaleSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "edgefwd.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	// A daemon that crashed leaves its socket file behind.
	ln.SetUnlinkOnClose(false)
	ln.Close()
	_, err = NewClient(sock).Status(context.Background())
	want := "edgefwd is not running (stale socket " + sock + ")"
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %q", err, want)
	}
}

func TestClientPermissionDenied(t *testing.T) {
	if !netnstest.AsUnprivileged(t) {
		return // root may connect to any socket: run as nobody
	}
	sock := serveOnTestSocket(t, http.NotFoundHandler())
	if err := os.Chmod(sock, 0); err != nil {
		t.Fatal(err)
	}
	_, err := NewClient(sock).Status(context.Background())
	want := "permission denied on " + sock + ": run as root or as a member of group edgefw"
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %q", err, want)
	}
}

func TestClientSocketErrorMessages(t *testing.T) {
	const sock = "/run/edgefw/edgefwd.sock"
	dial := func(errno syscall.Errno) error {
		return &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", errno)}
	}
	tests := []struct {
		err        error
		want       string
		notRunning bool
	}{
		{dial(syscall.ENOENT), "edgefwd is not running (no socket at /run/edgefw/edgefwd.sock); start it with: systemctl start edgefwd", true},
		{dial(syscall.EACCES), "permission denied on /run/edgefw/edgefwd.sock: run as root or as a member of group edgefw", false},
		{dial(syscall.EPERM), "permission denied on /run/edgefw/edgefwd.sock: run as root or as a member of group edgefw", false},
		{dial(syscall.ECONNREFUSED), "edgefwd is not running (stale socket /run/edgefw/edgefwd.sock)", true},
		{dial(syscall.EAGAIN), "connect to edgefwd at /run/edgefw/edgefwd.sock: dial unix: connect: resource temporarily unavailable", false},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			se := &SocketError{Path: sock, Err: tt.err}
			if got := se.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
			if got := se.NotRunning(); got != tt.notRunning {
				t.Errorf("NotRunning() = %v, want %v", got, tt.notRunning)
			}
		})
	}
}

// TestClientDrops checks that a drops query travels as PathDenied's
// parameters and its view comes back whole, and that a daemon answering
// in the form of an older version is named as such.
func TestClientDrops(t *testing.T) {
	share := 0.25
	want := &DropsView{From: time.Date(2026, 11, 22, 8, 0, 0, 0, time.UTC), To: time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC),
		Rules: []RuleDrops{{Direction: "input", Action: "drop", RuleView: audit.RuleView{
			Rule: "deny-scan", Packets: 40, Bytes: 2400, Sampled: 10, Share: &share,
			TopSources: []audit.SourceCount{{Source: netip.MustParseAddr("203.0.113.5"), Count: 10}},
			TopPorts:   []audit.PortCount{{Protocol: audit.TCP, Port: 23, Count: 10}},
			TopFlows:   []audit.FlowCount{{Source: netip.MustParseAddr("203.0.113.5"), Protocol: audit.TCP, Port: 23, Count: 10, ErrorBound: 2}},
		}}}}
	var query url.Values
	var answer any = want
	sock := serveOnTestSocket(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != PathDenied {
			answerJSONForClient(w, http.StatusNotFound, ErrorResponse{Error: "no such path"})
			return
		}
		query = r.URL.Query()
		answerJSONForClient(w, http.StatusOK, answer)
	}))
	c := NewClient(sock)
	got, err := c.Drops(context.Background(), audit.Query{Since: 90 * time.Minute, Rules: []string{"deny-scan", "edgefw-default-input"}, Top: 3})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("view (-want +got):\n%s", diff)
	}
	wantQuery := url.Values{"since": {"1h30m0s"}, "rule": {"deny-scan", "edgefw-default-input"}, "top": {"3"}}
	if diff := cmp.Diff(wantQuery, query); diff != "" {
		t.Errorf("query (-want +got):\n%s", diff)
	}
	if q, err := ParseDropsQuery(query); err != nil || q.Since != 90*time.Minute || q.Top != 3 || len(q.Rules) != 2 {
		t.Errorf("the daemon reads the query as %+v, %v", q, err)
	}

	// An edgefwd from before PathDenied does not know the path.
	older := NewClient(serveOnTestSocket(t, http.NotFoundHandler()))
	if _, err := older.Drops(context.Background(), audit.Query{}); !errors.Is(err, ErrDaemonOlder) {
		t.Errorf("an older daemon: error %v, want ErrDaemonOlder", err)
	}
}

// TestDropRecords: PathDrops answers older clients with each rule's
// heaviest flows as the records they know, heaviest first.
func TestDropRecords(t *testing.T) {
	from, to := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	src := netip.MustParseAddr("203.0.113.5")
	v := DropsView{From: from, To: to, Rules: []RuleDrops{
		{RuleView: audit.RuleView{Rule: "a", TopFlows: []audit.FlowCount{{Source: src, Protocol: 6, Port: 23, Count: 3}}}},
		{RuleView: audit.RuleView{Rule: "b", TopFlows: []audit.FlowCount{{Source: src, Protocol: 17, Port: 53, Count: 9}}}},
	}}
	want := []DropRecord{
		{Rule: "b", Source: "203.0.113.5", Protocol: "udp", Port: 53, Packets: 9, First: from, Last: to},
		{Rule: "a", Source: "203.0.113.5", Protocol: "tcp", Port: 23, Packets: 3, First: from, Last: to},
	}
	if diff := cmp.Diff(want, DropRecords(v)); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if got := DropRecords(DropsView{}); got == nil || len(got) != 0 {
		t.Errorf("no drops: %#v, want an empty list (JSON [])", got)
	}
}
