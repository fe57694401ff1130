package audit

import "time"

// piece is a bucket used to cover a period.
type piece struct {
	level      int
	idx        int64
	start, end time.Time // an open bucket ends now
	live       bool      // the open bucket of its level
}

// cover chooses disjoint buckets that together cover [from, to] at the
// time now (a zero to, or one not before now, is now), the fewest it can.
// It begins with the finest bucket still kept that holds from, then walks
// forward, at each step taking the coarsest bucket that begins where the
// covered part ends and ends by to; when none does, the finest one, which
// overshoots to, and stops. Walking forward never gets stuck: the rings
// keep finer buckets the nearer they are to now, and a coarse boundary is
// also a fine one.
//
// So a period is rounded out to the buckets kept where it begins: the
// 1-minute window to 10 seconds, the hour to a minute, 24 hours to an
// hour, a longer period to days; a period that begins before the oldest
// day kept begins with it. It returns the buckets, oldest first, and the
// period they cover. Every ring is assumed advanced to now, so the open
// bucket of a level is the one holding now.
func cover(from, to, now time.Time) (ps []piece, start, end time.Time) {
	atNow := to.IsZero() || !to.Before(now)
	if atNow {
		to = now
	}
	if from.After(to) {
		from = to
	}
	q := coverStart(from, now)
	start = q
	for {
		pc, ok := widestFrom(q, to, now)
		if !ok {
			if pc, ok = finestFrom(q, now); ok {
				ps = append(ps, pc)
				q = pc.end
			}
			break
		}
		ps = append(ps, pc)
		q = pc.end
		if pc.live || !atNow && !q.Before(to) {
			break
		}
	}
	return ps, start, q
}

// coverStart is the start of the finest bucket still kept that holds
// from, or of the oldest day kept.
func coverStart(from, now time.Time) time.Time {
	for _, sp := range levels {
		if idx := sp.index(from); kept(sp, idx, now) {
			return sp.start(idx)
		}
	}
	sp := levels[dayLevel]
	return sp.start(sp.index(now) - int64(sp.slots) + 1)
}

// widestFrom is the coarsest bucket beginning at q that ends by to.
func widestFrom(q, to, now time.Time) (piece, bool) {
	for l := numLevels - 1; l >= 0; l-- {
		if pc, ok := starting(l, q, now); ok && !pc.end.After(to) {
			return pc, true
		}
	}
	return piece{}, false
}

// finestFrom is the finest bucket beginning at q.
func finestFrom(q, now time.Time) (piece, bool) {
	for l := range numLevels {
		if pc, ok := starting(l, q, now); ok {
			return pc, true
		}
	}
	return piece{}, false
}

// starting is the bucket of level l that begins at q, if q is on the
// level's boundary and the bucket is still kept.
func starting(l int, q, now time.Time) (piece, bool) {
	sp := levels[l]
	if q.UnixNano()%int64(sp.width) != 0 {
		return piece{}, false
	}
	idx := sp.index(q)
	if !kept(sp, idx, now) {
		return piece{}, false
	}
	pc := piece{level: l, idx: idx, start: q, end: q.Add(sp.width)}
	if idx == sp.index(now) {
		pc.end, pc.live = now, true
	}
	return pc, true
}

func kept(sp levelSpec, idx int64, now time.Time) bool {
	live := sp.index(now)
	return idx <= live && idx > live-int64(sp.slots)
}
