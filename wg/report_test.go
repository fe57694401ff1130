package wg

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"testing"

	"github.com/edgefw/edgefw/policy"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// reportedHostChanges renders the changes of a report that the fake host
// records, in its words: link changes as fakeHost.changes() lists them, and
// device changes as deviceChanges renders ConfigureDevice calls.
func reportedHostChanges(rep Report) (links, devices []string) {
	for _, c := range rep.Changes {
		switch c.Kind {
		case InterfaceCreated:
			if c.Backend == policy.BackendKernel {
				links = append(links, "add-wireguard "+c.Interface)
			}
		case InterfaceRemoved, BackendSwitched:
			links = append(links, "delete "+c.Interface)
		case MTUSet:
			links = append(links, fmt.Sprintf("set-mtu %s %d", c.Interface, c.MTU))
		case InterfaceUp:
			links = append(links, "set-up "+c.Interface)
		case AddressAdded:
			links = append(links, fmt.Sprintf("add-address %s %s", c.Interface, c.Address))
		case AddressRemoved:
			links = append(links, fmt.Sprintf("del-address %s %s", c.Interface, c.Address))
		case RouteAdded:
			links = append(links, fmt.Sprintf("add-route %s %s", c.Interface, c.Route))
		case RouteRemoved:
			links = append(links, fmt.Sprintf("del-route %s %s", c.Interface, c.Route))
		case PrivateKeySet:
			devices = append(devices, "private-key "+c.Interface)
		case ListenPortSet:
			devices = append(devices, fmt.Sprintf("listen-port %s %d", c.Interface, c.ListenPort))
		case PeerAdded:
			devices = append(devices, fmt.Sprintf("add-peer %s %s %s", c.Interface, c.Peer, endpointText(c.Endpoint)))
		case PeerUpdated:
			devices = append(devices, fmt.Sprintf("update-peer %s %s %s %v", c.Interface, c.Peer, endpointText(c.Endpoint), c.Fields))
		case PeerRemoved:
			devices = append(devices, fmt.Sprintf("remove-peer %s %s", c.Interface, c.Peer))
		}
	}
	return links, devices
}

// deviceChanges renders ConfigureDevice calls as reportedHostChanges
// renders device changes. names maps public keys to peer names.
func deviceChanges(calls []fakeConfigureCall, names map[wgtypes.Key]string) []string {
	var out []string
	for _, call := range calls {
		if call.cfg.PrivateKey != nil {
			out = append(out, "private-key "+call.name)
		}
		if call.cfg.ListenPort != nil {
			out = append(out, fmt.Sprintf("listen-port %s %d", call.name, *call.cfg.ListenPort))
		}
		for _, p := range call.cfg.Peers {
			name, ok := names[p.PublicKey]
			if !ok {
				name = "(undeclared)"
			}
			switch {
			case p.Remove:
				out = append(out, fmt.Sprintf("remove-peer %s %s", call.name, name))
			case !p.UpdateOnly:
				out = append(out, fmt.Sprintf("add-peer %s %s %s", call.name, name, endpointText(udpAddrPort(p.Endpoint))))
			default:
				var fields []string
				if p.PresharedKey != nil {
					fields = append(fields, "preshared-key")
				}
				if p.Endpoint != nil {
					fields = append(fields, "endpoint")
				}
				if p.PersistentKeepaliveInterval != nil {
					fields = append(fields, "persistent-keepalive")
				}
				if p.ReplaceAllowedIPs {
					fields = append(fields, "allowed-ips")
				}
				out = append(out, fmt.Sprintf("update-peer %s %s %s %v", call.name, name, endpointText(udpAddrPort(p.Endpoint)), fields))
			}
		}
	}
	return out
}

func endpointText(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return "-"
	}
	return ap.String()
}

// assertReportMatchesHost checks that the last report lists exactly what
// the fake host saw change since resetCalls, in order: the report leaves
// nothing out and claims nothing that did not happen. Every
// ConfigureDevice call must have succeeded.
func (e *testEnv) assertReportMatchesHost(names map[wgtypes.Key]string) {
	e.t.Helper()
	links, devices := reportedHostChanges(e.lastReport())
	if got, want := links, e.host.changes(); !slices.Equal(got, want) {
		e.t.Errorf("reported link changes:\n got %q\nwant %q", got, want)
	}
	if got, want := devices, deviceChanges(e.host.calls(), names); !slices.Equal(got, want) {
		e.t.Errorf("reported device changes:\n got %q\nwant %q", got, want)
	}
}

func TestReportTunnelLifecycle(t *testing.T) {
	e := newTestEnv(t, true)
	tun := e.tunnel("wg0", 51820, "10.0.0.2/24",
		testPeer("cluster-gw", 1, "192.0.2.1:51820", "10.0.0.0/24", "10.96.0.0/12"),
		testPeer("backup-gw", 2, "", "10.0.0.3/32"))
	e.mustApply(tun)
	e.assertReport(
		Change{Kind: InterfaceCreated, Interface: "wg0", Backend: policy.BackendKernel, DeclaredBackend: policy.BackendAuto},
		Change{Kind: AddressAdded, Interface: "wg0", Address: netip.MustParsePrefix("10.0.0.2/24")},
		Change{Kind: InterfaceUp, Interface: "wg0"},
		Change{Kind: PrivateKeySet, Interface: "wg0"},
		Change{Kind: ListenPortSet, Interface: "wg0", ListenPort: 51820},
		Change{Kind: PeerAdded, Interface: "wg0", Peer: "cluster-gw", Endpoint: netip.MustParseAddrPort("192.0.2.1:51820")},
		Change{Kind: PeerAdded, Interface: "wg0", Peer: "backup-gw"},
		Change{Kind: RouteAdded, Interface: "wg0", Route: netip.MustParsePrefix("10.96.0.0/12")},
	)

	tun.MTU = 1380
	tun.Addresses = prefixes("10.0.0.2/16")
	tun.Peers[1].Endpoint = "192.0.2.2:51820"
	tun.Peers[1].PersistentKeepalive = 25e9
	e.mustApply(tun)
	e.assertReport(
		Change{Kind: MTUSet, Interface: "wg0", MTU: 1380},
		Change{Kind: AddressRemoved, Interface: "wg0", Address: netip.MustParsePrefix("10.0.0.2/24")},
		Change{Kind: AddressAdded, Interface: "wg0", Address: netip.MustParsePrefix("10.0.0.2/16")},
		Change{Kind: PeerUpdated, Interface: "wg0", Peer: "backup-gw", Endpoint: netip.MustParseAddrPort("192.0.2.2:51820"),
			Fields: []string{FieldEndpoint, FieldPersistentKeepalive}},
	)

	e.mustApply()
	e.assertReport(Change{Kind: InterfaceRemoved, Interface: "wg0", Backend: policy.BackendKernel})
}

func TestReportBackends(t *testing.T) {
	gw := testPeer("gw", 1, "192.0.2.1:51820", "10.0.0.1/32")
	created := func(backend, declared policy.Backend) Change {
		return Change{Kind: InterfaceCreated, Interface: "wg0", Backend: backend, DeclaredBackend: declared}
	}

	t.Run("switched", func(t *testing.T) {
		e := newTestEnv(t, true)
		tun := e.tunnel("wg0", 51820, "10.0.0.2/24", gw)
		tun.Backend = policy.BackendKernel
		e.mustApply(tun)
		tun.Backend = policy.BackendUserspace
		e.mustApply(tun)
		assertChanges(t, changesOf(e.lastReport(), BackendSwitched, InterfaceCreated),

			Change{Kind: BackendSwitched, Interface: "wg0", PreviousBackend: policy.BackendKernel, Backend: policy.BackendUserspace},
			created(policy.BackendUserspace, policy.BackendUserspace))
	})
	t.Run("adopted", func(t *testing.T) {
		e := newTestEnv(t, true)
		e.host.addForeignLink("wg0", linkTypeWireGuard)
		e.mustApply(e.tunnel("wg0", 51820, "10.0.0.2/24", gw))
		assertChanges(t, changesOf(e.lastReport(), InterfaceAdopted, InterfaceCreated),
			Change{Kind: InterfaceAdopted, Interface: "wg0", Backend: policy.BackendKernel})
	})
	t.Run("kernel unavailable", func(t *testing.T) {
		e := newTestEnv(t, false, WithKernelModule(func() bool { return true }))
		e.mustApply(e.tunnel("wg0", 51820, "10.0.0.2/24", gw))
		assertChanges(t, changesOf(e.lastReport(), KernelUnavailable, InterfaceCreated),

			Change{Kind: KernelUnavailable, Interface: "wg0", Err: fmt.Errorf("add wireguard link wg0: operation not supported")},
			created(policy.BackendUserspace, policy.BackendAuto))
	})
	t.Run("userspace link vanished", func(t *testing.T) {
		e := newTestEnv(t, false)
		tun := e.tunnel("wg0", 51820, "10.0.0.2/24", gw)
		e.mustApply(tun)
		if err := e.host.Delete("wg0"); err != nil { // ip link del wg0
			t.Fatal(err)
		}
		e.mustApply(tun)
		assertChanges(t, changesOf(e.lastReport(), InterfaceVanished, InterfaceCreated),
			Change{Kind: InterfaceVanished, Interface: "wg0"}, created(policy.BackendUserspace, policy.BackendAuto))
		e.assertConverged(tun)
	})
	t.Run("managed name taken by another link", func(t *testing.T) {
		e := newTestEnv(t, true, WithManagedInterfaces("eth9"))
		e.host.addForeignLink("eth9", "veth")
		e.mustApply()
		e.assertReport(
			Change{Kind: InterfaceKept, Interface: "eth9", LinkType: "veth"},
			Change{Kind: InterfaceRemoved, Interface: "eth9", Backend: policy.BackendAuto})
		if _, err := e.host.Link("eth9"); err != nil {
			t.Errorf("eth9: %v", err)
		}
	})
}

// TestReportUndeclaredPeer: a peer added behind edgefw's back is removed
// and reported without a name of its own.
func TestReportUndeclaredPeer(t *testing.T) {
	e := newTestEnv(t, true)
	tun := e.tunnel("wg0", 51820, "10.0.0.10/24", testPeer("a", 1, "192.0.2.1:51820", "10.0.0.1/32"))
	e.mustApply(tun)
	if err := e.host.ConfigureDevice("wg0", wgtypes.Config{Peers: []wgtypes.PeerConfig{{PublicKey: testKey(9)}}}); err != nil {
		t.Fatal(err)
	}
	if err := e.refresh(); err != nil {
		t.Fatal(err)
	}
	e.assertReport(Change{Kind: PeerRemoved, Interface: "wg0", Peer: "(undeclared)"})
}

// TestReportOnFailure: what an Apply changed is reported even when it
// fails, and a failure is in the error, not in the report.
func TestReportOnFailure(t *testing.T) {
	e := newTestEnv(t, true)
	bad := e.tunnel("wgbad", 51820, "10.0.0.2/24")
	if _, err := GenerateKeyFile(bad.PrivateKeyFile); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(bad.PrivateKeyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	good := e.tunnel("wggood", 51821, "10.1.0.2/24")
	if err := e.apply(bad, good); err == nil {
		t.Fatal("Apply with an insecure key file succeeded")
	}
	for _, c := range e.lastReport().Changes {
		if c.Interface != "wggood" {
			t.Errorf("reported a change of %s, which failed: %+v", c.Interface, c)
		}
	}
	if len(changesOf(e.lastReport(), InterfaceCreated)) != 1 {
		t.Errorf("the tunnel that worked is not reported: %+v", e.lastReport())
	}
}
