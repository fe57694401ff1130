package kube

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/edgefw/edgefw/policy"
)

// Modes of a HostFirewallPolicy (spec.mode).
const (
	ModeEnforce = "Enforce"
	ModeAudit   = "Audit"
)

// FragmentPrefix starts the name of an object's policy fragment, so that
// errors and each rule's source name the object: hostfirewallpolicy/NAME.
const FragmentPrefix = "hostfirewallpolicy/"

// Object is the part of a HostFirewallPolicy a node applies. It is what
// the state directory keeps of the last applied cluster policy, as JSON.
type Object struct {
	Name       string `json:"name"`
	Generation int64  `json:"generation"`
	Priority   int64  `json:"priority"`
	Mode       string `json:"mode"`
	// Hash is the SHA-256 of spec.policy and spec.mode, as applied.
	Hash string `json:"hash"`
	// Policy is spec.policy, a drop-in in JSON form.
	Policy map[string]any `json:"policy"`
}

// objectFrom reads a HostFirewallPolicy, and its nodeSelector.
func objectFrom(u *unstructured.Unstructured) (Object, labels.Selector, error) {
	o := Object{Name: u.GetName(), Generation: u.GetGeneration(), Mode: ModeEnforce}
	spec, _, _ := unstructured.NestedMap(u.Object, "spec")
	if p, ok, _ := unstructured.NestedInt64(spec, "priority"); ok {
		o.Priority = p
	}
	if m, ok, _ := unstructured.NestedString(spec, "mode"); ok && m != "" {
		o.Mode = m
	}
	o.Policy, _, _ = unstructured.NestedMap(spec, "policy")
	sum := sha256.Sum256(mustJSON(map[string]any{"mode": o.Mode, "policy": o.Policy}))
	o.Hash = "sha256:" + hex.EncodeToString(sum[:])

	var ls metav1.LabelSelector
	if raw, ok, _ := unstructured.NestedMap(spec, "nodeSelector"); ok {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &ls); err != nil {
			return o, nil, fmt.Errorf("spec.nodeSelector: %w", err)
		}
	} else {
		// The schema requires a selector; one missing selects nothing
		// rather than every node.
		return o, labels.Nothing(), nil
	}
	sel, err := metav1.LabelSelectorAsSelector(&ls)
	if err != nil {
		return o, nil, fmt.Errorf("spec.nodeSelector: %w", err)
	}
	return o, sel, nil
}

func mustJSON(v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		// Values decoded from JSON always encode.
		panic(err)
	}
	return data
}

// sortObjects puts objects in merge order: priority, then name.
func sortObjects(objs []Object) {
	slices.SortFunc(objs, func(a, b Object) int {
		return cmp.Or(cmp.Compare(a.Priority, b.Priority), cmp.Compare(a.Name, b.Name))
	})
}

// Fragment is the object's spec.policy as a drop-in named
// hostfirewallpolicy/NAME: in Audit mode its drop and reject rules are in
// audit mode. It refuses what only a host's file may say: a set read from
// a file.
func (o Object) Fragment() (policy.Fragment, error) {
	doc := runtime.DeepCopyJSON(o.Policy)
	if doc == nil {
		doc = map[string]any{}
	}
	if sets, ok := doc["sets"].(map[string]any); ok {
		for name, v := range sets {
			if _, isList := v.([]any); !isList {
				return policy.Fragment{}, fmt.Errorf("sets.%s: a cluster object's set is an inline list of CIDRs, not a file", name)
			}
		}
	}
	if o.Mode == ModeAudit {
		rules, _ := doc["rules"].([]any)
		for _, r := range rules {
			if rule, ok := r.(map[string]any); ok && (rule["action"] == "drop" || rule["action"] == "reject") {
				rule["mode"] = string(policy.Audit)
			}
		}
	}
	data, err := yaml.Marshal(doc)
	if err != nil {
		return policy.Fragment{}, err
	}
	return policy.Fragment{Name: FragmentPrefix + o.Name, Data: data}, nil
}

// Rejection is an object left out of the policy, and why.
type Rejection struct {
	Name       string
	Generation int64
	Err        error
}

// Merge decides which objects (in merge order) the host applies: each is
// loaded after the host's files, and one that does not load with them (or
// with the objects before it) is rejected alone. load loads the host's
// policy with the fragments given; the last call to it that succeeds is
// with the accepted objects' fragments, so a caller keeps that result. If
// the host's own files do not load, Merge returns load's error.
func Merge(objs []Object, load func([]policy.Fragment) error) (accepted []Object, rejected []Rejection, err error) {
	frags := make([]policy.Fragment, 0, len(objs))
	valid := make([]Object, 0, len(objs))
	for _, o := range objs {
		f, err := o.Fragment()
		if err != nil {
			rejected = append(rejected, Rejection{Name: o.Name, Generation: o.Generation, Err: err})
			continue
		}
		frags, valid = append(frags, f), append(valid, o)
	}
	if load(frags) == nil {
		return valid, rejected, nil
	}
	if err := load(nil); err != nil {
		return nil, nil, err
	}
	var ok []policy.Fragment
	for i, o := range valid {
		if err := load(append(slices.Clip(ok), frags[i])); err != nil {
			rejected = append(rejected, Rejection{Name: o.Name, Generation: o.Generation, Err: err})
			continue
		}
		ok, accepted = append(ok, frags[i]), append(accepted, o)
	}
	return accepted, rejected, nil
}
