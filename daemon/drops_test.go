package daemon

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/edgefw/edgefw/audit"
)

func TestParseSince(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"90s": 90 * time.Second, "15m": 15 * time.Minute, "24h": 24 * time.Hour,
		"7d": 7 * 24 * time.Hour, "1d12h": 36 * time.Hour, "400d": 400 * 24 * time.Hour,
	} {
		if got, err := ParseSince(in); err != nil || got != want {
			t.Errorf("ParseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0s", "-5m", "5", "d", "xd", "1dd", "7days", "1d-2h"} {
		if got, err := ParseSince(in); err == nil {
			t.Errorf("ParseSince(%q) = %v, want an error", in, got)
		}
	}
}

func TestParseDropsQuery(t *testing.T) {
	jan1 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	q, err := ParseDropsQuery(url.Values{"from": {"2026-01-01"}, "to": {"2026-01-31"}, "rule": {"a", "b"}, "top": {"100"}})
	if err != nil || !q.From.Equal(jan1) || !q.To.Equal(jan1.AddDate(0, 1, 0)) || len(q.Rules) != 2 || q.Top != 100 {
		t.Errorf("a month by dates: %+v, %v; want all of January", q, err)
	}
	q, err = ParseDropsQuery(url.Values{"from": {"2026-01-01T10:00:00+01:00"}})
	if err != nil || !q.From.Equal(jan1.Add(9*time.Hour)) || !q.To.IsZero() {
		t.Errorf("an RFC 3339 start: %+v, %v", q, err)
	}
	if q, err := ParseDropsQuery(url.Values{}); err != nil || q.Since != 0 || !q.From.IsZero() {
		t.Errorf("no parameters: %+v, %v; want every day kept", q, err)
	}
	for name, v := range map[string]url.Values{
		"since and from": {"since": {"1h"}, "from": {"2026-01-01"}},
		"bad since":      {"since": {"soon"}},
		"bad date":       {"from": {"01/02/2026"}},
		"from after to":  {"from": {"2026-02-01"}, "to": {"2026-01-01"}},
		"top zero":       {"top": {"0"}},
		"top too many":   {"top": {"101"}},
		"top not number": {"top": {"ten"}},
	} {
		if _, err := ParseDropsQuery(v); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestDropsEndpoint asks the control API for drops: a bad query is
// refused with 400 and why; a good one gets the view.
func TestDropsEndpoint(t *testing.T) {
	h := newHarness(t)
	h.write(t, attribPolicy)
	d := h.attribDaemon(t, newTestClock(), "boot-a", nil)
	logPackets(d, "deny-scan", "203.0.113.5", 9100, 2)
	c := NewClient(serveControl(t, d))
	_, err := c.Drops(context.Background(), audit.Query{Top: audit.MaxTop + 1})
	if apiErr, ok := errors.AsType[*APIError](err); !ok || apiErr.StatusCode != http.StatusBadRequest || !strings.Contains(err.Error(), "top") {
		t.Errorf("top past the limit: %v; want 400 naming top", err)
	}
	v, err := c.Drops(context.Background(), audit.Query{Since: time.Hour, Rules: []string{"deny-scan"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Rules) != 1 || v.Rules[0].Rule != "deny-scan" || v.Rules[0].Sampled != 2 {
		t.Errorf("view %+v, want deny-scan with 2 logged packets", v.Rules)
	}
}
