package main

import (
	"errors"

	"github.com/edgefw/edgefw/bench"
)

var errNotYet = errors.New("not implemented yet")

func runDatapath(*env) ([]bench.Row, error) { return nil, errNotYet }
