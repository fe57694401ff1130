package kube

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/edgefw/edgefw/policy"
)

// SavedFile is the file of the state directory that keeps the cluster
// objects last applied, for a start without the API server.
const SavedFile = "cluster-policy.json"

// View is what a merge chose: the objects applied and rejected, and
// where they came from.
type View struct {
	// Live is true when the objects are the API server's (the source
	// synced), false when they are the copy saved in the state directory.
	Live bool
	// Reachable and LastError are the source's (see Snapshot).
	Reachable bool
	LastError string
	Accepted  []Object
	Rejected  []Rejection
}

// Agent is a node's cluster policy: the source's snapshot while it is
// synced, else the objects last applied, saved in the state directory.
type Agent struct {
	src   *Source
	saved string // path of SavedFile

	mu   sync.Mutex
	last View // of the last Merge
}

// NewAgent is the cluster policy of src, saved in stateDir.
func NewAgent(src *Source, stateDir string) *Agent {
	return &Agent{src: src, saved: filepath.Join(stateDir, SavedFile)}
}

// Source is the agent's source.
func (a *Agent) Source() *Source { return a.src }

// Changed signals a new snapshot.
func (a *Agent) Changed() <-chan struct{} { return a.src.Changed() }

// Merge chooses the objects to apply with the host's policy (see the
// package function Merge) and remembers them for Applied.
func (a *Agent) Merge(load func([]policy.Fragment) error) (View, error) {
	snap := a.src.Snapshot()
	v := View{Live: snap.Synced, Reachable: snap.Reachable, LastError: snap.LastError}
	objs := snap.Objects
	if !snap.Synced {
		var err error
		if objs, err = readSaved(a.saved); err != nil {
			v.LastError = joinErrors(v.LastError, err.Error())
		}
	}
	accepted, rejected, err := Merge(objs, load)
	if err != nil {
		return v, err
	}
	v.Accepted, v.Rejected = accepted, rejected
	if snap.Synced {
		v.Rejected = append(slices.Clone(snap.Invalid), rejected...)
	}
	a.mu.Lock()
	a.last = v
	a.mu.Unlock()
	return v, nil
}

// Last is the view of the last Merge.
func (a *Agent) Last() View {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last
}

// Applied saves the objects of the last Merge as the cluster policy in
// force, atomically, when they came from the API server.
func (a *Agent) Applied() error {
	v := a.Last()
	if !v.Live {
		return nil
	}
	return writeSaved(a.saved, v.Accepted)
}

func readSaved(path string) ([]Object, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("saved cluster policy: %w", err)
	}
	var objs []Object
	if err := json.Unmarshal(data, &objs); err != nil {
		return nil, fmt.Errorf("saved cluster policy %s: %w", path, err)
	}
	return objs, nil
}

// writeSaved replaces path with objs: a new file synced, then renamed
// over the old, so a crash leaves one or the other.
func writeSaved(path string, objs []Object) error {
	if objs == nil {
		objs = []Object{}
	}
	data, err := json.Marshal(objs)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func joinErrors(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
