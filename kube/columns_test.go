package kube

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/edgefw/edgefw/internal/kubetest"
)

// testPrinterColumns reads the policies and node states as kubectl get
// does (the server's Table), after the other subtests wrote their status:
// the columns show what a rollout is watched by.
func testPrinterColumns(t *testing.T, c *kubetest.Cluster) {
	config, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig(t, kubetest.Admin()))
	if err != nil {
		t.Fatal(err)
	}
	client, err := rest.HTTPClientFor(config)
	if err != nil {
		t.Fatal(err)
	}
	policies := table(t, client, c.URL+"/apis/edgefw.io/v1alpha1/hostfirewallpolicies")
	if got, want := policies["spec-example"], map[string]string{
		"Mode": "Enforce", "Priority": "0", "Matched": "2", "Applied": "1", "Failed": "0", "Ready": "False",
	}; !columnsMatch(got, want) {
		t.Errorf("kubectl get hostfirewallpolicies: spec-example shows %v, want %v", got, want)
	}
	states := table(t, client, c.URL+"/apis/edgefw.io/v1alpha1/hostfirewallnodestates")
	if got, want := states["node-a"], map[string]string{
		"Ready": "True", "Policies": "spec-example", "Drift Repairs": "0", "Ruleset": "sha256:0f",
	}; !columnsMatch(got, want) {
		t.Errorf("kubectl get hostfirewallnodestates: node-a shows %v, want %v", got, want)
	}
}

// table gets url as a server-side Table and returns each row's cells by
// column name, by object name.
func table(t *testing.T, client *http.Client, url string) map[string]map[string]string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tab struct {
		Columns []struct {
			Name string `json:"name"`
		} `json:"columnDefinitions"`
		Rows []struct {
			Cells []any `json:"cells"`
		} `json:"rows"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tab); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s as a Table: %s, %v", url, resp.Status, err)
	}
	rows := map[string]map[string]string{}
	for _, row := range tab.Rows {
		cells := map[string]string{}
		for i, col := range tab.Columns {
			if i < len(row.Cells) {
				cells[col.Name] = fmt.Sprint(row.Cells[i])
			}
		}
		rows[cells["Name"]] = cells
	}
	return rows
}

func columnsMatch(got, want map[string]string) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}
