package daemon

import (
	"errors"
	"testing"

	"github.com/google/nftables"
)

func TestTouchesOurTable(t *testing.T) {
	ours := &nftables.Table{Name: "edgefw", Family: nftables.TableFamilyINet}
	theirs := &nftables.Table{Name: "kube-proxy", Family: nftables.TableFamilyIPv4}
	sameNameOtherFamily := &nftables.Table{Name: "edgefw", Family: nftables.TableFamilyIPv4}
	ev := func(data any) *nftables.MonitorEvent { return &nftables.MonitorEvent{Data: data} }
	for _, tc := range []struct {
		name    string
		changes []*nftables.MonitorEvent
		want    bool
	}{
		{"table deleted", []*nftables.MonitorEvent{ev(ours)}, true},
		{"our chain", []*nftables.MonitorEvent{ev(&nftables.Chain{Table: ours})}, true},
		{"our rule among others", []*nftables.MonitorEvent{ev(&nftables.Rule{Table: theirs}), ev(&nftables.Rule{Table: ours})}, true},
		{"our set", []*nftables.MonitorEvent{ev(&nftables.Set{Table: ours})}, true},
		{"our counter", []*nftables.MonitorEvent{ev(&nftables.CounterObj{Table: ours})}, true},
		{"unparsable change", []*nftables.MonitorEvent{{Error: errors.New("bad")}}, true},
		{"kube-proxy rules", []*nftables.MonitorEvent{ev(&nftables.Rule{Table: theirs}), ev(&nftables.Chain{Table: theirs})}, false},
		{"ip edgefw is not ours", []*nftables.MonitorEvent{ev(sameNameOtherFamily)}, false},
		{"elements name no table", []*nftables.MonitorEvent{ev([]nftables.SetElement{{Key: []byte{1}}})}, false},
		{"no changes", nil, false},
	} {
		if got := touchesOurTable(tc.changes); got != tc.want {
			t.Errorf("%s: touchesOurTable = %v, want %v", tc.name, got, tc.want)
		}
	}
}
