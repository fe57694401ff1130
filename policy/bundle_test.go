package policy

import (
	"errors"
	"io/fs"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

// siteFiles is a policy of several files as they would be at /site, which
// does not exist on this machine: bundles are read from memory only.
func siteFiles() Bundle {
	return Bundle{
		"/site/policy.yaml": []byte(lines(
			"version: 1",
			"sets: {block: {file: lists/block.txt}}",
			"rules:",
			"  - {name: drop-block, direction: input, action: drop, from: [{set: block}]}",
			"tunnels:",
			"  - {name: wg0, privateKeyFile: keys/wg0.key, addresses: [10.0.0.2/24]}",
		)),
		"/site/policy.d/10-web.yaml": []byte(lines(
			"sets: {admins: {file: ../lists/admins.txt}, shared: {file: /srv/shared.txt}}",
			"rules:",
			"  - {name: web, direction: input, action: accept, from: [{set: admins}, {set: shared}], ports: [{protocol: tcp, port: 443}]}",
		)),
		"/site/policy.d/20-empty.yaml": []byte("# nothing yet\n"),
		"/site/lists/block.txt":        []byte("192.0.2.0/24\n"),
		"/site/lists/admins.txt":       []byte("10.10.0.0/16\n"),
		"/srv/shared.txt":              []byte("198.51.100.0/24\n"),
	}
}

func TestParseBundle(t *testing.T) {
	p, err := ParseBundle(siteFiles(), "/site/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	wantFiles := []string{"/site/policy.yaml", "/site/policy.d/10-web.yaml", "/site/policy.d/20-empty.yaml",
		"/site/lists/block.txt", "/site/lists/admins.txt", "/srv/shared.txt"}
	if diff := cmp.Diff(wantFiles, p.Files); diff != "" {
		t.Errorf("Files (-want +got):\n%s", diff)
	}
	var rules []string
	for _, r := range p.Rules {
		rules = append(rules, r.Name)
	}
	if diff := cmp.Diff([]string{"drop-block", "web"}, rules); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
	if got := p.Set("admins"); got == nil || got.File != "/site/lists/admins.txt" || len(got.Prefixes) != 1 {
		t.Errorf("set admins = %+v", got)
	}
	// Paths in the policy are the operator's, as on disk.
	if tun := p.Tunnels[0]; tun.PrivateKeyFile != "/site/keys/wg0.key" || tun.PrivateKeyFilePos != (Pos{File: "/site/policy.yaml", Line: 6, Col: 33}) {
		t.Errorf("tunnel key file %q at %v", tun.PrivateKeyFile, tun.PrivateKeyFilePos)
	}
	if pos := p.Rules[1].Pos; pos != (Pos{File: "/site/policy.d/10-web.yaml", Line: 3, Col: 5}) {
		t.Errorf("web's position = %v", pos)
	}
}

// TestBundleLoadsAsTheFiles checks that a policy read from disk with
// ReadBundle, and parsed again from its bundle, is the one Load returns:
// the bundle holds every file Load read, and only those.
func TestBundleLoadsAsTheFiles(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{}
	for name, data := range siteFiles() {
		rel := strings.TrimPrefix(name, "/site/")
		if strings.HasPrefix(name, "/srv/") {
			continue
		}
		files[rel] = string(data)
	}
	files["policy.d/10-web.yaml"] = strings.Replace(files["policy.d/10-web.yaml"], "/srv/shared.txt", filepath.Join(dir, "srv", "shared.txt"), 1)
	files["srv/shared.txt"] = "198.51.100.0/24\n"
	// Neither a drop-in nor named by one: Load leaves them alone.
	files["policy.d/.swp.yaml"] = "garbage: ["
	files["policy.d/README"] = "not yaml"
	files["unused.txt"] = "10.0.0.0/8\n"
	writeFiles(t, dir, files)
	main := filepath.Join(dir, "policy.yaml")

	loaded, err := Load(main)
	if err != nil {
		t.Fatal(err)
	}
	read, bundle, err := ReadBundle(main)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(loaded, read, cmpPrefix); diff != "" {
		t.Errorf("ReadBundle's policy differs from Load's (-Load +ReadBundle):\n%s", diff)
	}
	if diff := cmp.Diff(loaded.Files, slices.Sorted(maps.Keys(bundle)), cmp.Transformer("sort", func(s []string) []string { return slices.Sorted(slices.Values(s)) })); diff != "" {
		t.Errorf("bundle files (-Policy.Files +bundle):\n%s", diff)
	}
	if got, want := string(bundle[main]), files["policy.yaml"]; got != want {
		t.Errorf("bundle holds %q for the main file, want %q", got, want)
	}
	parsed, err := ParseBundle(bundle, main)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(loaded, parsed, cmpPrefix); diff != "" {
		t.Errorf("ParseBundle's policy differs from Load's (-Load +ParseBundle):\n%s", diff)
	}
}

// TestParseBundleRejections checks that a bundle is refused with errors
// naming the operator's files, lines and columns: problems in the policy
// as Load reports them, a file the policy names that the bundle lacks, and
// a file the bundle holds that the policy does not use.
func TestParseBundleRejections(t *testing.T) {
	for _, tc := range []struct {
		name   string
		edit   func(b Bundle)
		path   string // the main file; /site/policy.yaml if empty
		want   string
		notExt bool // errors.Is(err, fs.ErrNotExist), as for a main file missing on disk
	}{
		{
			name: "a problem in a drop-in",
			edit: func(b Bundle) {
				b["/site/policy.d/10-web.yaml"] = []byte(strings.Replace(string(b["/site/policy.d/10-web.yaml"]), "port: 443", "port: 70000", 1))
			},
			want: "/site/policy.d/10-web.yaml:3:119: rules[0].ports[0].port: port 70000 is out of range; valid values are 1 to 65535",
		},
		{
			name: "a problem in a set file",
			edit: func(b Bundle) { b["/site/lists/block.txt"] = []byte("# blocked\n192.0.2.1/24\n") },
			want: "/site/lists/block.txt:2:1: sets.block: 192.0.2.1/24 has host bits set; did you mean 192.0.2.0/24?",
		},
		{
			name: "a set file missing",
			edit: func(b Bundle) { delete(b, "/site/lists/admins.txt") },
			want: "/site/policy.d/10-web.yaml:1:23: sets.admins.file: cannot read set file /site/lists/admins.txt: missing from the files sent with the policy (file does not exist)",
		},
		{
			name:   "the main file missing",
			edit:   func(b Bundle) { delete(b, "/site/policy.yaml") },
			want:   "/site/policy.yaml: cannot read policy: missing from the files sent with the policy (file does not exist)",
			notExt: true,
		},
		{
			name: "a file the policy does not name",
			edit: func(b Bundle) { b["/etc/shadow"] = []byte("root:x:0:0\n") },
			want: "/etc/shadow: not a file of the policy: a bundle holds only the main file, the drop-ins beside it (policy.d/*.yaml) and the set files they name",
		},
		{
			name: "a file in policy.d that is no drop-in",
			edit: func(b Bundle) { b["/site/policy.d/.10-web.yaml.swp"] = []byte("rules: [") },
			want: "/site/policy.d/.10-web.yaml.swp: not a file of the policy: a bundle holds only the main file, the drop-ins beside it (policy.d/*.yaml) and the set files they name",
		},
		{
			name: "a file where the policy needs a directory",
			edit: func(b Bundle) { b["/site/lists"] = []byte("10.0.0.0/8\n") },
			want: "/site/lists: not a file of the policy: a bundle holds only the main file, the drop-ins beside it (policy.d/*.yaml) and the set files they name",
		},
		{
			name: "a relative main file",
			path: "policy.yaml",
			want: "policy.yaml: the main file of a bundle must be named by its absolute path",
		},
		{
			name: "a path that is not clean",
			edit: func(b Bundle) { b["/site/policy.d/../other.yaml"] = []byte("rules: []\n") },
			want: "/site/policy.d/../other.yaml: a bundle names its files by absolute, clean paths, as Policy.Files does",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := siteFiles()
			if tc.edit != nil {
				tc.edit(b)
			}
			path := tc.path
			if path == "" {
				path = "/site/policy.yaml"
			}
			p, err := ParseBundle(b, path)
			if err == nil {
				t.Fatalf("ParseBundle accepted the bundle: %+v", p)
			}
			errorList(t, err)
			if err.Error() != tc.want {
				t.Errorf("error:\n got %v\nwant %s", err, tc.want)
			}
			if errors.Is(err, fs.ErrNotExist) != tc.notExt {
				t.Errorf("errors.Is(err, fs.ErrNotExist) = %v, want %v", !tc.notExt, tc.notExt)
			}
		})
	}
}

// TestLoadFS loads a policy from a file system other than the operating
// system's, rooted at "/" as LoadFS documents.
func TestLoadFS(t *testing.T) {
	fsys := fstest.MapFS{}
	for name, data := range siteFiles() {
		fsys[strings.TrimPrefix(name, "/")] = &fstest.MapFile{Data: data}
	}
	p, err := LoadFS(fsys, "/site/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Rules) != 2 || len(p.Sets) != 3 || len(p.Files) != 6 {
		t.Errorf("LoadFS read %d rules, %d sets from %d files; want 2, 3, 6", len(p.Rules), len(p.Sets), len(p.Files))
	}
	delete(fsys, "srv/shared.txt")
	_, err = LoadFS(fsys, "/site/policy.yaml")
	want := "/site/policy.d/10-web.yaml:1:60: sets.shared.file: cannot read set file /srv/shared.txt: file does not exist"
	if err == nil || err.Error() != want {
		t.Errorf("LoadFS without a set file: %v, want %s", err, want)
	}
}

// TestBundleFS checks the bundle's file system against the fs.FS contract.
func TestBundleFS(t *testing.T) {
	var names []string
	for name := range siteFiles() {
		names = append(names, strings.TrimPrefix(name, "/"))
	}
	if err := fstest.TestFS(newBundleFS(siteFiles()), names...); err != nil {
		t.Error(err)
	}
}
