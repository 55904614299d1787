// Package e2e runs the built `ensemble` binary as real processes, started the
// way the README says, and kills, restarts and corrupts them.
package e2e

import (
	"fmt"
	"os"
	"testing"

	"ensemble/tests/framework"
)

// binary is the ensemble binary built once for this test process.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ensemble-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary, err = framework.BuildEnsemble(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
