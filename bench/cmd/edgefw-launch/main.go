// Command edgefw-launch starts one command and reports its wall time and
// rusage to descriptor 3 (see bench.Launch). It is the launcher of `make
// bench`: a program this small keeps the floor under the peak RSS it
// reports low (the bench itself can serve, with a higher floor).
package main

import (
	"os"

	"github.com/edgefw/edgefw/bench"
)

func main() {
	os.Exit(bench.Launch(os.Args[1:]))
}
