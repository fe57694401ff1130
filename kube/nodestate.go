package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
)

// NodeStateInterval is how often the node state is written while nothing
// changes: observedTime tells a reader the node is alive.
const NodeStateInterval = 5 * time.Minute

// retryInterval is how long a failed write waits before it is tried again.
const retryInterval = 10 * time.Second

// fieldManager owns the fields edgefwd applies.
const fieldManager = "edgefwd"

// NodeStatus is a HostFirewallNodeState's status
// (deploy/kubernetes/hostfirewallnodestates.yaml).
type NodeStatus struct {
	ObservedTime   string        `json:"observedTime,omitempty"`
	HostPolicyHash string        `json:"hostPolicyHash,omitempty"`
	Policies       []PolicyState `json:"policies"`
	RulesetHash    string        `json:"rulesetHash,omitempty"`
	LastApplyTime  string        `json:"lastApplyTime,omitempty"`
	LastApplyError string        `json:"lastApplyError,omitempty"`
	DriftRepairs   int64         `json:"driftRepairs"`
	// APISource is Live or Saved (see View.Live).
	APISource  string        `json:"apiSource,omitempty"`
	Tunnels    []TunnelState `json:"tunnels,omitempty"`
	Conditions []Condition   `json:"conditions"`
}

// PolicyState is one HostFirewallPolicy as the node applied it.
type PolicyState struct {
	Name       string `json:"name"`
	Generation int64  `json:"generation"`
	Hash       string `json:"hash,omitempty"`
	Mode       string `json:"mode,omitempty"`
	// State is Applied, Rejected or Failed.
	State string `json:"state"`
	Rules int    `json:"rules"`
	Error string `json:"error,omitempty"`
}

// TunnelState is a tunnel's health.
type TunnelState struct {
	Name    string      `json:"name"`
	Backend string      `json:"backend,omitempty"`
	PeersUp int         `json:"peersUp"`
	Peers   []PeerState `json:"peers,omitempty"`
}

// PeerState is a tunnel peer's health.
type PeerState struct {
	Name              string `json:"name"`
	Up                bool   `json:"up"`
	LastHandshakeTime string `json:"lastHandshakeTime,omitempty"`
}

// Condition is a status condition (metav1.Condition's fields).
type Condition struct {
	Type               string `json:"type"`
	Status             string `json:"status"`
	LastTransitionTime string `json:"lastTransitionTime"`
	Reason             string `json:"reason"`
	Message            string `json:"message"`
}

// NodeStateWriter writes the node's HostFirewallNodeState, named after
// it, by server-side apply through the node's own identity: at once when
// the status changes, and every NodeStateInterval otherwise.
type NodeStateWriter struct {
	client dynamic.Interface
	node   string
	now    func() time.Time

	mu      sync.Mutex
	want    *NodeStatus // the latest status given, nil before the first
	written *NodeStatus // the last written, as given
	kick    chan struct{}
}

// NewNodeStateWriter writes the state of node through client.
func NewNodeStateWriter(client dynamic.Interface, node string) *NodeStateWriter {
	return &NodeStateWriter{client: client, node: node, now: time.Now, kick: make(chan struct{}, 1)}
}

// Update sets the status to write; a change is written at once. The
// conditions' lastTransitionTime stays as written while their status
// does not change.
func (w *NodeStateWriter) Update(st NodeStatus) {
	st = st.clone() // the caller may reuse its slices
	w.mu.Lock()
	if prev := w.want; prev != nil {
		for i, c := range st.Conditions {
			for _, p := range prev.Conditions {
				if p.Type == c.Type && p.Status == c.Status {
					st.Conditions[i].LastTransitionTime = p.LastTransitionTime
				}
			}
		}
	}
	w.want = &st
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Run writes until ctx ends; onErr hears each failed write.
func (w *NodeStateWriter) Run(ctx context.Context, onErr func(error)) {
	t := time.NewTimer(NodeStateInterval)
	defer t.Stop()
	for {
		heartbeat := false
		select {
		case <-ctx.Done():
			return
		case <-w.kick:
		case <-t.C:
			heartbeat = true
		}
		w.mu.Lock()
		want, written := w.want, w.written
		w.mu.Unlock()
		next := NodeStateInterval
		if want != nil && (heartbeat || written == nil || !reflect.DeepEqual(*want, *written)) {
			if err := w.write(ctx, *want); err != nil {
				onErr(err)
				next = retryInterval
			} else {
				w.mu.Lock()
				w.written = want
				w.mu.Unlock()
			}
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(next)
	}
}

// write applies the object, then its status.
func (w *NodeStateWriter) write(ctx context.Context, st NodeStatus) error {
	st.ObservedTime = w.now().UTC().Format(time.RFC3339)
	raw, err := json.Marshal(st)
	if err != nil {
		return err
	}
	var status map[string]any
	if err := json.Unmarshal(raw, &status); err != nil {
		return err
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": Group + "/" + Version, "kind": "HostFirewallNodeState",
		"metadata": map[string]any{"name": w.node},
	}}
	states := w.client.Resource(NodeStateResource)
	opts := metav1.ApplyOptions{FieldManager: fieldManager, Force: true}
	withStatus := obj.DeepCopy()
	withStatus.Object["status"] = status
	_, err = states.ApplyStatus(ctx, w.node, withStatus, opts)
	if apierrors.IsNotFound(err) {
		// The first write: the status subresource needs the object.
		if _, err := states.Apply(ctx, w.node, obj, opts); err != nil {
			return fmt.Errorf("create HostFirewallNodeState %s: %w", w.node, err)
		}
		_, err = states.ApplyStatus(ctx, w.node, withStatus, opts)
	}
	if err != nil {
		return fmt.Errorf("apply HostFirewallNodeState %s status: %w", w.node, err)
	}
	return nil
}

// clone is a deep copy of st.
func (st NodeStatus) clone() NodeStatus {
	st.Policies = slices.Clone(st.Policies)
	st.Conditions = slices.Clone(st.Conditions)
	st.Tunnels = slices.Clone(st.Tunnels)
	for i := range st.Tunnels {
		st.Tunnels[i].Peers = slices.Clone(st.Tunnels[i].Peers)
	}
	return st
}
