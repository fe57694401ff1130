package kube

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"

	"github.com/edgefw/edgefw/internal/kubetest"
)

// candidate is an aggregator running in the test.
type candidate struct {
	agg    *Aggregator
	cancel context.CancelFunc
	done   chan struct{}
}

// waitLeader waits until exactly one running candidate leads and holds
// the Lease, and returns its index; two leading at once fails the test.
func waitLeader(t *testing.T, admin dynamic.Interface, cands []*candidate) int {
	t.Helper()
	leader := -1
	eventually(t, "one aggregator leads", func() error {
		leader = -1
		for i, c := range cands {
			if c == nil || !c.agg.Leading() {
				continue
			}
			if leader >= 0 {
				t.Fatalf("candidates %d and %d both lead", leader, i)
			}
			leader = i
		}
		if leader < 0 {
			return fmt.Errorf("no leader")
		}
		lease, err := admin.Resource(LeaseResource).Namespace(AggregatorNamespace).Get(context.Background(), AggregatorLease, metav1.GetOptions{})
		if err != nil {
			return err
		}
		holder, _, _ := unstructured.NestedString(lease.Object, "spec", "holderIdentity")
		if holder != cands[leader].agg.opts.Identity {
			return fmt.Errorf("candidate %d leads, the Lease holder is %q", leader, holder)
		}
		return nil
	})
	return leader
}

// waitPolicyStatus waits until the policy's status satisfies ok.
func waitPolicyStatus(t *testing.T, admin dynamic.Interface, name, what string, ok func(PolicyStatus) bool) PolicyStatus {
	t.Helper()
	var st PolicyStatus
	eventually(t, name+": "+what, func() error {
		u, err := admin.Resource(PolicyResource).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		st = PolicyStatus{}
		raw, _, _ := unstructured.NestedMap(u.Object, "status")
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &st); err != nil {
			return err
		}
		if st.ObservedGeneration != u.GetGeneration() || !ok(st) {
			return fmt.Errorf("generation %d, status %+v", u.GetGeneration(), st)
		}
		return nil
	})
	return st
}

// ready returns the policy status's Ready condition.
func ready(st PolicyStatus) PolicyCondition {
	for _, c := range st.Conditions {
		if c.Type == "Ready" {
			return c
		}
	}
	return PolicyCondition{}
}

func hasPolicyCondition(st PolicyStatus, typ, status, reason string) bool {
	for _, c := range st.Conditions {
		if c.Type == typ && c.Status == status && c.Reason == reason && c.ObservedGeneration == st.ObservedGeneration {
			return true
		}
	}
	return false
}

func counts(st PolicyStatus, matched, applied, failed int64) bool {
	return st.MatchedNodes == matched && st.AppliedNodes == applied && st.FailedNodes == failed
}

// TestAggregator: aggregator candidates under the aggregator's service
// account elect one leader through the Lease (after a stale holder's lease
// expires), which counts the nodes' reports into each policy's status; the
// other takes over when the leader stops; a new generation is not Ready
// until every selected node applied it.
func TestAggregator(t *testing.T) {
	c := kubetest.Start(t)
	admin := dynamicClient(t, c.Kubeconfig(t, kubetest.Admin()))
	applyManifests(t, admin)
	ctx := context.Background()

	// A holder that crashed without releasing: the candidates must wait
	// for its lease to expire.
	stale := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
		"metadata": map[string]any{"name": AggregatorLease, "namespace": AggregatorNamespace},
		"spec": map[string]any{"holderIdentity": "crashed", "leaseDurationSeconds": int64(2),
			"renewTime": microTime(time.Now())},
	}}
	if _, err := admin.Resource(LeaseResource).Namespace(AggregatorNamespace).Create(ctx, stale, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	names := []string{"agg-node-0", "agg-node-1", "agg-node-2"}
	for _, n := range append(names, "agg-node-other") {
		ring := "edge"
		if n == "agg-node-other" {
			ring = "core"
		}
		node := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "Node",
			"metadata": map[string]any{"name": n, "labels": map[string]any{"edgefw.io/ring": ring}},
		}}
		if _, err := admin.Resource(NodeResource).Create(ctx, node, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	policies := admin.Resource(PolicyResource)
	for _, p := range []*unstructured.Unstructured{
		srcPolicy("agg-web", 0, ModeEnforce, "edge", `{rules: [{name: agg-web, direction: input, action: accept}]}`),
		srcPolicy("agg-none", 0, ModeEnforce, "no-such-ring", `{rules: [{name: agg-none, direction: input, action: accept}]}`),
	} {
		eventually(t, "create "+p.GetName(), func() error {
			_, err := policies.Create(ctx, p, metav1.CreateOptions{})
			return err
		})
	}

	cfg, err := RESTConfig(c.Kubeconfig(t, kubetest.ServiceAccount(AggregatorNamespace, "edgefw-aggregator")))
	if err != nil {
		t.Fatal(err)
	}
	cands := make([]*candidate, 2)
	for i := range cands {
		agg, err := NewAggregator(cfg, AggregatorOptions{
			Identity:      fmt.Sprintf("candidate-%d", i),
			LeaseDuration: 3 * time.Second, RenewInterval: 500 * time.Millisecond, RetryInterval: 200 * time.Millisecond,
			Debounce: 50 * time.Millisecond,
			OnError:  func(err error) { t.Logf("candidate-%d: %v", i, err) },
		})
		if err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithCancel(ctx)
		cand := &candidate{agg: agg, cancel: cancel, done: make(chan struct{})}
		cands[i] = cand
		go func() { defer close(cand.done); agg.Run(cctx) }()
		t.Cleanup(func() { cancel(); <-cand.done })
	}
	first := waitLeader(t, admin, cands)

	// Each node reports through its own identity, as edgefwd does.
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	writers := map[string]*NodeStateWriter{}
	for _, n := range names {
		w := NewNodeStateWriter(dynamicClient(t, c.Kubeconfig(t, kubetest.Node(n))), n)
		go w.Run(wctx, func(err error) { t.Logf("%s: %v", n, err) })
		writers[n] = w
	}
	report := func(node string, gen int64, state string) {
		writers[node].Update(NodeStatus{Policies: []PolicyState{{Name: "agg-web", Generation: gen, State: state, Mode: ModeEnforce}},
			Conditions: []Condition{}})
	}
	for _, n := range names {
		report(n, 1, "Applied")
	}
	waitPolicyStatus(t, admin, "agg-web", "3 of 3 applied, Ready", func(st PolicyStatus) bool {
		return counts(st, 3, 3, 0) && hasPolicyCondition(st, "Ready", "True", ReasonAllNodesApplied)
	})
	st := waitPolicyStatus(t, admin, "agg-none", "0 matched, not Ready", func(st PolicyStatus) bool {
		return counts(st, 0, 0, 0) && hasPolicyCondition(st, "Ready", "False", ReasonNoNodesMatched) &&
			hasPolicyCondition(st, "Stalled", "True", ReasonNoNodesMatched)
	})
	t.Logf("agg-none: %+v", ready(st))

	// The leader stops: the other candidate takes over.
	cands[first].cancel()
	<-cands[first].done
	if cands[first].agg.Leading() {
		t.Fatal("a stopped aggregator still leads")
	}
	cands[first] = nil
	second := waitLeader(t, admin, cands)
	if second == first {
		t.Fatal("the stopped candidate leads")
	}

	// A new generation: not Ready until every selected node reports it.
	web, err := policies.Get(ctx, "agg-web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedSlice(web.Object, []any{map[string]any{"name": "agg-web", "direction": "input", "action": "drop"}},
		"spec", "policy", "rules"); err != nil {
		t.Fatal(err)
	}
	web, err = policies.Update(ctx, web, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if web.GetGeneration() != 2 {
		t.Fatalf("generation %d after the update, want 2", web.GetGeneration())
	}
	waitPolicyStatus(t, admin, "agg-web", "generation 2 reconciling", func(st PolicyStatus) bool {
		return counts(st, 3, 0, 0) && hasPolicyCondition(st, "Ready", "False", ReasonProgressing) &&
			hasPolicyCondition(st, "Reconciling", "True", ReasonProgressing)
	})
	report(names[0], 2, "Applied")
	report(names[1], 2, "Applied")
	report(names[2], 2, "Rejected")
	waitPolicyStatus(t, admin, "agg-web", "one node rejected generation 2", func(st PolicyStatus) bool {
		return counts(st, 3, 2, 1) && hasPolicyCondition(st, "Ready", "False", ReasonNodesFailed) &&
			hasPolicyCondition(st, "Stalled", "True", ReasonNodesFailed)
	})
	report(names[2], 2, "Applied")
	waitPolicyStatus(t, admin, "agg-web", "generation 2 applied everywhere", func(st PolicyStatus) bool {
		return counts(st, 3, 3, 0) && hasPolicyCondition(st, "Ready", "True", ReasonAllNodesApplied) && len(st.Conditions) == 1
	})

	// Status is written only when it changes: with the candidates
	// stopped, one recount over the listed objects writes the one policy
	// without status, and a second over the objects as written, none.
	for _, cand := range cands {
		if cand != nil {
			cand.cancel()
			<-cand.done
		}
	}
	if _, err := policies.Create(ctx, srcPolicy("agg-new", 0, ModeEnforce, "edge",
		`{rules: [{name: agg-new, direction: input, action: accept}]}`), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var patches atomic.Int64
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.Method == http.MethodPatch {
				patches.Add(1)
			}
			return rt.RoundTrip(r)
		})
	})
	agg, err := NewAggregator(cfg, AggregatorOptions{Identity: "counter"})
	if err != nil {
		t.Fatal(err)
	}
	stores := func() (p, s, n cache.Store) {
		return listStore(t, admin, PolicyResource), listStore(t, admin, NodeStateResource), listStore(t, admin, NodeResource)
	}
	p, s, n := stores()
	if failed := agg.recount(ctx, p, s, n); failed || patches.Load() != 1 {
		t.Fatalf("first recount: %d status writes (failed %v), want 1: agg-new", patches.Load(), failed)
	}
	p, s, n = stores()
	if failed := agg.recount(ctx, p, s, n); failed || patches.Load() != 1 {
		t.Fatalf("second recount: %d status writes in all (failed %v), want none more", patches.Load(), failed)
	}
	waitPolicyStatus(t, admin, "agg-new", "written by the recount", func(st PolicyStatus) bool {
		return counts(st, 3, 0, 0) && hasPolicyCondition(st, "Ready", "False", ReasonProgressing)
	})

	testLeaseRace(t, admin)
}

// TestAggregator's candidates race on the Lease: testLeaseRace, step by
// step with a clock of its own, shows that a held Lease is not taken, that
// a write from an outdated read (the race's loser) conflicts, and that
// only a record unchanged for the lease duration by the candidate's own
// clock is taken over.
func testLeaseRace(t *testing.T, admin dynamic.Interface) {
	ctx := context.Background()
	clock := time.Now()
	now := func() time.Time { return clock }
	cand := func(id string) *Aggregator {
		a, err := newAggregator(admin, AggregatorOptions{Identity: id, Name: "agg-race", LeaseDuration: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		a.now = now
		return a
	}
	a1, a2 := cand("race-1"), cand("race-2")
	if !a1.tryAcquire(ctx) {
		t.Fatal("race-1 did not take a free Lease")
	}
	if a2.tryAcquire(ctx) {
		t.Fatal("race-2 took a Lease held by race-1")
	}
	// race-2 would have won from the Lease as it reads it now; race-1
	// renews first: race-2's write conflicts.
	read, err := admin.Resource(LeaseResource).Namespace(AggregatorNamespace).Get(ctx, "agg-race", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a2.lease = read
	clock = clock.Add(time.Second)
	if err := a1.renew(ctx); err != nil {
		t.Fatalf("race-1 renews: %v", err)
	}
	if err := a2.renew(ctx); !apierrors.IsConflict(err) {
		t.Fatalf("a write from an outdated read: %v, want a conflict", err)
	}
	// race-2 sees race-1's renewal as a new record: not expired 59 s on.
	clock = clock.Add(30 * time.Second)
	if a2.tryAcquire(ctx) {
		t.Fatal("race-2 took a Lease renewed 30 s ago")
	}
	clock = clock.Add(59 * time.Second)
	if a2.tryAcquire(ctx) {
		t.Fatal("race-2 took a Lease it saw renewed 59 s ago")
	}
	clock = clock.Add(2 * time.Second)
	if !a2.tryAcquire(ctx) {
		t.Fatal("race-2 did not take a Lease not renewed for its duration")
	}
	if err := a1.renew(ctx); !apierrors.IsConflict(err) {
		t.Fatalf("race-1 renews a Lease taken over: %v, want a conflict", err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// listStore is a store of res's objects as listed now.
func listStore(t *testing.T, client dynamic.Interface, res schema.GroupVersionResource) cache.Store {
	t.Helper()
	list, err := client.Resource(res).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	store := cache.NewStore(cache.MetaNamespaceKeyFunc)
	for i := range list.Items {
		if err := store.Add(&list.Items[i]); err != nil {
			t.Fatal(err)
		}
	}
	return store
}
