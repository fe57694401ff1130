package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/edgefw/edgefw/policy"
	"github.com/edgefw/edgefw/wg"
)

// Cluster is policy from the Kubernetes API (kube.Agent, wired by
// cmd/edgefwd): objects merged after the host's files at every reload.
type Cluster interface {
	// Changed signals that the cluster's policy changed: a reload follows.
	Changed() <-chan struct{}
	// Merge chooses the objects to apply: load loads the host's files
	// with the fragments given, and the last call that succeeds is with
	// the objects applied (kube.Merge).
	Merge(load func([]policy.Fragment) error) (ClusterStatus, error)
	// Applied reports an apply of the merged policy (err nil: in force),
	// which saves it and updates the node's state in the cluster.
	Applied(NodeReport, error)
}

// ClusterStatus is the cluster source as status shows it.
type ClusterStatus struct {
	// Reachable says whether the API server answered the last request.
	Reachable bool   `json:"reachable"`
	LastError string `json:"lastError,omitempty"`
	// Source is Live (the API server's objects) or Saved (the copy kept
	// in the state directory, while the API server was not reached).
	Source   string          `json:"source"`
	Policies []ClusterPolicy `json:"policies"`
}

// ClusterPolicy is one HostFirewallPolicy selecting the node.
type ClusterPolicy struct {
	Name       string `json:"name"`
	Generation int64  `json:"generation"`
	Hash       string `json:"hash,omitempty"`
	Mode       string `json:"mode,omitempty"`
	// State is Applied or Rejected (invalid or conflicting: the rest
	// applies without it).
	State string `json:"state"`
	Rules int    `json:"rules"`
	Error string `json:"error,omitempty"`
}

// NodeReport is what the node's state in the cluster says of an apply.
type NodeReport struct {
	RulesetHash    string
	HostPolicyHash string
	Time           time.Time
	Error          string
	DriftRepairs   uint64
	Tunnels        []wg.TunnelStatus
}

// readPolicy reads the policy files, and the cluster's objects after
// them if the daemon has a cluster source.
func (d *Daemon) readPolicy() (*policy.Policy, PolicySource, error) {
	if d.cfg.Cluster == nil {
		return d.loader.load(d.cfg.PolicyPath)
	}
	var pol *policy.Policy
	var files policy.Bundle
	st, err := d.cfg.Cluster.Merge(func(frags []policy.Fragment) error {
		p, b, err := policy.ReadBundleWith(d.cfg.PolicyPath, frags)
		if err == nil {
			pol, files = p, b
		}
		return err
	})
	if err != nil {
		// The host's own files do not load: the node state says so.
		d.clusterApplied(d.loopContext(), err)
		return nil, PolicySource{}, err
	}
	d.mu.Lock()
	d.cluster = &st
	d.mu.Unlock()
	return pol, sourceFrom(d.cfg.PolicyPath, pol.Files, false, func(file string) ([]byte, error) { return files[file], nil }, nil), nil
}

// clusterApplied tells the cluster source how the reload's apply went.
func (d *Daemon) clusterApplied(ctx context.Context, err error) {
	if d.cfg.Cluster == nil {
		return
	}
	rep := NodeReport{Time: d.now()}
	d.mu.Lock()
	cur, drift := d.cur, d.drift
	d.mu.Unlock()
	rep.DriftRepairs = drift
	if cur != nil {
		sum := sha256.Sum256([]byte(cur.rs.String()))
		rep.RulesetHash = "sha256:" + hex.EncodeToString(sum[:])
		rep.HostPolicyHash = "sha256:" + cur.source.Hash
	}
	if err != nil {
		rep.Error = err.Error()
	}
	if tun, terr := d.Tunnels(ctx); terr == nil {
		rep.Tunnels = tun
	}
	d.cfg.Cluster.Applied(rep, err)
}

// followCluster reloads whenever the cluster's policy changes.
func (d *Daemon) followCluster(ctx context.Context) {
	if d.cfg.Cluster == nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.cfg.Cluster.Changed():
			d.Reload(ctx, "cluster")
		}
	}
}

// clusterStatus is the cluster source's status, nil without one.
func (d *Daemon) clusterStatus() *ClusterStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cluster == nil {
		return nil
	}
	st := *d.cluster
	return &st
}

// ruleSources maps each user rule's name to where it was written: the
// file's path, or hostfirewallpolicy/NAME for a cluster object's.
func ruleSources(pol *policy.Policy) map[string]string {
	out := make(map[string]string, len(pol.Rules))
	for _, r := range pol.Rules {
		out[r.Name] = r.Pos.File
	}
	return out
}

// loopContext is the context Run was given, or Background before Run.
func (d *Daemon) loopContext() context.Context {
	if ctx := d.ctx.Load(); ctx != nil {
		return *ctx
	}
	return context.Background()
}
