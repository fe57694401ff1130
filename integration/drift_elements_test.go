package integration

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edgefw/edgefw/internal/netnstest"
)

// TestDaemonDriftElementRepaired deletes, and then adds, an element of a
// set with nft. nftables notifies set element changes with their table,
// so the daemon hears each at once (it polls nothing while it follows
// notifications, and compares the whole table only every 30 s): each is
// restored, counted, and logged as made by that nft process.
func TestDaemonDriftElementRepaired(t *testing.T) {
	netnstest.RequireRoot(t)
	netnstest.RequireTool(t, "nft")
	// At debug, a repair within a burst is logged too.
	p := startEdgefwdReady(t, edgefwdSetup{Policy: diffPolicy, Args: []string{"--log-level", "debug"}})
	want, ok := p.Table()
	if !ok || !strings.Contains(want, "198.51.100.0/24") {
		t.Fatalf("the policy's set is not in force:\n%s", want)
	}
	for i, change := range []string{
		"delete element inet edgefw trusted-v4 { 198.51.100.0/24 }",
		"add element inet edgefw trusted-v4 { 10.99.0.0/16 }",
	} {
		repairs := p.Status(t).DriftRepairs
		logged := repairsLogged(p.Log())
		cmd := p.NS.Command("nft", change)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nft %s: %v\n%s", change, err, out)
		}
		// ip netns exec execs nft: the process is nft's.
		nft := fmt.Sprintf("nft[%d]", cmd.Process.Pid)
		// Generous, and well below the 30 s of the full comparison.
		daemonPoll(t, 10*time.Second, "the set to be restored after nft "+change, func() (bool, string) {
			table, ok := p.Table()
			return ok && table == want, table
		})
		daemonPoll(t, daemonReadyTimeout, "the repair to be counted and logged", func() (bool, string) {
			st := p.Status(t)
			return st.DriftRepairs == repairs+1 && repairsLogged(p.Log()) == logged+1,
				strconv.FormatUint(st.DriftRepairs, 10) + " repairs\n" + p.Log()
		})
		if who, _ := logValue(lastRepairLine(p.Log()), "changed_by"); who != nft {
			t.Errorf("change %d (%s): the repair names %q as the changer, want %s", i, change, who, nft)
		}
	}
}
