package main

import (
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"

	"github.com/edgefw/edgefw/daemon"
)

// olderDaemonAnswers are what an edgefwd from before the policy's files
// were sent answers a request that carries the files: it reads only the
// parsed policy, and finds none.
var olderDaemonAnswers = []string{"apply: no policy in request", "diff: invalid policy: no policy in request"}

// sendPolicy calls send with the policy loaded from file as edgefwd reads
// it: its path and the bytes of its files, which edgefwd parses itself. An
// edgefwd older than that (a package upgraded, the daemon not restarted
// yet) is sent the parsed policy instead, with a warning, as it expects.
func (a *app) sendPolicy(file string, l *loaded, send func(daemon.PolicyRequest) error) error {
	abs, err := filepath.Abs(file)
	if err != nil {
		return err
	}
	err = send(daemon.PolicyRequest{Path: abs, Files: l.files})
	if apiErr, ok := errors.AsType[*daemon.APIError](err); !ok || apiErr.StatusCode != http.StatusUnprocessableEntity || !slices.Contains(olderDaemonAnswers, apiErr.Message) {
		return err
	}
	fmt.Fprintln(a.stderr, "edgefwctl: warning: edgefwd is older than edgefwctl and reads only a parsed policy, so it was sent one, and its errors cannot name lines; restart edgefwd to run the version installed")
	return send(daemon.PolicyRequest{Path: abs, Policy: l.pol})
}
