// Package bootid names the running boot, so that state written in one boot
// is not taken for the next one's.
package bootid

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// Path is where Linux names the current boot.
const Path = "/proc/sys/kernel/random/boot_id"

// Env carries the boot ID where Path cannot be read: the packaged unit
// sets it from systemd's %b, because its ProcSubset=pid hides /proc/sys.
const Env = "EDGEFW_BOOT_ID"

// The kernel's form (a dashed UUID); systemd's %b is the same 128 bits
// without dashes.
var form = regexp.MustCompile(`^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$`)

// Read returns the current boot's ID in the kernel's form (a dashed,
// lower-case UUID), from the kernel, or from Env when the kernel's file
// cannot be read.
func Read() (string, error) {
	return read(Path, os.Getenv)
}

func read(path string, getenv func(string) string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return normal(string(b), path)
	}
	v := getenv(Env)
	if v == "" {
		return "", fmt.Errorf("boot ID: %w (and %s is not set)", err, Env)
	}
	return normal(v, Env)
}

func normal(s, from string) (string, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if !form.MatchString(s) {
		return "", errors.New("boot ID from " + from + ": " + fmt.Sprintf("%q", s) + " is not a 128-bit ID like 0123456789abcdef0123456789abcdef")
	}
	s = strings.ReplaceAll(s, "-", "")
	return s[:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:], nil
}
