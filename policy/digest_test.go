package policy

import (
	"os"
	"path/filepath"
	"testing"
)

// A Digest holds while the files read, and the drop-ins beside the main
// file, are as they were; any change a Load would see breaks it.
func TestDigestUnchanged(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "policy.yaml")
	write := func(name, data string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	remove := func(name string) {
		t.Helper()
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	write("policy.yaml", "version: 1\nsets:\n  blocklist: {file: blocklist.txt}\nrules:\n  - {name: bl, direction: input, from: [{set: blocklist}], action: drop}\n")
	write("blocklist.txt", "192.0.2.0/24\n")
	write("policy.d/10-ssh.yaml", "version: 1\nrules:\n  - {name: ssh, direction: input, ports: [{protocol: tcp, port: 22}], action: accept}\n")
	_, b, err := ReadBundle(main)
	if err != nil {
		t.Fatal(err)
	}
	d := DigestBundle(main, b)
	if len(d.Files) != 3 || !d.Unchanged() {
		t.Fatalf("fresh digest %+v: Unchanged false", d)
	}
	for _, step := range []struct {
		name   string
		change func()
		want   bool
	}{
		{"a set file's line changed", func() { write("blocklist.txt", "192.0.2.0/25\n") }, false},
		{"changed back", func() { write("blocklist.txt", "192.0.2.0/24\n") }, true},
		{"a drop-in added", func() { write("policy.d/20-web.yaml", "version: 1\n") }, false},
		{"that drop-in removed", func() { remove("policy.d/20-web.yaml") }, true},
		{"an editor's temporary file", func() { write("policy.d/.10-ssh.yaml.swp", "x") }, true},
		{"a file that is no drop-in", func() { write("policy.d/README", "x") }, true},
		{"a drop-in removed", func() { remove("policy.d/10-ssh.yaml") }, false},
		{"put back", func() {
			write("policy.d/10-ssh.yaml", "version: 1\nrules:\n  - {name: ssh, direction: input, ports: [{protocol: tcp, port: 22}], action: accept}\n")
		}, true},
		{"the main file touched", func() { write("policy.yaml", "version: 1\n# a comment\n") }, false},
	} {
		step.change()
		if got := d.Unchanged(); got != step.want {
			t.Errorf("%s: Unchanged = %v, want %v", step.name, got, step.want)
		}
	}
	for _, bad := range []Digest{{}, {Main: "policy.yaml", Files: d.Files, Sum: d.Sum}, {Main: main, Files: d.Files}, {Main: main, Files: []string{"/z", main}, Sum: d.Sum}} {
		if bad.Unchanged() {
			t.Errorf("%+v: Unchanged true for a digest that is not whole", bad)
		}
	}
}
