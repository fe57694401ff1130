package bench

import (
	"os"
	"path/filepath"
	"testing"
)

func TestProcStat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stat")
	line := "1234 (kworker/0:1 (x) y) S 2 0 0 0 -1 69238880 0 0 0 0 17 25 0 0 20 0 1 0 100 0 0\n"
	if err := os.WriteFile(path, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	ppid, ticks, ok := procStat(path)
	if !ok || ppid != 2 || ticks != 42 {
		t.Errorf("procStat = %d, %d, %v; want 2, 42, true", ppid, ticks, ok)
	}
	if _, ok := ProcCPU(os.Getpid()); !ok {
		t.Error("ProcCPU of this process failed")
	}
	if rss, ok := ProcRSS(os.Getpid()); !ok || rss <= 0 {
		t.Errorf("ProcRSS of this process = %d, %v", rss, ok)
	}
}
