package bootid

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	kernel := filepath.Join(dir, "boot_id")
	if err := os.WriteFile(kernel, []byte("2d1c47a8-5bd4-4b4e-9e0f-0d7c1d1e8f10\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == Env {
				return v
			}
			return ""
		}
	}
	const want = "2d1c47a8-5bd4-4b4e-9e0f-0d7c1d1e8f10"
	for _, tc := range []struct {
		name, path, env, want, err string
	}{
		{name: "kernel", path: kernel, env: "ffffffffffffffffffffffffffffffff", want: want},
		{name: "systemd %b when /proc/sys is hidden", path: filepath.Join(dir, "missing"), env: "2d1c47a85bd44b4e9e0f0d7c1d1e8f10", want: want},
		{name: "dashed in the environment", path: filepath.Join(dir, "missing"), env: "2D1C47A8-5BD4-4B4E-9E0F-0D7C1D1E8F10", want: want},
		{name: "neither", path: filepath.Join(dir, "missing"), err: "EDGEFW_BOOT_ID is not set"},
		{name: "garbage", path: filepath.Join(dir, "missing"), env: "%b", err: "is not a 128-bit ID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := read(tc.path, env(tc.env))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("read = %q, %v; want an error with %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("read = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// The kernel's own answer comes back as the kernel writes it.
func TestReadKernel(t *testing.T) {
	got, err := Read()
	if err != nil {
		t.Skip("no boot ID on this system:", err)
	}
	b, err := os.ReadFile(Path)
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimSpace(string(b)); got != want {
		t.Fatalf("Read = %q, want the kernel's %q", got, want)
	}
}
