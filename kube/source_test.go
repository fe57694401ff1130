package kube

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/edgefw/edgefw/internal/kubetest"
	"github.com/edgefw/edgefw/policy"
)

// srcPolicy is a HostFirewallPolicy selecting ring=ring.
func srcPolicy(name string, priority int64, mode, ring, rules string) *unstructured.Unstructured {
	var doc map[string]any
	mustYAML(rules, &doc)
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": Group + "/" + Version, "kind": "HostFirewallPolicy",
		"metadata": map[string]any{"name": name},
		"spec": map[string]any{
			"nodeSelector": map[string]any{"matchLabels": map[string]any{"edgefw.io/ring": ring}},
			"priority":     priority, "mode": mode, "policy": doc,
		},
	}}
}

// selected is the snapshot's objects of this test (src-*) as
// NAME@GENERATION, in order: the other subtests' objects select every node.
func selected(s Snapshot) string {
	var out []string
	for _, o := range s.Objects {
		if !strings.HasPrefix(o.Name, "src-") {
			continue
		}
		out = append(out, fmt.Sprintf("%s@%d", o.Name, o.Generation))
	}
	return strings.Join(out, " ")
}

// waitSelected waits until the source selects want.
func waitSelected(t *testing.T, src *Source, want string) Snapshot {
	t.Helper()
	var snap Snapshot
	eventually(t, "source selects "+want, func() error {
		snap = src.Snapshot()
		if !snap.Synced || selected(snap) != want {
			return fmt.Errorf("synced %v, selects %q", snap.Synced, selected(snap))
		}
		return nil
	})
	return snap
}

// testSource: the node's source, through the node's own identity, selects
// the policies matching its labels in (priority, name) order, follows
// relabelling and changes, and ignores an object that selects nothing.
func testSource(t *testing.T, c *kubetest.Cluster, admin dynamic.Interface) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nodes, policies := admin.Resource(NodeResource), admin.Resource(PolicyResource)
	node := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Node",
		"metadata": map[string]any{"name": "src-node", "labels": map[string]any{"edgefw.io/ring": "edge"}},
	}}
	if _, err := nodes.Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*unstructured.Unstructured{
		srcPolicy("src-b", 10, ModeEnforce, "edge", `{rules: [{name: src-b, direction: input, action: accept}]}`),
		srcPolicy("src-a", 10, ModeAudit, "edge", `{rules: [{name: src-a, direction: input, action: drop}]}`),
		srcPolicy("src-c", -5, ModeEnforce, "edge", `{rules: [{name: src-c, direction: input, action: accept}]}`),
		srcPolicy("src-nothing", 0, ModeEnforce, "no-such-ring", `{rules: [{name: src-n, direction: input, action: accept}]}`),
	} {
		if _, err := policies.Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	cfg, err := RESTConfig(c.Kubeconfig(t, kubetest.Node("src-node")))
	if err != nil {
		t.Fatal(err)
	}
	src, err := NewSource(cfg, "src-node")
	if err != nil {
		t.Fatal(err)
	}
	go src.Run(ctx)

	snap := waitSelected(t, src, "src-c@1 src-a@1 src-b@1")
	if !snap.Reachable || snap.NodeLabels["edgefw.io/ring"] != "edge" {
		t.Errorf("snapshot: reachable %v, labels %v", snap.Reachable, snap.NodeLabels)
	}
	for _, o := range snap.Objects {
		if o.Name == "src-a" && o.Mode != ModeAudit {
			t.Errorf("src-a: mode %q, want Audit", o.Mode)
		}
	}

	// A change of spec is a new generation.
	got, err := policies.Get(ctx, "src-b", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedField(got.Object, int64(-10), "spec", "priority"); err != nil {
		t.Fatal(err)
	}
	if _, err := policies.Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitSelected(t, src, "src-b@2 src-c@1 src-a@1")

	// Relabelled into no-such-ring: only src-nothing selects it now.
	patch := `{"metadata":{"labels":{"edgefw.io/ring":"no-such-ring"}}}`
	if _, err := nodes.Patch(ctx, "src-node", "application/merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitSelected(t, src, "src-nothing@1")
	patch = `{"metadata":{"labels":{"edgefw.io/ring":null}}}`
	if _, err := nodes.Patch(ctx, "src-node", "application/merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitSelected(t, src, "")

	// The API server gone: the snapshot says so and keeps its objects.
	if _, err := nodes.Patch(ctx, "src-node", "application/merge-patch+json", []byte(`{"metadata":{"labels":{"edgefw.io/ring":"edge"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	waitSelected(t, src, "src-b@2 src-c@1 src-a@1")
	c.StopAPIServer(t)
	eventually(t, "source sees the API unreachable", func() error {
		if s := src.Snapshot(); s.Reachable || s.LastError == "" || selected(s) != "src-b@2 src-c@1 src-a@1" {
			return fmt.Errorf("reachable %v, last error %q, selects %q", s.Reachable, s.LastError, selected(s))
		}
		return nil
	})
	c.StartAPIServer(t)
	eventually(t, "source sees the API again", func() error {
		if s := src.Snapshot(); !s.Reachable {
			return fmt.Errorf("unreachable: %s", s.LastError)
		}
		return nil
	})
	for _, name := range []string{"src-a", "src-b", "src-c", "src-nothing"} {
		if err := policies.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Error(err)
		}
	}
	waitSelected(t, src, "")
}

func mustYAML(doc string, v any) {
	if err := yaml.Unmarshal([]byte(doc), v); err != nil {
		panic(err)
	}
}

// TestMerge: objects merge after the host's files in order; one that
// clashes with the host, or is invalid, is rejected alone; an Audit
// object's deny rules audit.
func TestMerge(t *testing.T) {
	fsys := fstest.MapFS{
		"etc/edgefw/policy.yaml": {Data: []byte("version: 1\nrules:\n  - {name: ssh, direction: input, action: accept, ports: [{protocol: tcp, port: 22}]}\n")},
	}
	obj := func(name, mode, doc string) Object {
		o := Object{Name: name, Mode: mode}
		mustYAML(doc, &o.Policy)
		return o
	}
	objs := []Object{
		obj("audit", ModeAudit, `{rules: [{name: deny-all, direction: input, action: drop}, {name: web, direction: input, action: accept}]}`),
		obj("clash", ModeEnforce, `{rules: [{name: ssh, direction: input, action: drop}]}`),
		obj("defaults", ModeEnforce, `{defaults: {input: accept}}`),
		obj("file-set", ModeEnforce, `{sets: {bad: {file: /etc/passwd}}}`),
		obj("fine", ModeEnforce, `{rules: [{name: fine, direction: input, action: reject}]}`),
	}
	var last *policy.Policy
	accepted, rejected, err := Merge(objs, func(frags []policy.Fragment) error {
		p, err := policy.LoadFSWith(fsys, "/etc/edgefw/policy.yaml", frags)
		if err == nil {
			last = p
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range accepted {
		names = append(names, o.Name)
	}
	if !slices.Equal(names, []string{"audit", "fine"}) {
		t.Errorf("accepted %v, want [audit fine]", names)
	}
	wantRejected := map[string]string{"clash": "hostfirewallpolicy/clash", "defaults": "hostfirewallpolicy/defaults", "file-set": "inline list"}
	if len(rejected) != len(wantRejected) {
		t.Errorf("rejected %v, want %v", rejected, wantRejected)
	}
	for _, r := range rejected {
		if !strings.Contains(r.Err.Error(), wantRejected[r.Name]) {
			t.Errorf("rejected %s: %v, want it to say %q", r.Name, r.Err, wantRejected[r.Name])
		}
	}
	var rules []string
	for _, r := range last.Rules {
		rules = append(rules, fmt.Sprintf("%s/%s/%s", r.Name, r.Mode, r.Pos.File))
	}
	want := []string{"ssh/enforce//etc/edgefw/policy.yaml", "deny-all/audit/hostfirewallpolicy/audit", "web/enforce/hostfirewallpolicy/audit", "fine/enforce/hostfirewallpolicy/fine"}
	if !slices.Equal(rules, want) {
		t.Errorf("merged rules %v, want %v", rules, want)
	}
}
