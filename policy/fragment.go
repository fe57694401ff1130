package policy

import "io/fs"

// Fragment is a drop-in that is no file of the host: a HostFirewallPolicy
// object's spec.policy, for one. Fragments are merged after the host's
// drop-ins, in the order given, under the same rules as a drop-in
// (defaults and failsafe only in the main file, names unique across all).
type Fragment struct {
	// Name names the fragment in errors and in the positions of what it
	// defines (Rule.Pos.File), e.g. hostfirewallpolicy/web. It is not a
	// path, and Policy.Files does not list it.
	Name string
	// Data is a YAML (or JSON) document in the schema of a drop-in. A set
	// file it names would be read relative to nothing: a fragment's sets
	// are inline lists (its source checks that).
	Data []byte
}

// LoadFSWith is LoadFS with frags merged after the host's drop-ins.
func LoadFSWith(fsys fs.FS, path string, frags []Fragment) (*Policy, error) {
	l := newLoader(fsys)
	l.readFiles(path)
	l.decodeFragments(frags)
	return l.finish()
}

// ReadBundleWith is ReadBundle with frags merged after the host's
// drop-ins. The bundle holds the host's files only.
func ReadBundleWith(path string, frags []Fragment) (*Policy, Bundle, error) {
	l := newLoader(osRoot())
	l.bundle = Bundle{}
	l.readFiles(path)
	l.decodeFragments(frags)
	p, err := l.finish()
	if err != nil {
		return nil, nil, err
	}
	return p, l.bundle, nil
}

// decodeFragments decodes each fragment as a drop-in.
func (l *loader) decodeFragments(frags []Fragment) {
	for _, f := range frags {
		l.yamlFiles = append(l.yamlFiles, f.Name)
		d := &decoder{file: f.Name, dir: ".", l: l}
		if len(f.Data) > maxPolicyFileSize {
			l.add(&Error{Pos: Pos{File: f.Name, Line: 1, Col: 1}, Msg: tooLarge(maxPolicyFileSize).Error()})
			continue
		}
		if root := d.parseDocument(f.Data); root != nil {
			d.top(root, false)
		}
	}
}
