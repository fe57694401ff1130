//go:build race

package kube

// raceEnabled: the race detector allows at most 8128 live goroutines, and
// a simulated agent runs about 15.
const raceEnabled = true
