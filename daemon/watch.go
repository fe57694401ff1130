package daemon

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// triggerFileChange is the reload of the policy watch.
const triggerFileChange = "file-change"

// watchDebounce lets an editor or configuration management finish writing
// several files before one reload.
const watchDebounce = 300 * time.Millisecond

// PolicyWatch follows the directories of the policy files: see
// WatchPolicy.
type PolicyWatch struct {
	d       *Daemon
	w       *fsnotify.Watcher
	watched map[string]bool
}

// OpenPolicyWatch watches the policy file's directory and policy.d beside
// it from the moment it returns. edgefwd opens it before the daemon tells
// systemd it is ready: opened by Run's goroutine instead, a drop-in
// written right after READY could come before the watch and go unseen.
func (d *Daemon) OpenPolicyWatch() (*PolicyWatch, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	pw := &PolicyWatch{d: d, w: w, watched: map[string]bool{}}
	pw.rewatch()
	return pw, nil
}

// rewatch watches the directories of the policy: the main file's,
// policy.d, and those of the files the running policy was read from.
func (pw *PolicyWatch) rewatch() {
	d := pw.d
	dirs := []string{filepath.Dir(d.cfg.PolicyPath), filepath.Join(filepath.Dir(d.cfg.PolicyPath), "policy.d")}
	d.mu.Lock()
	if d.cur != nil && d.cur.pol != nil {
		for _, f := range d.cur.pol.Files {
			dirs = append(dirs, filepath.Dir(f))
		}
	}
	d.mu.Unlock()
	for _, dir := range dirs {
		if pw.watched[dir] {
			continue
		}
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		if err := pw.w.Add(dir); err == nil {
			pw.watched[dir] = true
		}
	}
}

// WatchPolicy reloads when the policy file, a drop-in or a set file
// changes, until ctx ends. Directories are watched rather than files, so
// atomic saves (write a temporary file, rename it over the old one) are
// seen too.
func (d *Daemon) WatchPolicy(ctx context.Context) error {
	pw, err := d.OpenPolicyWatch()
	if err != nil {
		return err
	}
	return pw.Run(ctx)
}

// Run reloads the daemon when the policy's files change, until ctx ends,
// and closes the watch.
func (pw *PolicyWatch) Run(ctx context.Context) error {
	d, w, watched, rewatch := pw.d, pw.w, pw.watched, pw.rewatch
	defer w.Close()
	// Again, for the directories of the running policy's set files, which
	// are known once Start has loaded it; later reloads watch again.
	rewatch()
	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if name := filepath.Clean(ev.Name); watched[name] && ev.Has(fsnotify.Remove|fsnotify.Rename) {
				// The kernel dropped the watch with the directory: watch
				// it again if it comes back.
				delete(watched, name)
				_ = w.Remove(name)
			}
			if d.relevant(ev.Name) {
				timer = time.After(watchDebounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			d.log.Warn("policy watch", "error", err)
		case <-timer:
			timer = nil
			d.log.Info("policy files changed: reloading")
			// Before the reload too: a policy.d/ created since the last
			// reload must be watched before its files are read, or a
			// drop-in written in between goes unseen.
			rewatch()
			d.Reload(ctx, triggerFileChange)
			rewatch()
		}
	}
}

// relevant reports whether a changed path is part of the policy: the main
// file, a drop-in, or a file the running policy was read from.
func (d *Daemon) relevant(name string) bool {
	name = filepath.Clean(name)
	main := filepath.Clean(d.cfg.PolicyPath)
	if name == main {
		return true
	}
	dropIns := filepath.Join(filepath.Dir(main), "policy.d")
	if name == dropIns || filepath.Dir(name) == dropIns && filepath.Ext(name) == ".yaml" {
		// The directory itself too: creating or removing it adds or
		// removes drop-ins, and a new one is only watched after a reload.
		return true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cur == nil || d.cur.pol == nil {
		return false
	}
	for _, f := range d.cur.pol.Files {
		if filepath.Clean(f) == name {
			return true
		}
	}
	return false
}
