package kube

import (
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"k8s.io/client-go/rest"

	"github.com/edgefw/edgefw/policy"
)

// TestAgentSavedWhileNotSynced: before the source syncs (the API server
// unreachable at start), the agent merges the objects saved by the last
// apply; a merge of unsynced objects saves nothing.
func TestAgentSavedWhileNotSynced(t *testing.T) {
	dir := t.TempDir()
	src, err := NewSource(&rest.Config{Host: "https://127.0.0.1:1"}, "node")
	if err != nil {
		t.Fatal(err)
	}
	saved := []Object{{Name: "web", Generation: 3, Mode: ModeEnforce, Policy: map[string]any{
		"rules": []any{map[string]any{"name": "web", "direction": "input", "action": "accept"}}}}}
	if err := writeSaved(filepath.Join(dir, SavedFile), saved); err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{"etc/edgefw/policy.yaml": {Data: []byte("version: 1\n")}}
	var rules []string
	a := NewAgent(src, dir)
	v, err := a.Merge(func(frags []policy.Fragment) error {
		p, err := policy.LoadFSWith(fsys, "/etc/edgefw/policy.yaml", frags)
		if err == nil {
			rules = nil
			for _, r := range p.Rules {
				rules = append(rules, r.Name+"@"+r.Pos.File)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if v.Live || len(v.Accepted) != 1 || v.Accepted[0].Generation != 3 {
		t.Errorf("view: %+v, want the saved web@3, not live", v)
	}
	if len(rules) != 1 || rules[0] != "web@hostfirewallpolicy/web" {
		t.Errorf("merged rules %v", rules)
	}
	before, _ := os.ReadFile(filepath.Join(dir, SavedFile))
	if err := a.Applied(); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, SavedFile)); string(after) != string(before) {
		t.Errorf("saved file rewritten from a saved view: %s", after)
	}
}
