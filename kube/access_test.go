package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/edgefw/edgefw/internal/kubetest"
)

var (
	nodeResource  = schema.GroupVersionResource{Version: "v1", Resource: "nodes"}
	leaseResource = schema.GroupVersionResource{Group: "coordination.k8s.io", Version: "v1", Resource: "leases"}
)

// testPolicyObject creates a valid policy for real and reads it back: the
// defaults are filled in, nothing of spec.policy is pruned, and an invalid
// change is refused with a message naming the field.
func testPolicyObject(t *testing.T, admin dynamic.Interface) {
	ctx := context.Background()
	doc := schemaCases[0].doc
	if err := createPolicy(t, admin, "spec-example", doc, false); err != nil {
		t.Fatalf("create a valid policy: %v", err)
	}
	got, err := admin.Resource(PolicyResource).Get(ctx, "spec-example", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spec := got.Object["spec"].(map[string]any)
	if spec["mode"] != "Enforce" || spec["priority"] != int64(0) {
		t.Errorf("defaults: mode %v, priority %v; want Enforce, 0", spec["mode"], spec["priority"])
	}
	var want map[string]any
	if err := yaml.Unmarshal([]byte(doc), &want); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(jsonValue(t, want), jsonValue(t, spec["policy"])); diff != "" {
		t.Errorf("spec.policy changed on its way through the API server (-sent +stored):\n%s", diff)
	}

	// An invalid change to a stored object is refused too, by name.
	rules, _, _ := unstructured.NestedSlice(got.Object, "spec", "policy", "rules")
	rules[0].(map[string]any)["ports"] = []any{map[string]any{"protocol": "tcp", "port": int64(22), "endPort": int64(21)}}
	if err := unstructured.SetNestedSlice(got.Object, rules, "spec", "policy", "rules"); err != nil {
		t.Fatal(err)
	}
	_, err = admin.Resource(PolicyResource).Update(ctx, got, metav1.UpdateOptions{FieldValidation: "Strict"})
	if err == nil || !strings.Contains(err.Error(), "spec.policy.rules[0].ports[0].endPort") {
		t.Errorf("update with endPort < port: got %v, want an error naming spec.policy.rules[0].ports[0].endPort", err)
	}
}

// jsonValue is v as encoding/json decodes it, so that numbers compare
// alike whichever decoder read them.
func jsonValue(t *testing.T, v any) any {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// nodeState is a HostFirewallNodeState named name, with status if given.
func nodeState(name string, status map[string]any) *unstructured.Unstructured {
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": Group + "/" + Version,
		"kind":       "HostFirewallNodeState",
		"metadata":   map[string]any{"name": name},
	}}
	if status != nil {
		obj.Object["status"] = status
	}
	return obj
}

// readyStatus is a node state's status saying it applied one policy.
func readyStatus() map[string]any {
	return map[string]any{
		"rulesetHash":   "sha256:0f",
		"lastApplyTime": "2026-12-07T22:00:00Z",
		"driftRepairs":  int64(0),
		"policies": []any{map[string]any{
			"name": "spec-example", "generation": int64(1), "hash": "sha256:1e", "state": "Applied", "mode": "Enforce", "rules": int64(5),
		}},
		"conditions": []any{map[string]any{
			"type": "Ready", "status": "True", "reason": "Applied", "message": "ruleset applied",
			"lastTransitionTime": "2026-12-07T22:00:00Z",
		}},
	}
}

// testNodeStateOwnNodeOnly: the admission policy lets a node write the
// HostFirewallNodeState named after it, and refuses its writes to any
// other; an administrator is not restricted.
func testNodeStateOwnNodeOnly(t *testing.T, c *kubetest.Cluster, admin dynamic.Interface) {
	ctx := context.Background()
	nodeA := dynamicClient(t, c.Kubeconfig(t, kubetest.Node("node-a"))).Resource(NodeStateResource)
	states := admin.Resource(NodeStateResource)

	// The binding takes effect a moment after it is written.
	eventually(t, "node-a refused node-b's state", func() error {
		_, err := nodeA.Create(ctx, nodeState("node-b", nil), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil || !strings.Contains(err.Error(), "named after itself") {
			return fmt.Errorf("create node-b's state as node-a: %v", err)
		}
		return nil
	})

	created, err := nodeA.Create(ctx, nodeState("node-a", nil), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("node-a creates its own state: %v", err)
	}
	created.Object["status"] = readyStatus()
	if _, err := nodeA.UpdateStatus(ctx, created, metav1.UpdateOptions{FieldValidation: "Strict"}); err != nil {
		t.Fatalf("node-a writes its own status: %v", err)
	}
	if got, err := states.Get(ctx, "node-a", metav1.GetOptions{}); err != nil || !hasCondition(got, "Ready", "True") {
		t.Errorf("node-a's state as stored: %v, %v; want Ready", got, err)
	}

	// node-b's state exists (an administrator wrote it): node-a can
	// neither change it nor its status.
	other, err := states.Create(ctx, nodeState("node-b", nil), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("admin creates node-b's state: %v", err)
	}
	other.Object["status"] = readyStatus()
	for what, write := range map[string]func() error{
		"update node-b's status": func() error {
			_, err := nodeA.UpdateStatus(ctx, other, metav1.UpdateOptions{})
			return err
		},
		"update node-b's state": func() error {
			_, err := nodeA.Update(ctx, other, metav1.UpdateOptions{})
			return err
		},
		"patch node-b's status": func() error {
			_, err := nodeA.Patch(ctx, "node-b", "application/merge-patch+json", []byte(`{"status":{"lastApplyError":"x"}}`), metav1.PatchOptions{}, "status")
			return err
		},
		"apply node-b's status": func() error {
			_, err := nodeA.ApplyStatus(ctx, "node-b", nodeState("node-b", readyStatus()), metav1.ApplyOptions{FieldManager: "edgefwd", Force: true})
			return err
		},
	} {
		if err := write(); !isForbidden(err) || !strings.Contains(err.Error(), "system:node:node-a may not write node-b") {
			t.Errorf("node-a: %s: got %v, want forbidden by the admission policy", what, err)
		}
	}
	if _, err := states.UpdateStatus(ctx, other, metav1.UpdateOptions{}); err != nil {
		t.Errorf("admin writes node-b's status: %v", err)
	}
	// Server-side apply of its own status, as edgefwd will write it.
	if _, err := nodeA.ApplyStatus(ctx, "node-a", nodeState("node-a", readyStatus()), metav1.ApplyOptions{FieldManager: "edgefwd", Force: true}); err != nil {
		t.Errorf("node-a applies its own status: %v", err)
	}
}

// testNodeAccess: a node reads the policies, and its own Node only (the
// Node authorizer), and writes no policy.
func testNodeAccess(t *testing.T, c *kubetest.Cluster, admin dynamic.Interface) {
	ctx := context.Background()
	for _, name := range []string{"node-a", "node-b"} {
		node := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "Node",
			"metadata": map[string]any{"name": name, "labels": map[string]any{"edgefw.io/ring": "canary"}},
		}}
		if _, err := admin.Resource(nodeResource).Create(ctx, node, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create Node %s: %v", name, err)
		}
	}
	nodeA := dynamicClient(t, c.Kubeconfig(t, kubetest.Node("node-a")))
	eventually(t, "node-a lists policies", func() error {
		_, err := nodeA.Resource(PolicyResource).List(ctx, metav1.ListOptions{})
		return err
	})
	w, err := nodeA.Resource(PolicyResource).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Errorf("node-a watches policies: %v", err)
	} else {
		w.Stop()
	}

	own := metav1.ListOptions{FieldSelector: "metadata.name=node-a"}
	if _, err := nodeA.Resource(nodeResource).Get(ctx, "node-a", metav1.GetOptions{}); err != nil {
		t.Errorf("node-a gets its own Node: %v", err)
	}
	if list, err := nodeA.Resource(nodeResource).List(ctx, own); err != nil || len(list.Items) != 1 {
		t.Errorf("node-a lists its own Node by field selector: %v (%d items)", err, len(list.Items))
	}
	if w, err := nodeA.Resource(nodeResource).Watch(ctx, own); err != nil {
		t.Errorf("node-a watches its own Node by field selector: %v", err)
	} else {
		w.Stop()
	}

	denied := map[string]func() error{
		"get node-b's Node": func() error {
			_, err := nodeA.Resource(nodeResource).Get(ctx, "node-b", metav1.GetOptions{})
			return err
		},
		"list all Nodes": func() error {
			_, err := nodeA.Resource(nodeResource).List(ctx, metav1.ListOptions{})
			return err
		},
		"watch all Nodes": func() error {
			w, err := nodeA.Resource(nodeResource).Watch(ctx, metav1.ListOptions{})
			if err == nil {
				w.Stop()
			}
			return err
		},
		"create a policy": func() error {
			return createPolicy(t, nodeA, "from-a-node", `rules: [{name: r, direction: input, action: accept}]`, false)
		},
		"delete a policy": func() error {
			return nodeA.Resource(PolicyResource).Delete(ctx, "spec-example", metav1.DeleteOptions{})
		},
		"write a policy's status": func() error {
			_, err := nodeA.Resource(PolicyResource).Patch(ctx, "spec-example", "application/merge-patch+json", []byte(`{"status":{"matchedNodes":0}}`), metav1.PatchOptions{}, "status")
			return err
		},
		"delete its own state": func() error {
			return nodeA.Resource(NodeStateResource).Delete(ctx, "node-a", metav1.DeleteOptions{})
		},
	}
	for what, do := range denied {
		if err := do(); !isForbidden(err) {
			t.Errorf("node-a: %s: got %v, want forbidden", what, err)
		}
	}
}

// testAggregatorAccess: the aggregator's service account reads node states
// and Nodes, writes policy status and its own Lease, and nothing else.
func testAggregatorAccess(t *testing.T, c *kubetest.Cluster, admin dynamic.Interface) {
	ctx := context.Background()
	agg := dynamicClient(t, c.Kubeconfig(t, kubetest.ServiceAccount("edgefw-system", "edgefw-aggregator")))
	eventually(t, "the aggregator lists node states", func() error {
		_, err := agg.Resource(NodeStateResource).List(ctx, metav1.ListOptions{})
		return err
	})
	if _, err := agg.Resource(nodeResource).List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("aggregator lists Nodes: %v", err)
	}
	status := `{"status":{"observedGeneration":1,"matchedNodes":2,"appliedNodes":1,"failedNodes":0,
		"conditions":[{"type":"Ready","status":"False","reason":"Progressing","message":"1 of 2 nodes applied","lastTransitionTime":"2026-12-07T22:00:00Z","observedGeneration":1}]}}`
	if _, err := agg.Resource(PolicyResource).Patch(ctx, "spec-example", "application/merge-patch+json", []byte(status), metav1.PatchOptions{}, "status"); err != nil {
		t.Errorf("aggregator writes a policy's status: %v", err)
	}
	lease := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
		"metadata": map[string]any{"name": "edgefw-aggregator", "namespace": "edgefw-system"},
		"spec":     map[string]any{"holderIdentity": "node-a", "leaseDurationSeconds": int64(15)},
	}}
	leases := agg.Resource(leaseResource).Namespace("edgefw-system")
	created, err := leases.Create(ctx, lease, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("aggregator creates its Lease: %v", err)
	}
	if _, err := leases.Update(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Errorf("aggregator renews its Lease: %v", err)
	}

	denied := map[string]func() error{
		"create a policy": func() error {
			return createPolicy(t, agg, "from-the-aggregator", `rules: [{name: r, direction: input, action: accept}]`, false)
		},
		"write a node state": func() error {
			_, err := agg.Resource(NodeStateResource).Create(ctx, nodeState("node-c", nil), metav1.CreateOptions{})
			return err
		},
		"get another Lease": func() error {
			_, err := leases.Get(ctx, "kube-scheduler", metav1.GetOptions{})
			return err
		},
		"write a Node": func() error {
			_, err := agg.Resource(nodeResource).Patch(ctx, "node-a", "application/merge-patch+json", []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{})
			return err
		},
	}
	for what, do := range denied {
		if err := do(); !isForbidden(err) {
			t.Errorf("aggregator: %s: got %v, want forbidden", what, err)
		}
	}
	got, err := admin.Resource(PolicyResource).Get(ctx, "spec-example", metav1.GetOptions{})
	if err != nil || !hasCondition(got, "Ready", "False") {
		t.Errorf("policy status as the aggregator wrote it: %v, %v", got, err)
	}
}
