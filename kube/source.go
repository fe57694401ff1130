package kube

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// NodeResource is the core Node, which a node reads only its own of.
var NodeResource = schema.GroupVersionResource{Version: "v1", Resource: "nodes"}

// Snapshot is what the cluster says this node applies.
type Snapshot struct {
	// Synced is true once the policies and the node's own Node were
	// listed; before, Objects says nothing.
	Synced bool
	// Objects are the HostFirewallPolicy objects selecting the node, in
	// merge order (priority, name).
	Objects []Object
	// Invalid are matching objects that cannot be read (a bad selector).
	Invalid []Rejection
	// NodeLabels are the node's labels as last seen.
	NodeLabels map[string]string
	// Reachable says whether the last request to the API server
	// succeeded; LastError is the last that failed.
	Reachable bool
	LastError string
}

// Source watches the HostFirewallPolicy objects and the node's own Node
// (by field selector: never all Nodes) and keeps the snapshot of the
// objects selecting the node.
type Source struct {
	node   string
	client dynamic.Interface

	// recomputing serializes recompute: both informers call it, and a
	// selection read from older stores must not overwrite a newer one.
	recomputing sync.Mutex
	mu          sync.Mutex
	snap        Snapshot
	changed     chan struct{} // holds a signal once the snapshot changed

	policies, nodes cache.SharedIndexInformer
}

// RESTConfig reads a kubeconfig file.
func RESTConfig(kubeconfig string) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	return cfg, nil
}

// NewSource is a source for the node named node, reading through cfg.
func NewSource(cfg *rest.Config, node string) (*Source, error) {
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	s := &Source{node: node, client: client, changed: make(chan struct{}, 1)}
	own := fields.OneTermEqualSelector("metadata.name", node).String()
	s.nodes = s.informer(NodeResource, own)
	s.policies = s.informer(PolicyResource, "")
	return s, nil
}

// Client is the source's dynamic client, for the node state.
func (s *Source) Client() dynamic.Interface { return s.client }

// informer lists and watches res (only the objects the field selector
// picks), marking the API reachable or not by the outcome of each call.
func (s *Source) informer(res schema.GroupVersionResource, fieldSelector string) cache.SharedIndexInformer {
	ri := s.client.Resource(res)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			opts.FieldSelector = fieldSelector
			list, err := ri.List(ctx, opts)
			s.reached(err)
			return list, err
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.FieldSelector = fieldSelector
			w, err := ri.Watch(ctx, opts)
			if err != nil {
				s.reached(err)
				return nil, err
			}
			return s.observe(ctx, w, func() error {
				_, err := ri.List(ctx, metav1.ListOptions{FieldSelector: fieldSelector, Limit: 1})
				return err
			}), nil
		},
	}
	inf := cache.NewSharedIndexInformer(lw, &unstructured.Unstructured{}, 0, cache.Indexers{})
	recompute := func(any) { s.recompute() }
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    recompute,
		UpdateFunc: func(_, _ any) { s.recompute() },
		DeleteFunc: recompute,
	})
	return inf
}

// Run watches until ctx ends.
func (s *Source) Run(ctx context.Context) {
	go s.nodes.RunWithContext(ctx)
	go s.policies.RunWithContext(ctx)
	if cache.WaitForCacheSync(ctx.Done(), s.nodes.HasSynced, s.policies.HasSynced) {
		s.recompute()
	}
	<-ctx.Done()
}

// Changed receives a signal after the snapshot changed: the matching set,
// a matching object's generation, or reachability.
func (s *Source) Changed() <-chan struct{} { return s.changed }

// Snapshot returns the current snapshot.
func (s *Source) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := s.snap
	snap.Objects = slices.Clone(snap.Objects)
	return snap
}

// reached records the outcome of a request to the API server.
func (s *Source) reached(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if !s.snap.Reachable && s.snap.LastError == err.Error() {
			return
		}
		s.snap.Reachable, s.snap.LastError = false, err.Error()
	} else {
		if s.snap.Reachable {
			return
		}
		s.snap.Reachable = true
	}
	s.signal()
}

func (s *Source) signal() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// recompute selects the objects matching the node's labels, and signals
// if the selection (names and generations) changed.
func (s *Source) recompute() {
	s.recomputing.Lock()
	defer s.recomputing.Unlock()
	if !s.nodes.HasSynced() || !s.policies.HasSynced() {
		return
	}
	var nodeLabels map[string]string
	for _, n := range s.nodes.GetStore().List() {
		if u, ok := n.(*unstructured.Unstructured); ok && u.GetName() == s.node {
			nodeLabels = u.GetLabels()
		}
	}
	var objs []Object
	var invalid []Rejection
	for _, item := range s.policies.GetStore().List() {
		u, ok := item.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		o, sel, err := objectFrom(u)
		if err != nil {
			invalid = append(invalid, Rejection{Name: o.Name, Generation: o.Generation, Err: err})
			continue
		}
		if sel.Matches(labels.Set(nodeLabels)) {
			objs = append(objs, o)
		}
	}
	sortObjects(objs)
	slices.SortFunc(invalid, func(a, b Rejection) int { return strings.Compare(a.Name, b.Name) })

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.snap.Synced && sameSelection(s.snap.Objects, objs) && sameRejections(s.snap.Invalid, invalid) {
		s.snap.NodeLabels = nodeLabels
		return
	}
	s.snap.Synced, s.snap.Objects, s.snap.Invalid, s.snap.NodeLabels = true, objs, invalid, nodeLabels
	s.signal()
}

func sameSelection(a, b []Object) bool {
	return slices.EqualFunc(a, b, func(x, y Object) bool {
		return x.Name == y.Name && x.Generation == y.Generation && x.Hash == y.Hash
	})
}

func sameRejections(a, b []Rejection) bool {
	return slices.EqualFunc(a, b, func(x, y Rejection) bool {
		return x.Name == y.Name && x.Err.Error() == y.Err.Error()
	})
}

// observedWatch forwards a watch's events, noting each as a sign that the
// API server is reached.
type observedWatch struct {
	w       watch.Interface
	out     chan watch.Event
	stopped chan struct{}
	once    sync.Once
}

func (o *observedWatch) Stop() {
	o.once.Do(func() { close(o.stopped) })
	o.w.Stop()
}

func (o *observedWatch) ResultChan() <-chan watch.Event { return o.out }

// observe wraps w. client-go returns an empty watch, closed at once and
// without error, when the connection is reset or ends before the API
// server answers (a proxy or load balancer in front of a stopped API
// server does that), and the reflector watches again: no error would
// ever tell. So a watch that ends without an event is followed by probe,
// a request whose outcome says whether the API server is reached.
func (s *Source) observe(ctx context.Context, w watch.Interface, probe func() error) watch.Interface {
	o := &observedWatch{w: w, out: make(chan watch.Event), stopped: make(chan struct{})}
	go func() {
		defer close(o.out)
		events := 0
		for ev := range w.ResultChan() {
			if events == 0 {
				s.reached(nil)
			}
			events++
			select {
			case o.out <- ev:
			case <-o.stopped:
				return
			}
		}
		select {
		case <-o.stopped:
			return
		default:
		}
		if events == 0 && ctx.Err() == nil {
			s.reached(probe())
		}
	}()
	return o
}
