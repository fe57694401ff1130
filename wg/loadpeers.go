package wg

import (
	"fmt"
	"os"
	"slices"

	"github.com/edgefw/edgefw/policy"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// loadPeers brings the tunnel's peer states up to its declaration:
// reads preshared keys and parses changed endpoints, keeping the
// resolution and last-written endpoint of peers that stay. The states are
// kept indexed by public key across calls, so that a declaration of
// 10,000 peers that changes one allocates for that one. It returns one
// error per peer that cannot be configured as declared, and the states
// of the peers no longer declared, unchanged.
func (m *Manager) loadPeers(st *tunnelState) (errs []error, gone []*peerState) {
	if st.names == nil {
		st.names = make(map[wgtypes.Key]string, len(st.decl.Peers))
	}
	if st.byKey == nil {
		st.byKey = make(map[wgtypes.Key]*peerState, len(st.decl.Peers))
	}
	st.pass++
	peers := make([]*peerState, 0, len(st.decl.Peers))
	for _, d := range st.decl.Peers {
		peers, errs = st.loadDeclared(d, peers, errs)
	}
	for key, ps := range st.byKey {
		if ps.pass != st.pass {
			delete(st.byKey, key)
			gone = append(gone, ps)
		}
	}
	st.peers = peers
	return errs, gone
}

// loadChangedPeers is loadPeers for a declaration whose peers were prev
// when the states were last loaded. The peers declared alike at the head
// and at the tail of both lists keep their states without a look-up by
// key, and only the states of the middle of prev can be gone: with 10,000
// peers and one added, the look-ups and the search of the index for the
// peers no longer declared were most of an Apply. Preshared keys are read
// and endpoint errors reported for every peer, as loadPeers does.
func (m *Manager) loadChangedPeers(st *tunnelState, prev []policy.TunnelPeer) (errs []error, gone []*peerState) {
	decl := st.decl.Peers
	// Each state of st.peers is then that of the peer of prev at its index.
	if st.byKey == nil || len(st.peers) != len(prev) || len(st.byKey) != len(prev) {
		return m.loadPeers(st)
	}
	head, tail := sameEnds(prev, decl)
	wasMiddle := st.peers[head : len(prev)-tail]
	middle := decl[head : len(decl)-tail]
	// A peer of the middle with the key of one at the head or tail: which
	// of them is refused depends on the order of all, as loadPeers sees it.
	inMiddle := stateSet(wasMiddle)
	for _, d := range middle {
		if ps := st.byKey[wgtypes.Key(d.PublicKey)]; ps != nil && !inMiddle(ps) {
			return m.loadPeers(st)
		}
	}
	st.pass++
	peers := make([]*peerState, 0, len(decl))
	for i, d := range decl {
		if i >= head && i < len(decl)-tail {
			peers, errs = st.loadDeclared(d, peers, errs)
			continue
		}
		was := i // at the head; at the tail, as far from the end
		if i >= head {
			was = len(prev) - len(decl) + i
		}
		ps := st.peers[was]
		ps.pass = st.pass
		errs = ps.load(d, errs)
		peers = append(peers, ps)
	}
	for _, ps := range wasMiddle {
		if ps.pass != st.pass {
			delete(st.byKey, wgtypes.Key(ps.decl.PublicKey))
			gone = append(gone, ps)
		}
	}
	st.peers = peers
	return errs, gone
}

// stateSet returns whether a state is one of states: a scan for a few,
// a set for more.
func stateSet(states []*peerState) func(*peerState) bool {
	if len(states) <= 16 {
		return func(ps *peerState) bool { return slices.Contains(states, ps) }
	}
	set := make(map[*peerState]bool, len(states))
	for _, s := range states {
		set[s] = true
	}
	return func(ps *peerState) bool { return set[ps] }
}

// loadDeclared looks up and loads the state of declared peer d, and
// appends it to peers, or why it has none to errs.
func (st *tunnelState) loadDeclared(d policy.TunnelPeer, peers []*peerState, errs []error) ([]*peerState, []error) {
	ps, err := st.lookUpPeer(d)
	if ps == nil {
		return peers, append(errs, err)
	}
	return append(peers, ps), ps.load(d, errs)
}

// lookUpPeer returns the state of declared peer d, new if it has none,
// marked as found in this pass; nil and the error if a peer declared
// before in this pass has its public key.
func (st *tunnelState) lookUpPeer(d policy.TunnelPeer) (*peerState, error) {
	key := wgtypes.Key(d.PublicKey)
	ps := st.byKey[key]
	if ps != nil && ps.pass == st.pass {
		return nil, fmt.Errorf("peer %q: same public key as peer %q", d.Name, ps.decl.Name)
	}
	if st.names[key] != d.Name {
		st.names[key] = d.Name
	}
	if ps == nil {
		ps = &peerState{}
		st.byKey[key] = ps
	}
	ps.pass = st.pass
	return ps, nil
}

// load brings the state up to its declaration d: reads the preshared
// key, parses the endpoint if it changed, and appends to errs what
// cannot be configured as declared.
func (p *peerState) load(d policy.TunnelPeer, errs []error) []error {
	parsed := p.decl.PublicKey == d.PublicKey && p.decl.Endpoint == d.Endpoint
	p.decl = d
	p.psk, p.pskErr = wgtypes.Key{}, nil
	if d.PresharedKeyFile != "" {
		if p.psk, p.pskErr = readPresharedKey(d.PresharedKeyFile, os.Geteuid()); p.pskErr != nil {
			errs = append(errs, fmt.Errorf("peer %q: %w", d.Name, p.pskErr))
		}
	}
	if !parsed {
		p.ep, p.epErr = endpoint{}, nil
		if d.Endpoint != "" {
			p.ep, p.epErr = parseEndpoint(d.Endpoint)
		}
	}
	if p.epErr != nil {
		errs = append(errs, fmt.Errorf("peer %q: %w", d.Name, p.epErr))
	}
	return errs
}
