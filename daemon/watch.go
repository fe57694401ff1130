package daemon

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchDebounce lets an editor or configuration management finish writing
// several files before one reload.
const watchDebounce = 300 * time.Millisecond

// WatchPolicy reloads when the policy file, a drop-in or a set file
// changes. Directories are watched rather than files, so atomic saves
// (write a temporary file, rename it over the old one) are seen too.
func (d *Daemon) WatchPolicy(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	watched := map[string]bool{}
	rewatch := func() {
		dirs := []string{filepath.Dir(d.cfg.PolicyPath), filepath.Join(filepath.Dir(d.cfg.PolicyPath), "policy.d")}
		d.mu.Lock()
		if d.cur != nil && d.cur.pol != nil {
			for _, f := range d.cur.pol.Files {
				dirs = append(dirs, filepath.Dir(f))
			}
		}
		d.mu.Unlock()
		for _, dir := range dirs {
			if watched[dir] {
				continue
			}
			if _, err := os.Stat(dir); err != nil {
				continue
			}
			if err := w.Add(dir); err == nil {
				watched[dir] = true
			}
		}
	}
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
			d.Reload(ctx, "file-change")
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
