package policy

// Tunnel returns the tunnel with the given name, or nil.
func (p *Policy) Tunnel(name string) *Tunnel {
	for i := range p.Tunnels {
		if p.Tunnels[i].Name == name {
			return &p.Tunnels[i]
		}
	}
	return nil
}

// Set returns the set with the given name, or nil.
func (p *Policy) Set(name string) *Set {
	for i := range p.Sets {
		if p.Sets[i].Name == name {
			return &p.Sets[i]
		}
	}
	return nil
}
