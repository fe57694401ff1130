package daemon

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/edgefw/edgefw/policy"
)

// fakeCluster serves fixed fragments, as kube.Agent would its objects.
type fakeCluster struct {
	changed chan struct{}

	mu      sync.Mutex
	frags   []policy.Fragment
	applied []NodeReport
}

func (f *fakeCluster) Changed() <-chan struct{} { return f.changed }

func (f *fakeCluster) Merge(load func([]policy.Fragment) error) (ClusterStatus, error) {
	f.mu.Lock()
	frags := f.frags
	f.mu.Unlock()
	st := ClusterStatus{Reachable: true, Source: "Live"}
	if err := load(frags); err != nil {
		return st, err
	}
	for _, fr := range frags {
		st.Policies = append(st.Policies, ClusterPolicy{Name: strings.TrimPrefix(fr.Name, "hostfirewallpolicy/"), State: "Applied"})
	}
	return st, nil
}

func (f *fakeCluster) Applied(rep NodeReport, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		f.applied = append(f.applied, rep)
	}
}

func (f *fakeCluster) set(frags ...policy.Fragment) {
	f.mu.Lock()
	f.frags = frags
	f.mu.Unlock()
	f.changed <- struct{}{}
}

func (f *fakeCluster) reports() []NodeReport {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]NodeReport(nil), f.applied...)
}

// TestClusterPolicyMergedAfterFiles: the cluster's objects are merged
// after the files at every reload, a change of them reloads, status names
// each rule's source and the cluster, and each apply is reported.
func TestClusterPolicyMergedAfterFiles(t *testing.T) {
	h := newHarness(t)
	cl := &fakeCluster{changed: make(chan struct{}, 1),
		frags: []policy.Fragment{{Name: "hostfirewallpolicy/metrics", Data: []byte("rules: [{name: metrics, direction: input, action: accept, ports: [{protocol: tcp, port: 9100}]}]")}}}
	d, err := New(Config{PolicyPath: h.policy, StateDir: h.state, Firewall: h.fw, Version: "test", Cluster: cl})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	go func() { done <- d.loop(ctx) }()
	go d.followCluster(ctx)
	t.Cleanup(func() {
		cancel()
		<-done
	})
	if !h.holds(t, policyB) {
		t.Fatalf("files + cluster object not in force:\n%s", h.text(t, d))
	}
	st := d.Status(ctx)
	sources := map[string]string{}
	for _, r := range st.Rules {
		sources[r.Name] = r.Source
	}
	if sources["web"] != h.policy || sources["metrics"] != "hostfirewallpolicy/metrics" {
		t.Errorf("rule sources: %v", sources)
	}
	if st.Cluster == nil || !st.Cluster.Reachable || len(st.Cluster.Policies) != 1 {
		t.Errorf("status cluster: %+v", st.Cluster)
	}
	if reps := cl.reports(); len(reps) != 1 || !strings.HasPrefix(reps[0].RulesetHash, "sha256:") {
		t.Errorf("reports after start: %+v", reps)
	}

	cl.set()
	waitFor(t, "the object's removal applied", func() bool { return h.holds(t, policyA) })
}

// TestClusterHostFilesBroken: when the host's own files do not load, the
// cluster source hears the failure (the node state reports it).
func TestClusterHostFilesBroken(t *testing.T) {
	h := newHarness(t)
	cl := &fakeCluster{changed: make(chan struct{}, 1)}
	var failed []error
	errs := &failedCluster{fakeCluster: cl, failed: &failed}
	d, err := New(Config{PolicyPath: h.policy, StateDir: h.state, Firewall: h.fw, Version: "test", Cluster: errs})
	if err != nil {
		t.Fatal(err)
	}
	h.write(t, "version: 1\nrules: [{name: x}]\n")
	if _, _, err := d.readPolicy(); err == nil {
		t.Fatal("a broken policy file loaded")
	}
	if len(failed) != 1 {
		t.Errorf("failures reported to the cluster source: %v, want 1", failed)
	}
}

// failedCluster records the failed applies reported to it.
type failedCluster struct {
	*fakeCluster
	failed *[]error
}

func (f *failedCluster) Applied(rep NodeReport, err error) {
	if err != nil {
		*f.failed = append(*f.failed, err)
	}
}
