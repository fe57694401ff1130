package policy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestLoadFailsafe(t *testing.T) {
	tcp := func(first, last uint16) PortRange { return PortRange{Protocol: TCP, Port: first, EndPort: last} }
	for _, tc := range []struct {
		name, yaml string
		want       []PortRange
		wantErr    string
	}{
		{name: "a broken rule does not matter",
			yaml: "version: 1\nfailsafe: [{protocol: tcp, port: 2222}]\nrules:\n  - name: Bad_Name\n    action: maybe\n",
			want: []PortRange{tcp(2222, 2222)}},
		{name: "unknown fields and a wrong version do not matter",
			yaml: "version: 7\nfailsafe:\n  - {protocol: tcp, port: 2222, endPort: 2223}\n  - {protocol: udp, port: 60001}\nrulez: []\n",
			want: []PortRange{tcp(2222, 2223), {Protocol: UDP, Port: 60001, EndPort: 60001}}},
		{name: "absent means tcp/22",
			yaml: "version: 1\nrules: 3\n",
			want: []PortRange{tcp(22, 22)}},
		{name: "an empty list disables it",
			yaml: "version: 1\nfailsafe: []\nrules: 3\n",
			want: []PortRange{}},
		{name: "an invalid section is not trusted",
			yaml:    "version: 1\nfailsafe: [{protocol: tcp, port: 2222}, {protocol: tcp, port: 70000}]\n",
			wantErr: "policy.yaml:2:63: failsafe[1].port: port 70000 is out of range"},
		{name: "a failsafe entry must name a port",
			yaml:    "version: 1\nfailsafe: [{protocol: tcp}]\n",
			wantErr: "policy.yaml:2:12: failsafe[0].port: required field is missing"},
		{name: "written twice",
			yaml:    "version: 1\nfailsafe: [{protocol: tcp, port: 2222}]\nfailsafe: []\n",
			wantErr: "policy.yaml:3:1: failsafe: duplicate key"},
		{name: "not YAML",
			yaml:    "version: 1\nfailsafe: [{protocol: tcp, port: 2222}\n  rules: {\n",
			wantErr: "policy.yaml:"},
		{name: "not a mapping",
			yaml:    "- version: 1\n",
			wantErr: "policy.yaml:1:1: not a policy mapping"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "policy.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := LoadFailsafe(path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q (ports %v)", err, tc.wantErr, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("ports %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := LoadFailsafe(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("a missing file gave no error")
	}
}

func TestParsePorts(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    string
		wantErr string
	}{
		{in: "tcp/22", want: "tcp/22"},
		{in: " tcp/2222, udp/51820-51821 ,sctp/9", want: "tcp/2222,udp/51820-51821,sctp/9"},
		{in: "", want: ""},
		{in: "none", want: ""},
		{in: "22", wantErr: `"22": write PROTOCOL/PORT`},
		{in: "icmp/1", wantErr: `protocol "icmp" has no ports`},
		{in: "tcp/0", wantErr: `port "0" is not a number from 1 to 65535`},
		{in: "tcp/65536", wantErr: `port "65536"`},
		{in: "tcp/30-20", wantErr: "the range ends before it starts"},
		{in: "tcp/22,", wantErr: `"": write PROTOCOL/PORT`},
	} {
		got, err := ParsePorts(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParsePorts(%q): error %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParsePorts(%q): %v", tc.in, err)
			continue
		}
		var s []string
		for _, p := range got {
			s = append(s, p.String())
		}
		if strings.Join(s, ",") != tc.want {
			t.Errorf("ParsePorts(%q) = %v, want %s", tc.in, s, tc.want)
		}
	}
}
