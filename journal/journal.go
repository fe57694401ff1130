package journal

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultMaxBytes is the journal's default size cap.
const DefaultMaxBytes = 64 << 20

// MinMaxBytes is the smallest size cap Open accepts.
const MinMaxBytes = 4096

// segments is how many files the cap is spread over: when the active file
// reaches a segment's share it is rotated, and the oldest file goes when
// the total passes the cap, so at least (segments-1)/segments of the cap
// is always kept.
const segments = 8

// activeName is the file entries are appended to; rotated files are named
// journal-SEQ.jsonl after the first entry they hold, so that their names
// sort in the order of the chain.
const activeName = "journal.jsonl"

// Journal appends entries to the journal in a directory. It is safe for
// concurrent use.
type Journal struct {
	dir      string
	maxBytes int64
	now      func() time.Time

	mu     sync.Mutex
	f      *os.File
	size   int64
	seq    uint64
	prev   string
	closed bool
}

// Option configures Open.
type Option func(*Journal)

// WithMaxBytes sets the size cap (DefaultMaxBytes by default).
func WithMaxBytes(n int64) Option { return func(j *Journal) { j.maxBytes = n } }

// WithClock sets the clock entries are stamped with (time.Now by default).
func WithClock(now func() time.Time) Option { return func(j *Journal) { j.now = now } }

// Open opens the journal in dir, creating it if needed, and returns it
// ready to append after its last entry. A torn last line (a crash in the
// middle of an append) is ended, so that the next entry starts a line of
// its own, and skipped: the chain continues from the last whole entry.
func Open(dir string, opts ...Option) (*Journal, error) {
	j := &Journal{dir: dir, maxBytes: DefaultMaxBytes, now: time.Now}
	for _, o := range opts {
		o(j)
	}
	if j.maxBytes < MinMaxBytes {
		return nil, fmt.Errorf("journal: a cap of %d bytes is too small (at least %d)", j.maxBytes, MinMaxBytes)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	files, err := journalFiles(dir)
	if err != nil {
		return nil, err
	}
	// The last whole entry is in the active file, or, right after a
	// rotation, in the newest rotated one.
	for i := len(files) - 1; i >= 0 && j.prev == ""; i-- {
		last, hash, err := lastEntry(files[i])
		if err != nil {
			return nil, err
		}
		if last != nil {
			j.seq, j.prev = last.Seq, hash
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, activeName), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: %w", err)
	}
	j.f, j.size = f, info.Size()
	if torn, err := endsTorn(f, j.size); err != nil {
		f.Close()
		return nil, err
	} else if torn {
		if err := j.write([]byte("\n")); err != nil {
			f.Close()
			return nil, err
		}
	}
	return j, nil
}

// Append stamps e with the next sequence number, the time and the hash of
// the previous entry, and writes it durably (fsync) before it returns.
func (j *Journal) Append(ev Event) (Entry, error) {
	entries, err := j.AppendAll([]Event{ev})
	if err != nil {
		return Entry{}, err
	}
	return entries[0], nil
}

// AppendAll appends evs in order as Append does, but writes and syncs them
// together: a tunnel's first check of 10,000 peers journals 10,000
// events, and one fsync each took seconds. A rotation the entries call
// for is made between them, as Append would. On error, none of the
// entries after the last rotation is durable, and none is returned.
func (j *Journal) AppendAll(evs []Event) ([]Entry, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil, errors.New("journal: closed")
	}
	entries := make([]Entry, 0, len(evs))
	var buf []byte
	seq, prev, size := j.seq, j.prev, j.size
	now := j.now().UTC()
	for _, ev := range evs {
		e := Entry{Seq: seq + 1, Time: now, Prev: prev, Event: ev}
		line, err := json.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("journal: encode entry: %w", err)
		}
		if size > 0 && size+int64(len(line))+1 > j.maxBytes/segments {
			if len(buf) > 0 {
				if err := j.write(buf); err != nil {
					return nil, err
				}
				j.seq, j.prev, buf = seq, prev, buf[:0]
			}
			if err := j.rotate(); err != nil {
				return nil, err
			}
			// The rotation's own entry took the sequence number and hash.
			e.Seq, e.Prev, size = j.seq+1, j.prev, j.size
			if line, err = json.Marshal(e); err != nil {
				return nil, fmt.Errorf("journal: encode entry: %w", err)
			}
		}
		buf = append(append(buf, line...), '\n')
		size += int64(len(line)) + 1
		seq, prev = e.Seq, lineHash(line)
		entries = append(entries, e)
	}
	if len(buf) > 0 {
		if err := j.write(buf); err != nil {
			return nil, err
		}
	}
	j.seq, j.prev = seq, prev
	return entries, nil
}

// write appends data to the active file and syncs it.
func (j *Journal) write(data []byte) error {
	n, err := j.f.Write(data)
	j.size += int64(n)
	if err != nil {
		return fmt.Errorf("journal: write: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("journal: sync: %w", err)
	}
	return nil
}

// rotate renames the active file after its first entry, starts a new one,
// and removes the oldest files while the journal exceeds its cap,
// recording each removal in the chain.
func (j *Journal) rotate() error {
	first, err := firstSeq(filepath.Join(j.dir, activeName))
	if err != nil {
		return err
	}
	rotated := filepath.Join(j.dir, rotatedName(first))
	if err := j.f.Close(); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := os.Rename(filepath.Join(j.dir, activeName), rotated); err != nil {
		return fmt.Errorf("journal: rotate: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(j.dir, activeName), os.O_RDWR|os.O_CREATE|os.O_APPEND|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("journal: rotate: %w", err)
	}
	j.f, j.size = f, 0
	if err := syncDir(j.dir); err != nil {
		return err
	}
	files, err := journalFiles(j.dir)
	if err != nil {
		return err
	}
	total := int64(0)
	for _, name := range files {
		if info, err := os.Stat(name); err == nil {
			total += info.Size()
		}
	}
	for _, oldest := range files[:len(files)-1] {
		if total <= j.maxBytes-j.maxBytes/segments {
			break
		}
		info, err := os.Stat(oldest)
		if err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		if err := j.removeOldest(oldest); err != nil {
			return err
		}
		total -= info.Size()
	}
	return nil
}

// removeOldest removes a rotated file and records in the chain what it
// held, so that Verify can tell it from a cut.
func (j *Journal) removeOldest(name string) error {
	first, err := firstSeq(name)
	if err != nil {
		return err
	}
	last, hash, err := lastEntry(name)
	if err != nil {
		return err
	}
	if last == nil {
		return os.Remove(name)
	}
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("journal: remove %s: %w", name, err)
	}
	e := Entry{Seq: j.seq + 1, Time: j.now().UTC(), Prev: j.prev, Event: Event{Kind: KindRotated,
		Detail:  fmt.Sprintf("entries %d to %d were removed to keep the journal under %d bytes", first, last.Seq, j.maxBytes),
		Rotated: &Rotation{File: filepath.Base(name), FirstSeq: first, LastSeq: last.Seq, LastHash: hash}}}
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("journal: encode entry: %w", err)
	}
	if err := j.write(append(line, '\n')); err != nil {
		return err
	}
	j.seq, j.prev = e.Seq, lineHash(line)
	return nil
}

// Seq returns the sequence number and hash of the last entry: the head of
// the chain, worth exporting so that entries cut from the end are seen.
func (j *Journal) Seq() (uint64, string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.seq, j.prev
}

// Close closes the journal; later appends fail.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	j.closed = true
	return j.f.Close()
}

func rotatedName(first uint64) string { return fmt.Sprintf("journal-%020d.jsonl", first) }

// journalFiles lists the journal's files in the order of the chain: the
// rotated ones by their first entry, then the active one.
func journalFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("journal: %w", err)
	}
	var out []string
	active := false
	for _, e := range entries {
		switch name := e.Name(); {
		case name == activeName:
			active = true
		case strings.HasPrefix(name, "journal-") && strings.HasSuffix(name, ".jsonl"):
			out = append(out, filepath.Join(dir, name))
		}
	}
	slices.Sort(out)
	if active {
		out = append(out, filepath.Join(dir, activeName))
	}
	return out, nil
}

// firstSeq returns the sequence number of the first whole entry in a file,
// 0 if it has none.
func firstSeq(name string) (uint64, error) {
	var seq uint64
	err := scanFile(name, func(_ int, line []byte, e *Entry) bool {
		if e != nil {
			seq = e.Seq
			return false
		}
		return true
	})
	return seq, err
}

// lastEntry returns the last whole entry of a file and the hash of its
// line; nil if it has none.
func lastEntry(name string) (*Entry, string, error) {
	var last *Entry
	var hash string
	err := scanFile(name, func(_ int, line []byte, e *Entry) bool {
		if e != nil {
			last, hash = e, lineHash(line)
		}
		return true
	})
	return last, hash, err
}

// scanFile calls f for each line of a journal file, numbered from 1, with
// the entry it holds or nil if it holds none (a torn or foreign line),
// until f returns false.
func scanFile(name string, f func(n int, line []byte, e *Entry) bool) error {
	file, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer file.Close()
	r := bufio.NewReaderSize(file, 64<<10)
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			whole := bytes.HasSuffix(line, []byte("\n"))
			line = bytes.TrimSuffix(line, []byte("\n"))
			var e *Entry
			if whole {
				e = parseEntry(line)
			}
			if !f(n, line, e) {
				return nil
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("journal: read %s: %w", name, err)
		}
	}
}

func parseEntry(line []byte) *Entry {
	var e Entry
	if len(line) == 0 || json.Unmarshal(line, &e) != nil || e.Seq == 0 {
		return nil
	}
	return &e
}

// endsTorn reports whether a file of the given size lacks its final
// newline: a crash cut its last append short.
func endsTorn(f *os.File, size int64) (bool, error) {
	if size == 0 {
		return false, nil
	}
	var b [1]byte
	if _, err := f.ReadAt(b[:], size-1); err != nil {
		return false, fmt.Errorf("journal: %w", err)
	}
	return b[0] != '\n', nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("journal: sync %s: %w", dir, err)
	}
	return nil
}
