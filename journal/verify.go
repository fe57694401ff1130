package journal

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// Location is a line of a journal file.
type Location struct {
	File string `json:"file"`
	Line int    `json:"line"`
}

func (l Location) String() string { return fmt.Sprintf("%s:%d", filepath.Base(l.File), l.Line) }

// Break is where the chain does not hold.
type Break struct {
	Location
	// Seq is the entry that was altered or is missing, when known.
	Seq    uint64 `json:"seq,omitempty"`
	Reason string `json:"reason"`
}

func (b *Break) String() string {
	if b.Seq > 0 {
		return fmt.Sprintf("entry %d (%s): %s", b.Seq, b.Location, b.Reason)
	}
	return fmt.Sprintf("%s: %s", b.Location, b.Reason)
}

// Verification is what Verify found.
type Verification struct {
	// Entries is the number of whole entries read.
	Entries int `json:"entries"`
	// FirstSeq and LastSeq are the first and last entries kept.
	FirstSeq uint64 `json:"firstSeq,omitempty"`
	LastSeq  uint64 `json:"lastSeq,omitempty"`
	// Head is the hash of the last entry's line.
	Head string `json:"head,omitempty"`
	// RotatedAway counts the entries before FirstSeq that rotation
	// removed, as the chain itself records.
	RotatedAway uint64 `json:"rotatedAway,omitempty"`
	// Torn are lines a crash cut short; they are skipped.
	Torn []Location `json:"torn,omitempty"`
	// Break is nil when the chain holds.
	Break *Break `json:"break,omitempty"`
}

// OK reports whether the chain holds.
func (v *Verification) OK() bool { return v.Break == nil }

// String says in one line whether the chain holds.
func (v *Verification) String() string {
	if v.Break != nil {
		return fmt.Sprintf("the journal's hash chain is broken at %s", v.Break)
	}
	if v.Entries == 0 {
		return "the journal is empty"
	}
	s := fmt.Sprintf("the journal's hash chain holds: entries %d to %d", v.FirstSeq, v.LastSeq)
	if v.RotatedAway > 0 {
		s += fmt.Sprintf(" (entries 1 to %d were rotated away, as the chain records)", v.RotatedAway)
	}
	if len(v.Torn) > 0 {
		at := make([]string, len(v.Torn))
		for i, l := range v.Torn {
			at[i] = l.String()
		}
		s += fmt.Sprintf("; %d torn line(s) skipped, cut short by a crash: %s", len(v.Torn), strings.Join(at, ", "))
	}
	return s
}

// verifier walks the chain line by line.
type verifier struct {
	v Verification
	// prevHash and prevSeq describe the last whole entry; prevAt is where
	// it stands.
	prevHash string
	prevSeq  uint64
	prevAt   Location
	// torn is a line that held no entry, waiting to see whether the next
	// entry continues the chain around it.
	torn *Location
	// start is the first entry, when it is not the first entry ever, and
	// startAt where it stands.
	start   *Entry
	startAt Location
	// rotations recorded in the chain, by the last entry they removed.
	rotations map[uint64]string
}

// Verify reads the whole journal in dir and checks its hash chain: each
// entry's Prev must be the hash of the entry before it and its Seq one
// more; a journal that does not begin with entry 1 must have recorded the
// rotation that removed the ones before. A line a crash cut short is
// skipped when the chain continues around it.
func Verify(dir string) (*Verification, error) {
	files, err := journalFiles(dir)
	if err != nil {
		return nil, err
	}
	w := &verifier{rotations: map[uint64]string{}}
	for _, name := range files {
		err := scanFile(name, func(n int, line []byte, e *Entry) bool {
			w.line(Location{File: name, Line: n}, line, e)
			return w.v.Break == nil
		})
		if err != nil {
			return nil, err
		}
		if w.v.Break != nil {
			return &w.v, nil
		}
	}
	w.finish()
	return &w.v, nil
}

func (w *verifier) line(at Location, line []byte, e *Entry) {
	if e == nil {
		if len(line) > 0 {
			w.torn = &at
		}
		return
	}
	switch {
	case w.v.Entries == 0 && e.Seq == 1 && e.Prev == "":
	case w.v.Entries == 0:
		w.start, w.startAt = e, at
	case e.Prev != w.prevHash || e.Seq != w.prevSeq+1:
		w.broken(at, e)
		return
	}
	if w.torn != nil {
		// The chain continues around it: a torn append, ended by the next
		// open of the journal.
		w.v.Torn = append(w.v.Torn, *w.torn)
		w.torn = nil
	}
	if e.Kind == KindRotated && e.Rotated != nil {
		w.rotations[e.Rotated.LastSeq] = e.Rotated.LastHash
	}
	if w.v.Entries == 0 {
		w.v.FirstSeq = e.Seq
	}
	w.v.Entries++
	w.v.LastSeq = e.Seq
	w.prevHash, w.prevSeq, w.prevAt = lineHash(line), e.Seq, at
	w.v.Head = w.prevHash
}

// broken names what the entry at at found wrong with the one before it.
func (w *verifier) broken(at Location, e *Entry) {
	switch {
	case w.torn != nil:
		w.v.Break = &Break{Location: *w.torn, Seq: w.prevSeq + 1,
			Reason: fmt.Sprintf("this line is not a whole entry, and entry %d (%s) does not continue the chain from entry %d: it was altered", e.Seq, at, w.prevSeq)}
	case e.Prev == w.prevHash:
		w.v.Break = &Break{Location: at, Seq: e.Seq,
			Reason: fmt.Sprintf("its sequence number follows %d: entries were removed or it was altered", w.prevSeq)}
	case e.Seq > w.prevSeq+1:
		w.v.Break = &Break{Location: at, Seq: w.prevSeq + 1,
			Reason: fmt.Sprintf("entries %d to %d are missing between entry %d (%s) and entry %d: they were removed", w.prevSeq+1, e.Seq-1, w.prevSeq, w.prevAt, e.Seq)}
	case e.Seq == w.prevSeq+1:
		w.v.Break = &Break{Location: w.prevAt, Seq: w.prevSeq,
			Reason: fmt.Sprintf("its hash does not match what entry %d (%s) recorded: it was altered", e.Seq, at)}
	default:
		w.v.Break = &Break{Location: at, Seq: e.Seq,
			Reason: fmt.Sprintf("it does not continue the chain from entry %d (%s): entries were removed, inserted or altered between them", w.prevSeq, w.prevAt)}
	}
}

// finish checks the beginning once every rotation record has been read.
func (w *verifier) finish() {
	if w.torn != nil {
		// The last line, cut short by a crash not yet followed by a
		// start.
		w.v.Torn = append(w.v.Torn, *w.torn)
	}
	if w.start == nil {
		return
	}
	if hash, ok := w.rotations[w.start.Seq-1]; ok && hash == w.start.Prev {
		w.v.RotatedAway = w.start.Seq - 1
		return
	}
	w.v.Break = &Break{Location: w.startAt, Seq: w.start.Seq - 1,
		Reason: fmt.Sprintf("the journal begins at entry %d, and no rotation recorded in it removed the entries before: they were removed", w.start.Seq)}
}

// Read returns the whole entries of the journal in dir at or after since,
// in order; torn lines are skipped. It does not verify the chain.
func Read(dir string, since time.Time) ([]Entry, error) {
	files, err := journalFiles(dir)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, name := range files {
		err := scanFile(name, func(_ int, _ []byte, e *Entry) bool {
			if e != nil && !e.Time.Before(since) {
				out = append(out, *e)
			}
			return true
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
