package wg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/edgefw/edgefw/internal/netnstest"
)

// TestChangeRoutesKernel adds routes in batches larger than one, some of
// which the kernel refuses, and checks each answer lands on its own route
// and the routes are what `ip route add PREFIX dev IF proto 122` makes;
// then deletes them the same way.
func TestChangeRoutesKernel(t *testing.T) {
	if testing.Short() {
		t.Skip("kernel test skipped in -short mode")
	}
	ns := netnstest.New(t, "wgrt")
	ns.MustRun(t, "ip", "tuntap", "add", "mode", "tun", "efrt0")
	ns.MustRun(t, "ip", "link", "set", "efrt0", "up")
	// Taken already: the batch's answer for it must be EEXIST, and only for it.
	ns.MustRun(t, "ip", "route", "add", "10.9.0.77/32", "dev", "efrt0")

	var dsts []netip.Prefix
	for i := range 3*routeBatchSize + 5 {
		dsts = append(dsts, netip.MustParsePrefix(fmt.Sprintf("10.9.%d.%d/32", i/250, i%250+1)))
	}
	dsts = append(dsts, netip.MustParsePrefix("fd00:9::/64"))
	links := &netlinkLinks{}
	defer links.Close()
	var errs []error
	if err := ns.Do(func() error { errs = links.AddRoutes("efrt0", dsts); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(errs) != len(dsts) {
		t.Fatalf("%d answers for %d routes", len(errs), len(dsts))
	}
	for i, err := range errs {
		want := dsts[i] == netip.MustParsePrefix("10.9.0.77/32")
		if got := errors.Is(err, syscall.EEXIST); got != want || (!want && err != nil) {
			t.Errorf("route %s: %v", dsts[i], err)
		}
	}
	shown := ns.MustRun(t, "ip", "-4", "route", "show", "proto", "122")
	if got := strings.Count(shown, "\n"); got != len(dsts)-2 {
		t.Errorf("ip route shows %d routes of proto 122, want %d", got, len(dsts)-2)
	}
	if !strings.Contains(shown, "10.9.0.1 dev efrt0 scope link") {
		t.Errorf("route not as ip route add makes it:\n%s", shown[:min(len(shown), 300)])
	}
	if v6 := ns.MustRun(t, "ip", "-6", "route", "show", "proto", "122"); !strings.Contains(v6, "fd00:9::/64 dev efrt0") {
		t.Errorf("IPv6 route missing: %q", v6)
	}
	var have []netip.Prefix
	if err := ns.Do(func() (err error) { have, err = links.Routes("efrt0"); return err }); err != nil {
		t.Fatal(err)
	}
	ours := slices.DeleteFunc(slices.Clone(dsts), func(p netip.Prefix) bool { return p == netip.MustParsePrefix("10.9.0.77/32") })
	if add, del := diffPrefixes(ours, have); len(have) != len(ours) || len(add)+len(del) != 0 {
		t.Errorf("Routes lists %d, want %d: missing %v, extra %v", len(have), len(ours), add, del)
	}
	if err := ns.Do(func() error { errs = links.DelRoutes("efrt0", dsts); return nil }); err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		// The route ip added is not ours (no proto 122): not deleted.
		if want := dsts[i] == netip.MustParsePrefix("10.9.0.77/32"); (err != nil) != want {
			t.Errorf("delete route %s: %v", dsts[i], err)
		}
	}
	if left := ns.MustRun(t, "ip", "route", "show", "proto", "122"); left != "" {
		t.Errorf("routes left:\n%s", left)
	}
	if left := ns.MustRun(t, "ip", "route", "show", "10.9.0.77/32"); left == "" {
		t.Error("the route of another protocol was deleted")
	}
}

// TestDecodeRouteDump keeps, from a constructed dump, the main-table
// routes of RouteProtocol through the tunnel's link, and a default
// route's destination, which rtnetlink omits.
func TestDecodeRouteDump(t *testing.T) {
	const ifindex = 7
	var dump []byte
	dump = appendRouteMessage(dump, 1, ifindex, true, netip.MustParsePrefix("10.9.0.1/32"))
	dump = appendRouteMessage(dump, 1, ifindex, true, netip.MustParsePrefix("fd00:9::/64"))
	dump = appendRouteMessage(dump, 1, ifindex+1, true, netip.MustParsePrefix("10.9.0.2/32")) // another link
	other := len(dump)
	dump = appendRouteMessage(dump, 1, ifindex, true, netip.MustParsePrefix("10.9.0.3/32"))
	dump[other+nlmsgHeaderLen+5] = 4 // proto static: not ours
	table := len(dump)
	dump = appendRouteMessage(dump, 1, ifindex, true, netip.MustParsePrefix("10.9.0.4/32"))
	dump[table+nlmsgHeaderLen+4] = 200 // another table
	// A default route: no RTA_DST, only RTA_OIF.
	def := appendRouteMessage(nil, 1, ifindex, true, netip.MustParsePrefix("0.0.0.0/0"))
	oif := def[nlmsgHeaderLen+rtmsgLen+rtattrLen(4):]
	def = append(def[:nlmsgHeaderLen+rtmsgLen:nlmsgHeaderLen+rtmsgLen], oif...)
	binary.NativeEndian.PutUint32(def, uint32(len(def)))
	dump = append(dump, def...)

	got, done, err := decodeRouteDump(dump, ifindex, nil)
	if err != nil || done {
		t.Fatalf("decode: done %v, %v", done, err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.9.0.1/32"), netip.MustParsePrefix("fd00:9::/64"), netip.MustParsePrefix("0.0.0.0/0")}
	if !slices.Equal(got, want) {
		t.Errorf("kept %v, want %v", got, want)
	}
	var end []byte
	end = binary.NativeEndian.AppendUint32(end, nlmsgHeaderLen+4)
	end = binary.NativeEndian.AppendUint16(end, 3) // NLMSG_DONE
	end = append(end, make([]byte, 14)...)         // flags, seq, port id, int error
	if _, done, err := decodeRouteDump(end, ifindex, got); err != nil || !done {
		t.Errorf("NLMSG_DONE: done %v, %v", done, err)
	}
}
