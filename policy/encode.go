package policy

import (
	"encoding/base64"
	"fmt"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// Encode renders a policy as a single version 1 YAML document that Parse
// accepts: set files become inline lists and file paths stay absolute.
// Parse(file, Encode(p)) gives back p (but for positions and Files).
func Encode(p *Policy) []byte {
	doc := yamlMap(
		"version", yamlScalar(strconv.Itoa(p.Version)),
		"defaults", yamlMap(
			"input", yamlScalar(string(p.Defaults.Input)),
			"forward", yamlScalar(string(p.Defaults.Forward)),
			"output", yamlScalar(string(p.Defaults.Output))),
		"failsafe", portsNode(p.Failsafe))
	if len(p.Sets) > 0 {
		sets := yamlMap()
		for _, s := range p.Sets {
			list := yamlSeq()
			for _, pr := range s.Prefixes {
				list.Content = append(list.Content, yamlScalar(pr.String()))
			}
			sets.Content = append(sets.Content, yamlScalar(s.Name), list)
		}
		yamlAdd(doc, "sets", sets)
	}
	if len(p.Rules) > 0 {
		rules := yamlSeq()
		for _, r := range p.Rules {
			rules.Content = append(rules.Content, ruleNode(r))
		}
		yamlAdd(doc, "rules", rules)
	}
	if len(p.Tunnels) > 0 {
		tunnels := yamlSeq()
		for _, t := range p.Tunnels {
			tunnels.Content = append(tunnels.Content, tunnelNode(t))
		}
		yamlAdd(doc, "tunnels", tunnels)
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		// Marshalling a tree of plain scalars cannot fail.
		panic(fmt.Sprintf("policy: encode: %v", err))
	}
	return out
}

// Revalidate runs every check of Parse on a policy that was not parsed
// here (it came over the control socket or from the state directory), so
// the same rules guard every way into the kernel. file names the policy
// in error messages. The result keeps p's Files.
func Revalidate(file string, p *Policy) (*Policy, error) {
	if p == nil {
		return nil, ErrorList{{Pos: Pos{File: file}, Msg: "no policy"}}
	}
	q, err := Parse(file, Encode(p))
	if err != nil {
		return nil, err
	}
	q.Files = p.Files
	return q, nil
}

func yamlScalar(v string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Value: v}
}

// str is a scalar that always stays a string (e.g. "22" or "yes" quoted).
func yamlStr(v string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
}

func yamlMap(kv ...any) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	for i := 0; i+1 < len(kv); i += 2 {
		yamlAdd(n, kv[i].(string), kv[i+1].(*yaml.Node))
	}
	return n
}

func yamlAdd(m *yaml.Node, key string, v *yaml.Node) {
	m.Content = append(m.Content, yamlScalar(key), v)
}

func yamlSeq() *yaml.Node { return &yaml.Node{Kind: yaml.SequenceNode} }

func portsNode(ports []PortRange) *yaml.Node {
	list := yamlSeq()
	for _, pr := range ports {
		e := yamlMap("protocol", yamlScalar(string(pr.Protocol)))
		if pr.Protocol.HasPorts() && !pr.AllPorts() {
			yamlAdd(e, "port", yamlScalar(strconv.Itoa(int(pr.Port))))
			if pr.EndPort != pr.Port {
				yamlAdd(e, "endPort", yamlScalar(strconv.Itoa(int(pr.EndPort))))
			}
		}
		list.Content = append(list.Content, e)
	}
	return list
}

func peersNode(peers []Peer) *yaml.Node {
	list := yamlSeq()
	for _, pe := range peers {
		e := yamlMap()
		switch {
		case pe.CIDR.IsValid():
			yamlAdd(e, "cidr", yamlStr(pe.CIDR.String()))
			if len(pe.Except) > 0 {
				ex := yamlSeq()
				for _, x := range pe.Except {
					ex.Content = append(ex.Content, yamlStr(x.String()))
				}
				yamlAdd(e, "except", ex)
			}
		case pe.Set != "":
			yamlAdd(e, "set", yamlStr(pe.Set))
		default:
			yamlAdd(e, "interface", yamlStr(pe.Interface))
		}
		list.Content = append(list.Content, e)
	}
	return list
}

func ruleNode(r Rule) *yaml.Node {
	n := yamlMap("name", yamlStr(r.Name), "direction", yamlScalar(string(r.Direction)))
	if len(r.From) > 0 {
		yamlAdd(n, "from", peersNode(r.From))
	}
	if len(r.To) > 0 {
		yamlAdd(n, "to", peersNode(r.To))
	}
	if len(r.Ports) > 0 {
		yamlAdd(n, "ports", portsNode(r.Ports))
	}
	yamlAdd(n, "action", yamlScalar(string(r.Action)))
	if r.Log {
		yamlAdd(n, "log", yamlScalar("true"))
	}
	if r.Family != Any {
		yamlAdd(n, "family", yamlScalar(string(r.Family)))
	}
	if l := r.Limit; l != nil {
		yamlAdd(n, "limit", yamlMap(
			"rate", yamlStr(fmt.Sprintf("%d/%s", l.Rate, l.Per)),
			"burst", yamlScalar(strconv.FormatUint(uint64(l.Burst), 10)),
			"perSource", yamlScalar(strconv.FormatBool(l.PerSource))))
	}
	if c := r.ConnLimit; c != nil {
		yamlAdd(n, "connLimit", yamlMap(
			"max", yamlScalar(strconv.FormatUint(uint64(c.Max), 10)),
			"perSource", yamlScalar(strconv.FormatBool(c.PerSource))))
	}
	return n
}

func tunnelNode(t Tunnel) *yaml.Node {
	n := yamlMap("name", yamlStr(t.Name), "privateKeyFile", yamlStr(t.PrivateKeyFile))
	if t.Backend != "" {
		yamlAdd(n, "backend", yamlScalar(string(t.Backend)))
	}
	if t.ListenPort != 0 {
		yamlAdd(n, "listenPort", yamlScalar(strconv.Itoa(int(t.ListenPort))))
	}
	addrs := yamlSeq()
	for _, a := range t.Addresses {
		addrs.Content = append(addrs.Content, yamlStr(a.String()))
	}
	yamlAdd(n, "addresses", addrs)
	if t.MTU != 0 {
		yamlAdd(n, "mtu", yamlScalar(strconv.Itoa(t.MTU)))
	}
	peers := yamlSeq()
	for _, p := range t.Peers {
		e := yamlMap("name", yamlStr(p.Name), "publicKey", yamlStr(base64.StdEncoding.EncodeToString(p.PublicKey[:])))
		if p.PresharedKeyFile != "" {
			yamlAdd(e, "presharedKeyFile", yamlStr(p.PresharedKeyFile))
		}
		if p.Endpoint != "" {
			yamlAdd(e, "endpoint", yamlStr(p.Endpoint))
		}
		allowed := yamlSeq()
		for _, a := range p.AllowedIPs {
			allowed.Content = append(allowed.Content, yamlStr(a.String()))
		}
		yamlAdd(e, "allowedIPs", allowed)
		if p.PersistentKeepalive != 0 {
			yamlAdd(e, "persistentKeepalive", yamlStr(p.PersistentKeepalive.String()))
		}
		peers.Content = append(peers.Content, e)
	}
	yamlAdd(n, "peers", peers)
	return n
}
