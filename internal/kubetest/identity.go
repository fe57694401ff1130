package kubetest

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Identity is who a client is to the API server: a user and its groups,
// carried by a client certificate (common name and organizations).
type Identity struct {
	User   string
	Groups []string
}

// Admin is the cluster administrator, bound to cluster-admin by the
// system:masters group.
func Admin() Identity {
	return Identity{User: "edgefw-test-admin", Groups: []string{"system:masters"}}
}

// Node is the identity of a node, as its kubelet's credentials name it
// (and as edgefwd on that node uses them): system:node:NAME in group
// system:nodes.
func Node(name string) Identity {
	return Identity{User: "system:node:" + name, Groups: []string{"system:nodes"}}
}

// ServiceAccount is the identity of a service account's token.
func ServiceAccount(namespace, name string) Identity {
	return Identity{
		User:   "system:serviceaccount:" + namespace + ":" + name,
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace},
	}
}

// Kubeconfig writes a kubeconfig file for id, with its certificate and key
// and the cluster's authority embedded, and returns its path.
func (c *Cluster) Kubeconfig(t testing.TB, id Identity) string {
	t.Helper()
	certPEM, keyPEM, err := c.ca.issue(id.User, id.Groups, nil, nil)
	if err != nil {
		t.Fatalf("kubetest: certificate for %s: %v", id.User, err)
	}
	b64 := base64.StdEncoding.EncodeToString
	config := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: edgefw-test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %q
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: edgefw-test
  context:
    cluster: edgefw-test
    user: %q
current-context: edgefw-test
`, c.URL, b64(c.ca.certPEM), id.User, b64(certPEM), b64(keyPEM), id.User)
	path := filepath.Join(c.Dir, "kubeconfig-"+strings.NewReplacer(":", "-", "/", "-").Replace(id.User)+".yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
