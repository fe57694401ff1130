package daemon

import (
	"context"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/edgefw/edgefw/internal/keytest"
	"github.com/edgefw/edgefw/policy"
)

// peersPolicy is policyA with a tunnel whose peers are those numbered ids.
func peersPolicy(ids ...int) string {
	var b strings.Builder
	b.WriteString(policyA + "tunnels:\n  - name: wg0\n    privateKeyFile: wg0.key\n    addresses: [10.0.0.2/16]\n    peers:\n")
	for _, i := range ids {
		key := base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("%032d", i)))
		fmt.Fprintf(&b, "      - {name: site-%d, publicKey: %q, allowedIPs: [10.%d.%d.%d/32]}\n", i, key, 1+i>>16, i>>8&255, i&255)
	}
	return b.String()
}

func idRange(from, to int) []int {
	var ids []int
	for i := from; i < to; i++ {
		ids = append(ids, i)
	}
	return ids
}

// TestReloadPeersAsWritten: reloads that change a few peers of a tunnel
// of many (which the daemon's policy reader decodes alone) give the
// tunnels, and save as the last good policy, exactly what a full read of
// the files gives; a change that a full read refuses is refused, and the
// tunnels are not touched.
func TestReloadPeersAsWritten(t *testing.T) {
	h := newHarness(t)
	keytest.WriteKey(t, filepath.Join(h.dir, "wg0.key"), 0o600)
	h.write(t, peersPolicy(idRange(0, 50)...))
	tunnels := &recordingTunnels{}
	d, err := New(Config{PolicyPath: h.policy, StateDir: h.state, Firewall: h.fw, Tunnels: tunnels})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.lastGood.wait)
	ctx := context.Background()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what string
		ids  []int
		bad  bool
	}{
		{"one peer added at the end", idRange(0, 51), false},
		{"one peer added in the middle", append(append(idRange(0, 20), 99), idRange(20, 51)...), false},
		{"one peer removed", append(idRange(0, 20), idRange(20, 51)...), false},
		{"a peer twice", append(idRange(0, 52), 7), true},
		{"back to valid", idRange(0, 52), false},
	} {
		h.write(t, peersPolicy(c.ids...))
		before := tunnels.applies()
		err := d.reload(ctx, "test")
		if c.bad {
			if err == nil {
				t.Fatalf("%s: reloaded", c.what)
			}
			if tunnels.applies() != before {
				t.Errorf("%s: tunnels applied", c.what)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		want, err := policy.Load(h.policy)
		if err != nil {
			t.Fatal(err)
		}
		tunnels.mu.Lock()
		got := tunnels.applied[len(tunnels.applied)-1]
		tunnels.mu.Unlock()
		if !reflect.DeepEqual(got, want.Tunnels) {
			t.Errorf("%s: tunnels applied differ from the files':\n%+v\nwant\n%+v", c.what, got, want.Tunnels)
		}
		// Reloads after the first save write the last good policy in the
		// background: wait for it before reading.
		d.lastGood.wait()
		saved, err := loadLastGood(h.state)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(saved.Policy.Tunnels, want.Tunnels) {
			t.Errorf("%s: last good tunnels differ from the files'", c.what)
		}
	}
}

// BenchmarkReloadOnePeerAdded reloads a policy whose tunnel of 10,000
// peers gains one peer, and loses it again: the daemon's share of the
// reload (files read, firewall, last good policy, journal), with the
// tunnels recorded rather than configured.
func BenchmarkReloadOnePeerAdded(b *testing.B) {
	h := newHarness(b)
	keytest.WriteKey(b, filepath.Join(h.dir, "wg0.key"), 0o600)
	base, more := peersPolicy(idRange(0, 10_000)...), peersPolicy(idRange(0, 10_001)...)
	h.write(b, base)
	d, err := New(Config{PolicyPath: h.policy, StateDir: h.state, Firewall: h.fw, Tunnels: &recordingTunnels{}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := d.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, doc := range []string{more, base} {
			h.write(b, doc)
			if err := d.reload(ctx, "bench"); err != nil {
				b.Fatal(err)
			}
		}
	}
}
