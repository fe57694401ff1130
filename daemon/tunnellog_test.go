package daemon

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefw/edgefw/policy"
	"github.com/edgefw/edgefw/wg"
)

// tunnelLogBuffer is a log destination safe for the daemon's goroutines.
type tunnelLogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *tunnelLogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *tunnelLogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// tunnelTextLogger logs as edgefwd's --log-format text does, without the time.
func tunnelTextLogger(w *tunnelLogBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}

// TestTunnelReportLogLines pins the journal lines of every kind of tunnel
// change: they are those wg logged itself before it returned a Report, and
// operators' journal queries and the integration tests look for them.
func TestTunnelReportLogLines(t *testing.T) {
	addr := netip.MustParseAddr
	for _, tc := range []struct {
		change wg.Change
		want   string
	}{
		{wg.Change{Kind: wg.InterfaceCreated, Interface: "wg0", Backend: policy.BackendKernel, DeclaredBackend: policy.BackendAuto},
			`level=INFO msg="created WireGuard interface" component=wg interface=wg0 backend=kernel declared_backend=auto`},
		{wg.Change{Kind: wg.InterfaceAdopted, Interface: "wg0", Backend: policy.BackendKernel},
			`level=INFO msg="adopted existing WireGuard interface" component=wg interface=wg0 backend=kernel`},
		{wg.Change{Kind: wg.InterfaceRemoved, Interface: "wg0", Backend: policy.BackendUserspace},
			`level=INFO msg="removed tunnel" component=wg interface=wg0 backend=userspace`},
		{wg.Change{Kind: wg.InterfaceKept, Interface: "eth9", LinkType: "veth"},
			`level=WARN msg="not deleting interface: it is no longer a WireGuard interface" component=wg interface=eth9 type=veth`},
		{wg.Change{Kind: wg.InterfaceVanished, Interface: "wg0"},
			`level=WARN msg="userspace WireGuard interface disappeared, recreating it" component=wg interface=wg0`},
		{wg.Change{Kind: wg.BackendSwitched, Interface: "wg0", PreviousBackend: policy.BackendKernel, Backend: policy.BackendUserspace},
			`level=INFO msg="switching tunnel backend" component=wg interface=wg0 from=kernel to=userspace`},
		{wg.Change{Kind: wg.KernelUnavailable, Interface: "wg0", Err: errors.New("add wireguard link wg0: operation not supported")},
			`level=WARN msg="kernel WireGuard unavailable, using userspace" component=wg interface=wg0 error="add wireguard link wg0: operation not supported"`},
		{wg.Change{Kind: wg.MTUSet, Interface: "wg0", MTU: 1380},
			`level=INFO msg="set MTU" component=wg interface=wg0 mtu=1380`},
		{wg.Change{Kind: wg.AddressAdded, Interface: "wg0", Address: netip.MustParsePrefix("10.0.0.2/24")},
			`level=INFO msg="added address" component=wg interface=wg0 address=10.0.0.2/24`},
		{wg.Change{Kind: wg.AddressRemoved, Interface: "wg0", Address: netip.MustParsePrefix("fd00::2/64")},
			`level=INFO msg="removed address" component=wg interface=wg0 address=fd00::2/64`},
		{wg.Change{Kind: wg.InterfaceUp, Interface: "wg0"},
			`level=INFO msg="set interface up" component=wg interface=wg0`},
		{wg.Change{Kind: wg.RouteAdded, Interface: "wg0", Route: netip.MustParsePrefix("10.96.0.0/12")},
			`level=INFO msg="added route" component=wg interface=wg0 route=10.96.0.0/12`},
		{wg.Change{Kind: wg.RouteRemoved, Interface: "wg0", Route: netip.MustParsePrefix("10.96.0.0/12")},
			`level=INFO msg="removed route" component=wg interface=wg0 route=10.96.0.0/12`},
		{wg.Change{Kind: wg.PrivateKeySet, Interface: "wg0"},
			`level=INFO msg="set private key" component=wg interface=wg0`},
		{wg.Change{Kind: wg.ListenPortSet, Interface: "wg0", ListenPort: 51820},
			`level=INFO msg="set listen port" component=wg interface=wg0 listen_port=51820`},
		{wg.Change{Kind: wg.DeviceUpToDate, Interface: "wg0", PeerCount: 2},
			`level=DEBUG msg="WireGuard device up to date" component=wg interface=wg0 peers=2`},
		{wg.Change{Kind: wg.PeerAdded, Interface: "wg0", Peer: "gw", Endpoint: netip.MustParseAddrPort("192.0.2.1:51820")},
			`level=INFO msg="added peer" component=wg interface=wg0 peer=gw endpoint=192.0.2.1:51820`},
		{wg.Change{Kind: wg.PeerAdded, Interface: "wg0", Peer: "gw"},
			`level=INFO msg="added peer" component=wg interface=wg0 peer=gw endpoint=""`},
		{wg.Change{Kind: wg.PeerUpdated, Interface: "wg0", Peer: "gw", Endpoint: netip.MustParseAddrPort("[2001:db8::1]:51820"),
			Fields: []string{wg.FieldEndpoint, wg.FieldAllowedIPs}},
			`level=INFO msg="updated peer" component=wg interface=wg0 peer=gw endpoint=[2001:db8::1]:51820 changed="[endpoint allowed-ips]"`},
		{wg.Change{Kind: wg.PeerUpdated, Interface: "wg0", Peer: "gw", Fields: []string{wg.FieldPresharedKey}},
			`level=INFO msg="updated peer" component=wg interface=wg0 peer=gw changed=[preshared-key]`},
		{wg.Change{Kind: wg.PeerRemoved, Interface: "wg0", Peer: "(undeclared)"},
			`level=INFO msg="removed peer" component=wg interface=wg0 peer=(undeclared)`},
		{wg.Change{Kind: wg.EndpointUnresolved, Interface: "wg0", Peer: "gw", DeclaredEndpoint: "gw.example:51820",
			Err: errors.New("lookup gw.example: no such host")},
			`level=WARN msg="cannot resolve peer endpoint; the peer keeps its last address (if any), retrying at every refresh" component=wg interface=wg0 peer=gw endpoint=gw.example:51820 address="" error="lookup gw.example: no such host"`},
		{wg.Change{Kind: wg.EndpointStillUnresolved, Interface: "wg0", Peer: "gw", DeclaredEndpoint: "gw.example:51820",
			Resolved: addr("198.51.100.1"), Err: errors.New("lookup gw.example: no such host")},
			`level=DEBUG msg="still cannot resolve peer endpoint" component=wg interface=wg0 peer=gw endpoint=gw.example:51820 address=198.51.100.1 error="lookup gw.example: no such host"`},
		{wg.Change{Kind: wg.EndpointResolved, Interface: "wg0", Peer: "gw", DeclaredEndpoint: "gw.example:51820", Resolved: addr("198.51.100.1")},
			`level=INFO msg="peer endpoint resolves again" component=wg interface=wg0 peer=gw endpoint=gw.example:51820 address=198.51.100.1`},
		{wg.Change{Kind: wg.EndpointMoved, Interface: "wg0", Peer: "gw", DeclaredEndpoint: "gw.example:51820",
			PreviousResolved: addr("198.51.100.1"), Resolved: addr("198.51.100.3")},
			`level=INFO msg="peer endpoint address changed" component=wg interface=wg0 peer=gw endpoint=gw.example:51820 from=198.51.100.1 to=198.51.100.3`},
		{wg.Change{Kind: "something-new", Interface: "wg0"},
			`level=INFO msg="tunnel changed" component=wg interface=wg0 kind=something-new peer=""`},
	} {
		t.Run(string(tc.change.Kind), func(t *testing.T) {
			var buf tunnelLogBuffer
			logTunnelReport(context.Background(), tunnelTextLogger(&buf), wg.Report{Changes: []wg.Change{tc.change}})
			if got := strings.TrimSuffix(buf.String(), "\n"); got != tc.want {
				t.Errorf("logged\n %s\nwant\n %s", got, tc.want)
			}
		})
	}
}

// reportingTunnels reports a fixed change from every Apply and Refresh.
type reportingTunnels struct {
	apply, refresh wg.Change
	applyErr       error
}

func (r *reportingTunnels) Apply(context.Context, []policy.Tunnel) (wg.Report, error) {
	return wg.Report{Changes: []wg.Change{r.apply}}, r.applyErr
}

func (r *reportingTunnels) Refresh(context.Context) (wg.Report, error) {
	return wg.Report{Changes: []wg.Change{r.refresh}}, nil
}

func (r *reportingTunnels) Status(context.Context) ([]wg.TunnelStatus, error) { return nil, nil }
func (r *reportingTunnels) Close() error                                      { return nil }

// TestTunnelReportsAreLogged: the daemon logs what the tunnels' Apply
// reports, also when it fails (before saying so), and what the periodic
// Refresh reports.
func TestTunnelReportsAreLogged(t *testing.T) {
	h := newHarness(t)
	var logs tunnelLogBuffer
	tunnels := &reportingTunnels{
		apply:    wg.Change{Kind: wg.RouteAdded, Interface: "wg0", Route: netip.MustParsePrefix("10.96.0.0/12")},
		applyErr: errors.New(`peer "b": preshared key file missing`),
		refresh: wg.Change{Kind: wg.EndpointMoved, Interface: "wg0", Peer: "gw", DeclaredEndpoint: "gw.example:51820",
			PreviousResolved: netip.MustParseAddr("198.51.100.1"), Resolved: netip.MustParseAddr("198.51.100.3")},
	}
	d, err := New(Config{PolicyPath: h.policy, StateDir: h.state, Firewall: h.fw, Tunnels: tunnels,
		Logger: tunnelTextLogger(&logs), RefreshInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	const applied = `level=INFO msg="added route" component=wg interface=wg0 route=10.96.0.0/12`
	route := strings.Index(logs.String(), applied)
	failed := strings.Index(logs.String(), `msg="tunnels not fully applied"`)
	if route < 0 || failed < route {
		t.Fatalf("the report of Apply is not logged before its failure:\n%s", logs.String())
	}

	done := make(chan error, 1)
	go func() { done <- d.loop(ctx) }()
	defer func() { cancel(); <-done }()
	const refreshed = `level=INFO msg="peer endpoint address changed" component=wg interface=wg0 peer=gw endpoint=gw.example:51820 from=198.51.100.1 to=198.51.100.3`
	waitFor(t, "the report of Refresh in the log", func() bool { return strings.Contains(logs.String(), refreshed) })
}
