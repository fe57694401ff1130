package integration

import (
	"net"
	"regexp"
	"testing"
	"time"

	"github.com/edgefw/edgefw/internal/netnstest"
)

// failsafe2222 matches the failsafe rule when it opens tcp/2222, alone or
// in a set with the configured tcp/22.
var failsafe2222 = regexp.MustCompile(`tcp dport (2222|\{[^}]*\b2222\b[^}]*\}) counter name "edgefw-failsafe" accept`)

// TestFailsafeWithoutParsablePolicy boots edgefwd with an empty state
// directory and a policy that does not load, on a host whose anti-lockout
// port is tcp/2222: the safe ruleset it installs must keep 2222 open,
// whether the port comes from the policy's failsafe section (which still
// parses on its own) or from --failsafe (the policy is not even YAML).
func TestFailsafeWithoutParsablePolicy(t *testing.T) {
	netnstest.RequireRoot(t)
	for _, tc := range []struct {
		name, policy string
		args         []string
	}{
		{name: "SalvagedSection", policy: "version: 1\nfailsafe: [{protocol: tcp, port: 2222}]\nrules:\n  - name: Bad_Name\n    direction: input\n    action: accept\n"},
		{name: "FailsafeFlag", policy: "version: 1\nfailsafe: [{protocol: tcp, port: 2222}\nrules: {\n", args: []string{"--failsafe", "tcp/2222"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host := netnstest.New(t, "fshost")
			client := netnstest.New(t, "fscli")
			netnstest.Link(t, host, []string{"192.0.2.1/24"}, client, []string{"192.0.2.2/24"})
			for _, port := range []string{"2222", "8080"} {
				metricsServeTCP(t, host, "192.0.2.1:"+port)
			}
			p := startEdgefwd(t, edgefwdSetup{NS: host, Policy: tc.policy, Args: tc.args})
			p.WaitNotify(t, "READY=1")
			if st := p.Status(t); st.LastSuccess == nil || st.LastSuccess.Trigger != "safe-fallback" {
				t.Fatalf("lastSuccess = %+v, want the safe fallback", st.LastSuccess)
			}
			input := p.Nft(t, "list", "chain", "inet", "edgefw", "input")
			if !failsafe2222.MatchString(input) {
				t.Errorf("the safe ruleset does not open tcp/2222:\n%s", input)
			}
			dial := func(port string, timeout time.Duration) error {
				return client.Do(func() error {
					c, err := net.DialTimeout("tcp", "192.0.2.1:"+port, timeout)
					if err == nil {
						c.Close()
					}
					return err
				})
			}
			if err := dial("2222", 5*time.Second); err != nil {
				t.Errorf("the failsafe port 2222 does not answer: %v\n%s", err, input)
			}
			if err := dial("8080", time.Second); err == nil {
				t.Error("port 8080 answers: the safe ruleset should drop it")
			}
		})
	}
}
