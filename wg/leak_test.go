package wg

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

// keyForms are the spellings of a key that could leak: base64 (files,
// wg(8)) and hex (the userspace configuration protocol).
func keyForms(k wgtypes.Key) []string {
	return []string{k.String(), hex.EncodeToString(k[:])}
}

// assertNoKeyMaterial fails if any secret key appears in any of texts.
func assertNoKeyMaterial(t *testing.T, secrets []wgtypes.Key, texts map[string]string) {
	t.Helper()
	for _, k := range secrets {
		for _, form := range keyForms(k) {
			for what, text := range texts {
				if strings.Contains(text, form) {
					t.Errorf("%s contains key material", what)
				}
			}
		}
	}
}

// TestNoKeyMaterialInReportsErrorsOrStatus drives a Manager through
// success and every failure path that involves keys, and checks that no
// private or preshared key appears in its reports (which the daemon logs),
// errors or status.
func TestNoKeyMaterialInReportsErrorsOrStatus(t *testing.T) {
	e := newTestEnv(t, true)
	keyDir := filepath.Join(e.dir, "keys")
	writeKey := func(name string, mode os.FileMode) (string, wgtypes.Key) {
		k, _ := wgtypes.GenerateKey()
		path := filepath.Join(keyDir, name)
		if err := os.MkdirAll(keyDir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(k.String()+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		return path, k
	}
	goodPSK, goodPSKKey := writeKey("good.psk", 0o600)
	openPSK, openPSKKey := writeKey("open.psk", 0o644)
	openKeyPath, openKey := writeKey("open.key", 0o644)

	gw := testPeer("gw", 1, "gw.cluster.example:51820", "10.0.0.1/32")
	gw.PresharedKeyFile = goodPSK
	leaky := testPeer("leaky", 2, "192.0.2.2:51820", "10.0.0.2/32")
	leaky.PresharedKeyFile = openPSK
	rejected := testPeer("rejected", 3, "192.0.2.3:51820", "10.0.0.3/32")
	tun := e.tunnel("wg0", 51820, "10.0.0.10/24", gw, leaky, rejected)
	bad := e.tunnel("wgbad", 51821, "10.1.0.10/24")
	bad.PrivateKeyFile = openKeyPath

	e.host.failConfigure = func(name string, cfg wgtypes.Config) error {
		for _, p := range cfg.Peers {
			if p.PublicKey == testKey(3) {
				return errors.New("invalid argument")
			}
		}
		return nil
	}
	var errs []string
	collect := func(err error) {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	ctx := context.Background()
	collect(e.apply(tun, bad))
	collect(e.refresh())
	e.resolver.set("gw.cluster.example", "198.51.100.1")
	collect(e.refresh())
	st, err := e.m.Status(ctx)
	collect(err)
	statusJSON, _ := json.Marshal(st)
	collect(e.apply())
	collect(e.m.Close())
	// Reports are logged by the daemon: every field, errors included.
	var reports strings.Builder
	for _, r := range e.reports {
		fmt.Fprintf(&reports, "%+v\n", r)
	}

	for _, want := range []string{"wgbad", `peer "leaky"`, `peer "rejected"`} {
		if !strings.Contains(strings.Join(errs, "\n"), want) {
			t.Fatalf("the run did not exercise the failure of %s: %q", want, errs)
		}
	}
	wg0Key, err := LoadOrCreatePrivateKey(tun.PrivateKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	assertNoKeyMaterial(t,
		[]wgtypes.Key{wg0Key, openKey, goodPSKKey, openPSKKey},
		map[string]string{"reports": reports.String(), "errors": strings.Join(errs, "\n"), "status": string(statusJSON)})
}
