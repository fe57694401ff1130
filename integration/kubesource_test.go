package integration

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/edgefw/edgefw/daemon"
	"github.com/edgefw/edgefw/internal/kubetest"
	"github.com/edgefw/edgefw/internal/netnstest"
	"github.com/edgefw/edgefw/kube"
)

// kubeResources are the resources of the kinds deploy/kubernetes/ holds.
var kubeResources = map[string]schema.GroupVersionResource{
	"CustomResourceDefinition":         {Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"},
	"ClusterRole":                      {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"},
	"ClusterRoleBinding":               {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"},
	"ValidatingAdmissionPolicy":        {Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingadmissionpolicies"},
	"ValidatingAdmissionPolicyBinding": {Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingadmissionpolicybindings"},
	"Namespace":                        {Version: "v1", Resource: "namespaces"},
	"ServiceAccount":                   {Version: "v1", Resource: "serviceaccounts"},
	"Role":                             {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"},
	"RoleBinding":                      {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
}

// kubeApply applies the node's manifests (server-side, as kubectl would).
func kubeApply(t *testing.T, admin dynamic.Interface) {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range kubetest.ReadManifests(t, filepath.Join(root, "deploy", "kubernetes")) {
		res, ok := kubeResources[obj.GetKind()]
		if !ok {
			t.Fatalf("kind %s of %s not known to the test", obj.GetKind(), obj.GetName())
		}
		var ri dynamic.ResourceInterface = admin.Resource(res)
		if ns := obj.GetNamespace(); ns != "" {
			ri = admin.Resource(res).Namespace(ns)
		}
		if _, err := ri.Apply(context.Background(), obj.GetName(), obj, metav1.ApplyOptions{FieldManager: "edgefw-test", Force: true}); err != nil {
			t.Fatalf("apply %s %s: %v", obj.GetKind(), obj.GetName(), err)
		}
	}
}

func kubeClient(t *testing.T, kubeconfig string) dynamic.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	c, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// kubeWebPolicy accepts tcp/PORT on the nodes labelled edgefw.io/ring=edge.
func kubeWebPolicy(port int) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": kube.Group + "/" + kube.Version, "kind": "HostFirewallPolicy",
		"metadata": map[string]any{"name": "web"},
		"spec": map[string]any{
			"nodeSelector": map[string]any{"matchLabels": map[string]any{"edgefw.io/ring": "edge"}},
			"policy": map[string]any{"rules": []any{map[string]any{
				"name": "web", "direction": "input", "action": "accept",
				"ports": []any{map[string]any{"protocol": "tcp", "port": int64(port)}},
			}}},
		},
	}}
}

// kubeLab is a real API server with edgefw's manifests and a Node edge-1
// labelled edgefw.io/ring=edge, and a host namespace (192.0.2.1, serving
// tcp on ports) that reaches the API server, linked to a client
// namespace (192.0.2.2).
type kubeLab struct {
	c             *kubetest.Cluster
	admin         dynamic.Interface
	host, client  *netnstest.NS
	nodes, states dynamic.NamespaceableResourceInterface
	policies      dynamic.NamespaceableResourceInterface
}

func newKubeLab(t *testing.T, name string, ports ...int) *kubeLab {
	t.Helper()
	netnstest.RequireRoot(t)
	kubetest.Require(t)
	c := kubetest.Start(t)
	l := &kubeLab{c: c, admin: kubeClient(t, c.Kubeconfig(t, kubetest.Admin()))}
	kubeApply(t, l.admin)
	l.host, l.client = netnstest.New(t, name), netnstest.New(t, name+"c")
	netnstest.Link(t, l.host, []string{"192.0.2.1/24"}, l.client, []string{"192.0.2.2/24"})
	for _, port := range ports {
		metricsServeTCP(t, l.host, fmt.Sprintf("192.0.2.1:%d", port))
	}
	c.ProxyInto(t, l.host)
	l.nodes = l.admin.Resource(kube.NodeResource)
	l.states = l.admin.Resource(kube.NodeStateResource)
	l.policies = l.admin.Resource(kube.PolicyResource)
	node := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Node",
		"metadata": map[string]any{"name": "edge-1", "labels": map[string]any{"edgefw.io/ring": "edge"}},
	}}
	if _, err := l.nodes.Create(context.Background(), node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return l
}

// connects reports whether the client connects to the host's tcp/port.
func (l *kubeLab) connects(port int) bool {
	return l.client.Do(func() error {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("192.0.2.1:%d", port), 500*time.Millisecond)
		if err == nil {
			conn.Close()
		}
		return err
	}) == nil
}

// createPolicy creates the first policy, waiting for its CRD to serve.
func (l *kubeLab) createPolicy(t *testing.T, p *unstructured.Unstructured) {
	t.Helper()
	daemonPoll(t, time.Minute, "the policy CRD serves", func() (bool, string) {
		_, err := l.policies.Create(context.Background(), p, metav1.CreateOptions{})
		return err == nil, fmt.Sprint(err)
	})
}

// TestKubernetesSource runs edgefwd in a namespace with a node's
// kubeconfig against a real API server: a HostFirewallPolicy selecting
// the node's label opens a port (real connections), the node's
// HostFirewallNodeState reports it, and an object conflicting with the
// host's rules is rejected alone; relabelling the node closes it again;
// with the API server stopped edgefwd keeps enforcing, and restarted
// (after the namespace's ruleset is flushed, as by a reboot) it enforces
// the cluster policy saved in its state directory; the API server back, a
// change of the policy is caught up.
func TestKubernetesSource(t *testing.T) {
	ctx := context.Background()
	l := newKubeLab(t, "kube", 8080, 8081)
	c, host, nodes, policies, connects := l.c, l.host, l.nodes, l.policies, l.connects
	waitConnects := func(port int, want bool) {
		t.Helper()
		daemonPoll(t, 2*time.Minute, fmt.Sprintf("tcp/%d open=%v", port, want), func() (bool, string) {
			got := connects(port)
			return got == want, fmt.Sprintf("open=%v", got)
		})
	}
	l.createPolicy(t, kubeWebPolicy(8080))
	kubeconfig := c.Kubeconfig(t, kubetest.Node("edge-1"))
	// The host's own rule ssh: a cluster object defining a rule of that
	// name conflicts, and is rejected alone.
	const hostPolicy = "version: 1\nrules:\n  - {name: ssh, direction: input, action: accept, ports: [{protocol: tcp, port: 22}]}\n"
	clash := kubeWebPolicy(9999)
	clash.SetName("clash")
	rules, _, _ := unstructured.NestedSlice(clash.Object, "spec", "policy", "rules")
	rules[0].(map[string]any)["name"] = "ssh"
	if err := unstructured.SetNestedSlice(clash.Object, rules, "spec", "policy", "rules"); err != nil {
		t.Fatal(err)
	}
	if _, err := policies.Create(ctx, clash, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := startEdgefwdReady(t, edgefwdSetup{NS: host, Policy: hostPolicy, Args: []string{"--kubeconfig", kubeconfig, "--node-name", "edge-1", "--log-level", "debug"}})

	waitConnects(8080, true)
	st := p.Status(t)
	if st.Cluster == nil || !st.Cluster.Reachable || st.Cluster.Source != "Live" {
		t.Errorf("status cluster: %+v", st.Cluster)
	}
	if !slices.ContainsFunc(st.Cluster.Policies, func(p daemon.ClusterPolicy) bool {
		return p.Name == "clash" && p.State == "Rejected" && strings.Contains(p.Error, "hostfirewallpolicy/clash")
	}) {
		t.Errorf("status cluster: the conflicting object is not reported rejected: %+v", st.Cluster.Policies)
	}
	for _, r := range st.Rules {
		if r.Name == "web" && r.Source != "hostfirewallpolicy/web" {
			t.Errorf("rule web: source %q", r.Source)
		}
	}
	if out := p.MustCtl(t, "status"); !strings.Contains(out, "API reachable") || !strings.Contains(out, "hostfirewallpolicy/web") {
		t.Errorf("edgefwctl status shows no cluster source:\n%s", out)
	}
	states := l.states
	daemonPoll(t, time.Minute, "node state reports web applied", func() (bool, string) {
		got, err := states.Get(ctx, "edge-1", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		ps, _, _ := unstructured.NestedSlice(got.Object, "status", "policies")
		states := map[any]any{}
		for _, x := range ps {
			m, _ := x.(map[string]any)
			states[m["name"]] = m["state"]
		}
		return states["web"] == "Applied" && states["clash"] == "Rejected", fmt.Sprint(got.Object["status"])
	})

	relabel := func(ring string) {
		t.Helper()
		patch := fmt.Sprintf(`{"metadata":{"labels":{"edgefw.io/ring":%q}}}`, ring)
		if _, err := nodes.Patch(ctx, "edge-1", "application/merge-patch+json", []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	relabel("other")
	waitConnects(8080, false)
	relabel("edge")
	waitConnects(8080, true)

	// The API server stopped: the policy stays in force.
	c.StopAPIServer(t)
	daemonPoll(t, 2*time.Minute, "edgefwd sees the API unreachable", func() (bool, string) {
		st := p.Status(t)
		return st.Cluster != nil && !st.Cluster.Reachable, fmt.Sprintf("%+v", st.Cluster)
	})
	if !connects(8080) {
		t.Error("tcp/8080 closed after the API server stopped")
	}

	// A reboot without the API server: the saved cluster policy applies.
	p.Signal(t, syscall.SIGTERM)
	p.WaitExit(t)
	host.MustRun(t, "nft", "flush", "ruleset")
	if !connects(8080) {
		t.Fatal("tcp/8080 not open with no ruleset: the test cannot tell a restored policy")
	}
	p = startEdgefwdReady(t, edgefwdSetup{NS: host, PolicyPath: p.PolicyPath, StateDir: p.StateDir,
		Args: []string{"--kubeconfig", kubeconfig, "--node-name", "edge-1"}})
	if !connects(8080) {
		t.Error("tcp/8080 closed after a restart without the API server: the saved cluster policy is not in force")
	}
	if connects(8081) {
		t.Error("tcp/8081 open: the host's default drop is not in force")
	}
	if st := p.Status(t); st.Cluster == nil || st.Cluster.Source != "Saved" {
		t.Errorf("status cluster after a restart without the API: %+v", st.Cluster)
	}

	// The API server back: a change made meanwhile is caught up.
	c.StartAPIServer(t)
	daemonPoll(t, time.Minute, "update the policy to tcp/8081", func() (bool, string) {
		got, err := policies.Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		got.Object["spec"] = kubeWebPolicy(8081).Object["spec"]
		_, err = policies.Update(ctx, got, metav1.UpdateOptions{})
		return err == nil, fmt.Sprint(err)
	})
	waitConnects(8081, true)
	waitConnects(8080, false)
	if st := p.Status(t); st.Cluster == nil || st.Cluster.Source != "Live" || !st.Cluster.Reachable {
		t.Errorf("status cluster after the API came back: %+v", st.Cluster)
	}
}

// kubeAuditPolicy drops tcp/PORT from the client on the nodes labelled
// edgefw.io/ring=edge, then accepts tcp/PORT: in mode Audit the drop
// rule counts and lets the packets go on to the accept.
func kubeAuditPolicy(port int, mode string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": kube.Group + "/" + kube.Version, "kind": "HostFirewallPolicy",
		"metadata": map[string]any{"name": "staged"},
		"spec": map[string]any{
			"nodeSelector": map[string]any{"matchLabels": map[string]any{"edgefw.io/ring": "edge"}},
			"mode":         mode,
			"policy": map[string]any{"rules": []any{
				map[string]any{
					"name": "deny-client", "direction": "input", "action": "drop",
					"from":  []any{map[string]any{"cidr": "192.0.2.2/32"}},
					"ports": []any{map[string]any{"protocol": "tcp", "port": int64(port)}},
				},
				map[string]any{
					"name": "web", "direction": "input", "action": "accept",
					"ports": []any{map[string]any{"protocol": "tcp", "port": int64(port)}},
				},
			}},
		},
	}}
}

// TestKubernetesAuditThenEnforce stages a HostFirewallPolicy through a
// real API server into an edgefwd in a namespace that also runs the
// cluster's aggregator: in mode Audit the deny rule counts the client's
// connections and lets them through, and the policy's status turns Ready
// once the node applied it; switched to Enforce, the same rule drops them
// and Ready follows the new generation; a policy that selects no node
// shows 0 matched nodes and is not Ready.
func TestKubernetesAuditThenEnforce(t *testing.T) {
	ctx := context.Background()
	l := newKubeLab(t, "kaud", 8080)
	c, policies := l.c, l.policies
	connects := func() bool { return l.connects(8080) }
	l.createPolicy(t, kubeAuditPolicy(8080, "Audit"))
	nothing := kubeWebPolicy(8082)
	nothing.SetName("nothing")
	if err := unstructured.SetNestedStringMap(nothing.Object, map[string]string{"edgefw.io/ring": "none"}, "spec", "nodeSelector", "matchLabels"); err != nil {
		t.Fatal(err)
	}
	if _, err := policies.Create(ctx, nothing, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	const hostPolicy = "version: 1\nrules:\n  - {name: ssh, direction: input, action: accept, ports: [{protocol: tcp, port: 22}]}\n"
	p := startEdgefwdReady(t, edgefwdSetup{NS: l.host, Policy: hostPolicy, Args: []string{
		"--kubeconfig", c.Kubeconfig(t, kubetest.Node("edge-1")), "--node-name", "edge-1",
		"--aggregate", "--aggregator-kubeconfig", c.Kubeconfig(t, kubetest.ServiceAccount("edgefw-system", "edgefw-aggregator")),
	}})

	// ready waits for the policy's status: its counts for generation gen.
	ready := func(name string, gen int64, want string, matched int64) {
		t.Helper()
		daemonPoll(t, 2*time.Minute, fmt.Sprintf("%s status: Ready %s, %d matched, generation %d", name, want, matched, gen), func() (bool, string) {
			got, err := policies.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			observed, _, _ := unstructured.NestedInt64(got.Object, "status", "observedGeneration")
			m, _, _ := unstructured.NestedInt64(got.Object, "status", "matchedNodes")
			conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
			status := ""
			for _, x := range conds {
				if c, _ := x.(map[string]any); c["type"] == "Ready" {
					status, _ = c["status"].(string)
				}
			}
			return observed == gen && m == matched && status == want, fmt.Sprint(got.Object["status"])
		})
	}
	rule := func(name string) daemon.RuleStatus {
		t.Helper()
		for _, r := range p.Status(t).Rules {
			if r.Name == name {
				return r
			}
		}
		t.Fatalf("status has no rule %s", name)
		return daemon.RuleStatus{}
	}

	// Audit: the client connects, and the deny rule counts it.
	ready("staged", 1, "True", 1)
	ready("nothing", 1, "False", 0)
	if r := rule("deny-client"); r.Mode != "audit" {
		t.Fatalf("deny-client in mode %q, want audit", r.Mode)
	}
	if !connects() {
		t.Fatal("the client cannot connect while the deny rule is in audit mode")
	}
	audited := rule("deny-client").Packets
	if audited == 0 {
		t.Error("deny-client counted nothing in audit mode")
	}

	// Enforce: the same rule drops the client.
	daemonPoll(t, time.Minute, "switch staged to Enforce", func() (bool, string) {
		got, err := policies.Get(ctx, "staged", metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		if err := unstructured.SetNestedField(got.Object, "Enforce", "spec", "mode"); err != nil {
			return false, err.Error()
		}
		_, err = policies.Update(ctx, got, metav1.UpdateOptions{})
		return err == nil, fmt.Sprint(err)
	})
	ready("staged", 2, "True", 1)
	daemonPoll(t, time.Minute, "deny-client enforced", func() (bool, string) {
		r := rule("deny-client")
		return r.Mode == "enforce", r.Mode
	})
	before := rule("deny-client").Packets
	if connects() {
		t.Fatal("the client connects although deny-client is enforced")
	}
	if after := rule("deny-client").Packets; after <= before {
		t.Errorf("deny-client counted %d packets before the enforced drop and %d after; want more", before, after)
	}
	t.Logf("deny-client: %d packets counted in audit mode, then enforced", audited)
}
