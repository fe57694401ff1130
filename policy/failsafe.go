package policy

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// LoadFailsafe reads only the failsafe section of the main policy file at
// path. A daemon whose policy does not load, and which has no earlier
// ruleset to fall back on, still opens the ports the operator declared
// for anti-lockout: a typo in a rule must not lock out an operator whose
// SSH listens on another port than 22. The section is held to the same
// checks as in a full load; absent, it means tcp/22, as in a full load. It
// fails when the file cannot be read or parsed as YAML, or when the
// section itself is invalid (then nothing of it is trusted).
func LoadFailsafe(path string) ([]PortRange, error) {
	l := newLoader(osRoot())
	data, err := l.read(path, maxPolicyFileSize)
	if err != nil {
		l.fileError(path, "cannot read policy", err)
		return nil, l.errs
	}
	d := &decoder{file: path, dir: filepath.Dir(path), l: l}
	root := d.parseDocument(data)
	if len(l.errs) > 0 {
		return nil, l.errs
	}
	if root == nil || root.Kind != yaml.MappingNode {
		return nil, ErrorList{{Pos: Pos{File: path, Line: 1, Col: 1}, Msg: "not a policy mapping; no failsafe section can be read"}}
	}
	var section *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "failsafe" {
			continue
		}
		if section != nil {
			d.errorf(root.Content[i], "failsafe", "duplicate key; write failsafe once")
			return nil, l.errs
		}
		section = root.Content[i+1]
	}
	ports := d.failsafe(section)
	if len(l.errs) > 0 {
		return nil, l.errs
	}
	return ports, nil
}

// ParsePorts parses a list of ports written PROTOCOL/PORT or
// PROTOCOL/FIRST-LAST, separated by commas, such as "tcp/22,udp/51820";
// "" and "none" are the empty list. Protocols are tcp, udp and sctp. It
// reads ports given outside a policy file, such as edgefwd's --failsafe.
func ParsePorts(s string) ([]PortRange, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "none" {
		return []PortRange{}, nil
	}
	var out []PortRange
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		proto, ports, ok := strings.Cut(item, "/")
		if !ok {
			return nil, fmt.Errorf("%q: write PROTOCOL/PORT or PROTOCOL/FIRST-LAST, like tcp/22", item)
		}
		pr := PortRange{Protocol: Protocol(proto)}
		if !pr.Protocol.HasPorts() {
			return nil, fmt.Errorf("%q: protocol %q has no ports; valid protocols are tcp, udp and sctp", item, proto)
		}
		first, last, isRange := strings.Cut(ports, "-")
		var err error
		if pr.Port, err = parsePortNumber(first); err != nil {
			return nil, fmt.Errorf("%q: %w", item, err)
		}
		pr.EndPort = pr.Port
		if isRange {
			if pr.EndPort, err = parsePortNumber(last); err != nil {
				return nil, fmt.Errorf("%q: %w", item, err)
			}
			if pr.EndPort < pr.Port {
				return nil, fmt.Errorf("%q: the range ends before it starts", item)
			}
		}
		out = append(out, pr)
	}
	return out, nil
}

func parsePortNumber(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("port %q is not a number from 1 to 65535", s)
	}
	return uint16(n), nil
}

// String writes the port range as ParsePorts reads it: tcp/22,
// udp/30000-32767, or the protocol alone when it matches every port.
func (p PortRange) String() string {
	switch {
	case p.AllPorts():
		return string(p.Protocol)
	case p.Port == p.EndPort:
		return fmt.Sprintf("%s/%d", p.Protocol, p.Port)
	}
	return fmt.Sprintf("%s/%d-%d", p.Protocol, p.Port, p.EndPort)
}
