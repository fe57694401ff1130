package report

import (
	"cmp"
	"slices"
	"time"
)

// SurgeFactor marks surges: a day whose packets or bytes are over
// SurgeFactor times the rule's median day over the period. The median is
// over the days the rule's counter was read (days the daemon did not run,
// or the rule did not exist, are left out). A rule idle on most of them
// has a median of zero, and then every day it counted anything is a
// surge: against its norm, any traffic stands out.
const SurgeFactor = 3

// trafficSections reads the daily rollups of every rule of the running
// ruleset and of every other rule with days in the period, and sorts
// them by what they do: deny, would deny (audit mode), allow, or no
// longer in the ruleset (retired).
func trafficSections(in Input, first, last, to time.Time) (denied, wouldDeny, allowed, retired []RuleTraffic) {
	denied, wouldDeny, allowed, retired = []RuleTraffic{}, []RuleTraffic{}, []RuleTraffic{}, []RuleTraffic{}
	if in.Traffic == nil {
		return
	}
	rules := make(map[string]Rule, len(in.Rules))
	names := make([]string, 0, len(in.Rules))
	for _, r := range in.Rules {
		if _, dup := rules[r.Name]; !dup {
			rules[r.Name] = r
			names = append(names, r.Name)
		}
	}
	for _, name := range in.Traffic.Rules() {
		if _, ok := rules[name]; !ok {
			names = append(names, name)
		}
	}
	end := last.Add(24 * time.Hour)
	if to.Before(end) {
		end = to
	}
	samples := in.Traffic.Samples(first, end, names)
	for _, name := range names {
		info, known := rules[name]
		rt := ruleTraffic(name, in.Traffic.Days(name, first, last), samples[name])
		rt.Direction, rt.Action, rt.Kind, rt.Mode = info.Direction, info.Action, info.Kind, info.Mode
		switch {
		case !known && rt.Packets == 0 && rt.Sampled == 0:
		case !known:
			retired = append(retired, rt)
		case info.Mode == "audit":
			wouldDeny = append(wouldDeny, rt)
		case info.Action == "accept":
			allowed = append(allowed, rt)
		default:
			denied = append(denied, rt)
		}
	}
	for _, list := range [][]RuleTraffic{denied, wouldDeny, allowed, retired} {
		slices.SortStableFunc(list, func(a, b RuleTraffic) int {
			return cmp.Or(cmp.Compare(b.Packets, a.Packets), cmp.Compare(a.Rule, b.Rule))
		})
	}
	return
}

// ruleTraffic sums a rule's days, marks its surges and takes its sample.
func ruleTraffic(name string, days []Day, s Sample) RuleTraffic {
	rt := RuleTraffic{Rule: name, Days: days, Sampled: s.Sampled, Share: s.Share,
		TopSources: orEmpty(s.TopSources), TopPorts: orEmpty(s.TopPorts)}
	if rt.Days == nil {
		rt.Days = []Day{}
	}
	packets := make([]float64, len(days))
	bytes := make([]float64, len(days))
	for i, d := range days {
		rt.Packets += d.Packets
		rt.Bytes += d.Bytes
		packets[i], bytes[i] = float64(d.Packets), float64(d.Bytes)
	}
	rt.MedianPackets, rt.MedianBytes = median(packets), median(bytes)
	for i := range rt.Days {
		d := &rt.Days[i]
		d.TopSources, d.TopPorts = orEmpty(d.TopSources), orEmpty(d.TopPorts)
		d.Surge = float64(d.Packets) > SurgeFactor*rt.MedianPackets || float64(d.Bytes) > SurgeFactor*rt.MedianBytes
		if d.Surge {
			rt.SurgeDays++
		}
	}
	return rt
}

// median of values, the mean of the middle two for an even count; 0 for
// none.
func median(values []float64) float64 {
	if len(values) == 0 {
		return 0
	}
	s := slices.Clone(values)
	slices.Sort(s)
	mid := len(s) / 2
	if len(s)%2 == 1 {
		return s[mid]
	}
	return (s[mid-1] + s[mid]) / 2
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
