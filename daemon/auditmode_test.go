package daemon

import (
	"context"
	"fmt"
	"testing"

	"github.com/edgefw/edgefw/policy"
)

// auditPolicy watches tcp/23 with a drop rule in the given mode.
const auditPolicy = `version: 1
rules:
  - name: watch-telnet
    direction: input
    ports: [{protocol: tcp, port: 23}]
    action: drop
    mode: %s
  - name: web
    direction: input
    ports: [{protocol: tcp, port: 443}]
    action: accept
`

// TestStatusShowsMode checks that status and the metrics' source say which
// counters belong to a rule in audit mode, and that switching the rule to
// enforce (a reload) changes its mode and keeps its counter.
func TestStatusShowsMode(t *testing.T) {
	h := newHarness(t)
	h.write(t, fmt.Sprintf(auditPolicy, "audit"))
	d := h.run(t)
	modes := func() map[string]string {
		t.Helper()
		out := map[string]string{}
		for _, r := range d.Status(context.Background()).Rules {
			out[r.Name+" "+r.Action] = r.Mode
		}
		for _, r := range d.Rules() {
			if want := out[r.Name+" "+string(r.Action)]; (r.Mode == policy.Audit) != (want == "audit") {
				t.Errorf("Rules() gives %s mode %q, status %q", r.Name, r.Mode, want)
			}
		}
		return out
	}
	got := modes()
	if got["watch-telnet drop"] != "audit" || got["web accept"] != "enforce" || got["edgefw-default-input drop"] != "enforce" {
		t.Fatalf("modes in audit mode: %v", got)
	}
	if err := h.kernel.Count("watch-telnet", 5, 300); err != nil {
		t.Fatal(err)
	}

	h.write(t, fmt.Sprintf(auditPolicy, "enforce"))
	if resp := d.Reload(context.Background(), "test"); !resp.OK {
		t.Fatalf("reload: %s", resp.Error)
	}
	if got := modes(); got["watch-telnet drop"] != "enforce" {
		t.Fatalf("modes after the switch: %v", got)
	}
	for _, r := range d.Status(context.Background()).Rules {
		if r.Name == "watch-telnet" && (r.Packets != 5 || r.Bytes != 300) {
			t.Errorf("watch-telnet counted %d packets, %d bytes after the switch; want its 5 and 300 kept", r.Packets, r.Bytes)
		}
	}
}
