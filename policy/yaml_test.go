package policy

import (
	"fmt"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestPlainDecimal checks the shortcut for integers against yaml.v3: what
// it reads, it reads as yaml.v3 does, and the rest is left to yaml.v3.
func TestPlainDecimal(t *testing.T) {
	for _, s := range []string{
		"1", "22", "65535", "65536", "999999999999999999", "9223372036854775807",
		"0", "022", "0x16", "0o26", "1_000", "+22", "-1", "22.0", "1e3", "", " 22",
	} {
		got, ok := plainDecimal(s)
		var n yaml.Node
		if err := yaml.Unmarshal([]byte("v: "+s), &n); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		v := n.Content[0].Content[1]
		var want int64
		err := v.Decode(&want)
		switch {
		case ok && (v.ShortTag() != "!!int" || err != nil || got != want):
			t.Errorf("plainDecimal(%q) = %d; yaml.v3: %s %d %v", s, got, v.ShortTag(), want, err)
		case !ok && len(s) > 0 && len(s) <= 18 && s[0] >= '1' && s[0] <= '9' && !strings.ContainsAny(s, "_.e+-x") && err == nil:
			t.Errorf("plainDecimal(%q) left a plain decimal to yaml.v3", s)
		}
	}
}

// BenchmarkParseManyRules parses a policy of 10,000 port rules, as the
// bench's bulk apply of N port rules writes it.
func BenchmarkParseManyRules(b *testing.B) {
	var s strings.Builder
	s.WriteString("version: 1\ndefaults: {input: drop, forward: accept, output: accept}\nrules:\n")
	for i := range 10_000 {
		fmt.Fprintf(&s, "  - {name: port-%d, direction: input, ports: [{protocol: tcp, port: %d}], action: accept}\n", 1024+i, 1024+i)
	}
	data := []byte(s.String())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("policy.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}
