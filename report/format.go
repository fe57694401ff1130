package report

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// plural renders "1 range", "2 ranges", with thousands separated.
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return count(uint64(max(n, 0))) + " " + many
}

// count renders a number with thousands separated by commas: 1,234,567.
func count(n uint64) string {
	s := strconv.FormatUint(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// bytesText renders a byte count in SI units: 999 B, 1.2 kB, 3.4 GB.
func bytesText(n uint64) string {
	if n < 1000 {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	for _, unit := range []string{"kB", "MB", "GB", "TB", "PB"} {
		v /= 1000
		if v < 999.95 {
			return fmt.Sprintf("%.1f %s", v, unit)
		}
	}
	return fmt.Sprintf("%.1f EB", v/1000)
}

// percent renders a share in [0, 1], never rounding up to a whole it is
// not (99.96% is 99.9%, not 100%) nor down to zero when it is not zero.
func percent(share float64) string {
	p := share*100 + 1e-9
	switch {
	case share >= 1:
		return "100%"
	case share <= 0:
		return "0%"
	case p >= 10:
		return fmt.Sprintf("%.1f%%", math.Floor(p*10)/10)
	case p >= 0.1:
		return fmt.Sprintf("%.2f%%", math.Floor(p*100)/100)
	}
	return "<0.1%"
}

// joinList joins items as prose: "a", "a and b", "a, b and c".
func joinList(items []string, conj string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " " + conj + " " + items[len(items)-1]
}

func upperFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}

func lowerFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == len(s) || unicode.IsUpper(r) && unicode.IsUpper(firstRune(s[n:])) {
		return s // an acronym: TCP, ICMP
	}
	return string(unicode.ToLower(r)) + s[n:]
}

func firstRune(s string) rune {
	r, _ := utf8.DecodeRuneInString(s)
	return r
}

// stamp renders a time in UTC to the second.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// short abbreviates a hash to its first 12 characters.
func short(h string) string {
	if h == "" {
		return "none"
	}
	return h[:min(len(h), 12)]
}

// duration renders seconds as days, hours, minutes and seconds: 2d 3h,
// 4h 5m, 6m 7s.
func duration(seconds float64) string {
	d := time.Duration(math.Round(seconds)) * time.Second
	days, d := d/(24*time.Hour), d%(24*time.Hour)
	hours, d := d/time.Hour, d%time.Hour
	mins, secs := d/time.Minute, (d%time.Minute)/time.Second
	switch {
	case days > 0:
		return fmt.Sprintf("%dd %dh", days, hours)
	case hours > 0:
		return fmt.Sprintf("%dh %dm", hours, mins)
	case mins > 0:
		return fmt.Sprintf("%dm %ds", mins, secs)
	}
	return fmt.Sprintf("%ds", secs)
}
