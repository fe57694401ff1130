package policy

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoadFSWithFragments(t *testing.T) {
	fsys := fstest.MapFS{
		"etc/edgefw/policy.yaml":       {Data: []byte("version: 1\nrules:\n  - {name: ssh, direction: input, action: accept, ports: [{protocol: tcp, port: 22}]}\n")},
		"etc/edgefw/policy.d/web.yaml": {Data: []byte("rules:\n  - {name: web, direction: input, action: accept, ports: [{protocol: tcp, port: 80}]}\n")},
	}
	frags := []Fragment{
		{Name: "hostfirewallpolicy/b", Data: []byte(`{"rules":[{"name":"b","direction":"input","action":"drop"}]}`)},
		{Name: "hostfirewallpolicy/a", Data: []byte("rules:\n  - {name: a, direction: input, action: accept}\n")},
	}
	p, err := LoadFSWith(fsys, "/etc/edgefw/policy.yaml", frags)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range p.Rules {
		got = append(got, r.Name+"@"+r.Pos.File)
	}
	want := "ssh@/etc/edgefw/policy.yaml web@/etc/edgefw/policy.d/web.yaml b@hostfirewallpolicy/b a@hostfirewallpolicy/a"
	if strings.Join(got, " ") != want {
		t.Errorf("rules: got %v, want %s", got, want)
	}
	if len(p.Files) != 2 {
		t.Errorf("Files lists only the host's files: %v", p.Files)
	}

	for _, tc := range []struct{ name, doc, want string }{
		{"clash", "rules: [{name: ssh, direction: input, action: drop}]", "hostfirewallpolicy/x:1:"},
		{"defaults", "defaults: {input: accept}", "hostfirewallpolicy/x:1:1"},
		{"failsafe", "failsafe: []", "hostfirewallpolicy/x:1:1"},
	} {
		_, err := LoadFSWith(fsys, "/etc/edgefw/policy.yaml", []Fragment{{Name: "hostfirewallpolicy/x", Data: []byte(tc.doc)}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error at %s", tc.name, err, tc.want)
		}
	}
}
