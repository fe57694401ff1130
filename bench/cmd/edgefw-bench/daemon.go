package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/edgefw/edgefw/bench"
	"github.com/edgefw/edgefw/daemon"
)

// daemonReadyTimeout bounds the wait for a daemon's first apply (1M
// elements or 10k peers take a while).
const daemonReadyTimeout = 3 * time.Minute

// edgefwdProc is an edgefwd running in a namespace of the lab.
type edgefwdProc struct {
	ns      *bench.NS
	dir     string
	policy  string
	socket  string
	cmd     *exec.Cmd
	log     *syncBuffer
	started time.Time
	exited  chan struct{}
}

// startDaemon writes policy into a new directory (set files the policy
// names go there too, by the caller) and starts edgefwd in ns with a
// control socket, a state directory and the metrics address given ("" to
// disable), then waits until its first apply succeeded.
func (e *env) startDaemon(ns *bench.NS, dir string, policy []byte, metrics string) (*edgefwdProc, error) {
	p := &edgefwdProc{ns: ns, dir: dir, policy: filepath.Join(dir, "policy.yaml"), socket: filepath.Join(dir, "ctl.sock"), log: &syncBuffer{}}
	if err := os.WriteFile(p.policy, policy, 0o644); err != nil {
		return nil, err
	}
	p.cmd = exec.Command(e.edgefwd, "--policy", p.policy, "--socket", p.socket, "--state-dir", filepath.Join(dir, "state"),
		"--metrics-address", metrics)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	p.cmd.Env = daemonEnv()
	p.started = time.Now()
	if err := ns.Start(p.cmd); err != nil {
		return nil, err
	}
	p.exited = make(chan struct{})
	exited := p.exited
	go func() {
		_ = p.cmd.Wait()
		close(exited)
	}()
	e.lab.Defer(p.stop)
	client := daemon.NewClient(p.socket)
	deadline := time.Now().Add(daemonReadyTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return nil, fmt.Errorf("edgefwd exited: %s", tailString(p.log.String(), 1500))
		case <-time.After(100 * time.Millisecond):
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := client.Status(ctx)
		cancel()
		if err != nil || st.LastApply == nil {
			continue
		}
		if !st.LastApply.OK {
			return nil, fmt.Errorf("edgefwd's first apply failed: %s", st.LastApply.Error)
		}
		return p, nil
	}
	return nil, fmt.Errorf("edgefwd not ready after %v: %s", daemonReadyTimeout, tailString(p.log.String(), 1500))
}

// pid is the daemon's process ID.
func (p *edgefwdProc) pid() int { return p.cmd.Process.Pid }

// stop ends the daemon: SIGTERM, then SIGKILL after 10 s.
func (p *edgefwdProc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// reload runs `edgefwctl reload -o json`, timed as a whole process, and
// returns the daemon's apply as it reports it.
func (e *env) reload(p *edgefwdProc) (bench.Usage, *daemon.ApplyResponse, error) {
	u, out, err := p.ns.Measure(nil, e.edgefwctl, "--socket", p.socket, "reload", "-o", "json")
	if err != nil {
		return u, nil, err
	}
	var resp daemon.ApplyResponse
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		return u, nil, fmt.Errorf("edgefwctl reload -o json: %w: %s", err, tailString(out, 500))
	}
	return u, &resp, nil
}

// daemonEnv is the bench's environment without what systemd may have
// given it: the daemons must not talk to its notify socket.
func daemonEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := bytes.Cut([]byte(kv), []byte("="))
		switch string(k) {
		case "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES":
			continue
		}
		env = append(env, kv)
	}
	return env
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func tailString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// status asks the daemon for its status.
func (p *edgefwdProc) status() (*daemon.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return daemon.NewClient(p.socket).Status(ctx)
}

// waitQuiet waits until the daemon has made no new apply for 600 ms
// (the policy watch reloads too, 300 ms after a file changes), at most
// a minute.
func (p *edgefwdProc) waitQuiet() {
	time.Sleep(700 * time.Millisecond)
	deadline := time.Now().Add(time.Minute)
	var last time.Time
	same := 0
	for time.Now().Before(deadline) {
		st, err := p.status()
		if err == nil && st.LastApply != nil {
			if st.LastApply.Time.Equal(last) {
				same++
				if same >= 2 {
					return
				}
			} else {
				last, same = st.LastApply.Time, 0
			}
		}
		time.Sleep(300 * time.Millisecond)
	}
}
