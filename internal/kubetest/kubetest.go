// Package kubetest starts a real Kubernetes API server and etcd for a
// test: loopback only, random free ports, state in the test's temporary
// directory, both stopped when the test ends and killed if the test
// process dies. The binaries are the ones scripts/kube-deps.sh builds from
// the Go module proxy into a cache keyed by version; without them a test
// skips, or fails when CI=true (netnstest.Unavailable).
//
// Clients authenticate with certificates from the cluster's own authority:
// Kubeconfig writes one for an Identity (the admin, a node as a kubelet's
// credentials name it, a service account). Authorization is Node,RBAC, as
// in kubeadm's and most distributions' clusters: the Node authorizer lets
// a node read its own Node object, and nothing else of Nodes, without any
// RBAC rule.
package kubetest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgefw/edgefw/internal/netnstest"
)

// Versions of the binaries, as scripts/kube-deps.sh builds and caches them.
const (
	KubeVersion = "v1.34.4"
	EtcdVersion = "v3.6.17"
)

// startTimeout bounds how long a start may take before the test gives up
// (about 5 s on an idle machine; much more on a busy 2-core one).
const startTimeout = 3 * time.Minute

// Binaries returns the paths of kube-apiserver and etcd: from the
// directory EDGEFW_KUBE_BIN if set, else from scripts/kube-deps.sh's cache
// (EDGEFW_CACHE, default /var/cache/edgefw-test, or ~/.cache/edgefw-test
// where the script fell back to it). ok is false if either is missing.
func Binaries() (apiserver, etcd string, ok bool) {
	if dir := os.Getenv("EDGEFW_KUBE_BIN"); dir != "" {
		apiserver, etcd = filepath.Join(dir, "kube-apiserver"), filepath.Join(dir, "etcd")
		return apiserver, etcd, executable(apiserver) && executable(etcd)
	}
	caches := []string{os.Getenv("EDGEFW_CACHE")}
	if caches[0] == "" {
		caches = []string{"/var/cache/edgefw-test"}
		if home, err := os.UserCacheDir(); err == nil {
			caches = append(caches, filepath.Join(home, "edgefw-test"))
		}
	}
	for _, cache := range caches {
		a := filepath.Join(cache, "kube-"+KubeVersion, "kube-apiserver")
		e := filepath.Join(cache, "etcd-"+EtcdVersion, "etcd")
		if executable(a) && executable(e) {
			return a, e, true
		}
	}
	// Missing: the paths of the first cache, where kube-deps.sh puts them.
	return filepath.Join(caches[0], "kube-"+KubeVersion, "kube-apiserver"), filepath.Join(caches[0], "etcd-"+EtcdVersion, "etcd"), false
}

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// Require stops the test (see netnstest.Unavailable) unless the binaries
// are there, and returns their paths.
func Require(t testing.TB) (apiserver, etcd string) {
	t.Helper()
	apiserver, etcd, ok := Binaries()
	if !ok {
		netnstest.Unavailable(t, "needs kube-apiserver %s and etcd %s (%s, %s): build them with scripts/kube-deps.sh (make kube-deps), or point EDGEFW_KUBE_BIN at a directory holding both",
			KubeVersion, EtcdVersion, apiserver, etcd)
	}
	return apiserver, etcd
}

// Cluster is a running API server and its etcd.
type Cluster struct {
	// URL is the API server's address, https://127.0.0.1:PORT.
	URL string
	// Dir holds the cluster's certificates, kubeconfigs and logs.
	Dir string

	bins      [2]string // kube-apiserver, etcd
	port      int
	ca        *authority
	launch    *launcher
	etcd      *process
	apiserver *process
	args      []string // of kube-apiserver
	admin     *http.Client
}

// Start starts etcd and the API server and waits until the API server is
// ready (/readyz). Both are stopped when the test ends.
func Start(t testing.TB) *Cluster {
	t.Helper()
	apiserver, etcd := Require(t)
	c := &Cluster{Dir: t.TempDir(), bins: [2]string{apiserver, etcd}, launch: newLauncher()}
	t.Cleanup(func() {
		if t.Failed() {
			c.logTails(t)
		}
		c.stop()
	})
	if err := c.start(); err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	return c
}

func (c *Cluster) start() error {
	ca, err := newAuthority()
	if err != nil {
		return err
	}
	c.ca = ca
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	clientURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[2])
	c.port = ports[0]
	c.URL = "https://127.0.0.1:" + strconv.Itoa(c.port)

	files, err := c.writeFiles()
	if err != nil {
		return err
	}
	c.etcd, err = c.launch.start(c.bins[1], filepath.Join(c.Dir, "etcd.log"),
		"--name=edgefw-test",
		"--data-dir="+filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls="+clientURL, "--advertise-client-urls="+clientURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=edgefw-test="+peerURL,
		// The data is thrown away with the test: fsync buys nothing.
		"--unsafe-no-fsync",
		"--log-level=warn",
	)
	if err != nil {
		return err
	}
	if err := waitHTTP(http.DefaultClient, clientURL+"/health", c.etcd); err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	c.args = []string{
		"--etcd-servers=" + clientURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(c.port),
		"--cert-dir=" + filepath.Join(c.Dir, "apiserver-certs"),
		"--tls-cert-file=" + files["serving.crt"],
		"--tls-private-key-file=" + files["serving.key"],
		"--client-ca-file=" + files["ca.crt"],
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + files["sa.pub"],
		"--service-account-signing-key-file=" + files["sa.key"],
		"--service-cluster-ip-range=10.96.0.0/16",
		"--allow-privileged=false",
		"--profiling=false",
		"--v=1",
	}
	c.admin, err = c.httpClient(Admin())
	if err != nil {
		return err
	}
	return c.startAPIServer()
}

// writeFiles writes the authority's certificate, the serving certificate
// and the service account keys into Dir and returns their paths by name.
func (c *Cluster) writeFiles() (map[string]string, error) {
	servingCert, servingKey, err := c.ca.issue("kube-apiserver", nil,
		[]net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, []string{"localhost", "kubernetes", "kubernetes.default.svc"})
	if err != nil {
		return nil, err
	}
	saKey, saPub, err := serviceAccountKeys()
	if err != nil {
		return nil, err
	}
	files := map[string]string{}
	for name, data := range map[string][]byte{
		"ca.crt": c.ca.certPEM, "serving.crt": servingCert, "serving.key": servingKey,
		"sa.key": saKey, "sa.pub": saPub,
	} {
		files[name] = filepath.Join(c.Dir, name)
		if err := os.WriteFile(files[name], data, 0o600); err != nil {
			return nil, err
		}
	}
	return files, nil
}

// StopAPIServer stops the API server (etcd keeps running), as an outage
// of the control plane looks to the hosts.
func (c *Cluster) StopAPIServer(t testing.TB) {
	t.Helper()
	if c.apiserver == nil {
		return
	}
	if err := c.apiserver.stop(); err != nil {
		t.Logf("kubetest: kube-apiserver exited: %v", err)
	}
	c.apiserver = nil
}

// StartAPIServer starts the API server again, on the same address and
// with the same state, after StopAPIServer.
func (c *Cluster) StartAPIServer(t testing.TB) {
	t.Helper()
	if c.apiserver != nil {
		t.Fatal("kubetest: the API server is running")
	}
	if err := c.startAPIServer(); err != nil {
		t.Fatalf("kubetest: %v", err)
	}
}

// APIServerPID is the process id of the running API server, for tests that
// measure what it costs (CPU, memory).
func (c *Cluster) APIServerPID() int {
	if c.apiserver == nil {
		return 0
	}
	return c.apiserver.cmd.Process.Pid
}

func (c *Cluster) startAPIServer() error {
	p, err := c.launch.start(c.bins[0], filepath.Join(c.Dir, "kube-apiserver.log"), c.args...)
	if err != nil {
		return err
	}
	c.apiserver = p
	if err := waitHTTP(c.admin, c.URL+"/readyz", p); err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	return nil
}

func (c *Cluster) stop() {
	if c.apiserver != nil {
		_ = c.apiserver.stop()
	}
	if c.etcd != nil {
		_ = c.etcd.stop()
	}
	c.launch.close()
}

// logTails logs the end of each component's log, for a test that failed.
func (c *Cluster) logTails(t testing.TB) {
	for _, name := range []string{"etcd.log", "kube-apiserver.log"} {
		data, err := os.ReadFile(filepath.Join(c.Dir, name))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		t.Logf("kubetest: last lines of %s:\n%s", name, strings.Join(lines[max(0, len(lines)-30):], "\n"))
	}
}

// waitHTTP waits until url answers 200 OK, or p exits, or startTimeout
// passes.
func waitHTTP(client *http.Client, url string, p *process) error {
	deadline := time.Now().Add(startTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("exited before it was ready: %v (log: %s)", p.err, p.log)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			body := new(bytes.Buffer)
			_, _ = body.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				cancel()
				return nil
			}
			err = fmt.Errorf("%s: %s: %s", url, resp.Status, strings.TrimSpace(body.String()))
		}
		cancel()
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %v: %v (log: %s)", startTimeout, last, p.log)
}

// httpClient is a client of the API server authenticated as id.
func (c *Cluster) httpClient(id Identity) (*http.Client, error) {
	certPEM, keyPEM, err := c.ca.issue(id.User, id.Groups, nil, nil)
	if err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(c.ca.cert)
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}},
	}}, nil
}

// freePorts returns n distinct loopback TCP ports that were free a moment
// ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// process is a running component.
type process struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when it exited; err is then set
	err  error
}

// stop asks the process to terminate and kills it if it has not within
// 20 seconds.
func (p *process) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	var exit *exec.ExitError
	if errors.As(p.err, &exit) && exit.Sys().(syscall.WaitStatus).Signaled() {
		return nil
	}
	return p.err
}

// launcher starts processes from one OS thread that lives as long as they
// do. Pdeathsig fires when the thread that started a child exits, not the
// process: started from an arbitrary thread, a child could be killed when
// the Go runtime ends that thread (as it does for a goroutine that exits
// locked to its thread, which namespace tests do) while the test still
// needs it.
type launcher struct {
	reqs chan func()
}

func newLauncher() *launcher {
	l := &launcher{reqs: make(chan func())}
	go func() {
		// Never unlocked: when close ends this goroutine, the runtime ends
		// the thread, and Pdeathsig kills whatever it started that still
		// runs.
		runtime.LockOSThread()
		for f := range l.reqs {
			f()
		}
	}()
	return l
}

// start starts path with args, its output going to the file logPath.
func (l *launcher) start(path, logPath string, args ...string) (*process, error) {
	out, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &process{cmd: cmd, log: logPath, done: make(chan struct{})}
	started := make(chan error)
	l.reqs <- func() { started <- cmd.Start() }
	if err := <-started; err != nil {
		out.Close()
		return nil, fmt.Errorf("start %s: %w", filepath.Base(path), err)
	}
	go func() {
		p.err = cmd.Wait()
		out.Close()
		close(p.done)
	}()
	return p, nil
}

func (l *launcher) close() { close(l.reqs) }
