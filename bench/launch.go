package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// LaunchArg, as the first argument of the bench's own binary, makes it the
// launcher of one measured command (see Launch).
const LaunchArg = "-launch-measured"

// launchResult is what the launcher reports on its descriptor 3.
type launchResult struct {
	WallNs, UserNs, SysNs int64
	MaxRSS                int64
	Exit                  int
	Error                 string `json:",omitempty"`
}

// Launch runs args[0] with the rest as arguments, stdio inherited, and
// writes its wall time and rusage as JSON to descriptor 3; it returns the
// command's exit code. Peak RSS needs this small intermediate process:
// Go starts a child with vfork, the child shares its parent's memory until
// exec, and the kernel counts the parent's resident high-water mark into
// the child's maxrss. Started from the bench (hundreds of MiB once it
// generated a 1M-CIDR list), every command would report at least the
// bench's size; started from this launcher, at least a few MiB.
func Launch(args []string) int {
	// The command must not hold the report open (a process it leaves
	// behind would keep the bench waiting).
	syscall.CloseOnExec(3)
	report := os.NewFile(3, "launch-result")
	res := launchResult{Exit: 127}
	defer func() {
		if report != nil {
			_ = json.NewEncoder(report).Encode(res)
		}
	}()
	if len(args) == 0 {
		res.Error = "nothing to launch"
		return res.Exit
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		res.Error = err.Error()
		return res.Exit
	}
	err := cmd.Wait()
	u := usageOf(cmd.ProcessState, time.Since(start))
	res = launchResult{WallNs: int64(u.Wall), UserNs: int64(u.User), SysNs: int64(u.Sys), MaxRSS: u.MaxRSS, Exit: cmd.ProcessState.ExitCode()}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		res.Error = err.Error()
	}
	return res.Exit
}

// launched turns the launcher's report into a Usage.
func launched(report []byte) (Usage, int, error) {
	var res launchResult
	if err := json.Unmarshal(report, &res); err != nil {
		return Usage{}, -1, fmt.Errorf("launcher report %q: %w", report, err)
	}
	u := Usage{Wall: time.Duration(res.WallNs), User: time.Duration(res.UserNs), Sys: time.Duration(res.SysNs), MaxRSS: res.MaxRSS}
	if res.Error != "" {
		return u, res.Exit, errors.New(res.Error)
	}
	return u, res.Exit, nil
}
