package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/edgefw/edgefw/audit"
	"github.com/edgefw/edgefw/wg"
)

// SocketGroup is the group whose members may use the control socket,
// unless WithSocketGroup names another.
const SocketGroup = "edgefw"

// ControlServer serves the control API on a Unix socket.
type ControlServer struct {
	d   *Daemon
	log *slog.Logger
	// gid of the socket's group, or -1 when the group does not exist;
	// group is its name, as given.
	gid   int
	group string
	srv   *http.Server
	ln    net.Listener
}

type credKey struct{}

// ListenControl creates the socket (mode 0660, group edgefw when it
// exists, or the group WithSocketGroup names) and returns a server ready
// to Serve.
func ListenControl(d *Daemon, path string, log *slog.Logger, opts ...ControlOption) (*ControlServer, error) {
	o := controlOptions{group: SocketGroup}
	for _, opt := range opts {
		opt(&o)
	}
	gid, err := lookupGroup(o.group)
	if err != nil && o.group != SocketGroup {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("control socket directory: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("remove stale control socket: %w", err)
	}
	// Create the socket with no access for others from the first instant.
	old := unix.Umask(0o117)
	ln, err := net.Listen("unix", path)
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	if gid >= 0 {
		// Under systemd (Group=edgefw) the socket is born in the group;
		// chown is then unneeded and the unit's seccomp filter denies it.
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil || int(st.Gid) != gid {
			if err := os.Chown(path, -1, gid); err != nil {
				log.Warn("cannot give the control socket to group "+o.group, "error", err)
			}
		}
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, err
	}
	s := &ControlServer{d: d, log: log, gid: gid, group: o.group, ln: ln}
	s.srv = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 5 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			cred, err := peerCred(c)
			if err != nil {
				return ctx
			}
			return context.WithValue(ctx, credKey{}, cred)
		},
	}
	return s, nil
}

// Serve serves until Close.
func (s *ControlServer) Serve() error {
	err := s.srv.Serve(s.ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops the server.
func (s *ControlServer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

func peerCred(c net.Conn) (*unix.Ucred, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, errors.New("not a unix connection")
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil {
		return nil, err
	}
	return cred, cerr
}

// callerOf names who sent a request, from the credentials the kernel gave
// for its connection (SO_PEERCRED), which the client cannot forge.
func callerOf(r *http.Request) *Caller {
	cred, _ := r.Context().Value(credKey{}).(*unix.Ucred)
	if cred == nil {
		return nil
	}
	c := &Caller{UID: int(cred.Uid)}
	if u, err := user.LookupId(strconv.Itoa(c.UID)); err == nil {
		c.User = u.Username
	}
	return c
}

// allowed is the second line of defence behind the socket's mode: root,
// the daemon's own user and members of group edgefw may talk to it.
func (s *ControlServer) allowed(cred *unix.Ucred) bool {
	if cred == nil {
		return false
	}
	if cred.Uid == 0 || int(cred.Uid) == os.Getuid() {
		return true
	}
	if s.gid < 0 {
		return false
	}
	if int(cred.Gid) == s.gid {
		return true
	}
	u, err := user.LookupId(strconv.Itoa(int(cred.Uid)))
	if err != nil {
		return false
	}
	gids, err := u.GroupIds()
	return err == nil && slices.Contains(gids, strconv.Itoa(s.gid))
}

func (s *ControlServer) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+PathStatus, func(w http.ResponseWriter, r *http.Request) {
		writeHTTPJSON(w, http.StatusOK, s.d.Status(r.Context()))
	})
	mux.HandleFunc("GET "+PathPlan, func(w http.ResponseWriter, r *http.Request) {
		writeHTTPJSON(w, http.StatusOK, Ruleset{Text: s.d.RulesetText()})
	})
	mux.HandleFunc("POST "+PathDiff, func(w http.ResponseWriter, r *http.Request) {
		var req DiffRequest
		if !decodeRequest(w, r, "diff", MaxRequestSize, &req) {
			return
		}
		diff, err := s.d.Diff(&req)
		switch {
		case errors.Is(err, ErrInvalidPolicy):
			writeError(w, http.StatusUnprocessableEntity, err.Error())
		case err != nil:
			writeError(w, http.StatusInternalServerError, err.Error())
		default:
			writeHTTPJSON(w, http.StatusOK, diff)
		}
	})
	mux.HandleFunc("GET "+PathPeers, func(w http.ResponseWriter, r *http.Request) {
		t, err := s.d.Tunnels(r.Context())
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		if t == nil {
			t = []wgTunnelStatus{}
		}
		writeHTTPJSON(w, http.StatusOK, t)
	})
	mux.HandleFunc("GET "+PathDenied, func(w http.ResponseWriter, r *http.Request) {
		q, err := ParseDropsQuery(r.URL.Query())
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad drops request: "+err.Error())
			return
		}
		writeHTTPJSON(w, http.StatusOK, s.d.Drops(q))
	})
	mux.HandleFunc("GET "+PathDrops, func(w http.ResponseWriter, r *http.Request) {
		writeHTTPJSON(w, http.StatusOK, DropRecords(s.d.Drops(audit.Query{Since: 24 * time.Hour})))
	})
	mux.HandleFunc("GET "+PathJournal, s.serveJournal)
	mux.HandleFunc("GET "+PathJournalVerify, s.serveJournalVerify)
	mux.HandleFunc("GET "+PathReport, s.serveReport)
	mux.HandleFunc("POST "+PathReload, func(w http.ResponseWriter, r *http.Request) {
		// The body is optional: older clients send none.
		var req ReloadRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<10)).Decode(&req); err != nil && !errors.Is(err, io.EOF) {
			writeError(w, http.StatusBadRequest, "bad reload request: "+err.Error())
			return
		}
		trigger := "reload"
		if req.FromFiles {
			trigger = triggerFromFiles
		}
		s.respond(w, s.d.send(r.Context(), event{kind: "reload:" + trigger, caller: callerOf(r)}))
	})
	mux.HandleFunc("POST "+PathApply, func(w http.ResponseWriter, r *http.Request) {
		var req ApplyRequest
		if !decodeRequest(w, r, "apply", MaxRequestSize, &req) {
			return
		}
		s.respond(w, s.d.send(r.Context(), event{kind: "apply", apply: &req, caller: callerOf(r)}))
	})
	mux.HandleFunc("POST "+PathConfirm, func(w http.ResponseWriter, r *http.Request) {
		s.respond(w, s.d.send(r.Context(), event{kind: "confirm", caller: callerOf(r)}))
	})
	mux.HandleFunc("POST "+PathRollback, func(w http.ResponseWriter, r *http.Request) {
		s.respond(w, s.d.send(r.Context(), event{kind: "rollback", caller: callerOf(r)}))
	})
	mux.HandleFunc("POST "+PathRemove, func(w http.ResponseWriter, r *http.Request) {
		var req RemoveRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<10)).Decode(&req); err != nil || req.Confirm != RemoveConfirmation {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("removing the firewall needs confirm=%q", RemoveConfirmation))
			return
		}
		s.respond(w, s.d.send(r.Context(), event{kind: "remove", caller: callerOf(r)}))
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cred, _ := r.Context().Value(credKey{}).(*unix.Ucred)
		if !s.allowed(cred) {
			uid := -1
			if cred != nil {
				uid = int(cred.Uid)
			}
			s.log.Warn("control request refused", "uid", uid, "path", r.URL.Path)
			writeError(w, http.StatusForbidden, "permission denied: only root and members of group "+s.group+" may control edgefwd")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// decodeRequest decodes the JSON body of a what request, of at most limit
// bytes, into v, or answers why it cannot and returns false.
func decodeRequest(w http.ResponseWriter, r *http.Request, what string, limit int64, v any) bool {
	err := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit)).Decode(v)
	if tooLarge, ok := errors.AsType[*http.MaxBytesError](err); ok {
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("%s request larger than the limit of %d MiB: the policy's files travel in it base64-encoded, a third larger than on disk", what, tooLarge.Limit>>20))
		return false
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("bad %s request: %v", what, err))
		return false
	}
	return true
}

func (s *ControlServer) respond(w http.ResponseWriter, resp ApplyResponse) {
	code := http.StatusOK
	if !resp.OK {
		code = http.StatusUnprocessableEntity
	}
	writeHTTPJSON(w, code, resp)
}

func writeHTTPJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeHTTPJSON(w, code, ErrorResponse{Error: msg})
}

type wgTunnelStatus = wg.TunnelStatus
