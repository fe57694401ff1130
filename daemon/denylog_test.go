package daemon

import (
	"bufio"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// deniedLines returns the daemon's JSON log lines of denied traffic.
func deniedLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("not a JSON line: %v\n%s", err, sc.Text())
		}
		if types, _ := line["event.type"].([]any); len(types) == 2 && types[1] == "denied" {
			lines = append(lines, line)
		}
	}
	return lines
}

// TestDeniedLogLines floods one minute with 120 sources beside a heavy
// one, as --log-format json logs them: once the minute ends, a line per
// flow for the heaviest 50 with Elastic Common Schema fields, then one
// line for the 71 other sources with their packets; nothing before the
// minute ends, nothing twice.
func TestDeniedLogLines(t *testing.T) {
	h := newHarness(t)
	h.write(t, attribPolicy)
	c := newTestClock()
	logs := &tunnelLogBuffer{}
	d := h.attribDaemon(t, c, "boot-a", slog.New(slog.NewJSONHandler(logs, nil)))
	c.add(5 * time.Second)
	logPackets(d, "deny-scan", "203.0.113.5", 9100, 30)
	for i := range 120 {
		logPackets(d, "edgefw-default-input", fmt.Sprintf("198.51.100.%d", i+1), 23, 1)
	}
	logPackets(d, "web", "192.0.2.1", 443, 5) // allowed: never logged as denied
	c.add(30 * time.Second)
	d.attributionTick(false)
	if n := len(deniedLines(t, logs.String())); n != 0 {
		t.Fatalf("%d lines logged before the minute ended", n)
	}
	c.add(30 * time.Second)
	d.attributionTick(false)
	lines := deniedLines(t, logs.String())
	if len(lines) != 51 {
		t.Fatalf("%d lines for the minute, want 50 flows and one for the rest", len(lines))
	}
	first := map[string]any{
		"level": "INFO", "msg": "denied traffic",
		"event.kind": "event", "event.category": []any{"network"}, "event.type": []any{"connection", "denied"},
		"event.action": "drop", "event.dataset": "edgefw.denied",
		"event.start": "2026-11-23T08:00:00Z", "event.end": "2026-11-23T08:01:00Z",
		"rule.name": "deny-scan", "rule.ruleset": "input",
		"source.ip": "203.0.113.5", "destination.port": float64(9100),
		"network.transport": "tcp", "network.type": "ipv4", "network.direction": "ingress",
		"network.packets": float64(30), "edgefw.mode": "enforce", "host.name": "edge-7",
	}
	delete(lines[0], "time")
	if diff := cmp.Diff(first, lines[0]); diff != "" {
		t.Errorf("first line (-want +got):\n%s", diff)
	}
	if lines[1]["rule.name"] != "edgefw-default-input" || lines[1]["source.ip"] != "198.51.100.1" || lines[1]["network.packets"] != float64(1) {
		t.Errorf("second line: %v", lines[1])
	}
	more := lines[50]
	delete(more, "time")
	wantMore := map[string]any{
		"level": "INFO", "msg": "denied traffic: 71 more sources",
		"event.kind": "event", "event.category": []any{"network"}, "event.type": []any{"connection", "denied"},
		"event.dataset": "edgefw.denied", "event.start": "2026-11-23T08:00:00Z", "event.end": "2026-11-23T08:01:00Z",
		"rule.name": []any{"edgefw-default-input"}, "network.packets": float64(71),
		"edgefw.more.sources": float64(71), "edgefw.more.flows": float64(71), "host.name": "edge-7",
	}
	if diff := cmp.Diff(wantMore, more); diff != "" {
		t.Errorf("last line (-want +got):\n%s", diff)
	}
	d.attributionTick(true)
	if n := len(deniedLines(t, logs.String())); n != 51 {
		t.Errorf("%d lines after the daemon stopped, want the same 51", n)
	}
}

// TestDeniedLogLinesText checks the same line in --log-format text, as
// key=value pairs, the fields of IPv6 and of a protocol without ports,
// and the line of a rule in audit mode, whose traffic was let through.
func TestDeniedLogLinesText(t *testing.T) {
	h := newHarness(t)
	h.write(t, attribPolicy+`  - name: watch-8080
    direction: input
    ports: [{protocol: tcp, port: 8080}]
    action: drop
    mode: audit
`)
	c := newTestClock()
	logs := &tunnelLogBuffer{}
	d := h.attribDaemon(t, c, "boot-a", tunnelTextLogger(logs))
	logPackets(d, "deny-scan", "203.0.113.5", 9100, 3)
	icmpv6 := ipv6UDP("2001:db8::9", 0)
	icmpv6[6] = 58
	d.recordLogged("edgefw-default-input ", icmpv6)
	logPackets(d, "watch-8080", "192.0.2.2", 8080, 2)
	c.add(time.Minute)
	d.attributionTick(false)
	for _, want := range []string{
		`level=INFO msg="denied traffic" event.kind=event event.category=[network] event.type="[connection denied]" event.dataset=edgefw.denied event.start=2026-11-23T08:00:00.000Z event.end=2026-11-23T08:01:00.000Z event.action=drop rule.name=deny-scan rule.ruleset=input source.ip=203.0.113.5 destination.port=9100 network.transport=tcp network.type=ipv4 network.direction=ingress network.packets=3 edgefw.mode=enforce host.name=edge-7`,
		`rule.name=edgefw-default-input rule.ruleset=input source.ip=2001:db8::9 network.transport=ipv6-icmp network.type=ipv6 network.direction=ingress network.packets=1 edgefw.mode=enforce host.name=edge-7`,
		`level=INFO msg="traffic a rule in audit mode would deny" event.kind=event event.category=[network] event.type="[connection allowed]" event.dataset=edgefw.denied event.start=2026-11-23T08:00:00.000Z event.end=2026-11-23T08:01:00.000Z event.action=drop rule.name=watch-8080 rule.ruleset=input source.ip=192.0.2.2 destination.port=8080 network.transport=tcp network.type=ipv4 network.direction=ingress network.packets=2 edgefw.mode=audit host.name=edge-7`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks\n%s\nin\n%s", want, logs.String())
		}
	}
}
