package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefw/edgefw/audit"
	"github.com/edgefw/edgefw/daemon"
	"github.com/edgefw/edgefw/wg"
)

// cannedTunnels has a healthy peer, one that never shook hands, an
// undeclared one and a tunnel that could not be created.
func cannedTunnels() []wg.TunnelStatus {
	return []wg.TunnelStatus{
		{Name: "wg0", Backend: "kernel", ListenPort: 51820, Peers: []wg.PeerStatus{
			{Name: "cluster-gw", PublicKey: "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=", Endpoint: "192.0.2.10:51820",
				LastHandshake: testNow.Add(-42 * time.Second), ReceiveBytes: 1258291, TransmitBytes: 2048, Up: true},
			{Name: "backup-gw", PublicKey: "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=", Error: `endpoint "gw2.example:51820" does not resolve`},
			{PublicKey: "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=", Endpoint: "198.51.100.3:40000"},
		}},
		{Name: "wg1", Error: "create interface: operation not supported"},
	}
}

func cannedStatus() *daemon.Status {
	return &daemon.Status{
		Version:       "1.4.0",
		StartedAt:     testNow.Add(-(3*time.Hour + 12*time.Minute)),
		UptimeSeconds: (3*time.Hour + 12*time.Minute + 5*time.Second).Seconds(),
		Policy: daemon.PolicySource{
			Path:  "/etc/edgefw/policy.yaml",
			Files: []daemon.FileHash{{Path: "/etc/edgefw/policy.yaml", SHA256: "3f2a"}, {Path: "/etc/edgefw/policy.d/10-web.yaml", SHA256: "9b1c"}},
			Hash:  "3f2a9c1b7d0e5a6b3f2a9c1b7d0e5a6b",
		},
		LastApply:   &daemon.ApplyInfo{Time: testNow.Add(-3 * time.Minute), DurationSeconds: 0.012, OK: true, Trigger: "file-change", Messages: 4},
		LastSuccess: &daemon.ApplyInfo{Time: testNow.Add(-3 * time.Minute), DurationSeconds: 0.012, OK: true, Trigger: "file-change", Messages: 4},
		Rules: []daemon.RuleStatus{
			{Name: "edgefw-established-input", Direction: "input", Action: "accept", Kind: "implicit", Packets: 123456, Bytes: 98765432},
			{Name: "ssh-from-mgmt", Direction: "input", Action: "accept", Kind: "user", Packets: 12, Bytes: 720},
			{Name: "kube-api", Direction: "input", Action: "accept", Kind: "user", Mode: "enforce", Packets: 3000, Bytes: 1258291},
			{Name: "watch-telnet", Direction: "input", Action: "reject", Kind: "user", Mode: "audit", Packets: 9, Bytes: 540},
			{Name: "edgefw-default-input", Direction: "input", Action: "drop", Kind: "default", Packets: 7, Bytes: 420},
		},
		Tunnels:      cannedTunnels(),
		Pending:      &daemon.Pending{Path: "/root/candidate.yaml", Deadline: testNow.Add(83 * time.Second), SecondsLeft: 83},
		DriftRepairs: 2,
		Warnings:     []string{`table ip filter has a base chain "INPUT" at hook input (priority 0, policy drop)`},
		OtherTables:  []daemon.HookedChain{{Family: "ip", Table: "filter", Chain: "INPUT", Hook: "input", Policy: "drop"}},
	}
}

func share(v float64) *float64 { return &v }

// cannedDrops has a rule flooded beyond its log rate, one in audit mode
// logged in full, one no longer in the policy and one that does not log.
func cannedDrops() *daemon.DropsView {
	addr := netip.MustParseAddr
	return &daemon.DropsView{From: testNow.Add(-24 * time.Hour), To: testNow, Rules: []daemon.RuleDrops{
		{Direction: "input", Action: "drop", Mode: "enforce", RuleView: audit.RuleView{Rule: "edgefw-default-input", Packets: 400, Bytes: 24000, Sampled: 48, Share: share(0.12),
			TopSources: []audit.SourceCount{{Source: addr("203.0.113.5"), Count: 40}, {Source: addr("198.51.100.99"), Count: 8, ErrorBound: 3}},
			TopPorts:   []audit.PortCount{{Protocol: audit.TCP, Port: 23, Count: 40}, {Protocol: audit.ICMP, Count: 8, ErrorBound: 3}},
			TopFlows: []audit.FlowCount{{Source: addr("203.0.113.5"), Protocol: audit.TCP, Port: 23, Count: 40},
				{Source: addr("198.51.100.99"), Protocol: audit.ICMP, Count: 8, ErrorBound: 3}}}},
		{Direction: "input", Action: "reject", Mode: "enforce", RuleView: audit.RuleView{Rule: "deny-quiet", Packets: 12, Bytes: 720, Share: share(0)}},
		{Direction: "input", Action: "drop", Mode: "audit", RuleView: audit.RuleView{Rule: "drop-blocklisted", Packets: 3, Bytes: 180, Sampled: 3, Share: share(1),
			TopFlows: []audit.FlowCount{{Source: addr("2001:db8::7"), Protocol: audit.UDP, Port: 53, Count: 3}}}},
		{RuleView: audit.RuleView{Rule: "deny-old", Sampled: 2,
			TopFlows: []audit.FlowCount{{Source: addr("192.0.2.9"), Protocol: audit.TCP, Port: 22, Count: 2}}}},
	}}
}

// rowFields returns the fields of the table row that starts with first.
func rowFields(t *testing.T, out, first string) []string {
	t.Helper()
	for _, line := range splitLines(out) {
		if f := strings.Fields(line); len(f) > 0 && f[0] == first {
			return f
		}
	}
	t.Fatalf("no row starting with %q in:\n%s", first, out)
	return nil
}

func TestStatus(t *testing.T) {
	f := newFakeDaemon(t)
	f.status = cannedStatus()
	f.drops = cannedDrops()
	res := run(t, "--socket", f.socket, "status")
	if res.code != 0 || res.stderr != "" {
		t.Fatalf("status: code %d, stderr %q", res.code, res.stderr)
	}
	out := res.stdout
	deadline := testNow.Add(83 * time.Second).Local().Format("15:04:05")
	for _, want := range []string{
		"edgefwd:        1.4.0, up 3h12m\n",
		"policy:         /etc/edgefw/policy.yaml (sha256 3f2a9c1b7d0e, 2 files)\n",
		"last apply:     ok 3m ago (12 ms, trigger file-change)\n",
		"pending:        /root/candidate.yaml awaits edgefwctl confirm: 1m23s left, then the previous policy is restored (at " + deadline + ")\n",
		"drift repairs:  2\n",
		"RULE                      DIRECTION  ACTION          KIND      PACKETS  BYTES\n",
		"INTERFACE  BACKEND  PEER",
		"denied in the last 24h, heaviest flows of the logged sample:\nRULE                  SOURCE         PROTO  PORT  LOGGED\n",
		"error: peer wg0/backup-gw: endpoint \"gw2.example:51820\" does not resolve\n",
		"error: tunnel wg1: create interface: operation not supported\n",
		"warning: table ip filter has a base chain \"INPUT\" at hook input (priority 0, policy drop)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
	rows := map[string][]string{
		"ssh-from-mgmt":            {"ssh-from-mgmt", "input", "accept", "user", "12", "720", "B"},
		"kube-api":                 {"kube-api", "input", "accept", "user", "3000", "1.2", "MiB"},
		"watch-telnet":             {"watch-telnet", "input", "reject", "(audit)", "user", "9", "540", "B"},
		"edgefw-established-input": {"edgefw-established-input", "input", "accept", "implicit", "123456", "94.2", "MiB"},
		"drop-blocklisted":         {"drop-blocklisted", "2001:db8::7", "udp", "53", "3"},
		"deny-old":                 {"deny-old", "192.0.2.9", "tcp", "22", "2"},
	}
	for first, want := range rows {
		if diff := cmp.Diff(want, rowFields(t, out, first)); diff != "" {
			t.Errorf("row %s (-want +got):\n%s", first, diff)
		}
	}
	// The heaviest flows across rules, first.
	if i, j := strings.Index(out, "203.0.113.5"), strings.Index(out, "2001:db8::7"); i < 0 || j < i {
		t.Errorf("drops are not heaviest first:\n%s", out)
	}
	if q := f.queriesTo(daemon.PathDenied); len(q) != 1 || q[0] != "since=24h0m0s&top=5" {
		t.Errorf("status asked for drops %q, want the last 24 hours' top 5", q)
	}
}

func TestStatusFailedApply(t *testing.T) {
	f := newFakeDaemon(t)
	st := cannedStatus()
	st.Pending = nil
	st.Policy.Applied = true
	st.Policy.AppliedBy = &daemon.Caller{UID: 1000, User: "alice"}
	st.Policy.AppliedAt = testNow.Add(-2 * time.Hour)
	st.PolicyFiles = &daemon.PolicyFiles{Path: "/etc/edgefw/policy.yaml", Differs: true}
	st.LastApply = &daemon.ApplyInfo{Time: testNow.Add(-90 * time.Second), OK: false, Trigger: "reload", Error: "policy.yaml:3:1: version: must be 1"}
	st.LastSuccess = &daemon.ApplyInfo{Time: testNow.Add(-26 * time.Hour), DurationSeconds: 1.25, OK: true, Trigger: "start"}
	f.status = st
	res := run(t, "--socket", f.socket, "status")
	for _, want := range []string{
		", applied with edgefwctl apply by alice (uid 1000) 2h ago\n",
		"policy files:   /etc/edgefw/policy.yaml differ from the running policy; not in force until they change or edgefwctl reload --from-files\n",
		"last apply:     failed 1m ago (trigger reload): policy.yaml:3:1: version: must be 1\n",
		"last success:   ok 1d2h ago (1.2 s, trigger start)\n",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("status output lacks %q:\n%s", want, res.stdout)
		}
	}
	if strings.Contains(res.stdout, "pending:") {
		t.Errorf("status shows a pending apply that is not there:\n%s", res.stdout)
	}
}

func TestStatusJSON(t *testing.T) {
	f := newFakeDaemon(t)
	f.status = cannedStatus()
	res := run(t, "--socket", f.socket, "status", "-o", "json")
	if res.code != 0 {
		t.Fatalf("code %d, stderr %q", res.code, res.stderr)
	}
	var got daemon.Status
	if err := json.Unmarshal([]byte(res.stdout), &got); err != nil {
		t.Fatalf("%v\n%s", err, res.stdout)
	}
	if diff := cmp.Diff(f.status, &got); diff != "" {
		t.Errorf("status -o json does not round-trip (-daemon +printed):\n%s", diff)
	}
}

func TestPeers(t *testing.T) {
	f := newFakeDaemon(t)
	f.peers = cannedTunnels()
	res := run(t, "--socket", f.socket, "peers")
	if res.code != 0 {
		t.Fatalf("code %d, stderr %q", res.code, res.stderr)
	}
	lines := splitLines(res.stdout)
	want := [][]string{
		{"INTERFACE", "BACKEND", "PEER", "ENDPOINT", "HANDSHAKE", "RX", "TX", "UP"},
		{"wg0", "kernel", "cluster-gw", "192.0.2.10:51820", "42s", "ago", "1.2", "MiB", "2.0", "KiB", "yes"},
		{"wg0", "kernel", "backup-gw", "-", "never", "0", "B", "0", "B", "no"},
		{"wg0", "kernel", "undeclared:TrMvSoP4", "198.51.100.3:40000", "never", "0", "B", "0", "B", "no"},
		{"wg1", "-", "-", "-", "-", "-", "-", "-"},
	}
	if len(lines) < len(want) {
		t.Fatalf("peers printed %d lines:\n%s", len(lines), res.stdout)
	}
	for i, w := range want {
		if diff := cmp.Diff(w, strings.Fields(lines[i])); diff != "" {
			t.Errorf("line %d (-want +got):\n%s", i+1, diff)
		}
	}

	res = run(t, "--socket", f.socket, "peers", "-o", "json")
	var got []wg.TunnelStatus
	if err := json.Unmarshal([]byte(res.stdout), &got); err != nil {
		t.Fatal(err)
	}
	// camelCase like the rest of the API; "never" is no handshake, not year 1.
	for _, want := range []string{`"lastHandshake": "`, `"listenPort": 51820`, `"receiveBytes": 1258291`} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("peers -o json lacks %s:\n%s", want, res.stdout)
		}
	}
	for _, bad := range []string{`"LastHandshake"`, `"Peers"`, "0001-01-01"} {
		if strings.Contains(res.stdout, bad) {
			t.Errorf("peers -o json contains %s:\n%s", bad, res.stdout)
		}
	}
	if n := strings.Count(res.stdout, `"lastHandshake"`); n != 1 {
		t.Errorf("peers -o json has %d lastHandshake fields, want 1 (two peers never shook hands):\n%s", n, res.stdout)
	}
	if diff := cmp.Diff(f.peers, got); diff != "" {
		t.Errorf("peers -o json does not round-trip (-daemon +printed):\n%s", diff)
	}
}

// TestDrops prints a drops view: per rule its exact total, what its
// flows are drawn from (share, nothing logged, unknown share) and its
// flows, a count with an error bound as the range it allows.
func TestDrops(t *testing.T) {
	f := newFakeDaemon(t)
	f.drops = cannedDrops()
	res := run(t, "--socket", f.socket, "drops")
	want := "period: " + localMinute(testNow.Add(-24*time.Hour)) + " to " + localMinute(testNow) + "\n" + `
edgefw-default-input: input drop, 400 packets (23.4 KiB) counted
  top flows from a 12% sample (48 packets logged)
  SOURCE         PROTO  PORT  LOGGED
  203.0.113.5    tcp    23    40
  198.51.100.99  icmp   -     5-8

deny-quiet: input reject, 12 packets (720 B) counted
  none logged: only rules with log: true and the default policies are logged

drop-blocklisted: input drop (audit), 3 packets (180 B) counted
  top flows from a 100% sample (3 packets logged)
  SOURCE       PROTO  PORT  LOGGED
  2001:db8::7  udp    53    3

deny-old: no longer in the policy, 0 packets (0 B) counted
  top flows of the 2 packets logged (share unknown: no counter reading in the period)
  SOURCE     PROTO  PORT  LOGGED
  192.0.2.9  tcp    22    2
`
	if res.code != 0 || res.stdout != want {
		t.Errorf("drops = %d\n%s\nwant\n%s", res.code, res.stdout, want)
	}
	if q := f.queriesTo(daemon.PathDenied); len(q) != 1 || q[0] != "since=24h0m0s&top=10" {
		t.Errorf("drops asked %q, want the last 24 hours' top 10", q)
	}

	res = run(t, "--socket", f.socket, "drops", "--since", "7d", "--rule", "deny-old", "--rule", "drop-blocklisted", "--top", "3", "-o", "json")
	if q := f.queriesTo(daemon.PathDenied); q[len(q)-1] != "rule=deny-old&rule=drop-blocklisted&since=168h0m0s&top=3" {
		t.Errorf("drops --since 7d --rule deny-old --rule drop-blocklisted --top 3 asked %q", q[len(q)-1])
	}
	var got daemon.DropsView
	if err := json.Unmarshal([]byte(res.stdout), &got); err != nil {
		t.Fatalf("%v\n%s", err, res.stdout)
	}
	if diff := cmp.Diff(f.drops, &got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("drops -o json does not round-trip (-daemon +printed):\n%s", diff)
	}
	for _, field := range []string{`"topFlows": [`, `"errorBound": 3`, `"share": null`, `"share": 0.12`, `"direction": "input"`, `"protocol": "icmp"`, `"mode": "audit"`} {
		if !strings.Contains(res.stdout, field) {
			t.Errorf("drops -o json lacks %s:\n%s", field, res.stdout)
		}
	}

	f.drops = &daemon.DropsView{From: testNow.Add(-time.Hour), To: testNow, Rules: []daemon.RuleDrops{}}
	if res := run(t, "--socket", f.socket, "drops"); !strings.HasSuffix(res.stdout, "\nno denied traffic in the period\n") {
		t.Errorf("drops with none = %q", res.stdout)
	}
	if res := run(t, "--socket", f.socket, "drops", "-o", "json"); !strings.Contains(res.stdout, `"rules": []`) {
		t.Errorf("drops -o json with none = %q", res.stdout)
	}
}

// TestDropsRefused checks what drops refuses before asking, and an older
// daemon's answer.
func TestDropsRefused(t *testing.T) {
	f := newFakeDaemon(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--since", "soon"}, `edgefwctl: --since "soon": want a duration such as 15m, 24h or 7d (see 'edgefwctl drops --help')` + "\n"},
		{[]string{"--top", "0"}, "edgefwctl: --top 0: want 1 to 100 (see 'edgefwctl drops --help')\n"},
	} {
		res := run(t, append([]string{"--socket", f.socket, "drops"}, tc.args...)...)
		if res.code != 1 || res.stderr != tc.want {
			t.Errorf("drops %q: code %d, stderr %q; want 1, %q", tc.args, res.code, res.stderr, tc.want)
		}
	}
	if q := f.queriesTo(daemon.PathDenied); len(q) != 0 {
		t.Errorf("asked the daemon %q", q)
	}

	// An edgefwd from before /v1/denied does not know the path.
	older := serveUnix(t, http.NotFoundHandler())
	res := run(t, "--socket", older, "drops")
	if res.code != 1 || !strings.Contains(res.stderr, "restart it (systemctl restart edgefwd)") {
		t.Errorf("an older daemon: code %d, stderr %q", res.code, res.stderr)
	}
}

func TestControlCommands(t *testing.T) {
	tests := []struct {
		cmd    string
		path   string
		answer *fakeAnswer
		code   int
		stdout string
		stderr string
	}{
		// The daemon attaches its last apply to every answer: after a
		// confirm, that is the apply being confirmed, not news.
		{cmd: "confirm", path: daemon.PathConfirm, answer: &fakeAnswer{200, daemon.ApplyResponse{OK: true, Message: "confirmed /root/candidate.yaml",
			Apply: &daemon.ApplyInfo{OK: true, Messages: 2, Changes: []string{"add rule \"kube-api\" in chain input"}}}},
			stdout: "confirmed /root/candidate.yaml\n"},
		{cmd: "confirm", path: daemon.PathConfirm, answer: &fakeAnswer{200, daemon.ApplyResponse{Error: "nothing awaits confirmation"}},
			code: 1, stderr: "edgefwctl: confirm: nothing awaits confirmation\n"},
		{cmd: "confirm", path: daemon.PathConfirm, answer: &fakeAnswer{http.StatusConflict, daemon.ErrorResponse{Error: "nothing awaits confirmation"}},
			code: 1, stderr: "edgefwctl: confirm: nothing awaits confirmation\n"},
		{cmd: "rollback", path: daemon.PathRollback, answer: &fakeAnswer{200, daemon.ApplyResponse{OK: true, Message: "rolled back /root/candidate.yaml",
			Apply: &daemon.ApplyInfo{OK: true, DurationSeconds: 0.02, Messages: 3}}},
			stdout: "rolled back /root/candidate.yaml\nwrote 3 netlink messages in one transaction (20 ms)\n"},
		{cmd: "reload", path: daemon.PathReload, stdout: "reloaded\n"},
		{cmd: "reload", path: daemon.PathReload, answer: &fakeAnswer{200, daemon.ApplyResponse{OK: true, Apply: &daemon.ApplyInfo{OK: true, DurationSeconds: 0.027, Messages: 73,
			Changes: []string{"c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9", "c10", "c11", "c12"}}}},
			stdout: "reloaded\nwrote 73 netlink messages in one transaction (27 ms)\n  c1\n  c2\n  c3\n  c4\n  c5\n  c6\n  c7\n  c8\n  c9\n  c10\n  … 2 more (-o json lists them all)\n"},
		{cmd: "reload", path: daemon.PathReload, answer: &fakeAnswer{200, daemon.ApplyResponse{Error: "policy.yaml:1:1: version: must be 1"}},
			code: 1, stderr: "edgefwctl: reload: policy.yaml:1:1: version: must be 1\n"},
	}
	for _, tt := range tests {
		t.Run(tt.cmd, func(t *testing.T) {
			f := newFakeDaemon(t)
			if tt.answer != nil {
				f.post[tt.path] = *tt.answer
			}
			res := run(t, "--socket", f.socket, tt.cmd)
			if res.code != tt.code || res.stdout != tt.stdout || res.stderr != tt.stderr {
				t.Errorf("%s = %d %q %q, want %d %q %q", tt.cmd, res.code, res.stdout, res.stderr, tt.code, tt.stdout, tt.stderr)
			}
			if n := len(f.requestsTo(tt.path)); n != 1 {
				t.Errorf("%d requests to %s, want 1", n, tt.path)
			}
		})
	}
}

// TestReloadFromFiles: only --from-files asks the daemon to leave a
// policy given by apply; a plain reload sends no body, as older clients.
func TestReloadFromFiles(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{args: []string{"reload"}, want: ""},
		{args: []string{"reload", "--from-files"}, want: `{"fromFiles":true}`},
	} {
		f := newFakeDaemon(t)
		if res := run(t, append([]string{"--socket", f.socket}, tt.args...)...); res.code != 0 {
			t.Fatalf("%v: exit %d: %s", tt.args, res.code, res.stderr)
		}
		bodies := f.requestsTo(daemon.PathReload)
		if len(bodies) != 1 || strings.TrimSpace(string(bodies[0])) != tt.want {
			t.Errorf("%v sent %q, want one request with body %q", tt.args, bodies, tt.want)
		}
	}
}

func TestRemove(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		stdin    string
		terminal bool
		code     int
		sent     bool
	}{
		{name: "no --yes, not a terminal", args: []string{"remove"}, code: 1},
		{name: "--yes", args: []string{"remove", "--yes"}, sent: true},
		{name: "typed confirmation", args: []string{"remove"}, stdin: "remove-firewall\n", terminal: true, sent: true},
		{name: "wrong confirmation", args: []string{"remove"}, stdin: "yes\n", terminal: true, code: 1},
		{name: "no answer", args: []string{"remove"}, terminal: true, code: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeDaemon(t)
			res := runApp(t, tt.stdin, func(a *app) { a.isTerminal = func(io.Reader) bool { return tt.terminal } },
				append([]string{"--socket", f.socket}, tt.args...)...)
			if res.code != tt.code {
				t.Errorf("exit code = %d, want %d; stderr %q", res.code, tt.code, res.stderr)
			}
			bodies := f.requestsTo(daemon.PathRemove)
			if !tt.sent {
				if len(bodies) != 0 {
					t.Errorf("the daemon got a remove request")
				}
				if !strings.Contains(res.stderr, "nothing removed") && !strings.Contains(res.stderr, "read confirmation") {
					t.Errorf("stderr = %q, want a refusal", res.stderr)
				}
				return
			}
			if len(bodies) != 1 {
				t.Fatalf("%d remove requests, want 1", len(bodies))
			}
			var req daemon.RemoveRequest
			if err := json.Unmarshal(bodies[0], &req); err != nil || req.Confirm != daemon.RemoveConfirmation {
				t.Errorf("remove request = %s (%v)", bodies[0], err)
			}
		})
	}
}

func TestKeygenPubkey(t *testing.T) {
	key := filepath.Join(t.TempDir(), "keys", "wg0.key")
	gen := run(t, "keygen", key)
	if gen.code != 0 || gen.stderr != "" {
		t.Fatalf("keygen: code %d, stderr %q", gen.code, gen.stderr)
	}
	pub := strings.TrimSuffix(gen.stdout, "\n")
	if len(pub) != 44 || strings.Contains(pub, "\n") {
		t.Fatalf("keygen printed %q, want one base64 public key", gen.stdout)
	}
	private, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.TrimSpace(string(private))

	got := run(t, "pubkey", key)
	if got.code != 0 || got.stdout != gen.stdout {
		t.Errorf("pubkey = %d %q, want %q from keygen", got.code, got.stdout, gen.stdout)
	}
	asJSON := run(t, "pubkey", "-o", "json", key)
	var out publicKeyOutput
	if err := json.Unmarshal([]byte(asJSON.stdout), &out); err != nil || out.PublicKey != pub {
		t.Errorf("pubkey -o json = %q (%v)", asJSON.stdout, err)
	}
	again := run(t, "keygen", key)
	if again.code != 1 {
		t.Errorf("keygen over an existing key: code %d, want 1", again.code)
	}
	for _, res := range []result{gen, got, asJSON, again} {
		if secret == "" || strings.Contains(res.stdout+res.stderr, secret) {
			t.Fatalf("the private key appears in the output")
		}
	}

	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	insecure := run(t, "pubkey", key)
	if insecure.code != 1 || strings.Contains(insecure.stdout+insecure.stderr, secret) {
		t.Errorf("pubkey of a world-readable key: code %d, stderr %q", insecure.code, insecure.stderr)
	}
}

// TestStatusDrops checks status's denied-traffic table: none when nothing
// was logged, at most five flows, then a pointer to drops.
func TestStatusDrops(t *testing.T) {
	f := newFakeDaemon(t)
	f.status = cannedStatus()
	if res := run(t, "--socket", f.socket, "status"); strings.Contains(res.stdout, "denied in the last 24h") {
		t.Errorf("status shows a drops table with nothing logged:\n%s", res.stdout)
	}
	v := cannedDrops()
	for i := range 4 {
		v.Rules[0].TopFlows = append(v.Rules[0].TopFlows, audit.FlowCount{Source: netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), Protocol: audit.TCP, Port: 80, Count: 1})
	}
	f.drops = v
	res := run(t, "--socket", f.socket, "status")
	table := res.stdout[strings.Index(res.stdout, "denied in the last 24h"):]
	if rows := strings.Count(table, "\n") - strings.Count(table[strings.Index(table, "… see"):], "\n"); rows != 2+statusDrops {
		t.Errorf("drops table of %d lines, want a title, a header and %d flows:\n%s", rows, statusDrops, table)
	}
	if !strings.Contains(table, "… see edgefwctl drops\n") {
		t.Errorf("no pointer to edgefwctl drops:\n%s", table)
	}
}
