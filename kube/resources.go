// Package kube is edgefw's Kubernetes source of policy (SPEC.md, "Fleet"):
// the HostFirewallPolicy objects a node applies and the
// HostFirewallNodeState it reports into, whose definitions, RBAC and
// admission policy are the manifests in deploy/kubernetes/.
//
// Binary size, measured by adding blank imports to cmd/edgefwd (stripped,
// -trimpath; 16.4 MB without): the dynamic client, tools/cache and
// clientcmd add 5.2 MB (21.5 MB). dynamic/dynamicinformer (through
// client-go/informers) or tools/leaderelection/resourcelock (through the
// typed clientset) each pull in every API group's types: 41.8 MB. So: an
// informer from cache.NewSharedIndexInformer over the dynamic client's
// list and watch, and the Lease handled through the dynamic client.
package kube

import "k8s.io/apimachinery/pkg/runtime/schema"

// Group and Version of edgefw's resources.
const (
	Group   = "edgefw.io"
	Version = "v1alpha1"
)

// Resources of deploy/kubernetes/, both cluster-scoped.
var (
	// PolicyResource is HostFirewallPolicy: rules, sets and tunnels for
	// the nodes its nodeSelector selects.
	PolicyResource = schema.GroupVersionResource{Group: Group, Version: Version, Resource: "hostfirewallpolicies"}
	// NodeStateResource is HostFirewallNodeState: what one node enforces,
	// named after the node and written only by it.
	NodeStateResource = schema.GroupVersionResource{Group: Group, Version: Version, Resource: "hostfirewallnodestates"}
)
