package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/edgefw/edgefw/daemon"
	"github.com/edgefw/edgefw/kube"
	"github.com/edgefw/edgefw/policy"
)

// cluster is the daemon's view of kube.Agent: the HostFirewallPolicy
// objects selecting this node, and its HostFirewallNodeState.
type cluster struct {
	agent *kube.Agent
	state *kube.NodeStateWriter
	log   *slog.Logger
}

// newCluster starts watching the API server of kubeconfig for the node.
func newCluster(ctx context.Context, kubeconfig, node, stateDir string, log *slog.Logger) (*cluster, error) {
	cfg, err := kube.RESTConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	src, err := kube.NewSource(cfg, node)
	if err != nil {
		return nil, fmt.Errorf("kubernetes source: %w", err)
	}
	go src.Run(ctx)
	c := &cluster{agent: kube.NewAgent(src, stateDir), log: log}
	c.state = kube.NewNodeStateWriter(src.Client(), node)
	go c.state.Run(ctx, func(err error) { log.Warn("node state not written", "node", node, "error", err) })
	return c, nil
}

// Changed signals a new snapshot of the cluster's policy.
func (c *cluster) Changed() <-chan struct{} { return c.agent.Changed() }

// Merge chooses the objects the host applies.
func (c *cluster) Merge(load func([]policy.Fragment) error) (daemon.ClusterStatus, error) {
	v, err := c.agent.Merge(load)
	if err != nil {
		return daemon.ClusterStatus{}, err
	}
	c.log.Debug("cluster policy merged", "live", v.Live, "reachable", v.Reachable, "last_error", v.LastError,
		"applied", len(v.Accepted), "rejected", len(v.Rejected))
	st := daemon.ClusterStatus{Reachable: v.Reachable, LastError: v.LastError, Source: "Live", Policies: []daemon.ClusterPolicy{}}
	if !v.Live {
		st.Source = "Saved"
	}
	for _, o := range v.Accepted {
		rules, _ := o.Policy["rules"].([]any)
		st.Policies = append(st.Policies, daemon.ClusterPolicy{Name: o.Name, Generation: o.Generation, Hash: o.Hash,
			Mode: o.Mode, State: "Applied", Rules: len(rules)})
	}
	for _, r := range v.Rejected {
		c.log.Warn("cluster policy rejected; the rest applies", "policy", r.Name, "generation", r.Generation, "error", r.Err)
		st.Policies = append(st.Policies, daemon.ClusterPolicy{Name: r.Name, Generation: r.Generation, State: "Rejected", Error: r.Err.Error()})
	}
	return st, nil
}

// Applied saves the objects in force and reports the apply in the
// node's state.
func (c *cluster) Applied(rep daemon.NodeReport, err error) {
	v := c.agent.Last()
	if err == nil {
		if serr := c.agent.Applied(); serr != nil {
			c.log.Warn("cluster policy not saved in the state directory", "error", serr)
		}
	}
	c.state.Update(nodeStatus(v, rep, err))
}

// nodeStatus is the node's HostFirewallNodeState status after an apply
// of the merge v (err nil: in force).
func nodeStatus(v kube.View, rep daemon.NodeReport, err error) kube.NodeStatus {
	st := kube.NodeStatus{
		HostPolicyHash: rep.HostPolicyHash, RulesetHash: rep.RulesetHash, Policies: []kube.PolicyState{},
		LastApplyTime: rep.Time.UTC().Format(time.RFC3339), LastApplyError: rep.Error,
		DriftRepairs: int64(rep.DriftRepairs), APISource: "Saved",
	}
	if v.Live {
		st.APISource = "Live"
	}
	state := "Applied"
	if err != nil {
		state = "Failed"
	}
	for _, o := range v.Accepted {
		rules, _ := o.Policy["rules"].([]any)
		ps := kube.PolicyState{Name: o.Name, Generation: o.Generation, Hash: o.Hash, Mode: o.Mode, State: state, Rules: len(rules)}
		if err != nil {
			ps.Error = err.Error()
		}
		st.Policies = append(st.Policies, ps)
	}
	for _, r := range v.Rejected {
		st.Policies = append(st.Policies, kube.PolicyState{Name: r.Name, Generation: r.Generation, State: "Rejected", Error: r.Err.Error()})
	}
	for _, t := range rep.Tunnels {
		ts := kube.TunnelState{Name: t.Name, Backend: t.Backend}
		for _, p := range t.Peers {
			if p.Name == "" {
				continue
			}
			ps := kube.PeerState{Name: p.Name, Up: p.Up}
			if !p.LastHandshake.IsZero() {
				ps.LastHandshakeTime = p.LastHandshake.UTC().Format(time.RFC3339)
			}
			if p.Up {
				ts.PeersUp++
			}
			ts.Peers = append(ts.Peers, ps)
		}
		st.Tunnels = append(st.Tunnels, ts)
	}
	ready := kube.Condition{Type: "Ready", Status: "True", Reason: "Applied", Message: "ruleset applied",
		LastTransitionTime: st.LastApplyTime}
	switch {
	case err != nil:
		ready.Status, ready.Reason, ready.Message = "False", "ApplyFailed", firstLine(err.Error())
	case len(v.Rejected) > 0:
		ready.Status, ready.Reason = "False", "PolicyRejected"
		ready.Message = fmt.Sprintf("%d cluster policies rejected; the rest applied", len(v.Rejected))
	}
	reachable := kube.Condition{Type: "APIReachable", Status: "True", Reason: "Live", Message: "watching the API server",
		LastTransitionTime: st.LastApplyTime}
	if !v.Live {
		reachable.Status, reachable.Reason, reachable.Message = "False", "Saved", "enforcing the cluster policy saved in the state directory"
	}
	st.Conditions = []kube.Condition{ready, reachable}
	return st
}

// firstLine is s up to its first newline.
func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// startAggregator runs the aggregator candidate through kubeconfig (the
// aggregator's identity), standing for election as identity (the node's
// name), until ctx ends; stopped is closed once it has released the Lease.
func startAggregator(ctx context.Context, kubeconfig, identity string, log *slog.Logger) (stopped <-chan struct{}, err error) {
	cfg, err := kube.RESTConfig(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("--aggregate: %w", err)
	}
	agg, err := kube.NewAggregator(cfg, kube.AggregatorOptions{
		Identity:  identity,
		OnError:   func(err error) { log.Warn("aggregator", "error", err) },
		OnLeading: func(leading bool) { log.Info("aggregator leadership", "leading", leading, "identity", identity) },
	})
	if err != nil {
		return nil, fmt.Errorf("--aggregate: %w", err)
	}
	done := make(chan struct{})
	go func() { defer close(done); agg.Run(ctx) }()
	return done, nil
}
