package netnstest

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// CI reports whether the tests run in CI (CI=true, as .ci/run sets it).
// There, everything a test needs must be present: a test that skipped for
// a missing tool would pass without testing anything.
func CI() bool { return os.Getenv("CI") == "true" }

// Unavailable stops a test that cannot run here because something it
// needs is missing: it skips, or fails when CI is true.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if CI() {
		t.Fatalf("%s (CI=true: what a test needs must be installed; make test installs it as root: scripts/test-deps.sh)", msg)
	}
	t.Skip(msg)
}

// RequireTool stops the test (see Unavailable) unless each tool is on
// PATH.
func RequireTool(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			Unavailable(t, "needs %s (scripts/test-deps.sh installs it): %v", tool, err)
		}
	}
}
