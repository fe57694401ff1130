package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// LeaseResource is coordination.k8s.io's Lease, the aggregator's election.
var LeaseResource = schema.GroupVersionResource{Group: "coordination.k8s.io", Version: "v1", Resource: "leases"}

// The aggregator's Lease (deploy/kubernetes/rbac-aggregator.yaml).
const (
	AggregatorNamespace = "edgefw-system"
	AggregatorLease     = "edgefw-aggregator"
)

// Reasons of a HostFirewallPolicy's conditions, as the aggregator writes
// them.
const (
	// ReasonAllNodesApplied: Ready True, every selected node applied the
	// current generation.
	ReasonAllNodesApplied = "AllNodesApplied"
	// ReasonProgressing: Ready False and Reconciling True, some selected
	// nodes have not reported the current generation yet.
	ReasonProgressing = "Progressing"
	// ReasonNodesFailed: Ready False and Stalled True, some selected
	// nodes rejected the current generation or failed to apply it.
	ReasonNodesFailed = "NodesFailed"
	// ReasonNoNodesMatched: Ready False and Stalled True, the nodeSelector
	// selects no node: a rollout gate must not pass on a policy that
	// reaches nothing.
	ReasonNoNodesMatched = "NoNodesMatched"
	// ReasonInvalidSelector: Ready False and Stalled True, the
	// nodeSelector cannot be read.
	ReasonInvalidSelector = "InvalidSelector"
)

// aggregatorManager is the field manager of the status the aggregator
// writes.
const aggregatorManager = "edgefw-aggregator"

// AggregatorOptions tune an Aggregator; zero values take the defaults.
type AggregatorOptions struct {
	// Identity is the candidate's holderIdentity in the Lease (the
	// node's name, say); it must differ between candidates.
	Identity string
	// Namespace and Name of the Lease: edgefw-system/edgefw-aggregator.
	Namespace, Name string
	// LeaseDuration is how long a Lease not renewed keeps its holder
	// (15 s); RenewInterval how often the leader renews it (LeaseDuration
	// / 3), RetryInterval how often a candidate tries to acquire it
	// (RenewInterval). A leader that cannot renew for 2/3 of
	// LeaseDuration steps down before another candidate may take over.
	LeaseDuration, RenewInterval, RetryInterval time.Duration
	// Debounce gathers the changes of a burst (a rollout to many nodes)
	// into one recount (250 ms).
	Debounce time.Duration
	// OnError hears failed Lease and status writes (may be nil).
	OnError func(error)
	// OnLeading hears each change of leadership (may be nil).
	OnLeading func(leading bool)
}

// Aggregator is the one edgefwd per cluster, elected with a Lease, that
// writes each HostFirewallPolicy's status from the Nodes' labels and the
// HostFirewallNodeStates: matched, applied and failed node counts,
// observedGeneration and the kstatus conditions Ready, Reconciling and
// Stalled, so that GitOps tools can gate a rollout on Ready.
//
// The election is client-go's leaderelection protocol on the Lease,
// through the dynamic client (resources.go says why): a candidate takes
// the Lease when it has no holder, or when the record it observed (holder
// and renewTime) has not changed for leaseDurationSeconds by its own clock
// (so clock skew between hosts does not matter); every write carries the
// resourceVersion read, so of two candidates only one can win; a leader
// whose renewal is refused (a conflict: someone else took it) or fails for
// 2/3 of the duration stops aggregating.
type Aggregator struct {
	client dynamic.Interface
	opts   AggregatorOptions
	now    func() time.Time

	mu      sync.Mutex
	leading bool
	lease   *unstructured.Unstructured // the Lease as last read or written
	seen    string                     // holder and renewTime of the record observed
	seenAt  time.Time                  // when seen was first observed
	renewed time.Time                  // the leader's last successful renewal
}

// NewAggregator is an aggregator candidate reading and writing through cfg
// (the identity of deploy/kubernetes/rbac-aggregator.yaml).
func NewAggregator(cfg *rest.Config, opts AggregatorOptions) (*Aggregator, error) {
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return newAggregator(client, opts)
}

func newAggregator(client dynamic.Interface, opts AggregatorOptions) (*Aggregator, error) {
	if opts.Identity == "" {
		return nil, fmt.Errorf("aggregator: an identity is needed")
	}
	if opts.Namespace == "" {
		opts.Namespace = AggregatorNamespace
	}
	if opts.Name == "" {
		opts.Name = AggregatorLease
	}
	if opts.LeaseDuration <= 0 {
		opts.LeaseDuration = 15 * time.Second
	}
	if opts.RenewInterval <= 0 {
		opts.RenewInterval = opts.LeaseDuration / 3
	}
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = opts.RenewInterval
	}
	if opts.Debounce <= 0 {
		opts.Debounce = 250 * time.Millisecond
	}
	if opts.OnError == nil {
		opts.OnError = func(error) {}
	}
	if opts.OnLeading == nil {
		opts.OnLeading = func(bool) {}
	}
	return &Aggregator{client: client, opts: opts, now: time.Now}, nil
}

// Leading reports whether the aggregator holds the Lease.
func (a *Aggregator) Leading() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.leading
}

// Run campaigns, and aggregates while leading, until ctx ends; it then
// releases the Lease if it holds it, so another candidate takes over at
// once.
func (a *Aggregator) Run(ctx context.Context) {
	for ctx.Err() == nil {
		if !a.tryAcquire(ctx) {
			sleep(ctx, a.opts.RetryInterval)
			continue
		}
		a.setLeading(true)
		lctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); a.aggregate(lctx) }()
		a.keep(ctx)
		cancel()
		<-done
		a.setLeading(false)
	}
	a.release()
}

func (a *Aggregator) setLeading(v bool) {
	a.mu.Lock()
	a.leading = v
	a.mu.Unlock()
	a.opts.OnLeading(v)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// keep renews the Lease until ctx ends or the lease is lost.
func (a *Aggregator) keep(ctx context.Context) {
	deadline := a.opts.LeaseDuration * 2 / 3
	for {
		sleep(ctx, a.opts.RenewInterval)
		if ctx.Err() != nil {
			return
		}
		err := a.renew(ctx)
		if err == nil {
			continue
		}
		a.opts.OnError(fmt.Errorf("renew Lease %s/%s: %w", a.opts.Namespace, a.opts.Name, err))
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) || a.now().Sub(a.renewed) > deadline {
			return
		}
	}
}

func (a *Aggregator) leases() dynamic.ResourceInterface {
	return a.client.Resource(LeaseResource).Namespace(a.opts.Namespace)
}

// microTime is a Lease's time format (metav1.MicroTime).
func microTime(t time.Time) string { return t.UTC().Format(metav1.RFC3339Micro) }

// tryAcquire takes the Lease if it is free or expired.
func (a *Aggregator) tryAcquire(ctx context.Context) bool {
	now := a.now()
	spec := map[string]any{
		"holderIdentity":       a.opts.Identity,
		"leaseDurationSeconds": int64((a.opts.LeaseDuration + time.Second - 1) / time.Second),
		"acquireTime":          microTime(now),
		"renewTime":            microTime(now),
	}
	leases := a.leases()
	cur, err := leases.Get(ctx, a.opts.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		spec["leaseTransitions"] = int64(0)
		obj := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
			"metadata": map[string]any{"name": a.opts.Name, "namespace": a.opts.Namespace},
			"spec":     spec,
		}}
		created, err := leases.Create(ctx, obj, metav1.CreateOptions{FieldManager: aggregatorManager})
		if err != nil {
			if !apierrors.IsAlreadyExists(err) {
				a.opts.OnError(fmt.Errorf("create Lease %s/%s: %w", a.opts.Namespace, a.opts.Name, err))
			}
			return false
		}
		a.took(created, now)
		return true
	}
	if err != nil {
		a.opts.OnError(fmt.Errorf("read Lease %s/%s: %w", a.opts.Namespace, a.opts.Name, err))
		return false
	}
	holder, _, _ := unstructured.NestedString(cur.Object, "spec", "holderIdentity")
	renewTime, _, _ := unstructured.NestedString(cur.Object, "spec", "renewTime")
	seconds, _, _ := unstructured.NestedInt64(cur.Object, "spec", "leaseDurationSeconds")
	transitions, _, _ := unstructured.NestedInt64(cur.Object, "spec", "leaseTransitions")
	record := holder + "\x00" + renewTime
	a.mu.Lock()
	if record != a.seen {
		a.seen, a.seenAt = record, now
	}
	seenAt := a.seenAt
	a.mu.Unlock()
	if holder != "" && holder != a.opts.Identity && now.Before(seenAt.Add(time.Duration(seconds)*time.Second)) {
		return false
	}
	if holder != a.opts.Identity {
		transitions++
	} else if at, ok, _ := unstructured.NestedString(cur.Object, "spec", "acquireTime"); ok {
		spec["acquireTime"] = at // ours already (a restart within the lease)
	}
	spec["leaseTransitions"] = transitions
	next := cur.DeepCopy()
	next.Object["spec"] = spec
	// Update carries cur's resourceVersion: a candidate that raced us to
	// it gets a conflict, and only one wins.
	updated, err := leases.Update(ctx, next, metav1.UpdateOptions{FieldManager: aggregatorManager})
	if err != nil {
		if !apierrors.IsConflict(err) {
			a.opts.OnError(fmt.Errorf("take Lease %s/%s: %w", a.opts.Namespace, a.opts.Name, err))
		}
		return false
	}
	a.took(updated, now)
	return true
}

func (a *Aggregator) took(lease *unstructured.Unstructured, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lease, a.renewed = lease, now
}

// renew writes a new renewTime over the Lease last written.
func (a *Aggregator) renew(ctx context.Context) error {
	a.mu.Lock()
	next := a.lease.DeepCopy()
	a.mu.Unlock()
	now := a.now()
	if err := unstructured.SetNestedField(next.Object, microTime(now), "spec", "renewTime"); err != nil {
		return err
	}
	updated, err := a.leases().Update(ctx, next, metav1.UpdateOptions{FieldManager: aggregatorManager})
	if err != nil {
		return err
	}
	a.took(updated, now)
	return nil
}

// release gives the Lease up (no holder), if it is still ours.
func (a *Aggregator) release() {
	a.mu.Lock()
	lease := a.lease
	a.lease = nil
	a.mu.Unlock()
	if lease == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	next := lease.DeepCopy()
	spec, _, _ := unstructured.NestedMap(next.Object, "spec")
	delete(spec, "holderIdentity")
	delete(spec, "acquireTime")
	spec["leaseDurationSeconds"] = int64(1)
	spec["renewTime"] = microTime(a.now())
	next.Object["spec"] = spec
	// A conflict means someone else holds it now: nothing to give up.
	if _, err := a.leases().Update(ctx, next, metav1.UpdateOptions{FieldManager: aggregatorManager}); err != nil && !apierrors.IsConflict(err) {
		a.opts.OnError(fmt.Errorf("release Lease %s/%s: %w", a.opts.Namespace, a.opts.Name, err))
	}
}

// PolicyStatus is a HostFirewallPolicy's status
// (deploy/kubernetes/hostfirewallpolicies.yaml).
type PolicyStatus struct {
	ObservedGeneration int64             `json:"observedGeneration"`
	MatchedNodes       int64             `json:"matchedNodes"`
	AppliedNodes       int64             `json:"appliedNodes"`
	FailedNodes        int64             `json:"failedNodes"`
	Conditions         []PolicyCondition `json:"conditions"`
}

// PolicyCondition is metav1.Condition.
type PolicyCondition struct {
	Type               string `json:"type"`
	Status             string `json:"status"`
	ObservedGeneration int64  `json:"observedGeneration"`
	LastTransitionTime string `json:"lastTransitionTime"`
	Reason             string `json:"reason"`
	Message            string `json:"message"`
}

// aggregate runs the informers and writes the policies' status until ctx
// ends.
func (a *Aggregator) aggregate(ctx context.Context) {
	kick := make(chan struct{}, 1)
	signal := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	policies := a.informer(PolicyResource, signal)
	states := a.informer(NodeStateResource, signal)
	nodes := a.informer(NodeResource, signal)
	for _, inf := range []cache.SharedIndexInformer{policies, states, nodes} {
		go inf.RunWithContext(ctx)
	}
	if !cache.WaitForCacheSync(ctx.Done(), policies.HasSynced, states.HasSynced, nodes.HasSynced) {
		return
	}
	signal()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
		case <-retry.C:
		}
		sleep(ctx, a.opts.Debounce)
		select {
		case <-kick: // the burst's own signal, gathered into this recount
		default:
		}
		if ctx.Err() != nil {
			return
		}
		if failed := a.recount(ctx, policies.GetStore(), states.GetStore(), nodes.GetStore()); failed {
			retry.Reset(retryInterval)
		}
	}
}

func (a *Aggregator) informer(res schema.GroupVersionResource, changed func()) cache.SharedIndexInformer {
	ri := a.client.Resource(res)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			return ri.List(ctx, opts)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return ri.Watch(ctx, opts)
		},
	}
	inf := cache.NewSharedIndexInformer(lw, &unstructured.Unstructured{}, 0, cache.Indexers{})
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { changed() },
		UpdateFunc: func(_, _ any) { changed() },
		DeleteFunc: func(any) { changed() },
	})
	return inf
}

// recount writes the status of each policy whose status changed; failed
// says a write failed (to be retried).
func (a *Aggregator) recount(ctx context.Context, policies, states, nodes cache.Store) (failed bool) {
	nodeLabels := map[string]labels.Set{}
	for _, item := range nodes.List() {
		if u, ok := item.(*unstructured.Unstructured); ok {
			nodeLabels[u.GetName()] = labels.Set(u.GetLabels())
		}
	}
	reports := map[string]map[string]PolicyState{} // node -> policy -> state
	for _, item := range states.List() {
		u, ok := item.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		var st NodeStatus
		raw, _, _ := unstructured.NestedMap(u.Object, "status")
		if raw == nil || runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &st) != nil {
			continue
		}
		byName := map[string]PolicyState{}
		for _, p := range st.Policies {
			byName[p.Name] = p
		}
		reports[u.GetName()] = byName
	}
	now := a.now()
	for _, item := range policies.List() {
		u, ok := item.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		want := policyStatus(u, nodeLabels, reports)
		var have PolicyStatus
		if raw, _, _ := unstructured.NestedMap(u.Object, "status"); raw != nil {
			_ = runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &have)
		}
		for i, c := range want.Conditions {
			want.Conditions[i].LastTransitionTime = conditionTime(now)
			for _, h := range have.Conditions {
				if h.Type == c.Type && h.Status == c.Status {
					want.Conditions[i].LastTransitionTime = h.LastTransitionTime
				}
			}
		}
		if reflect.DeepEqual(want, have) {
			continue
		}
		patch, err := json.Marshal(map[string]any{"status": want})
		if err == nil {
			_, err = a.client.Resource(PolicyResource).Patch(ctx, u.GetName(), types.MergePatchType, patch,
				metav1.PatchOptions{FieldManager: aggregatorManager}, "status")
		}
		if apierrors.IsNotFound(err) {
			continue // deleted meanwhile
		}
		if err != nil {
			a.opts.OnError(fmt.Errorf("write HostFirewallPolicy %s status: %w", u.GetName(), err))
			failed = true
		}
	}
	return failed
}

// conditionTime is t in the conditions' format (RFC 3339, seconds).
func conditionTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// policyStatus counts the nodes policy u selects, and those of them whose
// node state reports u's current generation applied, or rejected or
// failed; the conditions' lastTransitionTime is left to the caller.
func policyStatus(u *unstructured.Unstructured, nodeLabels map[string]labels.Set, reports map[string]map[string]PolicyState) PolicyStatus {
	gen := u.GetGeneration()
	st := PolicyStatus{ObservedGeneration: gen}
	cond := func(typ, status, reason, msg string) PolicyCondition {
		return PolicyCondition{Type: typ, Status: status, ObservedGeneration: gen, Reason: reason, Message: msg}
	}
	_, sel, err := objectFrom(u)
	if err != nil {
		msg := "the nodeSelector cannot be read: " + err.Error()
		st.Conditions = []PolicyCondition{
			cond("Ready", "False", ReasonInvalidSelector, msg),
			cond("Stalled", "True", ReasonInvalidSelector, msg),
		}
		return st
	}
	for node, set := range nodeLabels {
		if !sel.Matches(set) {
			continue
		}
		st.MatchedNodes++
		p, ok := reports[node][u.GetName()]
		if !ok || p.Generation != gen {
			continue
		}
		switch p.State {
		case "Applied":
			st.AppliedNodes++
		case "Rejected", "Failed":
			st.FailedNodes++
		}
	}
	switch {
	case st.MatchedNodes == 0:
		msg := "the nodeSelector selects no node"
		st.Conditions = []PolicyCondition{
			cond("Ready", "False", ReasonNoNodesMatched, msg),
			cond("Stalled", "True", ReasonNoNodesMatched, msg),
		}
	case st.FailedNodes > 0:
		msg := fmt.Sprintf("%d of %d selected nodes rejected or failed generation %d (%d applied)",
			st.FailedNodes, st.MatchedNodes, gen, st.AppliedNodes)
		st.Conditions = []PolicyCondition{
			cond("Ready", "False", ReasonNodesFailed, msg),
			cond("Stalled", "True", ReasonNodesFailed, msg),
		}
	case st.AppliedNodes < st.MatchedNodes:
		msg := fmt.Sprintf("%d of %d selected nodes applied generation %d", st.AppliedNodes, st.MatchedNodes, gen)
		st.Conditions = []PolicyCondition{
			cond("Ready", "False", ReasonProgressing, msg),
			cond("Reconciling", "True", ReasonProgressing, msg),
		}
	default:
		st.Conditions = []PolicyCondition{cond("Ready", "True", ReasonAllNodesApplied,
			fmt.Sprintf("all %d selected nodes applied generation %d", st.MatchedNodes, gen))}
	}
	return st
}
