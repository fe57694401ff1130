package main

import (
	"fmt"
	"strings"

	"github.com/edgefw/edgefw/daemon"
)

// clusterSummary renders the Kubernetes source: "API reachable, live; 2
// policies applied (web@3, ssh@1), 1 rejected (bad@2: why)".
func clusterSummary(c *daemon.ClusterStatus) string {
	var b strings.Builder
	if c.Reachable {
		b.WriteString("API reachable")
	} else {
		b.WriteString("API unreachable")
		if c.LastError != "" {
			fmt.Fprintf(&b, " (%s)", c.LastError)
		}
	}
	if c.Source == "Saved" {
		b.WriteString(", enforcing the cluster policy saved in the state directory")
	}
	var applied, rejected []string
	for _, p := range c.Policies {
		if p.State == "Rejected" {
			rejected = append(rejected, fmt.Sprintf("%s@%d: %s", p.Name, p.Generation, strings.ReplaceAll(p.Error, "\n", " ")))
			continue
		}
		mode := ""
		if p.Mode == "Audit" {
			mode = " audit"
		}
		applied = append(applied, fmt.Sprintf("%s@%d%s", p.Name, p.Generation, mode))
	}
	if len(applied) == 1 {
		b.WriteString("; 1 policy applied")
	} else {
		fmt.Fprintf(&b, "; %d policies applied", len(applied))
	}
	if len(applied) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(applied, ", "))
	}
	if len(rejected) > 0 {
		fmt.Fprintf(&b, ", %d rejected (%s)", len(rejected), strings.Join(rejected, "; "))
	}
	return b.String()
}
