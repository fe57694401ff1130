package netnstest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestMissingToolHelper is run by TestRequireToolInCI in a child process.
func TestMissingToolHelper(t *testing.T) {
	if os.Getenv("NETNSTEST_HELPER") != "1" {
		t.Skip("helper process of TestRequireToolInCI")
	}
	RequireTool(t, "edgefw-no-such-tool")
	t.Log("RAN PAST THE MISSING TOOL")
}

// TestRequireToolInCI checks that a missing tool skips a test on a
// developer's machine but fails it in CI.
func TestRequireToolInCI(t *testing.T) {
	for _, tc := range []struct {
		ci       string
		wantFail bool
		want     string
	}{
		{ci: "", wantFail: false, want: "--- SKIP: TestMissingToolHelper"},
		{ci: "true", wantFail: true, want: "--- FAIL: TestMissingToolHelper"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMissingToolHelper$", "-test.v")
		cmd.Env = append(os.Environ(), "NETNSTEST_HELPER=1", "CI="+tc.ci)
		out, err := cmd.CombinedOutput()
		if failed := err != nil; failed != tc.wantFail {
			t.Errorf("CI=%q: failed %v, want %v\n%s", tc.ci, failed, tc.wantFail, out)
		}
		if !strings.Contains(string(out), tc.want) || strings.Contains(string(out), "RAN PAST") {
			t.Errorf("CI=%q: output lacks %q or ran on:\n%s", tc.ci, tc.want, out)
		}
	}
}
