package daemon

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"

	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/policy"
)

// Files in the state directory.
const (
	lastGoodFile = "last-good.json"
	pendingFile  = "pending-confirm.json"
	// markFile records the last commit of edgefwd (daemon or --once),
	// for --once to skip reading the table back when nothing committed
	// since (see nft.Mark).
	markFile = "last-commit.json"
)

// savedPolicy is a policy as persisted: parsed and validated, so it can be
// installed at boot without reading the policy files or resolving names.
type savedPolicy struct {
	Source PolicySource   `json:"source"`
	Policy *policy.Policy `json:"policy"`
}

func saveLastGood(dir string, s *savedPolicy) error {
	_, err := writeLastGood(dir, s, true)
	return err
}

// writeLastGood replaces the last good policy with s, synced to the disk
// before it replaces the old one if sync; it reports whether it wrote.
func writeLastGood(dir string, s *savedPolicy, sync bool) (bool, error) {
	path := filepath.Join(dir, lastGoodFile)
	data, err := s.encode()
	if err != nil {
		return false, fmt.Errorf("encode %s: %w", path, err)
	}
	return replaceFile(path, data, sync)
}

// lastGoodWriter writes last good policies in the background, one at a
// time and the newest only: encoding and writing the policy of a set of
// 100,000 CIDRs took 7 to 80 ms of a reload on a busy machine (a million:
// 40 ms and more), which `edgefwctl reload` waited for. Each write is
// synced before it replaces the old file, so a crash, of the process or
// the machine, leaves the old policy or the new one, whole. The zero
// value is ready.
type lastGoodWriter struct {
	mu   sync.Mutex
	idle sync.Cond
	// next is the policy to write next; nil when none is waiting.
	next *savedPolicy
	// failed is called, without mu, when a write fails.
	failed  func(error)
	running bool
}

// save writes s in the background into dir, unless a newer save replaces
// it before its turn; failed is told of an error.
func (w *lastGoodWriter) save(dir string, s *savedPolicy, failed func(error)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.next, w.failed = s, failed
	if !w.running {
		w.running = true
		go w.run(dir)
	}
}

func (w *lastGoodWriter) run(dir string) {
	for {
		w.mu.Lock()
		s, failed := w.next, w.failed
		w.next = nil
		if s == nil {
			w.running = false
			w.cond().Broadcast()
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
		if _, err := writeLastGood(dir, s, true); err != nil && failed != nil {
			failed(err)
		}
	}
}

// wait returns once every save is written.
func (w *lastGoodWriter) wait() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.running {
		w.cond().Wait()
	}
}

// cond is idle, tied to mu; mu must be held.
func (w *lastGoodWriter) cond() *sync.Cond {
	if w.idle.L == nil {
		w.idle.L = &w.mu
	}
	return &w.idle
}

// syncLastGood syncs the last good policy to the disk.
func syncLastGood(dir string) error {
	f, err := os.Open(filepath.Join(dir, lastGoodFile))
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// encode is json.Marshal(s) but for the sets' prefixes, which it writes
// itself, as encoding/json would: through reflection and each prefix's
// MarshalText, a set of 100,000 took 10 ms and as much garbage as the
// text, most of what saving the policy cost after a one-line change of a
// set file. The document is the same but for the order of its keys (the
// sets come last), which no reader depends on: every version reads it.
func (s *savedPolicy) encode() ([]byte, error) {
	if s.Policy == nil {
		return json.Marshal(s)
	}
	// The shadowing fields, empty and so omitted, hide the embedded
	// ones of the same name from encoding/json.
	type bareSet struct {
		*policy.Set
		Prefixes *struct{} `json:",omitempty"`
	}
	type barePolicy struct {
		*policy.Policy
		Sets    *struct{} `json:",omitempty"`
		Tunnels *struct{} `json:",omitempty"`
	}
	head, err := json.Marshal(struct {
		Source PolicySource `json:"source"`
		Policy barePolicy   `json:"policy"`
	}{s.Source, barePolicy{Policy: s.Policy}})
	if err != nil {
		return nil, err
	}
	// head ends with the policy's closing brace, then the document's;
	// the policy has other fields before, so the sets follow a comma.
	n := 0
	for _, set := range s.Policy.Sets {
		n += 64 + len(set.Prefixes)*20
	}
	for _, t := range s.Policy.Tunnels {
		n += peersSize(t.Peers)
	}
	out := make([]byte, 0, len(head)+n+16)
	out = append(out, head[:len(head)-2]...)
	out = append(out, `,"Sets":`...)
	if s.Policy.Sets == nil {
		out = append(out, "null"...)
	} else {
		out = append(out, '[')
		for i := range s.Policy.Sets {
			set := &s.Policy.Sets[i]
			b, err := json.Marshal(bareSet{Set: set})
			if err != nil {
				return nil, err
			}
			if i > 0 {
				out = append(out, ',')
			}
			out = append(out, b[:len(b)-1]...)
			out = append(out, `,"Prefixes":`...)
			out = appendPrefixes(out, set.Prefixes)
			out = append(out, '}')
		}
		out = append(out, ']')
	}
	// The tunnels' peers likewise (statepeers.go).
	out = append(out, `,"Tunnels":`...)
	if out, err = appendTunnels(out, s.Policy.Tunnels); err != nil {
		return nil, err
	}
	return append(out, "}}"...), nil
}

// appendPrefixes appends the JSON of ps as encoding/json writes a
// []netip.Prefix: an array of their texts, which need no escaping.
func appendPrefixes(out []byte, ps []netip.Prefix) []byte {
	if ps == nil {
		return append(out, "null"...)
	}
	out = append(out, '[')
	for i, p := range ps {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, '"')
		out = p.AppendTo(out)
		out = append(out, '"')
	}
	return append(out, ']')
}

func loadLastGood(dir string) (*savedPolicy, error) {
	var s savedPolicy
	ok, err := readFileJSON(filepath.Join(dir, lastGoodFile), &s)
	if !ok || err != nil {
		return nil, err
	}
	if s.Policy == nil {
		return nil, errors.New("last-good state holds no policy")
	}
	return &s, nil
}

func savePending(dir string, p *pendingState) error {
	return writeFileJSON(filepath.Join(dir, pendingFile), p)
}

func loadPending(dir string) (*pendingState, error) {
	var p pendingState
	ok, err := readFileJSON(filepath.Join(dir, pendingFile), &p)
	if !ok || err != nil {
		return nil, err
	}
	return &p, nil
}

func removePending(dir string) error {
	err := os.Remove(filepath.Join(dir, pendingFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// writeFileJSON replaces path with v in JSON, atomically (writeFileAtomic).
func writeFileJSON(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return writeFileAtomic(path, data)
}

// writeFileAtomic replaces path with data atomically: a crash leaves the
// old or the new file, never half of one. A file that holds data already
// is left alone: a no-op edgefwd --once writes nothing to the disk.
func writeFileAtomic(path string, data []byte) error {
	_, err := replaceFile(path, data, true)
	return err
}

// replaceFile is writeFileAtomic, with the new file synced to the disk
// before it replaces the old one only if sync. Without, a crash of the
// machine (not of the process) may lose the new contents. It reports
// whether it wrote.
func replaceFile(path string, data []byte, sync bool) (bool, error) {
	// A file of another size holds other data: no need to read it.
	if fi, err := os.Stat(path); err == nil && fi.Size() == int64(len(data)) {
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
			return false, nil
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return false, err
	}
	if sync {
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			return false, err
		}
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	return true, os.Rename(tmp.Name(), path)
}

func readFileJSON(path string, v any) (bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("decode %s: %w", path, err)
	}
	return true, nil
}

// SaveLastGood persists a policy that was just applied by other means
// (edgefwd --once), so the next daemon start installs it first.
func SaveLastGood(dir, path string, pol *policy.Policy) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return saveLastGood(dir, &savedPolicy{Source: sourceOf(path, pol, false), Policy: pol})
}

// LastGoodTunnels names the tunnels of the last applied policy, so a
// restarted daemon can remove interfaces it created for tunnels that
// were dropped from the policy while it was stopped.
func LastGoodTunnels(dir string) []string {
	s, err := loadLastGood(dir)
	if err != nil || s == nil {
		return nil
	}
	var names []string
	for _, t := range s.Policy.Tunnels {
		names = append(names, t.Name)
	}
	return names
}

// markFormat is the format of markFile. A record of any other format is
// no record: bump it whenever what a record means changes.
const markFormat = 1

// savedMark is an nft.Mark as markFile holds it, with the build of the
// edgefwd that wrote it: another build may write the same ruleset as
// another table (a set's flags, the rules' encoding), so its record
// proves nothing to this one.
type savedMark struct {
	Format      int    `json:"format"`
	Build       string `json:"build"`
	Boot        string `json:"boot"`
	NetNSCookie uint64 `json:"netns_cookie"`
	NetNSDev    uint64 `json:"netns_dev"`
	NetNSInode  uint64 `json:"netns_inode"`
	Generation  uint32 `json:"generation"`
	Ruleset     string `json:"ruleset"`
	// Policy is the files the committed ruleset was compiled from, when
	// edgefwd --once committed it (the daemon's policy may come from the
	// control socket, and it records none).
	Policy *policy.Digest `json:"policy,omitempty"`
}

// SaveMark records the Mark of a commit in dir (created if need be),
// atomically and readable by root alone. A nil Mark removes the record:
// a commit whose generation is not known leaves none. A record that is
// out of date is harmless (its generation has passed, so it matches
// nothing), but one less to read.
func SaveMark(dir string, m *nft.Mark) error { return SaveMarkWithFiles(dir, m, nil) }

// SaveMarkWithFiles is SaveMark that also records the files of the policy
// the marked ruleset was compiled from (nil: none).
func SaveMarkWithFiles(dir string, m *nft.Mark, files *policy.Digest) error {
	path := filepath.Join(dir, markFile)
	if m == nil {
		err := os.Remove(path)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	build := buildID()
	if build == "" {
		return SaveMark(dir, nil)
	}
	data, err := json.Marshal(savedMark{Format: markFormat, Build: build, Boot: m.Namespace.Boot, NetNSCookie: m.Namespace.Cookie,
		NetNSDev: m.Namespace.Dev, NetNSInode: m.Namespace.Inode, Generation: m.Generation, Ruleset: m.Ruleset, Policy: files})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// Not synced (a sync took 5 to 15 ms of every apply here): the record
	// only saves --once a read of the table, and one lost with the
	// machine is no loss, since after a reboot no record matches anyway.
	_, err = replaceFile(path, data, false)
	return err
}

// LoadMark returns the Mark recorded in dir, or nil when there is none or
// it cannot be used: unreadable, truncated, of another format, or lacking
// any part. Without a record --once reads the table, so doubt costs time,
// never a check.
func LoadMark(dir string) *nft.Mark {
	m, _ := LoadMarkWithFiles(dir)
	return m
}

// LoadMarkWithFiles is LoadMark that also returns the files of the policy
// recorded with the Mark, or nil.
func LoadMarkWithFiles(dir string) (*nft.Mark, *policy.Digest) {
	data, err := os.ReadFile(filepath.Join(dir, markFile))
	if err != nil {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var s savedMark
	if err := dec.Decode(&s); err != nil || dec.More() {
		return nil, nil
	}
	if s.Format != markFormat || s.Build == "" || s.Build != buildID() || s.Boot == "" || s.NetNSCookie == 0 || s.NetNSInode == 0 || s.Generation == 0 || s.Ruleset == "" {
		return nil, nil
	}
	return &nft.Mark{
		Namespace:  nft.Namespace{Boot: s.Boot, Cookie: s.NetNSCookie, Dev: s.NetNSDev, Inode: s.NetNSInode},
		Generation: s.Generation,
		Ruleset:    s.Ruleset,
	}, s.Policy
}

// buildID returns the Go build ID of the running program (the
// .note.go.buildid of its ELF file, which `go tool buildid` prints): it
// differs between any two builds of different code. "" when it cannot be
// read; then no record is kept.
func buildID() string {
	f, err := elf.Open("/proc/self/exe")
	if err != nil {
		return ""
	}
	defer f.Close()
	sec := f.Section(".note.go.buildid")
	if sec == nil {
		return ""
	}
	note, err := sec.Data()
	// An ELF note: name size, description size, type (4 bytes each), the
	// name "Go\x00\x00", then the description, the ID.
	if err != nil || len(note) < 16 || f.ByteOrder.Uint32(note[0:4]) != 4 || string(note[12:16]) != "Go\x00\x00" {
		return ""
	}
	size := f.ByteOrder.Uint32(note[4:8])
	if uint64(len(note)) < 16+uint64(size) {
		return ""
	}
	return string(note[16 : 16+size])
}
