package kube

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/edgefw/edgefw/internal/kubetest"
)

// The fleet simulation's knobs, read from the environment:
//
//	EDGEFW_FLEETSIM_K       agents (default 1000; 100 with -short, under
//	                        CI=true or under the race detector)
//	EDGEFW_FLEETSIM_STEADY  the steady-state interval (default 60s; 10s
//	                        when K is the short default)
const (
	fleetPolicy = "fleet-all"
	ringLabel   = "edgefw.io/ring"
)

// TestFleetSimulation runs K simulated agents against one real API server:
// each is a node's real Kubernetes source (Source: its own client, its own
// watches of HostFirewallPolicy and of its own Node) and node state writer
// (NodeStateWriter), through the node's own identity (a client certificate
// per node, as kubelets have), with an apply that only records the
// generation it was given. One policy selecting every node is changed by
// the admin; every agent must see the new generation and write it into its
// node state. The figures (propagation, API server and etcd CPU and
// memory, status writes) go to the log: no timing is asserted.
func TestFleetSimulation(t *testing.T) {
	k, steady := fleetParams(t)
	c := kubetest.Start(t)
	admin := dynamicClient(t, c.Kubeconfig(t, kubetest.Admin()))
	applyManifests(t, admin)
	// The admin's setup (K Node objects) is not what is measured: no
	// client-side throttling for it.
	adminCfg, err := RESTConfig(c.Kubeconfig(t, kubetest.Admin()))
	if err != nil {
		t.Fatal(err)
	}
	adminCfg.QPS, adminCfg.Burst = -1, 0
	admin, err = dynamic.NewForConfig(adminCfg)
	if err != nil {
		t.Fatal(err)
	}
	etcdPID := findEtcd(c.Dir)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	policies := admin.Resource(PolicyResource)
	if _, err := policies.Create(ctx, fleetPolicyObject("fleet-r1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	names := make([]string, k)
	for i := range names {
		names[i] = fmt.Sprintf("sim-%05d", i)
	}
	start := time.Now()
	parallel(t, names, 8, func(name string) error {
		ring := "a"
		if n, _ := strconv.Atoi(strings.TrimPrefix(name, "sim-")); n%2 == 1 {
			ring = "b"
		}
		node := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "v1", "kind": "Node",
			"metadata": map[string]any{"name": name, "labels": map[string]any{ringLabel: ring}},
		}}
		_, err := admin.Resource(NodeResource).Create(ctx, node, metav1.CreateOptions{})
		return err
	})
	t.Logf("fleetsim: K=%d: %d Node objects created in %v", k, k, time.Since(start).Round(time.Millisecond))

	// The agents, each with its own certificate, client and watches.
	start = time.Now()
	agents := make([]*simAgent, k)
	var writes atomic.Int64
	for i, name := range names {
		a, err := newSimAgent(t, c, name, &writes)
		if err != nil {
			t.Fatal(err)
		}
		agents[i] = a
	}
	t.Logf("fleetsim: %d node identities and clients made in %v", k, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	for _, a := range agents {
		a.run(ctx)
	}
	waitFleet(t, agents, 1, 10*time.Minute)
	t.Logf("fleetsim: all %d agents synced and wrote generation 1 in %v (%d status writes)",
		k, time.Since(start).Round(time.Millisecond), writes.Load())
	// The cluster's aggregator, through its service account, as one
	// edgefwd --aggregate runs it.
	aggCfg, err := RESTConfig(c.Kubeconfig(t, kubetest.ServiceAccount(AggregatorNamespace, "edgefw-aggregator")))
	if err != nil {
		t.Fatal(err)
	}
	agg, err := NewAggregator(aggCfg, AggregatorOptions{Identity: "fleetsim", OnError: func(err error) { t.Logf("aggregator: %v", err) }})
	if err != nil {
		t.Fatal(err)
	}
	aggDone := make(chan struct{})
	go func() { defer close(aggDone); agg.Run(ctx) }()
	defer func() { cancel(); <-aggDone }()
	waitAggregated(t, admin, 1, k, 10*time.Minute)
	time.Sleep(5 * time.Second) // let the start's tail settle

	// One change of the policy selecting every node.
	before := sampleProcs(c.APIServerPID(), etcdPID, os.Getpid())
	cur, err := policies.Get(ctx, fleetPolicy, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedField(cur.Object, fleetPolicyObject("fleet-r2").Object["spec"], "spec"); err != nil {
		t.Fatal(err)
	}
	updated := time.Now()
	var upd *unstructured.Unstructured
	upd, err = policies.Update(ctx, cur, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	gen := upd.GetGeneration()
	waitFleet(t, agents, gen, 10*time.Minute)
	burst := time.Since(updated)
	waitAggregated(t, admin, gen, k, 10*time.Minute)
	t.Logf("fleetsim: K=%d: the policy's aggregated status Ready (%d of %d nodes applied generation %d) %v after the update",
		k, k, k, gen, time.Since(updated).Round(time.Millisecond))
	after := sampleProcs(c.APIServerPID(), etcdPID, os.Getpid())
	var seen, written []time.Duration
	for _, a := range agents {
		s, w := a.at(gen)
		seen, written = append(seen, s.Sub(updated)), append(written, w.Sub(updated))
	}
	t.Logf("fleetsim: K=%d, policy generation %d: seen by the sources p50 %v p99 %v max %v; node state written p50 %v p99 %v max %v",
		k, gen, pct(seen, 50), pct(seen, 99), pct(seen, 100), pct(written, 50), pct(written, 99), pct(written, 100))
	failed, sample := 0, ""
	for _, a := range agents {
		a.mu.Lock()
		failed += len(a.errs)
		if len(a.errs) > 0 {
			sample = a.errs[len(a.errs)-1]
		}
		a.mu.Unlock()
	}
	t.Logf("fleetsim: failed status writes so far (each retried after 10 s): %d (last: %s)", failed, sample)
	t.Logf("fleetsim: the change's burst (%v, %d node state writes): %s", burst.Round(time.Millisecond), k, before.delta(after, burst))

	// Steady state: nothing changes; the agents keep their watches and
	// write their node state every NodeStateInterval.
	w0 := writes.Load()
	before = sampleProcs(c.APIServerPID(), etcdPID, os.Getpid())
	time.Sleep(steady)
	after = sampleProcs(c.APIServerPID(), etcdPID, os.Getpid())
	n := writes.Load() - w0
	t.Logf("fleetsim: steady state over %v: %d status writes (%.2f/s; the heartbeat alone averages K/%v = %.2f/s once the agents' timers spread: they all wrote at the change), %s",
		steady, n, float64(n)/steady.Seconds(), NodeStateInterval.Seconds(), float64(k)/NodeStateInterval.Seconds(), before.delta(after, steady))
	t.Logf("fleetsim: %s", selfMem())

	// Correctness, from the API server's side too: every node state holds
	// the final generation.
	list, err := admin.Resource(NodeStateResource).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, item := range list.Items {
		ps, _, _ := unstructured.NestedSlice(item.Object, "status", "policies")
		if len(ps) == 1 {
			g, _, _ := unstructured.NestedInt64(ps[0].(map[string]any), "generation")
			got[item.GetName()] = g
		}
	}
	for _, name := range names {
		if got[name] != gen {
			t.Errorf("node state %s: policy generation %d, want %d", name, got[name], gen)
		}
	}
	for _, a := range agents {
		if g := a.source.Snapshot(); !g.Synced || len(g.Objects) != 1 || g.Objects[0].Generation != gen {
			t.Errorf("agent %s: snapshot %+v, want %s@%d", a.name, g.Objects, fleetPolicy, gen)
		}
	}
}

// fleetParams reads EDGEFW_FLEETSIM_K and EDGEFW_FLEETSIM_STEADY.
func fleetParams(t *testing.T) (int, time.Duration) {
	k, steady := 1000, time.Minute
	if testing.Short() || os.Getenv("CI") != "" || raceEnabled {
		k, steady = 100, 10*time.Second
	}
	if v := os.Getenv("EDGEFW_FLEETSIM_K"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("EDGEFW_FLEETSIM_K=%q: want a positive number", v)
		}
		k = n
	}
	if raceEnabled && k > 400 {
		t.Logf("fleetsim: K=%d lowered to 400 under the race detector (8128 goroutines at most)", k)
		k = 400
	}
	if v := os.Getenv("EDGEFW_FLEETSIM_STEADY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("EDGEFW_FLEETSIM_STEADY=%q: %v", v, err)
		}
		steady = d
	}
	return k, steady
}

// fleetPolicyObject selects every node of the simulation (both rings).
func fleetPolicyObject(rule string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": Group + "/" + Version, "kind": "HostFirewallPolicy",
		"metadata": map[string]any{"name": fleetPolicy},
		"spec": map[string]any{
			"nodeSelector": map[string]any{"matchExpressions": []any{map[string]any{
				"key": ringLabel, "operator": "In", "values": []any{"a", "b"},
			}}},
			"priority": int64(0), "mode": ModeEnforce,
			"policy": map[string]any{"rules": []any{map[string]any{
				"name": rule, "direction": "input", "action": "accept",
			}}},
		},
	}}
}

// simAgent is one simulated node: the real Source and NodeStateWriter,
// and an apply that records the generation of fleetPolicy it was given.
type simAgent struct {
	name   string
	source *Source
	writer *NodeStateWriter
	writes *atomic.Int64

	mu      sync.Mutex
	seen    map[int64]time.Time // generation → when the source first had it
	written map[int64]time.Time // generation → when its node state was written
	errs    []string
}

func newSimAgent(t *testing.T, c *kubetest.Cluster, name string, writes *atomic.Int64) (*simAgent, error) {
	cfg, err := RESTConfig(c.Kubeconfig(t, kubetest.Node(name)))
	if err != nil {
		return nil, err
	}
	// Each node has its own client, with client-go's default limits.
	cfg.QPS, cfg.Burst = 5, 10
	src, err := NewSource(cfg, name)
	if err != nil {
		return nil, err
	}
	a := &simAgent{name: name, source: src, writes: writes, seen: map[int64]time.Time{}, written: map[int64]time.Time{}}
	a.writer = NewNodeStateWriter(countingClient{Interface: src.Client(), a: a}, name)
	// The kubeconfig's key is in memory now; 1,000 files need not stay.
	_ = os.Remove(filepath.Join(c.Dir, "kubeconfig-system-node-"+name+".yaml"))
	return a, nil
}

func (a *simAgent) run(ctx context.Context) {
	go a.source.Run(ctx)
	go a.writer.Run(ctx, func(err error) {
		a.mu.Lock()
		a.errs = append(a.errs, err.Error())
		a.mu.Unlock()
	})
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-a.source.Changed():
			}
			snap := a.source.Snapshot()
			if !snap.Synced {
				continue
			}
			now := time.Now()
			st := NodeStatus{APISource: "Live", Policies: []PolicyState{}, Conditions: []Condition{{
				Type: "Ready", Status: "True", Reason: "Applied", Message: "simulated", LastTransitionTime: now.UTC().Format(time.RFC3339),
			}}}
			for _, o := range snap.Objects {
				st.Policies = append(st.Policies, PolicyState{Name: o.Name, Generation: o.Generation, Hash: o.Hash, Mode: o.Mode, State: "Applied", Rules: 1})
				a.mu.Lock()
				if _, ok := a.seen[o.Generation]; !ok && o.Name == fleetPolicy {
					a.seen[o.Generation] = now
				}
				a.mu.Unlock()
			}
			a.writer.Update(st)
		}
	}()
}

// at is when the agent saw generation gen and wrote it.
func (a *simAgent) at(gen int64) (seen, written time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen[gen], a.written[gen]
}

// waitFleet waits until every agent wrote generation gen of fleetPolicy.
func waitFleet(t *testing.T, agents []*simAgent, gen int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var missing []string
		var errs []string
		for _, a := range agents {
			if _, w := a.at(gen); w.IsZero() {
				missing = append(missing, a.name)
				a.mu.Lock()
				if len(a.errs) > 0 {
					errs = append(errs, a.name+": "+a.errs[len(a.errs)-1])
				}
				a.mu.Unlock()
			}
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v, %d agents have not written generation %d (e.g. %v; errors %v)",
				timeout, len(missing), gen, missing[:min(5, len(missing))], errs[:min(5, len(errs))])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// countingClient counts the node state's status writes and records the
// generation each wrote.
type countingClient struct {
	dynamic.Interface
	a *simAgent
}

func (c countingClient) Resource(res schema.GroupVersionResource) dynamic.NamespaceableResourceInterface {
	return countingResource{NamespaceableResourceInterface: c.Interface.Resource(res), a: c.a}
}

type countingResource struct {
	dynamic.NamespaceableResourceInterface
	a *simAgent
}

func (r countingResource) ApplyStatus(ctx context.Context, name string, obj *unstructured.Unstructured, opts metav1.ApplyOptions) (*unstructured.Unstructured, error) {
	out, err := r.NamespaceableResourceInterface.ApplyStatus(ctx, name, obj, opts)
	if err != nil {
		return out, err
	}
	now := time.Now()
	r.a.writes.Add(1)
	ps, _, _ := unstructured.NestedSlice(obj.Object, "status", "policies")
	for _, p := range ps {
		m, _ := p.(map[string]any)
		if m["name"] != fleetPolicy {
			continue
		}
		g, _, _ := unstructured.NestedInt64(m, "generation")
		if g == 0 {
			if f, ok := m["generation"].(float64); ok { // from JSON
				g = int64(f)
			}
		}
		r.a.mu.Lock()
		if _, ok := r.a.written[g]; !ok {
			r.a.written[g] = now
		}
		r.a.mu.Unlock()
	}
	return out, nil
}

// parallel runs f for every item, n at a time, failing the test on the
// first error.
func parallel(t *testing.T, items []string, n int, f func(string) error) {
	t.Helper()
	ch := make(chan string)
	errs := make(chan error, len(items))
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range ch {
				if err := f(it); err != nil {
					errs <- fmt.Errorf("%s: %w", it, err)
				}
			}
		}()
	}
	for _, it := range items {
		ch <- it
	}
	close(ch)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	i := (len(s)*p + 99) / 100
	return s[max(0, min(len(s)-1, i-1))].Round(time.Millisecond)
}

// procSample is the CPU time (utime+stime) and resident memory of the API
// server, etcd and the test process (the simulated agents, which share
// the machine's cores with them) at one moment.
type procSample struct {
	cpu [3]time.Duration
	rss [3]int64 // kB
	ok  [3]bool
}

func sampleProcs(pids ...int) procSample {
	var s procSample
	for i, pid := range pids[:3] {
		if pid <= 0 {
			continue
		}
		cpu, err1 := procCPU(pid)
		rss, err2 := procRSS(pid)
		s.cpu[i], s.rss[i], s.ok[i] = cpu, rss, err1 == nil && err2 == nil
	}
	return s
}

func (s procSample) delta(after procSample, over time.Duration) string {
	var out []string
	for i, name := range []string{"kube-apiserver", "etcd", "agents"} {
		if !s.ok[i] || !after.ok[i] {
			out = append(out, name+": not measured")
			continue
		}
		d := after.cpu[i] - s.cpu[i]
		out = append(out, fmt.Sprintf("%s CPU %v (%.1f%% of a core), RSS %d MiB", name, d.Round(10*time.Millisecond),
			100*d.Seconds()/over.Seconds(), after.rss[i]/1024))
	}
	return strings.Join(out, "; ")
}

// procCPU is utime+stime of /proc/PID/stat (fields 14 and 15, in clock
// ticks of 1/100 s, USER_HZ on Linux).
func procCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces: fields count after its ')'.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %v %v", pid, err1, err2)
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// procRSS is VmRSS of /proc/PID/status in kB.
func procRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// findEtcd is the PID of the etcd whose data directory is under dir (the
// cluster's), or 0.
func findEtcd(dir string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err == nil && strings.Contains(string(cmd), "--data-dir="+filepath.Join(dir, "etcd")) {
			return pid
		}
	}
	return 0
}

// selfMem is the test process's own footprint: the simulated agents'.
func selfMem() string {
	rss, err := procRSS(os.Getpid())
	if err != nil {
		return "test process RSS not measured"
	}
	fds, _ := os.ReadDir("/proc/self/fd")
	return fmt.Sprintf("the agents' process: RSS %d MiB, %d file descriptors", rss/1024, len(fds))
}

// waitAggregated waits until the aggregator wrote fleetPolicy's status for
// generation gen: k nodes matched, k applied, none failed, Ready True.
func waitAggregated(t *testing.T, admin dynamic.Interface, gen int64, k int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var st PolicyStatus
		u, err := admin.Resource(PolicyResource).Get(context.Background(), fleetPolicy, metav1.GetOptions{})
		if err == nil {
			raw, _, _ := unstructured.NestedMap(u.Object, "status")
			err = runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &st)
		}
		if err == nil && st.ObservedGeneration == gen && st.MatchedNodes == int64(k) && st.AppliedNodes == int64(k) &&
			st.FailedNodes == 0 && ready(st).Status == "True" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v the policy's status is not Ready for generation %d with %d nodes: %+v (%v)", timeout, gen, k, st, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
