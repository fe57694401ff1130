// Command edgefwctl is the operator's command line for edgefw: it checks
// and previews policies on its own, and talks to the edgefwd daemon over
// its control socket to apply them and to show counters, tunnels and drops.
package main

import (
	"context"
	"os"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	// Interrupts keep their default effect: every request is one round
	// trip that the daemon completes or abandons on its own, and a prompt
	// must stay interruptible.
	os.Exit(execute(context.Background(), newRootCmd(os.Stdout, os.Stderr), os.Stderr))
}
