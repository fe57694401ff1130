package daemon

import (
	"errors"

	"github.com/edgefw/edgefw/policy"
)

// parsedPolicyNote answers an edgefwctl that sent a parsed policy instead of
// the policy's files, as edgefwctl did before. Such a request is accepted,
// checked by policy.Validate: refusing it would break an older edgefwctl
// talking to a newer edgefwd, which the versioned API promises to serve.
const parsedPolicyNote = "deprecated: this edgefwctl sent a parsed policy, which edgefwd checks without the lines of its files; upgrade edgefwctl, which sends the policy's files for edgefwd to parse"

// load returns the policy a request carries. The files are parsed by
// policy.ParseBundle, as the daemon parses its own policy files; the
// parsed policy of an older edgefwctl is held to policy.Validate.
func (r *PolicyRequest) load() (*policy.Policy, error) {
	switch {
	case r.Files != nil && r.Policy != nil:
		return nil, errors.New("the request carries both the policy's files and a parsed policy; send the files only")
	case r.Files != nil:
		return policy.ParseBundle(r.Files, r.Path)
	case r.Policy != nil:
		if err := policy.Validate(r.Policy); err != nil {
			return nil, err
		}
		return r.Policy, nil
	}
	return nil, errors.New("no policy in the request: send the policy's files")
}

// source describes pol, the policy of the request, as applied: the hashes
// of the files sent, or, for the parsed policy of an older edgefwctl, of
// its files as the daemon can read them, as before.
func (r *PolicyRequest) source(pol *policy.Policy) PolicySource {
	if r.Files == nil {
		return sourceOf(r.Path, pol, true)
	}
	read := func(file string) ([]byte, error) { return r.Files[file], nil }
	return sourceFrom(r.Path, pol.Files, true, read, nil)
}

// note is what the answer to the request says besides its outcome: that
// a parsed policy is deprecated, if the request carries one.
func (r *PolicyRequest) note() string {
	if r.Policy != nil && r.Files == nil {
		return parsedPolicyNote
	}
	return ""
}

// withNote joins a message and a note, either of which may be empty.
func withNote(msg, note string) string {
	switch {
	case note == "":
		return msg
	case msg == "":
		return note
	}
	return msg + "; " + note
}
