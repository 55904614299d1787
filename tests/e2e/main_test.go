// Package e2e runs the built `ensemble` binary as real processes, started the
// way the README says, and kills, restarts and corrupts them.
package e2e

import (
	"os"
	"testing"

	"ensemble/tests/framework"
)

// binary is the ensemble binary built once for this test process.
var binary string

func TestMain(m *testing.M) {
	os.Exit(framework.RunWithEnsemble(m, &binary))
}
