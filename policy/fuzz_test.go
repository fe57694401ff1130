package policy

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// FuzzParse checks that no document makes Parse panic, and that it returns
// either a policy that keeps the invariants the compiler relies on, and
// that Validate accepts, or an ErrorList of positioned errors.
func FuzzParse(f *testing.F) {
	spec, err := os.ReadFile("testdata/spec-example.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(spec)
	for _, doc := range []string{
		withRule("from: [{cidr: 10.0.0.0/8, except: [10.1.0.0/16]}]", "ports: [{protocol: tcp, port: 1, endPort: 2}]"),
		withPeer("endpoint: \"[2001:db8::1]:51820\"", "persistentKeepalive: 25s"),
		"version: 1\nsets: {a: {file: set.txt}}\nrules: [{name: r, direction: input, action: drop, from: [{set: a}]}]\n",
	} {
		f.Add([]byte(doc))
	}
	// Set files named by fuzzed documents resolve here.
	dir := f.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "set.txt"), []byte("10.0.0.0/8\n# c\n2001:db8::/32\n"), 0o644); err != nil {
		f.Fatal(err)
	}
	file := filepath.Join(dir, "policy.yaml")

	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(file, data)
		if err != nil {
			if p != nil {
				t.Fatalf("Parse returned a policy and an error: %v", err)
			}
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error is not a non-empty ErrorList: %T %v", err, err)
			}
			for _, e := range list {
				if e.Pos.Line < 1 || e.Pos.Col < 1 || e.Pos.File == "" || e.Msg == "" {
					t.Fatalf("error without a position or message: %#v", e)
				}
			}
			_ = list.Error()
			return
		}
		checkInvariants(t, p)
		if err := Validate(p); err != nil {
			t.Fatalf("Validate refused what Parse returned: %v", err)
		}
	})
}

// checkInvariants checks what a valid policy promises its users.
func checkInvariants(t *testing.T, p *Policy) {
	t.Helper()
	if p.Version != 1 {
		t.Errorf("Version = %d", p.Version)
	}
	for _, s := range p.Sets {
		if checkName(s.Name, maxNameLen) != nil {
			t.Errorf("invalid set name %q", s.Name)
		}
		for _, pfx := range s.Prefixes {
			if !pfx.IsValid() || pfx.Masked() != pfx || pfx.Addr().Is4In6() {
				t.Errorf("set %s: bad prefix %v", s.Name, pfx)
			}
		}
	}
	names := map[string]bool{}
	for _, r := range p.Rules {
		if checkName(r.Name, maxNameLen) != nil || names[r.Name] {
			t.Errorf("invalid or duplicate rule name %q", r.Name)
		}
		names[r.Name] = true
		if !slices.Contains(Directions, r.Direction) {
			t.Errorf("rule %s: direction %q", r.Name, r.Direction)
		}
		if r.Action != Accept && r.Action != Drop && r.Action != Reject {
			t.Errorf("rule %s: action %q", r.Name, r.Action)
		}
		for _, peer := range append(slices.Clone(r.From), r.To...) {
			kinds := 0
			if peer.CIDR.IsValid() {
				kinds++
			}
			if peer.Set != "" {
				kinds++
				if p.Set(peer.Set) == nil {
					t.Errorf("rule %s: undefined set %q", r.Name, peer.Set)
				}
			}
			if peer.Interface != "" {
				kinds++
			}
			if kinds != 1 {
				t.Errorf("rule %s: peer %+v is not one kind", r.Name, peer)
			}
		}
		for _, pr := range r.Ports {
			if pr.EndPort < pr.Port || (!pr.Protocol.HasPorts() && pr.Port != 0) || (pr.Port == 0 && pr.EndPort != 0) {
				t.Errorf("rule %s: bad ports entry %+v", r.Name, pr)
			}
		}
	}
	for _, tun := range p.Tunnels {
		if len(tun.Name) > maxIfNameLen || len(tun.Addresses) == 0 || !filepath.IsAbs(tun.PrivateKeyFile) {
			t.Errorf("bad tunnel %+v", tun)
		}
		for _, a := range tun.Addresses {
			if a.Bits() == 0 {
				t.Errorf("tunnel %s: address %v", tun.Name, a)
			}
		}
		for _, peer := range tun.Peers {
			if len(peer.AllowedIPs) == 0 {
				t.Errorf("bad tunnel peer %+v", peer)
			}
			ep := endpointAddr(peer.Endpoint)
			for _, pfx := range peer.AllowedIPs {
				if pfx.Bits() == 0 || (ep.IsValid() && pfx.Contains(ep)) {
					t.Errorf("tunnel %s peer %s: allowed IP %v (endpoint %q)", tun.Name, peer.Name, pfx, peer.Endpoint)
				}
			}
		}
	}
}
