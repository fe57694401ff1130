package main

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/edgefw/edgefw/policy"
)

func TestWatchdogInterval(t *testing.T) {
	self := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		name      string
		usec, pid string // "" unsets
		want      time.Duration
		wantErr   bool
	}{
		{name: "no watchdog"},
		{name: "for this process", usec: "30000000", pid: self, want: 10 * time.Second},
		{name: "without a PID", usec: "30000000", want: 10 * time.Second},
		{name: "for another process", usec: "30000000", pid: strconv.Itoa(os.Getpid() + 1)},
		{name: "malformed timeout", usec: "30s", pid: self, wantErr: true},
		{name: "zero timeout", usec: "0", pid: self, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setenv(t, "WATCHDOG_USEC", tc.usec)
			setenv(t, "WATCHDOG_PID", tc.pid)
			got, err := watchdogInterval()
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("watchdogInterval() = %v, %v; want %v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// setenv sets (or, for "", unsets) an environment variable for the test.
func setenv(t *testing.T, key, value string) {
	t.Helper()
	t.Setenv(key, value) // restores the old value at the end
	if value == "" {
		os.Unsetenv(key)
	}
}

func TestBackendHint(t *testing.T) {
	for auto, want := range map[policy.Backend]string{
		policy.BackendKernel:    "kernel-wireguard",
		policy.BackendUserspace: "userspace-wireguard",
	} {
		if got := backendHint(auto); got != want {
			t.Errorf("backendHint(%s) = %q, want %q", auto, got, want)
		}
	}
}

// TestJournalCapFlag refuses a journal cap below the journal's minimum
// before anything else is done.
func TestJournalCapFlag(t *testing.T) {
	if code := run([]string{"--journal-max-bytes", "100", "--state-dir", t.TempDir()}); code != 1 {
		t.Errorf("--journal-max-bytes 100 exited %d, want 1", code)
	}
}

// TestAggregateFlag refuses --aggregate without a kubeconfig before
// anything else is done.
func TestAggregateFlag(t *testing.T) {
	if code := run([]string{"--aggregate", "--state-dir", t.TempDir()}); code != 1 {
		t.Errorf("--aggregate without a kubeconfig exited %d, want 1", code)
	}
}
