package kube

import (
	"context"
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"github.com/edgefw/edgefw/internal/kubetest"
)

// testNodeStateWriter: the writer creates the node's state through the
// node's identity (RBAC and the admission policy allow it), and a change
// is written at once.
func testNodeStateWriter(t *testing.T, c *kubetest.Cluster, admin dynamic.Interface) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	node := dynamicClient(t, c.Kubeconfig(t, kubetest.Node("state-node")))
	w := NewNodeStateWriter(node, "state-node")
	errs := make(chan error, 16)
	go w.Run(ctx, func(err error) {
		select {
		case errs <- err:
		default:
		}
	})
	st := NodeStatus{
		RulesetHash: "sha256:aa", LastApplyTime: "2026-12-07T23:00:00Z", DriftRepairs: 1, APISource: "Live",
		Policies:   []PolicyState{{Name: "web", Generation: 2, Hash: "sha256:bb", Mode: ModeEnforce, State: "Applied", Rules: 1}},
		Conditions: []Condition{{Type: "Ready", Status: "True", Reason: "Applied", Message: "ruleset applied", LastTransitionTime: "2026-12-07T23:00:00Z"}},
	}
	w.Update(st)
	states := admin.Resource(NodeStateResource)
	read := func(want string) {
		t.Helper()
		eventually(t, "node state "+want, func() error {
			got, err := states.Get(ctx, "state-node", metav1.GetOptions{})
			if err != nil {
				select {
				case werr := <-errs:
					return fmt.Errorf("%v (writer: %v)", err, werr)
				default:
					return err
				}
			}
			ps, _, _ := unstructured.NestedSlice(got.Object, "status", "policies")
			obs, _, _ := unstructured.NestedString(got.Object, "status", "observedTime")
			if len(ps) != 1 || obs == "" || fmt.Sprint(ps[0].(map[string]any)["state"]) != want {
				return fmt.Errorf("status %v", got.Object["status"])
			}
			return nil
		})
	}
	read("Applied")
	st.Policies[0].State, st.Policies[0].Error = "Rejected", "rule name clash"
	w.Update(st)
	read("Rejected")
}
