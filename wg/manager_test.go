package wg

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefw/edgefw/policy"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// fakeResolver answers from a map; names it does not know fail.
type fakeResolver struct {
	mu      sync.Mutex
	answers map[string][]netip.Addr
	lookups int
}

func (r *fakeResolver) set(host string, addrs ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.answers == nil {
		r.answers = map[string][]netip.Addr{}
	}
	if len(addrs) == 0 {
		delete(r.answers, host)
		return
	}
	var as []netip.Addr
	for _, a := range addrs {
		as = append(as, netip.MustParseAddr(a))
	}
	r.answers[host] = as
}

func (r *fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lookups++
	if a, ok := r.answers[host]; ok {
		return slices.Clone(a), nil
	}
	return nil, fmt.Errorf("lookup %s: no such host", host)
}

// testEnv is a Manager wired to fakes, with the Reports of its Applies
// and Refreshes kept.
type testEnv struct {
	t        *testing.T
	host     *fakeHost
	resolver *fakeResolver
	m        *Manager
	dir      string
	clock    time.Time
	// reports are those of every apply and refresh, in order.
	reports []Report
}

func newTestEnv(t *testing.T, kernelModule bool, opts ...Option) *testEnv {
	t.Helper()
	e := &testEnv{
		t:        t,
		host:     newFakeHost(),
		resolver: &fakeResolver{},
		dir:      t.TempDir(),
		clock:    time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC),
	}
	e.host.kernelModule = kernelModule
	e.m = e.newManager(opts...)
	return e
}

// newManager returns a Manager wired to the environment's fakes, closed at
// the end of the test.
func (e *testEnv) newManager(opts ...Option) *Manager {
	e.t.Helper()
	kernelModule := e.host.kernelModule
	all := append([]Option{
		WithClient(e.host),
		WithLinks(e.host),
		WithResolver(e.resolver),
		WithKernelModule(func() bool { return kernelModule }),
		WithClock(func() time.Time { return e.clock }),
		withUserspace(e.host),
	}, opts...)
	m, err := New(all...)
	if err != nil {
		e.t.Fatalf("New: %v", err)
	}
	e.t.Cleanup(func() { m.Close() })
	return m
}

// restart replaces the Manager with a new one on the same host, as a daemon
// restart does: kernel interfaces stay, the Manager's memory is gone.
func (e *testEnv) restart(opts ...Option) {
	e.t.Helper()
	if err := e.m.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
	e.m = e.newManager(opts...)
}

func (e *testEnv) tunnel(name string, port uint16, address string, peers ...policy.TunnelPeer) policy.Tunnel {
	return policy.Tunnel{
		Name:           name,
		Backend:        policy.BackendAuto,
		PrivateKeyFile: filepath.Join(e.dir, "keys", name+".key"),
		ListenPort:     port,
		Addresses:      prefixes(address),
		MTU:            1420,
		Peers:          peers,
	}
}

func testPeer(name string, key byte, endpoint string, allowed ...string) policy.TunnelPeer {
	return policy.TunnelPeer{Name: name, PublicKey: testKey(key), Endpoint: endpoint, AllowedIPs: prefixes(allowed...)}
}

func (e *testEnv) apply(tunnels ...policy.Tunnel) error {
	e.t.Helper()
	rep, err := e.m.Apply(context.Background(), tunnels)
	e.reports = append(e.reports, rep)
	return err
}

func (e *testEnv) refresh() error {
	e.t.Helper()
	rep, err := e.m.Refresh(context.Background())
	e.reports = append(e.reports, rep)
	return err
}

// lastReport is the Report of the last apply or refresh.
func (e *testEnv) lastReport() Report {
	e.t.Helper()
	if len(e.reports) == 0 {
		e.t.Fatal("no apply or refresh yet")
	}
	return e.reports[len(e.reports)-1]
}

// changeCmp compares Changes: netip values by ==, errors by message.
var changeCmp = cmp.Options{
	cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{}, netip.AddrPort{}),
	cmp.Comparer(func(a, b error) bool { return fmt.Sprint(a) == fmt.Sprint(b) }),
	cmpopts.EquateEmpty(),
}

// assertChanges fails unless got is want.
func assertChanges(t *testing.T, got []Change, want ...Change) {
	t.Helper()
	if diff := cmp.Diff(want, got, changeCmp); diff != "" {
		t.Errorf("reported changes (-want +got):\n%s", diff)
	}
}

// assertReport fails unless the last report lists want, in order, besides
// DeviceUpToDate.
func (e *testEnv) assertReport(want ...Change) {
	e.t.Helper()
	got := slices.DeleteFunc(slices.Clone(e.lastReport().Changes), func(c Change) bool { return c.Kind == DeviceUpToDate })
	assertChanges(e.t, got, want...)
}

// changesOf returns the changes in rep of the given kinds.
func changesOf(rep Report, kinds ...ChangeKind) []Change {
	var out []Change
	for _, c := range rep.Changes {
		if slices.Contains(kinds, c.Kind) {
			out = append(out, c)
		}
	}
	return out
}

func (e *testEnv) mustApply(tunnels ...policy.Tunnel) {
	e.t.Helper()
	if err := e.apply(tunnels...); err != nil {
		e.t.Fatalf("Apply: %v", err)
	}
}

// assertNoop applies tunnels again and fails if anything was changed.
func (e *testEnv) assertNoop(tunnels ...policy.Tunnel) {
	e.t.Helper()
	e.host.resetCalls()
	e.mustApply(tunnels...)
	if calls := e.host.calls(); len(calls) != 0 {
		e.t.Errorf("second Apply: %d ConfigureDevice calls, want none: %+v", len(calls), calls)
	}
	if ch := e.host.changes(); len(ch) != 0 {
		e.t.Errorf("second Apply: link changes, want none: %v", ch)
	}
	links, devices := reportedHostChanges(e.lastReport())
	if len(links) != 0 || len(devices) != 0 {
		e.t.Errorf("second Apply reports changes, want none: %q %q", links, devices)
	}
	for _, tun := range tunnels {
		if !slices.ContainsFunc(e.lastReport().Changes, func(c Change) bool {
			return c.Kind == DeviceUpToDate && c.Interface == tun.Name && c.PeerCount == len(tun.Peers)
		}) {
			e.t.Errorf("second Apply does not report %s up to date with %d peers: %+v", tun.Name, len(tun.Peers), e.lastReport())
		}
	}
}

// assertConverged checks that the fake host holds exactly what tunnels
// declare: keys, listen port, MTU, addresses, up, peers and routes.
func (e *testEnv) assertConverged(tunnels ...policy.Tunnel) {
	e.t.Helper()
	for _, tun := range tunnels {
		dev, err := e.host.Device(tun.Name)
		if err != nil {
			e.t.Errorf("%s: %v", tun.Name, err)
			continue
		}
		key, err := LoadOrCreatePrivateKey(tun.PrivateKeyFile)
		if err != nil {
			e.t.Fatal(err)
		}
		if dev.PrivateKey != key {
			e.t.Errorf("%s: private key not the one in %s", tun.Name, tun.PrivateKeyFile)
		}
		if dev.ListenPort != int(tun.ListenPort) {
			e.t.Errorf("%s: listen port %d, want %d", tun.Name, dev.ListenPort, tun.ListenPort)
		}
		info, _ := e.host.Link(tun.Name)
		if info.MTU != mtuOf(tun) || !info.Up {
			e.t.Errorf("%s: link %+v, want MTU %d and up", tun.Name, info, mtuOf(tun))
		}
		addrs, _ := e.host.Addresses(tun.Name)
		if !samePrefixes(addrs, tun.Addresses) {
			e.t.Errorf("%s: addresses %v, want %v", tun.Name, addrs, tun.Addresses)
		}
		var allowed []netip.Prefix
		wantPeers := map[wgtypes.Key][]netip.Prefix{}
		for _, p := range tun.Peers {
			allowed = append(allowed, p.AllowedIPs...)
			wantPeers[p.PublicKey] = p.AllowedIPs
		}
		routes, _ := e.host.Routes(tun.Name)
		if want := routesFor(tun.Addresses, allowed); !samePrefixes(routes, want) {
			e.t.Errorf("%s: routes %v, want %v", tun.Name, routes, want)
		}
		gotPeers := map[wgtypes.Key][]netip.Prefix{}
		for _, p := range dev.Peers {
			gotPeers[p.PublicKey] = ipNetsToPrefixes(p.AllowedIPs)
		}
		if diff := cmp.Diff(wantPeers, gotPeers, cmp.Comparer(samePrefixes)); diff != "" {
			e.t.Errorf("%s: peers and allowed IPs (-want +got):\n%s", tun.Name, diff)
		}
	}
}

func assertNeverReplacePeers(t *testing.T, calls []fakeConfigureCall) {
	t.Helper()
	for _, c := range calls {
		if c.cfg.ReplacePeers {
			t.Errorf("ConfigureDevice(%s) with ReplacePeers: would reset every session", c.name)
		}
	}
}

func TestManagerKernelBackend(t *testing.T) {
	e := newTestEnv(t, true)
	tun := e.tunnel("wg0", 51820, "10.0.0.2/24",
		testPeer("cluster-gw", 1, "192.0.2.1:51820", "10.0.0.0/24", "10.96.0.0/12"),
		testPeer("backup-gw", 2, "[2001:db8::2]:51820", "10.0.0.3/32"),
	)
	e.mustApply(tun)

	if got, want := e.host.changes(), []string{
		"add-wireguard wg0",
		"add-address wg0 10.0.0.2/24",
		"set-up wg0",
		"add-route wg0 10.96.0.0/12",
	}; !slices.Equal(got, want) {
		t.Errorf("link changes:\n got %q\nwant %q", got, want)
	}
	if len(e.host.started) != 0 {
		t.Errorf("userspace devices started with the kernel module present: %v", e.host.started)
	}
	calls := e.host.calls()
	if len(calls) != 1 {
		t.Fatalf("ConfigureDevice calls = %d, want 1 (one batch for a new device)", len(calls))
	}
	if calls[0].cfg.PrivateKey == nil || calls[0].cfg.ListenPort == nil || len(calls[0].cfg.Peers) != 2 {
		t.Errorf("first configuration incomplete: %+v", calls[0].cfg)
	}
	assertNeverReplacePeers(t, calls)
	e.assertConverged(tun)

	status, err := e.m.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(status) != 1 || status[0].Backend != "kernel" || status[0].Error != "" || status[0].MTU != 1420 ||
		status[0].ListenPort != 51820 || len(status[0].Peers) != 2 || status[0].Peers[0].Name != "cluster-gw" ||
		status[0].Peers[1].Endpoint != "[2001:db8::2]:51820" {
		t.Errorf("Status = %+v", status)
	}
	assertChanges(t, changesOf(e.lastReport(), InterfaceCreated),
		Change{Kind: InterfaceCreated, Interface: "wg0", Backend: policy.BackendKernel, DeclaredBackend: policy.BackendAuto})

	e.assertNoop(tun)
}

func TestManagerKernelAdoptsExistingWireGuardLink(t *testing.T) {
	e := newTestEnv(t, true)
	e.host.addForeignLink("wg0", linkTypeWireGuard) // left by an earlier daemon run
	tun := e.tunnel("wg0", 51820, "10.0.0.2/24", testPeer("gw", 1, "192.0.2.1:51820", "10.0.0.1/32"))
	e.mustApply(tun)
	if slices.Contains(e.host.changes(), "add-wireguard wg0") {
		t.Error("created a second wg0")
	}
	e.assertConverged(tun)
	e.assertNoop(tun)
}

func TestManagerUserspaceBackend(t *testing.T) {
	for _, tc := range []struct {
		name     string
		module   bool
		declared policy.Backend
	}{
		{"auto without module", false, policy.BackendAuto},
		{"auto, empty", false, ""},
		{"explicit userspace with module", true, policy.BackendUserspace},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, tc.module)
			tun := e.tunnel("wg0", 51820, "10.0.0.2/24", testPeer("gw", 1, "192.0.2.1:51820", "10.0.0.1/32", "10.96.0.0/12"))
			tun.Backend = tc.declared
			e.mustApply(tun)
			if !slices.Equal(e.host.started, []string{"wg0"}) {
				t.Errorf("userspace devices started: %v, want [wg0]", e.host.started)
			}
			e.assertConverged(tun)
			st, _ := e.m.Status(context.Background())
			if st[0].Backend != "userspace" {
				t.Errorf("Status backend = %q, want userspace", st[0].Backend)
			}
			e.assertNoop(tun)
			if err := e.m.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := e.host.Link("wg0"); !errors.Is(err, os.ErrNotExist) {
				t.Error("Close left the userspace interface")
			}
			if err := e.apply(tun); !errors.Is(err, ErrClosed) {
				t.Errorf("Apply after Close: %v, want ErrClosed", err)
			}
		})
	}
}

func TestManagerAutoFallsBackWhenKernelLinkFails(t *testing.T) {
	e := newTestEnv(t, false, WithKernelModule(func() bool { return true })) // listed, not loadable
	tun := e.tunnel("wg0", 51820, "10.0.0.2/24", testPeer("gw", 1, "192.0.2.1:51820", "10.0.0.1/32"))
	e.mustApply(tun)
	st, _ := e.m.Status(context.Background())
	if st[0].Backend != "userspace" {
		t.Errorf("backend = %q, want userspace", st[0].Backend)
	}
	e.assertConverged(tun)
}

func TestManagerExplicitKernelWithoutModuleFailsAlone(t *testing.T) {
	e := newTestEnv(t, false)
	kern := e.tunnel("wgk", 51820, "10.0.0.2/24", testPeer("gw", 1, "192.0.2.1:51820", "10.0.0.1/32"))
	kern.Backend = policy.BackendKernel
	user := e.tunnel("wgu", 51821, "10.1.0.2/24", testPeer("gw", 2, "192.0.2.1:51821", "10.1.0.1/32"))
	err := e.apply(kern, user)
	if err == nil || !strings.Contains(err.Error(), `tunnel "wgk"`) {
		t.Fatalf("Apply error = %v, want one naming tunnel wgk", err)
	}
	e.assertConverged(user)
	st, _ := e.m.Status(context.Background())
	if st[0].Error == "" || st[0].Backend != "" || st[1].Error != "" {
		t.Errorf("Status = %+v", st)
	}
}

func TestManagerIncrementalPeerChanges(t *testing.T) {
	e := newTestEnv(t, true)
	a := testPeer("a", 1, "192.0.2.1:51820", "10.0.0.1/32")
	b := testPeer("b", 2, "192.0.2.2:51820", "10.0.0.2/32")
	c := testPeer("c", 3, "192.0.2.3:51820", "10.0.0.3/32", "10.20.0.0/16")
	base := e.tunnel("wg0", 51820, "10.0.0.10/24", a, b)
	e.mustApply(base)

	steps := []struct {
		name       string
		peers      []policy.TunnelPeer
		want       []wgtypes.PeerConfig
		wantRoutes []string
	}{
		{
			name:       "add a peer",
			peers:      []policy.TunnelPeer{a, b, c},
			want:       []wgtypes.PeerConfig{{PublicKey: testKey(3), Endpoint: udpAddr("192.0.2.3:51820"), AllowedIPs: ipNets("10.0.0.3/32", "10.20.0.0/16")}},
			wantRoutes: []string{"add-route wg0 10.20.0.0/16"},
		},
		{
			name: "change allowed IPs of one peer",
			peers: []policy.TunnelPeer{a, b, func() policy.TunnelPeer {
				c := c
				c.AllowedIPs = prefixes("10.0.0.3/32", "10.30.0.0/16")
				return c
			}()},
			want:       []wgtypes.PeerConfig{{PublicKey: testKey(3), UpdateOnly: true, ReplaceAllowedIPs: true, AllowedIPs: ipNets("10.0.0.3/32", "10.30.0.0/16")}},
			wantRoutes: []string{"del-route wg0 10.20.0.0/16", "add-route wg0 10.30.0.0/16"},
		},
		{
			name: "change an endpoint",
			peers: []policy.TunnelPeer{func() policy.TunnelPeer {
				a := a
				a.Endpoint = "192.0.2.11:51820"
				return a
			}(), b},
			want: []wgtypes.PeerConfig{
				{PublicKey: testKey(3), Remove: true},
				{PublicKey: testKey(1), UpdateOnly: true, Endpoint: udpAddr("192.0.2.11:51820")},
			},
			wantRoutes: []string{"del-route wg0 10.30.0.0/16"},
		},
		{
			name:  "remove a peer",
			peers: []policy.TunnelPeer{b},
			want:  []wgtypes.PeerConfig{{PublicKey: testKey(1), Remove: true}},
		},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			tun := base
			tun.Peers = s.peers
			e.host.resetCalls()
			e.mustApply(tun)
			calls := e.host.calls()
			if len(calls) != 1 {
				t.Fatalf("ConfigureDevice calls = %d, want 1", len(calls))
			}
			if calls[0].cfg.PrivateKey != nil || calls[0].cfg.ListenPort != nil {
				t.Error("private key or listen port re-sent although unchanged")
			}
			assertNeverReplacePeers(t, calls)
			if diff := cmp.Diff(s.want, calls[0].cfg.Peers); diff != "" {
				t.Errorf("peer changes (-want +got):\n%s", diff)
			}
			e.assertReportMatchesHost(map[wgtypes.Key]string{testKey(1): "a", testKey(2): "b", testKey(3): "c"})
			if got := e.host.changes(); !slices.Equal(got, s.wantRoutes) {
				t.Errorf("link changes %q, want %q", got, s.wantRoutes)
			}
			e.assertConverged(tun)
			e.assertNoop(tun)
		})
	}
}

func TestManagerRepairsDrift(t *testing.T) {
	e := newTestEnv(t, true)
	tun := e.tunnel("wg0", 51820, "10.0.0.10/24", testPeer("a", 1, "192.0.2.1:51820", "10.0.0.1/32"))
	e.mustApply(tun)
	// Someone runs `wg set wg0 peer X allowed-ips …` and adds an address.
	if err := e.host.ConfigureDevice("wg0", wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: testKey(9), AllowedIPs: ipNets("10.9.0.0/16")}}}); err != nil {
		t.Fatal(err)
	}
	if err := e.host.AddAddress("wg0", netip.MustParsePrefix("10.0.0.99/24")); err != nil {
		t.Fatal(err)
	}
	e.host.resetCalls()
	if err := e.refresh(); err != nil {
		t.Fatal(err)
	}
	if calls := e.host.calls(); len(calls) != 1 || !calls[0].cfg.Peers[0].Remove {
		t.Errorf("Refresh did not remove the stray peer: %+v", calls)
	}
	e.mustApply(tun)
	e.assertConverged(tun)
}

// TestManagerUnchangedApplyRepairsLinksNotPeers: an Apply of the
// declaration that runs restores a deleted route and address without
// reading the device back; a peer changed behind edgefw's back is left
// to Refresh, which reads the device.
func TestManagerUnchangedApplyRepairsLinksNotPeers(t *testing.T) {
	e := newTestEnv(t, true)
	tun := e.tunnel("wg0", 51820, "10.0.0.10/24", testPeer("a", 1, "192.0.2.1:51820", "10.1.0.0/16"))
	e.mustApply(tun)
	if errs := e.host.DelRoutes("wg0", prefixes("10.1.0.0/16")); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if err := e.host.DelAddress("wg0", netip.MustParsePrefix("10.0.0.10/24")); err != nil {
		t.Fatal(err)
	}
	if err := e.host.ConfigureDevice("wg0", wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: testKey(9), AllowedIPs: ipNets("10.9.0.0/16")}}}); err != nil {
		t.Fatal(err)
	}
	e.host.resetCalls()
	e.mustApply(tun)
	if n := e.host.reads(); n != 0 {
		t.Errorf("an unchanged declaration read the device back %d times", n)
	}
	if got, want := e.host.changes(), []string{"add-address wg0 10.0.0.10/24", "add-route wg0 10.1.0.0/16"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("link changes: %q, want %q", got, want)
	}
	if err := e.refresh(); err != nil {
		t.Fatal(err)
	}
	e.assertConverged(tun)
}

func TestManagerRemovesOnlyItsOwnInterfaces(t *testing.T) {
	e := newTestEnv(t, true, WithManagedInterfaces("wgold", "eth9", "wggone"))
	e.host.addForeignLink("eth0", "veth")
	e.host.addForeignLink("wg9", linkTypeWireGuard) // someone else's tunnel
	e.host.addForeignLink("wgold", linkTypeWireGuard)
	e.host.addForeignLink("eth9", "veth") // named as managed, but not WireGuard

	a := e.tunnel("wga", 51820, "10.0.0.2/24", testPeer("gw", 1, "192.0.2.1:51820", "10.0.0.1/32"))
	b := e.tunnel("wgb", 51821, "10.1.0.2/24", testPeer("gw", 2, "192.0.2.1:51821", "10.1.0.1/32", "10.50.0.0/16"))
	e.mustApply(a, b)
	for name, want := range map[string]bool{"eth0": true, "wg9": true, "wgold": false, "eth9": true, "wga": true, "wgb": true} {
		if _, err := e.host.Link(name); (err == nil) != want {
			t.Errorf("after first Apply, %s exists = %v, want %v", name, err == nil, want)
		}
	}

	e.host.resetCalls()
	e.mustApply(a)
	if got := e.host.changes(); !slices.Equal(got, []string{"delete wgb"}) {
		t.Errorf("link changes %q, want only [delete wgb]", got)
	}
	st, _ := e.m.Status(context.Background())
	if len(st) != 1 || st[0].Name != "wga" {
		t.Errorf("Status lists %+v, want only wga", st)
	}
	e.assertNoop(a)

	e.host.resetCalls()
	e.mustApply()
	if got := e.host.changes(); !slices.Equal(got, []string{"delete wga"}) {
		t.Errorf("link changes %q, want only [delete wga]", got)
	}
}

func TestManagerRefusesForeignInterfaceName(t *testing.T) {
	e := newTestEnv(t, true)
	e.host.addForeignLink("eth0", "veth")
	tun := e.tunnel("eth0", 51820, "10.0.0.2/24")
	err := e.apply(tun)
	if !errors.Is(err, ErrForeignInterface) {
		t.Fatalf("Apply = %v, want ErrForeignInterface", err)
	}
	if ch := e.host.changes(); len(ch) != 0 {
		t.Errorf("changed a foreign interface: %v", ch)
	}
	e.mustApply() // the tunnel is dropped from the policy
	if _, err := e.host.Link("eth0"); err != nil {
		t.Error("deleted a foreign interface it never owned")
	}

	user := newTestEnv(t, false)
	user.host.addForeignLink("wg0", linkTypeWireGuard)
	if err := user.apply(user.tunnel("wg0", 51820, "10.0.0.2/24")); !errors.Is(err, ErrForeignInterface) {
		t.Errorf("userspace over someone's kernel wg0: %v, want ErrForeignInterface", err)
	}
}

func TestManagerSwitchesBackend(t *testing.T) {
	e := newTestEnv(t, true)
	tun := e.tunnel("wg0", 51820, "10.0.0.2/24", testPeer("gw", 1, "192.0.2.1:51820", "10.0.0.1/32"))
	tun.Backend = policy.BackendKernel
	e.mustApply(tun)
	tun.Backend = policy.BackendUserspace
	e.mustApply(tun)
	info, _ := e.host.Link("wg0")
	if info.Type != linkTypeTUN {
		t.Errorf("link type %q after switching to userspace", info.Type)
	}
	e.assertConverged(tun)
	// auto keeps what runs.
	tun.Backend = policy.BackendAuto
	e.assertNoop(tun)
}

func TestManagerFailingTunnelDoesNotBlockOthers(t *testing.T) {
	e := newTestEnv(t, true)
	bad := e.tunnel("wgbad", 51820, "10.0.0.2/24", testPeer("gw", 1, "192.0.2.1:51820", "10.0.0.1/32"))
	if _, err := GenerateKeyFile(bad.PrivateKeyFile); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(bad.PrivateKeyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	good := e.tunnel("wggood", 51821, "10.1.0.2/24", testPeer("gw", 2, "192.0.2.1:51821", "10.1.0.1/32"))
	err := e.apply(bad, good)
	if !errors.Is(err, ErrInsecureKeyFile) || !strings.Contains(err.Error(), `tunnel "wgbad"`) || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("Apply = %v", err)
	}
	if _, err := e.host.Link("wgbad"); err == nil {
		t.Error("created an interface without a usable key")
	}
	e.assertConverged(good)

	// Fixed: the next Refresh retries the failed tunnel in full.
	if err := os.Chmod(bad.PrivateKeyFile, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.refresh(); err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	e.assertConverged(bad, good)
}

func TestManagerUnreadablePresharedKeyFailsOnlyThatPeer(t *testing.T) {
	e := newTestEnv(t, true)
	pskPath := filepath.Join(e.dir, "keys", "wg0-a.psk")
	psk, _ := wgtypes.GenerateKey()
	if err := os.MkdirAll(filepath.Dir(pskPath), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pskPath, []byte(psk.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := testPeer("a", 1, "192.0.2.1:51820", "10.0.0.1/32")
	a.PresharedKeyFile = pskPath
	b := testPeer("b", 2, "192.0.2.2:51820", "10.0.0.2/32")
	c := testPeer("c", 3, "192.0.2.3:51820", "10.0.0.3/32")
	c.PresharedKeyFile = filepath.Join(e.dir, "keys", "missing.psk")
	tun := e.tunnel("wg0", 51820, "10.0.0.10/24", a, b, c)

	err := e.apply(tun)
	if err == nil || !strings.Contains(err.Error(), `peer "c"`) || !strings.Contains(err.Error(), "missing.psk") {
		t.Fatalf("Apply = %v, want an error naming peer c and its file", err)
	}
	dev, _ := e.host.Device("wg0")
	if len(dev.Peers) != 2 || dev.Peers[0].PresharedKey != psk {
		t.Errorf("peers a (with psk) and b should run: %+v", dev.Peers)
	}

	// a's key file becomes unreadable: a keeps running as it is.
	if err := os.Chmod(pskPath, 0o644); err != nil {
		t.Fatal(err)
	}
	e.host.resetCalls()
	err = e.apply(tun)
	if !errors.Is(err, ErrInsecureKeyFile) {
		t.Errorf("Apply = %v, want ErrInsecureKeyFile for peer a", err)
	}
	if calls := e.host.calls(); len(calls) != 0 {
		t.Errorf("touched the device although nothing it can apply changed: %+v", calls)
	}
	st, _ := e.m.Status(context.Background())
	if st[0].Peers[0].Error == "" || st[0].Peers[2].Error == "" || st[0].Peers[1].Error != "" {
		t.Errorf("peer errors in Status: %+v", st[0].Peers)
	}
}

func TestManagerRejectedBatchFallsBackToSinglePeers(t *testing.T) {
	e := newTestEnv(t, true)
	e.host.failConfigure = func(name string, cfg wgtypes.Config) error {
		for _, p := range cfg.Peers {
			if p.PublicKey == testKey(2) {
				return errors.New("invalid argument")
			}
		}
		return nil
	}
	tun := e.tunnel("wg0", 51820, "10.0.0.10/24",
		testPeer("a", 1, "192.0.2.1:51820", "10.0.0.1/32"),
		testPeer("b", 2, "192.0.2.2:51820", "10.0.0.2/32"),
		testPeer("c", 3, "192.0.2.3:51820", "10.0.0.3/32"))
	err := e.apply(tun)
	if err == nil || !strings.Contains(err.Error(), `configure peer "b"`) {
		t.Fatalf("Apply = %v, want an error for peer b", err)
	}
	dev, _ := e.host.Device("wg0")
	var got []wgtypes.Key
	for _, p := range dev.Peers {
		got = append(got, p.PublicKey)
	}
	if !slices.Equal(got, []wgtypes.Key{testKey(1), testKey(3)}) || dev.ListenPort != 51820 {
		t.Errorf("device after fallback: port %d, peers %v; want a and c", dev.ListenPort, got)
	}
}

func TestManagerEndpointNames(t *testing.T) {
	e := newTestEnv(t, true)
	gw := testPeer("gw", 1, "gw.cluster.example:51820", "10.0.0.1/32")
	other := testPeer("other", 2, "192.0.2.2:51820", "10.0.0.2/32")
	tun := e.tunnel("wg0", 51820, "10.0.0.10/24", gw, other)

	// The name does not resolve yet: not an error, the peer runs without
	// endpoint, the other one is unaffected.
	e.mustApply(tun)
	dev, _ := e.host.Device("wg0")
	if len(dev.Peers) != 2 || dev.Peers[0].Endpoint != nil || dev.Peers[1].Endpoint == nil {
		t.Fatalf("peers: %+v", dev.Peers)
	}
	unresolved := changesOf(e.lastReport(), EndpointUnresolved)
	if len(unresolved) != 1 || unresolved[0].Interface != "wg0" || unresolved[0].Peer != "gw" ||
		unresolved[0].DeclaredEndpoint != "gw.cluster.example:51820" || unresolved[0].Resolved.IsValid() ||
		!strings.Contains(fmt.Sprint(unresolved[0].Err), "no such host") {
		t.Errorf("the report does not say which peer's endpoint does not resolve: %+v", e.lastReport())
	}
	st, _ := e.m.Status(context.Background())
	if !strings.Contains(st[0].Peers[0].Error, "gw.cluster.example") {
		t.Errorf("Status does not report the resolution failure: %+v", st[0].Peers[0])
	}

	refresh := func() []fakeConfigureCall {
		t.Helper()
		e.host.resetCalls()
		if err := e.refresh(); err != nil {
			t.Fatalf("Refresh: %v", err)
		}
		return e.host.calls()
	}
	onlyEndpoint := func(calls []fakeConfigureCall, want string) {
		t.Helper()
		wantCfg := []wgtypes.PeerConfig{{PublicKey: testKey(1), UpdateOnly: true, Endpoint: udpAddr(want)}}
		if len(calls) != 1 {
			t.Fatalf("ConfigureDevice calls = %+v, want one", calls)
		}
		if diff := cmp.Diff(wantCfg, calls[0].cfg.Peers); diff != "" {
			t.Errorf("Refresh changes (-want +got):\n%s", diff)
		}
	}

	const declared = "gw.cluster.example:51820"
	gwChange := func(kind ChangeKind, resolved string) Change {
		c := Change{Kind: kind, Interface: "wg0", Peer: "gw", DeclaredEndpoint: declared}
		if resolved != "" {
			c.Resolved = netip.MustParseAddr(resolved)
		}
		return c
	}
	endpointUpdate := func(to string) Change {
		return Change{Kind: PeerUpdated, Interface: "wg0", Peer: "gw", Endpoint: netip.MustParseAddrPort(to), Fields: []string{FieldEndpoint}}
	}
	lookupFailed := errors.New("lookup gw.cluster.example: no such host")

	if calls := refresh(); len(calls) != 0 {
		t.Errorf("Refresh while the name still fails: %+v", calls)
	}
	still := gwChange(EndpointStillUnresolved, "")
	still.Err = lookupFailed
	e.assertReport(still)

	e.resolver.set("gw.cluster.example", "198.51.100.1")
	onlyEndpoint(refresh(), "198.51.100.1:51820")
	e.assertReport(gwChange(EndpointResolved, "198.51.100.1"), endpointUpdate("198.51.100.1:51820"))
	if calls := refresh(); len(calls) != 0 {
		t.Errorf("Refresh without change: %+v", calls)
	}
	e.assertReport()

	// Round-robin answers in another order: the current address stays.
	e.resolver.set("gw.cluster.example", "198.51.100.2", "198.51.100.1")
	if calls := refresh(); len(calls) != 0 {
		t.Errorf("Refresh moved the endpoint although the name still has its address: %+v", calls)
	}
	e.assertReport()

	// The name moves: followed, even while the session is alive.
	e.host.setPeer("wg0", testKey(1), func(p *wgtypes.Peer) { p.LastHandshakeTime = e.clock.Add(-5 * time.Second) })
	e.resolver.set("gw.cluster.example", "198.51.100.3")
	onlyEndpoint(refresh(), "198.51.100.3:51820")
	moved := gwChange(EndpointMoved, "198.51.100.3")
	moved.PreviousResolved = netip.MustParseAddr("198.51.100.1")
	e.assertReport(moved, endpointUpdate("198.51.100.3:51820"))

	// DNS fails: the last address is kept, nothing is sent.
	e.resolver.set("gw.cluster.example")
	if calls := refresh(); len(calls) != 0 {
		t.Errorf("Refresh after a DNS failure changed the device: %+v", calls)
	}
	unresolvedKept := gwChange(EndpointUnresolved, "198.51.100.3")
	unresolvedKept.Err = lookupFailed
	e.assertReport(unresolvedKept)
	dev, _ = e.host.Device("wg0")
	if got := udpAddrPort(dev.Peers[0].Endpoint).String(); got != "198.51.100.3:51820" {
		t.Errorf("endpoint after DNS failure = %s", got)
	}
}

func TestManagerRoamingPeerKeptWhileSessionAlive(t *testing.T) {
	e := newTestEnv(t, true)
	tun := e.tunnel("wg0", 51820, "10.0.0.10/24", testPeer("gw", 1, "192.0.2.1:51820", "10.0.0.1/32"))
	e.mustApply(tun)
	// The peer reached us from behind a new NAT address.
	e.host.setPeer("wg0", testKey(1), func(p *wgtypes.Peer) {
		p.Endpoint = udpAddr("198.51.100.7:40000")
		p.LastHandshakeTime = e.clock.Add(-30 * time.Second)
	})
	e.assertNoop(tun)
	if err := e.refresh(); err != nil {
		t.Fatal(err)
	}
	if calls := e.host.calls(); len(calls) != 0 {
		t.Errorf("overrode a roaming peer with a live session: %+v", calls)
	}
	// The session dies: back to the declared endpoint.
	e.clock = e.clock.Add(RejectAfterTime)
	e.host.resetCalls()
	if err := e.refresh(); err != nil {
		t.Fatal(err)
	}
	calls := e.host.calls()
	if len(calls) != 1 || udpAddrPort(calls[0].cfg.Peers[0].Endpoint).String() != "192.0.2.1:51820" {
		t.Errorf("dead session not reset to the declared endpoint: %+v", calls)
	}
}

// After a daemon restart the new Manager has written no endpoint yet, but
// the kernel device still runs the peers: a roaming peer with a live session
// must survive the restart and the first roam after it.
func TestManagerRoamingPeerKeptAcrossRestart(t *testing.T) {
	const declared, roamed = "192.0.2.1:51820", "198.51.100.7:40000"
	for _, endpoint := range []string{declared, "gw.cluster.example:51820"} {
		setup := func(t *testing.T) (*testEnv, policy.Tunnel) {
			e := newTestEnv(t, true)
			e.resolver.set("gw.cluster.example", "192.0.2.1")
			tun := e.tunnel("wg0", 51820, "10.0.0.10/24", testPeer("gw", 1, endpoint, "10.0.0.1/32"))
			e.mustApply(tun)
			e.host.setPeer("wg0", testKey(1), func(p *wgtypes.Peer) { p.LastHandshakeTime = e.clock.Add(-10 * time.Second) })
			return e, tun
		}
		roam := func(e *testEnv, handshakeAgo time.Duration) {
			e.host.setPeer("wg0", testKey(1), func(p *wgtypes.Peer) {
				p.Endpoint = udpAddr(roamed)
				p.LastHandshakeTime = e.clock.Add(-handshakeAgo)
			})
		}
		refreshCalls := func(t *testing.T, e *testEnv) []fakeConfigureCall {
			t.Helper()
			e.host.resetCalls()
			if err := e.refresh(); err != nil {
				t.Fatalf("Refresh: %v", err)
			}
			return e.host.calls()
		}
		runningEndpoint := func(e *testEnv) string {
			dev, _ := e.host.Device("wg0")
			return udpAddrPort(dev.Peers[0].Endpoint).String()
		}

		t.Run(endpoint+"/first roam after restart", func(t *testing.T) {
			e, tun := setup(t)
			e.restart()
			e.assertNoop(tun)
			roam(e, 5*time.Second)
			if calls := refreshCalls(t, e); len(calls) != 0 {
				t.Errorf("Refresh overrode the first roam after a restart: %+v", calls)
			}
			if got := runningEndpoint(e); got != roamed {
				t.Errorf("endpoint = %s, want the roamed %s", got, roamed)
			}
		})

		t.Run(endpoint+"/roamed before restart, session alive", func(t *testing.T) {
			e, tun := setup(t)
			roam(e, 5*time.Second)
			e.restart()
			e.assertNoop(tun)
			if calls := refreshCalls(t, e); len(calls) != 0 {
				t.Errorf("Refresh overrode a roamed peer with a live session: %+v", calls)
			}
			if got := runningEndpoint(e); got != roamed {
				t.Errorf("endpoint = %s, want the roamed %s", got, roamed)
			}
			// The session dies: back to the declared endpoint.
			e.clock = e.clock.Add(RejectAfterTime)
			if calls := refreshCalls(t, e); len(calls) != 1 {
				t.Errorf("dead session: ConfigureDevice calls = %+v, want one", calls)
			}
			if got := runningEndpoint(e); got != declared {
				t.Errorf("endpoint after the session died = %s, want %s", got, declared)
			}
		})

		t.Run(endpoint+"/roamed before restart, session dead", func(t *testing.T) {
			e, tun := setup(t)
			roam(e, RejectAfterTime+time.Second)
			e.restart()
			e.host.resetCalls()
			e.mustApply(tun)
			if got := runningEndpoint(e); got != declared {
				t.Errorf("endpoint = %s, want the declared %s for a dead session", got, declared)
			}
		})
	}
}

// Policy validation rejects 0.0.0.0/0 and ::/0, but should one get here,
// the tunnel must not take over the host's default route.
func TestManagerNeverInstallsDefaultRoute(t *testing.T) {
	e := newTestEnv(t, true)
	full := testPeer("full", 1, "192.0.2.1:51820", "0.0.0.0/0", "::/0", "10.96.0.0/12")
	other := testPeer("other", 2, "192.0.2.2:51820", "10.244.0.0/16")
	tun := e.tunnel("wg0", 51820, "10.0.0.10/24", full, other)
	const msg = "no route installed for 0.0.0.0/0: full-tunnel routing is not supported"

	err := e.apply(tun)
	if err == nil || !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), `peer "full"`) ||
		!strings.Contains(err.Error(), "no route installed for ::/0") {
		t.Errorf("Apply = %v, want it to report the skipped default routes", err)
	}
	routes, _ := e.host.Routes("wg0")
	if want := prefixes("10.96.0.0/12", "10.244.0.0/16"); !samePrefixes(routes, want) {
		t.Errorf("routes = %v, want %v", routes, want)
	}
	dev, _ := e.host.Device("wg0")
	if len(dev.Peers) != 2 || !samePrefixes(ipNetsToPrefixes(dev.Peers[0].AllowedIPs), full.AllowedIPs) {
		t.Errorf("peers not configured as declared: %+v", dev.Peers)
	}
	st, _ := e.m.Status(context.Background())
	if !strings.Contains(st[0].Error, msg) {
		t.Errorf("tunnel status error = %q, want %q", st[0].Error, msg)
	}
	if !strings.Contains(st[0].Peers[0].Error, msg) || st[0].Peers[1].Error != "" {
		t.Errorf("peer status errors = %q, %q; want the full-tunnel peer's only", st[0].Peers[0].Error, st[0].Peers[1].Error)
	}
	if err := e.refresh(); err == nil {
		t.Error("Refresh forgot the skipped default route")
	}
	if routes, _ := e.host.Routes("wg0"); len(routes) != 2 {
		t.Errorf("routes after Refresh = %v", routes)
	}
}

func TestStatusHealth(t *testing.T) {
	e := newTestEnv(t, true)
	tun := e.tunnel("wg0", 51820, "10.0.0.10/24",
		testPeer("fresh", 1, "192.0.2.1:51820", "10.0.0.1/32"),
		testPeer("stale", 2, "192.0.2.2:51820", "10.0.0.2/32"),
		testPeer("never", 3, "192.0.2.3:51820", "10.0.0.3/32"))
	e.mustApply(tun)
	e.host.setPeer("wg0", testKey(1), func(p *wgtypes.Peer) {
		p.LastHandshakeTime = e.clock.Add(-RejectAfterTime + time.Second)
		p.ReceiveBytes, p.TransmitBytes = 100, 200
	})
	e.host.setPeer("wg0", testKey(2), func(p *wgtypes.Peer) { p.LastHandshakeTime = e.clock.Add(-RejectAfterTime - time.Second) })
	e.host.setPeer("wg0", testKey(3), func(p *wgtypes.Peer) { p.LastHandshakeTime = time.Unix(0, 0) })

	st, err := e.m.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	key, _ := LoadOrCreatePrivateKey(tun.PrivateKeyFile)
	want := TunnelStatus{
		Name: "wg0", Backend: "kernel", ListenPort: 51820, PublicKey: key.PublicKey().String(),
		Addresses: []string{"10.0.0.10/24"}, MTU: 1420,
		Peers: []PeerStatus{
			{Name: "fresh", PublicKey: testKey(1).String(), Endpoint: "192.0.2.1:51820", AllowedIPs: []string{"10.0.0.1/32"},
				LastHandshake: e.clock.Add(-RejectAfterTime + time.Second), ReceiveBytes: 100, TransmitBytes: 200, Up: true},
			{Name: "stale", PublicKey: testKey(2).String(), Endpoint: "192.0.2.2:51820", AllowedIPs: []string{"10.0.0.2/32"},
				LastHandshake: e.clock.Add(-RejectAfterTime - time.Second)},
			{Name: "never", PublicKey: testKey(3).String(), Endpoint: "192.0.2.3:51820", AllowedIPs: []string{"10.0.0.3/32"}},
		},
	}
	if diff := cmp.Diff([]TunnelStatus{want}, st); diff != "" {
		t.Errorf("Status (-want +got):\n%s", diff)
	}
}

// TestManagerStates applies a series of configurations in random order, as
// tailscale's TestRouterStates does: from any state, Apply reaches the
// declared one, never resets sessions with ReplacePeers, and a repeat
// changes nothing.
func TestManagerStates(t *testing.T) {
	e := newTestEnv(t, true)
	p := func(name string, key byte, allowed ...string) policy.TunnelPeer {
		return testPeer(name, key, fmt.Sprintf("192.0.2.%d:51820", key), allowed...)
	}
	wg0 := func(addr string, peers ...policy.TunnelPeer) policy.Tunnel {
		return e.tunnel("wg0", 51820, addr, peers...)
	}
	wg1 := func(peers ...policy.TunnelPeer) policy.Tunnel {
		t := e.tunnel("wg1", 51821, "10.1.0.1/24", peers...)
		t.MTU = 1380
		return t
	}
	states := [][]policy.Tunnel{
		{},
		{wg0("10.0.0.1/24")},
		{wg0("10.0.0.1/24", p("a", 1, "10.0.0.2/32"), p("b", 2, "10.0.0.3/32", "10.40.0.0/16"))},
		{wg0("10.0.0.1/16", p("a", 1, "10.0.0.2/32", "10.41.0.0/16"), p("c", 3, "fd00:1::/64"))},
		{wg0("10.0.0.1/24", p("b", 2, "10.40.0.0/16")), wg1(p("d", 4, "10.1.0.2/32", "10.42.0.0/16"))},
		{wg1(p("d", 4, "10.1.0.2/32"), p("a", 1, "10.43.0.0/16"))},
		{wg0("fd00::1/64", p("a", 1, "fd00::2/128", "10.0.0.0/8")), wg1()},
	}
	names := map[wgtypes.Key]string{}
	for _, state := range states {
		for _, tun := range state {
			for _, peer := range tun.Peers {
				names[peer.PublicKey] = peer.Name
			}
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 40 {
		n := rng.IntN(len(states))
		e.host.resetCalls()
		if err := e.apply(states[n]...); err != nil {
			t.Fatalf("step %d, state %d: %v", i, n, err)
		}
		assertNeverReplacePeers(t, e.host.calls())
		e.assertReportMatchesHost(names)
		e.assertConverged(states[n]...)
		e.assertNoop(states[n]...)
		if t.Failed() {
			t.Fatalf("step %d, state %d", i, n)
		}
	}
}

// blockingResolver answers only when released, like a dead name server.
type blockingResolver struct {
	started chan string
	release chan struct{}
}

func (r *blockingResolver) LookupNetIP(ctx context.Context, _, host string) ([]netip.Addr, error) {
	r.started <- host
	select {
	case <-r.release:
		return []netip.Addr{netip.MustParseAddr("198.51.100.1")}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// TestSlowNameServerDoesNotBlockStatus: lookups run outside the Manager's
// lock, so a metrics scrape never waits for DNS.
func TestSlowNameServerDoesNotBlockStatus(t *testing.T) {
	r := &blockingResolver{started: make(chan string, 4), release: make(chan struct{})}
	e := newTestEnv(t, true, WithResolver(r))
	tun := e.tunnel("wg0", 51820, "10.0.0.10/24",
		testPeer("gw", 1, "gw.cluster.example:51820", "10.0.0.1/32"),
		testPeer("other", 2, "192.0.2.2:51820", "10.0.0.2/32"))

	statusReturns := func(check func([]TunnelStatus)) {
		t.Helper()
		done := make(chan []TunnelStatus, 1)
		go func() {
			st, _ := e.m.Status(context.Background())
			done <- st
		}()
		select {
		case st := <-done:
			check(st)
		case <-time.After(2 * time.Second):
			t.Fatal("Status waited for a DNS lookup")
		}
	}

	applied := make(chan error, 1)
	go func() {
		_, err := e.m.Apply(context.Background(), []policy.Tunnel{tun})
		applied <- err
	}()
	<-r.started
	statusReturns(func([]TunnelStatus) {})
	close(r.release)
	if err := <-applied; err != nil {
		t.Fatal(err)
	}

	r.release = make(chan struct{}) // the name server hangs from now on
	ctx, cancel := context.WithCancel(context.Background())
	refreshed := make(chan error, 1)
	go func() {
		_, err := e.m.Refresh(ctx)
		refreshed <- err
	}()
	<-r.started
	statusReturns(func(st []TunnelStatus) {
		if len(st) != 1 || len(st[0].Peers) != 2 || st[0].Peers[0].Endpoint != "198.51.100.1:51820" {
			t.Errorf("Status during a hanging lookup = %+v", st)
		}
	})
	cancel() // the lookup fails
	if err := <-refreshed; err != nil {
		t.Errorf("Refresh: %v", err)
	}
	statusReturns(func(st []TunnelStatus) {
		if p := st[0].Peers[0]; p.Endpoint != "198.51.100.1:51820" || p.Error == "" {
			t.Errorf("after a failed lookup the peer should keep its address and report the failure: %+v", p)
		}
	})
}

// TestAutoBackend: what AutoBackend reports (edgefwd logs it at start) is
// what Apply then chooses for a tunnel declaring auto, from one look for
// the kernel module.
func TestAutoBackend(t *testing.T) {
	for _, module := range []bool{true, false} {
		t.Run(fmt.Sprint("module ", module), func(t *testing.T) {
			asked := 0
			e := newTestEnv(t, module, WithKernelModule(func() bool { asked++; return module }))
			want := policy.BackendUserspace
			if module {
				want = policy.BackendKernel
			}
			if got := e.m.AutoBackend(); got != want {
				t.Errorf("AutoBackend() = %s, want %s", got, want)
			}
			e.mustApply(e.tunnel("wg0", 51820, "10.0.0.2/24"))
			st, _ := e.m.Status(context.Background())
			if st[0].Backend != string(want) {
				t.Errorf("Apply chose %q, AutoBackend said %q", st[0].Backend, want)
			}
			if asked != 1 {
				t.Errorf("the kernel module was looked for %d times, want once", asked)
			}
		})
	}
}
