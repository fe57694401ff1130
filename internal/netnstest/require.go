package netnstest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
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

// unprivilegedEnv marks the child process that AsUnprivileged starts.
const unprivilegedEnv = "EDGEFW_TEST_UNPRIVILEGED"

// nobody is the user and group the unprivileged child runs as.
const nobody = 65534

// AsUnprivileged lets a test that needs an ordinary user (what root may
// always do, such as reading any file, is what it checks) run where the
// suite runs as root, as in CI. As root it runs the test binary again for
// this test alone as user nobody, from a directory of its own (the test
// must not read files beside its package), reports the outcome, and
// returns false: the caller returns. Otherwise it returns true and the
// test goes on.
func AsUnprivileged(t *testing.T) bool {
	t.Helper()
	if os.Getenv(unprivilegedEnv) == "1" || os.Geteuid() != 0 {
		return true
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The build directory of a test binary is private to root.
	dir, err := os.MkdirTemp("", "edgefw-unprivileged-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "test")
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var pattern []string
	for _, part := range strings.Split(t.Name(), "/") {
		pattern = append(pattern, "^"+regexp.QuoteMeta(part)+"$")
	}
	cmd := exec.Command(bin, "-test.run="+strings.Join(pattern, "/"), "-test.v", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), unprivilegedEnv+"=1", "HOME=/nonexistent")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	switch {
	case err != nil:
		t.Fatalf("as user nobody: %v\n%s", err, out)
	case !strings.Contains(string(out), "--- PASS: "+t.Name()+" "):
		t.Fatalf("as user nobody the test did not pass:\n%s", out)
	}
	t.Logf("ran as user nobody:\n%s", out)
	return false
}
