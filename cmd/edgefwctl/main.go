// Command edgefwctl is the operator's command line for edgefw: it checks
// and previews policies on its own, and talks to the edgefwd daemon over
// its control socket to apply them and to show counters, tunnels and drops.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := execute(ctx, newRootCmd(os.Stdout, os.Stderr), os.Stderr)
	stop()
	os.Exit(code)
}
