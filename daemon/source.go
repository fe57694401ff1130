package daemon

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/edgefw/edgefw/nft"
	"github.com/edgefw/edgefw/policy"
)

// triggerFromFiles is the reload of `edgefwctl reload --from-files`: it
// returns to the policy files even when a policy given by `edgefwctl
// apply` runs and the files did not change.
const triggerFromFiles = "reload-from-files"

// A policy given by `edgefwctl apply` and confirmed (or applied without a
// confirmation timeout) stays the running policy across reloads (SIGHUP,
// `systemctl reload`, `edgefwctl reload`) and restarts: an operator who
// fixed a site by hand must not lose the fix to the next reload of the
// old files. It gives way when the policy files change, which is how
// configuration management says what the host should enforce, or when the
// operator returns to them with `edgefwctl reload --from-files`.

// keptApplied returns the running policy if it was given by `edgefwctl
// apply` and a reload with this trigger keeps it; nil means the reload
// reads the policy files. An apply that still awaits confirmation is not
// kept: a reload then makes the files the truth again.
func (d *Daemon) keptApplied(trigger string) *running {
	d.mu.Lock()
	cur, pending := d.cur, d.pending
	d.mu.Unlock()
	if cur == nil || !cur.source.Applied || pending != nil {
		return nil
	}
	if trigger == triggerFromFiles {
		d.log.Info("returning to the policy files", "replaces", cur.source.Path, "applied_by", cur.source.AppliedBy.String())
		return nil
	}
	if fp := d.filesFingerprint(); fp != cur.source.FilesFingerprint {
		d.log.Warn("the policy files changed since edgefwctl apply: returning to them",
			"policy", d.cfg.PolicyPath, "replaces", cur.source.Path, "applied_by", cur.source.AppliedBy.String(), "applied_at", cur.source.AppliedAt)
		return nil
	}
	return cur
}

// filesFingerprint is the fingerprint of the daemon's policy files,
// loaded as reloads load them (policyLoader): while a policy given by
// `edgefwctl apply` runs, every reload asks for it.
func (d *Daemon) filesFingerprint() string {
	if _, src, err := d.loader.load(d.cfg.PolicyPath); err == nil {
		return src.Hash
	}
	return filesFingerprint(d.cfg.PolicyPath)
}

// filesFingerprint identifies the contents of the policy files: the main
// file and its drop-ins, and the set files they name when they load. It
// is compared, not shown: equal fingerprints mean the files did not change.
func filesFingerprint(path string) string {
	if pol, err := policy.Load(path); err == nil {
		return sourceOf(path, pol, false).Hash
	}
	files := []string{path}
	if dropIns, err := filepath.Glob(filepath.Join(filepath.Dir(path), "policy.d", "*.yaml")); err == nil {
		files = append(files, dropIns...)
	}
	all := sha256.New()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintf(all, "%s unreadable\n", f)
			continue
		}
		fmt.Fprintf(all, "%s %x\n", f, sha256.Sum256(data))
	}
	return "unloadable:" + hex.EncodeToString(all.Sum(nil))
}

// compareFiles says how the policy files compare with rs, the ruleset of
// a policy given by `edgefwctl apply`.
func (d *Daemon) compareFiles(rs *nft.Ruleset) *PolicyFiles {
	pf := &PolicyFiles{Path: d.cfg.PolicyPath}
	pol, _, err := d.loader.load(d.cfg.PolicyPath)
	if err == nil {
		var files *nft.Ruleset
		if files, err = nft.Compile(pol); err == nil {
			pf.Differs = files.String() != rs.String()
			return pf
		}
	}
	pf.Differs = true
	pf.Error = firstLine(err.Error())
	return pf
}

// appliedWarning says plainly, for status, that the running policy is not
// the policy files, since when, who applied it and how to go back.
func appliedWarning(src PolicySource, files *PolicyFiles) string {
	var b strings.Builder
	fmt.Fprintf(&b, "the running policy is not the policy files: %s was applied with edgefwctl apply", src.Path)
	if src.AppliedBy != nil {
		fmt.Fprintf(&b, " by %s", src.AppliedBy)
	}
	if !src.AppliedAt.IsZero() {
		fmt.Fprintf(&b, " at %s", src.AppliedAt.UTC().Format("2006-01-02 15:04:05 UTC"))
	}
	if files != nil {
		switch {
		case files.Error != "":
			fmt.Fprintf(&b, "; %s does not load (%s)", files.Path, files.Error)
		case files.Differs:
			fmt.Fprintf(&b, " and differs from %s", files.Path)
		default:
			fmt.Fprintf(&b, " and compiles to the same ruleset as %s", files.Path)
		}
	}
	b.WriteString("; reloads and restarts keep it until the policy files change or `edgefwctl reload --from-files`")
	return b.String()
}

// policyLoader loads the policy files for reloads, keeping what the next
// load can reuse: the set files' parses (policy.SetFileCache) and the
// files' hashes. After one line of a set file of a million CIDRs changed,
// a reload spent most of its time parsing the whole file again, and
// hashing an unchanged file of 16 MB took 12 ms. The zero value is ready.
type policyLoader struct {
	// reader decodes a change to a few of a tunnel's peers alone, and
	// reads set files through its SetFileCache.
	reader policy.Reader
	// hashes are the hex SHA-256 of the files last loaded, by path, with
	// the bytes they are of.
	hashes map[string]hashedFile
}

// hashedFile is the bytes of a file and their hex SHA-256.
type hashedFile struct {
	data []byte
	sum  string
}

// load reads the policy whose main file is path and describes its files.
func (pl *policyLoader) load(path string) (*policy.Policy, PolicySource, error) {
	if pl.reader.Sets == nil {
		pl.reader.Sets = policy.NewSetFileCache()
	}
	pol, files, err := pl.reader.ReadBundle(path)
	if err != nil {
		return nil, PolicySource{}, err
	}
	hashes := make(map[string]hashedFile, len(files))
	src := sourceFrom(path, pol.Files, false, func(file string) ([]byte, error) { return files[file], nil },
		func(file string, data []byte) string {
			h, ok := pl.hashes[file]
			if !ok || !bytes.Equal(h.data, data) {
				h.sum = hashBytes(data)
			}
			// The bytes just read: the older copy can be freed.
			hashes[file] = hashedFile{data: data, sum: h.sum}
			return h.sum
		})
	pl.hashes = hashes
	return pol, src, nil
}

// sourceOf describes a loaded policy: its files, as the daemon reads them,
// and their hashes.
func sourceOf(path string, pol *policy.Policy, applied bool) PolicySource {
	return sourceFrom(path, pol.Files, applied, os.ReadFile, nil)
}

// hashBytes returns the hex SHA-256 of data.
func hashBytes(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// sourceFrom describes a policy whose files, in merge order, read returns;
// hash, unless nil, hashes a file's bytes (hashBytes otherwise).
func sourceFrom(path string, files []string, applied bool, read func(string) ([]byte, error), hash func(string, []byte) string) PolicySource {
	if hash == nil {
		hash = func(_ string, data []byte) string { return hashBytes(data) }
	}
	src := PolicySource{Path: path, Applied: applied}
	all := sha256.New()
	for _, f := range files {
		data, err := read(f)
		if err != nil {
			continue
		}
		h := hash(f, data)
		src.Files = append(src.Files, FileHash{Path: f, SHA256: h})
		fmt.Fprintf(all, "%s %s\n", filepath.Clean(f), h)
	}
	src.Hash = hex.EncodeToString(all.Sum(nil))
	return src
}
