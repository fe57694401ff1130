package kubetest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestMissingBinariesHelper is run by TestRequireInCI in a child process.
func TestMissingBinariesHelper(t *testing.T) {
	if os.Getenv("KUBETEST_HELPER") != "1" {
		t.Skip("helper process of TestRequireInCI")
	}
	Require(t)
	t.Log("RAN PAST THE MISSING BINARIES")
}

// TestRequireInCI checks that missing binaries skip a test on a
// developer's machine but fail it in CI.
func TestRequireInCI(t *testing.T) {
	for _, tc := range []struct {
		ci       string
		wantFail bool
		want     string
	}{
		{ci: "", wantFail: false, want: "--- SKIP: TestMissingBinariesHelper"},
		{ci: "true", wantFail: true, want: "--- FAIL: TestMissingBinariesHelper"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMissingBinariesHelper$", "-test.v")
		cmd.Env = append(os.Environ(), "KUBETEST_HELPER=1", "CI="+tc.ci, "EDGEFW_KUBE_BIN="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if failed := err != nil; failed != tc.wantFail {
			t.Errorf("CI=%q: failed %v, want %v\n%s", tc.ci, failed, tc.wantFail, out)
		}
		if !strings.Contains(string(out), tc.want) || strings.Contains(string(out), "RAN PAST") || !strings.Contains(string(out), "kube-deps.sh") {
			t.Errorf("CI=%q: output lacks %q or kube-deps.sh, or ran on:\n%s", tc.ci, tc.want, out)
		}
	}
}

// TestCluster starts the pair, reads the authenticated user of each
// identity back from the API server through its kubeconfig, and stops and
// restarts the API server on the same address with the same state.
func TestCluster(t *testing.T) {
	c := Start(t)
	for _, id := range []Identity{Admin(), Node("edge-1"), ServiceAccount("edgefw-system", "edgefw-aggregator")} {
		client := kubeconfigClient(t, c.Kubeconfig(t, id))
		got := whoAmI(t, client, c.URL)
		if got.User != id.User || !containsAll(got.Groups, id.Groups) {
			t.Errorf("kubeconfig of %v authenticates as %v", id, got)
		}
	}

	pid := c.APIServerPID()
	c.StopAPIServer(t)
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("kube-apiserver %d still runs after StopAPIServer", pid)
	}
	if _, err := c.admin.Get(c.URL + "/readyz"); err == nil {
		t.Error("the API server answers while stopped")
	}
	c.StartAPIServer(t)
	if got := whoAmI(t, c.admin, c.URL); got.User != Admin().User {
		t.Errorf("after a restart the admin is %v", got)
	}
}

// kubeconfigClient is an HTTP client configured from the kubeconfig at
// path the way a Kubernetes client reads it: cluster address, authority,
// client certificate and key.
func kubeconfigClient(t *testing.T, path string) *http.Client {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var config struct {
		Clusters []struct {
			Cluster struct {
				CA string `json:"certificate-authority-data"`
			} `json:"cluster"`
		} `json:"clusters"`
		Users []struct {
			User struct {
				Cert string `json:"client-certificate-data"`
				Key  string `json:"client-key-data"`
			} `json:"user"`
		} `json:"users"`
	}
	if err := yaml.Unmarshal(data, &config); err != nil || len(config.Clusters) != 1 || len(config.Users) != 1 {
		t.Fatalf("kubeconfig %s: %v\n%s", path, err, data)
	}
	decode := func(s string) []byte {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(decode(config.Clusters[0].Cluster.CA)) {
		t.Fatal("kubeconfig: no authority")
	}
	cert, err := tls.X509KeyPair(decode(config.Users[0].User.Cert), decode(config.Users[0].User.Key))
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}}}
}

// whoAmI asks the API server who the client is (SelfSubjectReview).
func whoAmI(t *testing.T, client *http.Client, url string) Identity {
	t.Helper()
	resp, err := client.Post(url+"/apis/authentication.k8s.io/v1/selfsubjectreviews", "application/json",
		strings.NewReader(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var review struct {
		Status struct {
			UserInfo struct {
				Username string   `json:"username"`
				Groups   []string `json:"groups"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&review); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("SelfSubjectReview: %s, %v", resp.Status, err)
	}
	return Identity{User: review.Status.UserInfo.Username, Groups: review.Status.UserInfo.Groups}
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			found = found || h == w
		}
		if !found {
			return false
		}
	}
	return true
}
