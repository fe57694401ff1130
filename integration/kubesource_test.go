package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/edgefw/edgefw/daemon"
	"github.com/edgefw/edgefw/internal/kubetest"
	"github.com/edgefw/edgefw/internal/netnstest"
	"github.com/edgefw/edgefw/kube"
)

// kubeManifests are the files of deploy/kubernetes/ a node needs, and
// their kinds' resources.
var kubeManifests = []string{"hostfirewallpolicies.yaml", "hostfirewallnodestates.yaml", "rbac-node.yaml", "admission-nodestate.yaml"}

var kubeResources = map[string]schema.GroupVersionResource{
	"CustomResourceDefinition":         {Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"},
	"ClusterRole":                      {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"},
	"ClusterRoleBinding":               {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"},
	"ValidatingAdmissionPolicy":        {Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingadmissionpolicies"},
	"ValidatingAdmissionPolicyBinding": {Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingadmissionpolicybindings"},
}

// kubeApply applies the node's manifests (server-side, as kubectl would).
func kubeApply(t *testing.T, admin dynamic.Interface) {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range kubeManifests {
		data, err := os.ReadFile(filepath.Join(root, "deploy", "kubernetes", name))
		if err != nil {
			t.Fatal(err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			obj := &unstructured.Unstructured{}
			err := dec.Decode(&obj.Object)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if len(obj.Object) == 0 {
				continue
			}
			res, ok := kubeResources[obj.GetKind()]
			if !ok {
				t.Fatalf("%s: kind %s not known to the test", name, obj.GetKind())
			}
			if _, err := admin.Resource(res).Apply(context.Background(), obj.GetName(), obj, metav1.ApplyOptions{FieldManager: "edgefw-test", Force: true}); err != nil {
				t.Fatalf("apply %s %s: %v", obj.GetKind(), obj.GetName(), err)
			}
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
	netnstest.RequireRoot(t)
	kubetest.Require(t)
	ctx := context.Background()
	c := kubetest.Start(t)
	admin := kubeClient(t, c.Kubeconfig(t, kubetest.Admin()))
	kubeApply(t, admin)

	host := netnstest.New(t, "kube")
	client := netnstest.New(t, "kcli")
	netnstest.Link(t, host, []string{"192.0.2.1/24"}, client, []string{"192.0.2.2/24"})
	metricsServeTCP(t, host, "192.0.2.1:8080")
	metricsServeTCP(t, host, "192.0.2.1:8081")
	c.ProxyInto(t, host)
	connects := func(port int) bool {
		err := client.Do(func() error {
			conn, err := net.DialTimeout("tcp", fmt.Sprintf("192.0.2.1:%d", port), 500*time.Millisecond)
			if err == nil {
				conn.Close()
			}
			return err
		})
		return err == nil
	}
	waitConnects := func(port int, want bool) {
		t.Helper()
		daemonPoll(t, 2*time.Minute, fmt.Sprintf("tcp/%d open=%v", port, want), func() (bool, string) {
			got := connects(port)
			return got == want, fmt.Sprintf("open=%v", got)
		})
	}

	nodes := admin.Resource(kube.NodeResource)
	node := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Node",
		"metadata": map[string]any{"name": "edge-1", "labels": map[string]any{"edgefw.io/ring": "edge"}},
	}}
	if _, err := nodes.Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	policies := admin.Resource(kube.PolicyResource)
	daemonPoll(t, time.Minute, "the policy CRD serves", func() (bool, string) {
		_, err := policies.Create(ctx, kubeWebPolicy(8080), metav1.CreateOptions{})
		return err == nil, fmt.Sprint(err)
	})
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
	states := admin.Resource(kube.NodeStateResource)
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
