package nft

import (
	"os/exec"
	"testing"
)

// requireTool skips a kernel test when a tool it observes with is missing.
func requireTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("needs %s: %v", name, err)
	}
}
