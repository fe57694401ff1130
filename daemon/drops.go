package daemon

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/edgefw/edgefw/audit"
	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/policy"
)

// Drops returns the denied traffic of the period q selects (see
// DropsView). The counters are read first, so that the totals and the
// sample's share are exact up to now.
func (d *Daemon) Drops(q audit.Query) DropsView {
	d.attrib.observe()
	v := d.attrib.attr.Drops(q)
	rules := map[string]nft.RuleInfo{}
	for _, info := range d.Rules() {
		rules[info.Name] = info
	}
	out := DropsView{From: v.From, To: v.To, Rules: []RuleDrops{}}
	for _, rv := range v.Rules {
		info, known := rules[rv.Rule]
		if len(q.Rules) == 0 && !shownAsDenied(info, known, rv) {
			continue
		}
		rd := RuleDrops{RuleView: rv}
		if known {
			rd.Direction, rd.Action, rd.Mode = string(info.Direction), string(info.Action), ruleMode(info)
		}
		out.Rules = append(out.Rules, rd)
	}
	return out
}

// shownAsDenied decides whether a rule belongs in a drops view nobody
// named it in: the attribution reads every counter (a report shows the
// allowed traffic too), so accept rules are left out; a rule no longer in
// the ruleset is shown if its packets were logged, which only a rule that
// denies is.
func shownAsDenied(info nft.RuleInfo, known bool, rv audit.RuleView) bool {
	if known {
		return info.Action != policy.Accept
	}
	return rv.Sampled > 0
}

// Query parameters of PathDrops.
const (
	dropsSince = "since"
	dropsFrom  = "from"
	dropsTo    = "to"
	dropsRule  = "rule"
	dropsTop   = "top"
)

// DropsQueryValues encodes a drops query as PathDrops's parameters.
func DropsQueryValues(q audit.Query) url.Values {
	v := url.Values{}
	if q.Since > 0 {
		v.Set(dropsSince, q.Since.String())
	}
	if !q.From.IsZero() {
		v.Set(dropsFrom, q.From.UTC().Format(time.RFC3339))
	}
	if !q.To.IsZero() {
		v.Set(dropsTo, q.To.UTC().Format(time.RFC3339))
	}
	for _, r := range q.Rules {
		v.Add(dropsRule, r)
	}
	if q.Top > 0 {
		v.Set(dropsTop, strconv.Itoa(q.Top))
	}
	return v
}

// ParseDropsQuery reads PathDrops's parameters: since (a duration, see
// ParseSince) or from and to (see ParsePeriodTime), rule (repeated for
// several) and top (1 to audit.MaxTop). Nothing given is every day kept.
func ParseDropsQuery(v url.Values) (audit.Query, error) {
	var q audit.Query
	var errs []error
	if s := v.Get(dropsSince); s != "" {
		d, err := ParseSince(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", dropsSince, err))
		}
		q.Since = d
	}
	for _, p := range []struct {
		name string
		end  bool
		t    *time.Time
	}{{dropsFrom, false, &q.From}, {dropsTo, true, &q.To}} {
		if s := v.Get(p.name); s != "" {
			t, err := ParsePeriodTime(s, p.end)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", p.name, err))
			}
			*p.t = t
		}
	}
	if q.Since > 0 && (!q.From.IsZero() || !q.To.IsZero()) {
		errs = append(errs, fmt.Errorf("give %s or %s and %s, not both", dropsSince, dropsFrom, dropsTo))
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		errs = append(errs, fmt.Errorf("%s must be before %s", dropsFrom, dropsTo))
	}
	q.Rules = v[dropsRule]
	if s := v.Get(dropsTop); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > audit.MaxTop {
			errs = append(errs, fmt.Errorf("%s: %q is not a number from 1 to %d", dropsTop, s, audit.MaxTop))
		}
		q.Top = n
	}
	return q, errors.Join(errs...)
}

// ParseSince reads a period's length back from now: a Go duration (90s,
// 15m, 24h) or a number of days, alone or before one (7d, 1d12h).
func ParseSince(s string) (time.Duration, error) {
	days, rest, hasDays := strings.Cut(s, "d")
	var d time.Duration
	if hasDays {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 100*365 {
			return 0, fmt.Errorf("%q: want a duration such as 15m, 24h or 7d", s)
		}
		d = time.Duration(n) * 24 * time.Hour
		if rest == "" {
			return positive(s, d)
		}
	} else {
		rest = s
	}
	more, err := time.ParseDuration(rest)
	if err != nil || hasDays && more < 0 {
		return 0, fmt.Errorf("%q: want a duration such as 15m, 24h or 7d", s)
	}
	return positive(s, d+more)
}

func positive(s string, d time.Duration) (time.Duration, error) {
	if d <= 0 {
		return 0, fmt.Errorf("%q: want a duration above zero", s)
	}
	return d, nil
}

// ParsePeriodTime reads a bound of a period: an RFC 3339 time, or a date
// (UTC), which as the end of a period (end) means the end of that day,
// so that from 2026-01-01 to 2026-01-31 is all of January.
func ParsePeriodTime(s string, end bool) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want a date (2006-01-02) or an RFC 3339 time (2006-01-02T15:04:05Z)", s)
	}
	if end {
		t = t.AddDate(0, 0, 1)
	}
	return t, nil
}
