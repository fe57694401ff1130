package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
)

// runOut runs a command in the bench's own namespace (for tools that do
// not touch the network, like edgefwctl plan) and returns its stdout.
func runOut(name string, args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}
