package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/edgefw/edgefw/audit"
	"github.com/edgefw/edgefw/journal"
	"github.com/edgefw/edgefw/report"
	"github.com/edgefw/edgefw/wg"
)

// Client timeouts. Dialling a local socket is instant unless the daemon is
// wedged; a request may take longer because an apply resolves endpoint names
// and sets up tunnels. Callers bound individual requests with their context.
const (
	dialTimeout    = 5 * time.Second
	requestTimeout = 2 * time.Minute
)

// maxResponseSize bounds a response body. The running ruleset renders every
// set element, and set files may hold up to 64 MiB of CIDRs.
const maxResponseSize = 256 << 20

// Client talks to edgefwd's control API (HTTP+JSON over a Unix socket).
// It is safe for concurrent use.
type Client struct {
	socket string
	http   *http.Client
}

// NewClient returns a client for the daemon listening on socketPath.
// It does not connect until the first request.
func NewClient(socketPath string) *Client {
	dialer := &net.Dialer{Timeout: dialTimeout}
	transport := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			conn, err := dialer.DialContext(ctx, "unix", socketPath)
			if err != nil {
				return nil, &SocketError{Path: socketPath, Err: err}
			}
			return conn, nil
		},
		MaxIdleConns:          2,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: requestTimeout,
	}
	return &Client{
		socket: socketPath,
		http:   &http.Client{Transport: transport, Timeout: requestTimeout},
	}
}

// Socket returns the path of the socket the client talks to.
func (c *Client) Socket() string { return c.socket }

// SocketError is a failure to reach the daemon's socket. Its message tells
// the operator what to do; Unwrap gives the dial error, so callers can test
// errors.Is(err, fs.ErrNotExist) or errors.Is(err, syscall.ECONNREFUSED).
type SocketError struct {
	Path string
	Err  error
}

// Error explains the failure in the operator's terms.
func (e *SocketError) Error() string {
	switch {
	case errors.Is(e.Err, fs.ErrNotExist):
		return fmt.Sprintf("edgefwd is not running (no socket at %s); start it with: systemctl start edgefwd", e.Path)
	case errors.Is(e.Err, fs.ErrPermission):
		return fmt.Sprintf("permission denied on %s: run as root or as a member of group edgefw", e.Path)
	case errors.Is(e.Err, syscall.ECONNREFUSED):
		// The socket file exists but nobody listens: the daemon died
		// without removing it.
		return fmt.Sprintf("edgefwd is not running (stale socket %s)", e.Path)
	default:
		return fmt.Sprintf("connect to edgefwd at %s: %v", e.Path, e.Err)
	}
}

// Unwrap returns the dial error.
func (e *SocketError) Unwrap() error { return e.Err }

// NotRunning reports whether the failure means no daemon is listening.
func (e *SocketError) NotRunning() bool {
	return errors.Is(e.Err, fs.ErrNotExist) || errors.Is(e.Err, syscall.ECONNREFUSED)
}

// APIError is a non-2xx answer of the daemon.
type APIError struct {
	// StatusCode is the HTTP status.
	StatusCode int
	// Message is the daemon's ErrorResponse.Error, or the status text when
	// the body carried none.
	Message string

	body []byte
}

// Error returns the daemon's message.
func (e *APIError) Error() string { return e.Message }

// Status returns the daemon's state.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var st Status
	if err := c.do(ctx, http.MethodGet, PathStatus, nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Reload makes the daemon read and apply its policy files again.
// Like Apply, Confirm, Rollback and Remove, it returns the daemon's
// ApplyResponse together with an *APIError when the daemon reports a
// failure.
func (c *Client) Reload(ctx context.Context) (*ApplyResponse, error) {
	return c.applyCall(ctx, PathReload, nil)
}

// ReloadFromFiles reloads the policy files like Reload, and returns to
// them even when the running policy was given by Apply and the files did
// not change since.
func (c *Client) ReloadFromFiles(ctx context.Context) (*ApplyResponse, error) {
	return c.applyCall(ctx, PathReload, ReloadRequest{FromFiles: true})
}

// Apply sends a policy for the daemon to run: req.Files are the policy's
// files, as policy.ReadBundle reads them.
func (c *Client) Apply(ctx context.Context, req ApplyRequest) (*ApplyResponse, error) {
	return c.applyCall(ctx, PathApply, req)
}

// Confirm keeps a pending apply and disarms its rollback.
func (c *Client) Confirm(ctx context.Context) (*ApplyResponse, error) {
	return c.applyCall(ctx, PathConfirm, nil)
}

// Rollback restores the policy that ran before a pending apply.
func (c *Client) Rollback(ctx context.Context) (*ApplyResponse, error) {
	return c.applyCall(ctx, PathRollback, nil)
}

// Remove deletes table inet edgefw. req.Confirm must be RemoveConfirmation.
func (c *Client) Remove(ctx context.Context, req RemoveRequest) (*ApplyResponse, error) {
	return c.applyCall(ctx, PathRemove, req)
}

// Ruleset returns the running ruleset as nft text.
func (c *Client) Ruleset(ctx context.Context) (*Ruleset, error) {
	var rs Ruleset
	if err := c.do(ctx, http.MethodGet, PathPlan, nil, &rs); err != nil {
		return nil, err
	}
	return &rs, nil
}

// Diff compares a policy with what the kernel holds. It returns an
// *APIError with status 422 when the daemon finds the policy invalid, and
// 404 from a daemon too old to know the request.
func (c *Client) Diff(ctx context.Context, req DiffRequest) (*Diff, error) {
	var d Diff
	if err := c.do(ctx, http.MethodPost, PathDiff, req, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Peers returns the tunnels and their peers with health.
func (c *Client) Peers(ctx context.Context) ([]wg.TunnelStatus, error) {
	var ts []wg.TunnelStatus
	if err := c.do(ctx, http.MethodGet, PathPeers, nil, &ts); err != nil {
		return nil, err
	}
	return ts, nil
}

// Drops returns the denied traffic of the period q selects. A daemon
// older than this client answers in its old form, a list of records,
// which is refused with ErrDaemonOlder.
func (c *Client) Drops(ctx context.Context, q audit.Query) (*DropsView, error) {
	path := PathDenied
	if v := DropsQueryValues(q); len(v) > 0 {
		path += "?" + v.Encode()
	}
	var v DropsView
	if err := c.do(ctx, http.MethodGet, path, nil, &v); err != nil {
		// An edgefwd from before PathDenied answers 404.
		if apiErr, ok := errors.AsType[*APIError](err); ok && apiErr.StatusCode == http.StatusNotFound {
			return nil, fmt.Errorf("drops: %w", ErrDaemonOlder)
		}
		return nil, err
	}
	return &v, nil
}

// Journal returns the audit journal's entries at or after since (all of
// them for the zero time), oldest first.
func (c *Client) Journal(ctx context.Context, since time.Time) ([]journal.Entry, error) {
	path := PathJournal
	if !since.IsZero() {
		path += "?since=" + url.QueryEscape(since.UTC().Format(time.RFC3339Nano))
	}
	var es []journal.Entry
	if err := c.do(ctx, http.MethodGet, path, nil, &es); err != nil {
		return nil, err
	}
	return es, nil
}

// VerifyJournal asks the daemon to check the audit journal's hash chain.
func (c *Client) VerifyJournal(ctx context.Context) (*journal.Verification, error) {
	var v journal.Verification
	if err := c.do(ctx, http.MethodGet, PathJournalVerify, nil, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// Report returns the audit report of the period q selects (Since, or From
// and To; see Daemon.Report). A daemon older than the report answers 404,
// which is refused with ErrDaemonOlder.
func (c *Client) Report(ctx context.Context, q audit.Query) (*report.Report, error) {
	path := PathReport
	if v := DropsQueryValues(q); len(v) > 0 {
		path += "?" + v.Encode()
	}
	var r report.Report
	if err := c.do(ctx, http.MethodGet, path, nil, &r); err != nil {
		if apiErr, ok := errors.AsType[*APIError](err); ok && apiErr.StatusCode == http.StatusNotFound {
			return nil, fmt.Errorf("report: %w", ErrDaemonOlder)
		}
		return nil, err
	}
	return &r, nil
}

// ErrDaemonOlder is a daemon answering in the form of an older version,
// as one that still runs after its package was upgraded.
var ErrDaemonOlder = errors.New("edgefwd answered in the form of an older version: restart it (systemctl restart edgefwd) to finish its upgrade")

// applyCall posts to an endpoint answering an ApplyResponse. The daemon
// sends an ApplyResponse with OK false and a non-2xx status when the
// operation failed: the error is then an *APIError, and the response is
// returned with it so that callers can show what the daemon reported.
func (c *Client) applyCall(ctx context.Context, path string, body any) (*ApplyResponse, error) {
	var resp ApplyResponse
	err := c.do(ctx, http.MethodPost, path, body, &resp)
	if apiErr, ok := errors.AsType[*APIError](err); ok {
		var failed ApplyResponse
		if json.Unmarshal(apiErr.body, &failed) == nil && failed.Error != "" {
			return &failed, err
		}
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	return &resp, nil
}

// do sends one request and decodes a 2xx answer into out, or turns any
// other answer into an *APIError.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var reqBody io.Reader
	if body != nil {
		data, err := encodeRequest(path, body, MaxRequestSize)
		if err != nil {
			return err
		}
		reqBody = bytes.NewReader(data)
	}
	// The host is ignored by the Unix-socket dialer; it names the peer in
	// the daemon's logs.
	req, err := http.NewRequestWithContext(ctx, method, "http://edgefwd"+path, reqBody)
	if err != nil {
		return fmt.Errorf("build %s request: %w", path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		// The *url.Error around a dial error only repeats the URL, which
		// means nothing to an operator.
		if se, ok := errors.AsType[*SocketError](err); ok {
			return se
		}
		return fmt.Errorf("%s %s via %s: %w", method, path, c.socket, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize+1))
	if err != nil {
		return fmt.Errorf("read %s response: %w", path, err)
	}
	if len(data) > maxResponseSize {
		return fmt.Errorf("read %s response: larger than %d MiB", path, maxResponseSize>>20)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return apiError(resp.StatusCode, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode %s response: %w", path, err)
	}
	return nil
}

// encodeRequest encodes the body of a request to path as JSON of at most
// limit bytes. A larger one is refused here, with the daemon's reason:
// sent, the daemon would stop reading it, and the client might see a
// broken connection rather than the daemon's answer.
func encodeRequest(path string, body any, limit int) ([]byte, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode %s request: %w", path, err)
	}
	if len(data) > limit {
		return nil, fmt.Errorf("%s request of %d MiB is larger than the limit of %d MiB that edgefwd accepts: the policy's files travel in it base64-encoded, a third larger than on disk",
			path, (len(data)+1<<20-1)>>20, limit>>20)
	}
	return data, nil
}

func apiError(code int, body []byte) *APIError {
	var er ErrorResponse
	if json.Unmarshal(body, &er) == nil && er.Error != "" {
		return &APIError{StatusCode: code, Message: er.Error, body: body}
	}
	msg := fmt.Sprintf("edgefwd answered %d %s", code, http.StatusText(code))
	if text := strings.TrimSpace(string(body)); text != "" && len(text) < 512 {
		msg += ": " + text
	}
	return &APIError{StatusCode: code, Message: msg, body: body}
}
