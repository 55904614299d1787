// Command ensemblectl is the command-line client of Ensemble: the etcd v3
// verbs and the ZooKeeper namespace verbs, over the cluster's public ports.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"ensemble/internal/cli"
)

func main() {
	// A signal ends long-running verbs (watch, lock, elect, keep-alive)
	// cleanly: they release what they hold and exit.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
