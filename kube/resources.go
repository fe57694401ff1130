// Package kube is edgefw's Kubernetes source of policy (SPEC.md, "Fleet"):
// the HostFirewallPolicy objects a node applies and the
// HostFirewallNodeState it reports into, whose definitions, RBAC and
// admission policy are the manifests in deploy/kubernetes/.
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
