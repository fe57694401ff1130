package kube

import (
	"context"
	"fmt"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/edgefw/edgefw/internal/kubetest"
)

// manifestDir holds the manifests the tests apply, as an operator would.
const manifestDir = "../deploy/kubernetes"

// TestAPIServer runs every test that needs the real API server against one
// cluster: it starts kube-apiserver and etcd, applies deploy/kubernetes/
// as kubectl apply --server-side -k would, and runs the subtests.
func TestAPIServer(t *testing.T) {
	c := kubetest.Start(t)
	admin := dynamicClient(t, c.Kubeconfig(t, kubetest.Admin()))
	applyManifests(t, admin)

	t.Run("PolicySchema", func(t *testing.T) { testPolicySchema(t, admin) })
	t.Run("PolicyObject", func(t *testing.T) { testPolicyObject(t, admin) })
	t.Run("NodeStateOwnNodeOnly", func(t *testing.T) { testNodeStateOwnNodeOnly(t, c, admin) })
	t.Run("NodeAccess", func(t *testing.T) { testNodeAccess(t, c, admin) })
	t.Run("AggregatorAccess", func(t *testing.T) { testAggregatorAccess(t, c, admin) })
	t.Run("PrinterColumns", func(t *testing.T) { testPrinterColumns(t, c) })
	t.Run("NodeStateWriter", func(t *testing.T) { testNodeStateWriter(t, c, admin) })
	// Last: it stops and restarts the API server.
	t.Run("Source", func(t *testing.T) { testSource(t, c, admin) })
}

func dynamicClient(t *testing.T, kubeconfig string) *dynamic.DynamicClient {
	t.Helper()
	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	client, err := dynamic.NewForConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// manifestResources maps the kinds of deploy/kubernetes/ to their
// resources: the few the manifests use, instead of a discovery client.
var manifestResources = map[schema.GroupVersionKind]struct {
	resource   string
	namespaced bool
}{
	{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}:                 {"customresourcedefinitions", false},
	{Version: "v1", Kind: "Namespace"}:                                                               {"namespaces", false},
	{Version: "v1", Kind: "ServiceAccount"}:                                                          {"serviceaccounts", true},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"}:                         {"clusterroles", false},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRoleBinding"}:                  {"clusterrolebindings", false},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "Role"}:                                {"roles", true},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "RoleBinding"}:                         {"rolebindings", true},
	{Group: "admissionregistration.k8s.io", Version: "v1", Kind: "ValidatingAdmissionPolicy"}:        {"validatingadmissionpolicies", false},
	{Group: "admissionregistration.k8s.io", Version: "v1", Kind: "ValidatingAdmissionPolicyBinding"}: {"validatingadmissionpolicybindings", false},
}

// applyManifests applies deploy/kubernetes/ with server-side apply and
// waits until the CRDs serve, RBAC grants what the node role says and the
// admission policy refuses what it should.
func applyManifests(t *testing.T, admin dynamic.Interface) {
	t.Helper()
	ctx := context.Background()
	for _, obj := range kubetest.ReadManifests(t, manifestDir) {
		client := resourceFor(t, admin, obj)
		if _, err := client.Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: "edgefw-test", Force: true}); err != nil {
			t.Fatalf("apply %s %s: %v", obj.GetKind(), obj.GetName(), err)
		}
	}
	crds := admin.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	for _, name := range []string{"hostfirewallpolicies.edgefw.io", "hostfirewallnodestates.edgefw.io"} {
		eventually(t, "CRD "+name+" established", func() error {
			crd, err := crds.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if !hasCondition(crd, "Established", "True") {
				return fmt.Errorf("not established: %v", crd.Object["status"])
			}
			return nil
		})
	}
}

// resourceFor is the client of obj's resource, in its namespace.
func resourceFor(t *testing.T, client dynamic.Interface, obj *unstructured.Unstructured) dynamic.ResourceInterface {
	t.Helper()
	gvk := obj.GroupVersionKind()
	r, ok := manifestResources[gvk]
	if !ok {
		t.Fatalf("%s %s: kind not known to the test; add it to manifestResources", gvk, obj.GetName())
	}
	res := client.Resource(gvk.GroupVersion().WithResource(r.resource))
	if r.namespaced {
		return res.Namespace(obj.GetNamespace())
	}
	return res
}

// hasCondition reports whether obj's status has condition typ with status.
func hasCondition(obj *unstructured.Unstructured, typ, status string) bool {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == typ && m["status"] == status {
			return true
		}
	}
	return false
}

// eventually retries f until it succeeds: what the API server loads
// asynchronously (a CRD's schema, an RBAC binding, an admission policy)
// takes effect a moment after it is written. It fails the test after a
// minute.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %v after a minute", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// isForbidden reports whether err is the API server's 403.
func isForbidden(err error) bool { return apierrors.IsForbidden(err) }
