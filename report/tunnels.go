package report

import (
	"cmp"
	"slices"
	"time"
)

// availability is each tunnel peer's time up and down in [from, to], from
// the journal's peer-up and peer-down entries (the daemon journals each
// peer's state when it starts, and every change it sees after).
//
// A peer is in the state of its last entry until the next. At the
// period's start it is in the state of its last entry before, or unknown
// if there is none, until its first entry. A peer the running policy no
// longer declares is shown only if it has entries in the period, and is
// unknown after its last one: the journal does not say when it was
// removed. The journal says nothing of the time edgefwd was stopped
// either: a peer keeps its last state over it.
func availability(entries []Event, declared []PeerRef, from, to time.Time) []PeerAvailability {
	byPeer := map[PeerRef][]Event{}
	for _, e := range entries {
		if e.Kind == KindPeerUp || e.Kind == KindPeerDown {
			k := PeerRef{e.Interface, e.Peer}
			byPeer[k] = append(byPeer[k], e)
		}
	}
	for _, p := range declared {
		if _, ok := byPeer[p]; !ok {
			byPeer[p] = nil
		}
	}
	out := []PeerAvailability{}
	for k, events := range byPeer {
		isDeclared := slices.Contains(declared, k)
		if !isDeclared && !slices.ContainsFunc(events, func(e Event) bool { return !e.Time.Before(from) && !e.Time.After(to) }) {
			continue
		}
		a := peerAvailability(events, isDeclared, from, to)
		a.Interface, a.Peer, a.Declared = k.Interface, k.Peer, isDeclared
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b PeerAvailability) int {
		return cmp.Or(cmp.Compare(a.Interface, b.Interface), cmp.Compare(a.Peer, b.Peer))
	})
	return out
}

func stateOf(e Event) string {
	if e.Kind == KindPeerUp {
		return StateUp
	}
	return StateDown
}

// peerAvailability walks one peer's entries (in journal order) over the
// period.
func peerAvailability(events []Event, declared bool, from, to time.Time) PeerAvailability {
	state := StateUnknown
	i := 0
	for ; i < len(events) && !events[i].Time.After(from); i++ {
		state = stateOf(events[i])
	}
	a := PeerAvailability{StateAtStart: state, Segments: []Segment{}}
	cursor := from
	for ; i < len(events) && events[i].Time.Before(to); i++ {
		a.Segments = addSegment(a.Segments, cursor, events[i].Time, state)
		cursor, state = events[i].Time, stateOf(events[i])
	}
	if !declared {
		state = StateUnknown
	}
	a.Segments = addSegment(a.Segments, cursor, to, state)
	for _, s := range a.Segments {
		secs := s.To.Sub(s.From).Seconds()
		switch s.State {
		case StateUp:
			a.UpSeconds += secs
		case StateDown:
			a.DownSeconds += secs
			a.Outages++
			if a.LongestOutage == nil || secs > a.LongestOutage.Seconds {
				a.LongestOutage = &Outage{From: s.From, To: s.To, Seconds: secs,
					BeganBefore: s.From.Equal(from) && a.StateAtStart == StateDown, Ongoing: s.To.Equal(to)}
			}
		default:
			a.UnknownSeconds += secs
		}
	}
	if total := to.Sub(from).Seconds(); total > 0 {
		a.ShareUp = a.UpSeconds / total
	}
	return a
}

// addSegment appends [from, to) in state, joining it to the last segment
// when that is in the same state; empty segments are left out.
func addSegment(segs []Segment, from, to time.Time, state string) []Segment {
	if !to.After(from) {
		return segs
	}
	if n := len(segs); n > 0 && segs[n-1].State == state && segs[n-1].To.Equal(from) {
		segs[n-1].To = to.UTC()
		return segs
	}
	return append(segs, Segment{From: from.UTC(), To: to.UTC(), State: state})
}
