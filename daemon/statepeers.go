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
	// simple is a file name found to need no escaping: the positions of
	// all peers name the same file, most likely.
	var simple string
	out = append(out, '[')
	for i := range ps {
		p := &ps[i]
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"Name":`...)
		out = appendJSONString(out, p.Name)
		out = append(out, `,"PublicKey":`...)
		out = appendKeyBytes(out, &p.PublicKey)
		out = append(out, `,"PresharedKeyFile":`...)
		out = appendJSONString(out, p.PresharedKeyFile)
		out = append(out, `,"Endpoint":`...)
		out = appendJSONString(out, p.Endpoint)
		out = append(out, `,"AllowedIPs":`...)
		out = appendPrefixes(out, p.AllowedIPs)
		out = append(out, `,"PersistentKeepalive":`...)
		out = strconv.AppendInt(out, int64(p.PersistentKeepalive), 10)
		out = append(out, `,"Pos":`...)
		out = appendPos(out, p.Pos, &simple)
		out = append(out, `,"PresharedKeyFilePos":`...)
		out = appendPos(out, p.PresharedKeyFilePos, &simple)
		out = append(out, '}')
	}
	return append(out, ']')
}

// peersSize is about the length of appendPeers' JSON of ps, at least
// when their strings need no escaping: the room to make for it up front,
// as growing a buffer of megabytes copies it each time.
func peersSize(ps []policy.TunnelPeer) int {
	n := 2
	for i := range ps {
		p := &ps[i]
		n += 300 + len(p.Name) + len(p.PresharedKeyFile) + len(p.Endpoint) + len(p.Pos.File) + len(p.PresharedKeyFilePos.File) +
			len(p.AllowedIPs)*45
	}
	return n
}

// appendKeyBytes appends the JSON of a [32]byte, an array of 32 numbers:
// 320,000 of them for 10,000 peers, whose digits are written here.
func appendKeyBytes(out []byte, key *[32]byte) []byte {
	out = append(out, '[')
	for j, b := range key {
		if j > 0 {
			out = append(out, ',')
		}
		switch {
		case b >= 100:
			out = append(out, '0'+b/100, '0'+b/10%10, '0'+b%10)
		case b >= 10:
			out = append(out, '0'+b/10, '0'+b%10)
		default:
			out = append(out, '0'+b)
		}
	}
	return append(out, ']')
}

func appendPos(out []byte, p policy.Pos, simple *string) []byte {
	out = append(out, `{"File":`...)
	if p.File == "" || p.File == *simple {
		out = append(out, '"')
		out = append(out, p.File...)
		out = append(out, '"')
	} else {
		out = appendJSONString(out, p.File)
		if jsonSimple(p.File) {
			*simple = p.File
		}
	}
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
	if !jsonSimple(s) {
		b, _ := json.Marshal(s) // a string always encodes
		return append(out, b...)
	}
	out = append(out, '"')
	out = append(out, s...)
	return append(out, '"')
}

// jsonSimple reports whether encoding/json writes s as it is, in quotes.
func jsonSimple(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}
