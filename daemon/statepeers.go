package daemon

import (
	"encoding/json"
	"strconv"

	"github.com/edgefw/edgefw/policy"
)

// appendTunnels appends the JSON of ts as encoding/json writes a
// []policy.Tunnel, but for their peers, which appendPeers writes: through
// reflection, each peer's public key is 32 numbers, and saving the last
// good policy of a tunnel of 10,000 peers took 25 ms of a reload that
// added one peer.
func appendTunnels(out []byte, ts []policy.Tunnel) ([]byte, error) {
	if ts == nil {
		return append(out, "null"...), nil
	}
	// The shadowing field, empty and so omitted, hides the embedded one
	// of the same name from encoding/json.
	type bareTunnel struct {
		*policy.Tunnel
		Peers *struct{} `json:",omitempty"`
	}
	out = append(out, '[')
	for i := range ts {
		b, err := json.Marshal(bareTunnel{Tunnel: &ts[i]})
		if err != nil {
			return nil, err
		}
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, b[:len(b)-1]...)
		out = append(out, `,"Peers":`...)
		out = appendPeers(out, ts[i].Peers)
		out = append(out, '}')
	}
	return append(out, ']'), nil
}

// appendPeers appends the JSON of ps as encoding/json writes a
// []policy.TunnelPeer.
func appendPeers(out []byte, ps []policy.TunnelPeer) []byte {
	if ps == nil {
		return append(out, "null"...)
	}
	out = append(out, '[')
	for i := range ps {
		p := &ps[i]
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"Name":`...)
		out = appendJSONString(out, p.Name)
		out = append(out, `,"PublicKey":[`...)
		for j, b := range p.PublicKey {
			if j > 0 {
				out = append(out, ',')
			}
			out = strconv.AppendUint(out, uint64(b), 10)
		}
		out = append(out, `],"PresharedKeyFile":`...)
		out = appendJSONString(out, p.PresharedKeyFile)
		out = append(out, `,"Endpoint":`...)
		out = appendJSONString(out, p.Endpoint)
		out = append(out, `,"AllowedIPs":`...)
		out = appendPrefixes(out, p.AllowedIPs)
		out = append(out, `,"PersistentKeepalive":`...)
		out = strconv.AppendInt(out, int64(p.PersistentKeepalive), 10)
		out = append(out, `,"Pos":`...)
		out = appendPos(out, p.Pos)
		out = append(out, `,"PresharedKeyFilePos":`...)
		out = appendPos(out, p.PresharedKeyFilePos)
		out = append(out, '}')
	}
	return append(out, ']')
}

func appendPos(out []byte, p policy.Pos) []byte {
	out = append(out, `{"File":`...)
	out = appendJSONString(out, p.File)
	out = append(out, `,"Line":`...)
	out = strconv.AppendInt(out, int64(p.Line), 10)
	out = append(out, `,"Col":`...)
	out = strconv.AppendInt(out, int64(p.Col), 10)
	return append(out, '}')
}

// appendJSONString appends s as encoding/json writes a string: printable
// ASCII but for the characters it escapes is written as it is, anything
// else by encoding/json itself.
func appendJSONString(out []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always encodes
			return append(out, b...)
		}
	}
	out = append(out, '"')
	out = append(out, s...)
	return append(out, '"')
}
