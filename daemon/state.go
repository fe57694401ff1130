package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/edgefw/edgefw/policy"
)

// Files in the state directory.
const (
	lastGoodFile = "last-good.json"
	pendingFile  = "pending-confirm.json"
)

// savedPolicy is a policy as persisted: parsed and validated, so it can be
// installed at boot without reading the policy files or resolving names.
type savedPolicy struct {
	Source PolicySource   `json:"source"`
	Policy *policy.Policy `json:"policy"`
}

func saveLastGood(dir string, s *savedPolicy) error {
	return writeFileJSON(filepath.Join(dir, lastGoodFile), s)
}

func loadLastGood(dir string) (*savedPolicy, error) {
	var s savedPolicy
	ok, err := readFileJSON(filepath.Join(dir, lastGoodFile), &s)
	if !ok || err != nil {
		return nil, err
	}
	if s.Policy == nil {
		return nil, errors.New("last-good state holds no policy")
	}
	return &s, nil
}

func savePending(dir string, p *pendingState) error {
	return writeFileJSON(filepath.Join(dir, pendingFile), p)
}

func loadPending(dir string) (*pendingState, error) {
	var p pendingState
	ok, err := readFileJSON(filepath.Join(dir, pendingFile), &p)
	if !ok || err != nil {
		return nil, err
	}
	return &p, nil
}

func removePending(dir string) error {
	err := os.Remove(filepath.Join(dir, pendingFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// writeFileJSON replaces path with v in JSON, atomically (writeFileAtomic).
func writeFileJSON(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return writeFileAtomic(path, data)
}

// writeFileAtomic replaces path with data atomically: a crash leaves the
// old or the new file, never half of one.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
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

func readFileJSON(path string, v any) (bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("decode %s: %w", path, err)
	}
	return true, nil
}

// SaveLastGood persists a policy that was just applied by other means
// (edgefwd --once), so the next daemon start installs it first.
func SaveLastGood(dir, path string, pol *policy.Policy) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return saveLastGood(dir, &savedPolicy{Source: sourceOf(path, pol, false), Policy: pol})
}

// LastGoodTunnels names the tunnels of the last applied policy, so a
// restarted daemon can remove interfaces it created for tunnels that
// were dropped from the policy while it was stopped.
func LastGoodTunnels(dir string) []string {
	s, err := loadLastGood(dir)
	if err != nil || s == nil {
		return nil
	}
	var names []string
	for _, t := range s.Policy.Tunnels {
		names = append(names, t.Name)
	}
	return names
}
