// Command ensemble runs one member of an Ensemble cluster. With no flags it is
// a single-member cluster on 127.0.0.1 (clients on 2379, peers on 2380) with
// its data in ./default.ensemble.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"ensemble/internal/config"
	"ensemble/internal/embed"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if len(args) > 0 && args[0] == "snapshot" {
		return runSnapshot(args[1:], os.Stdout, os.Stderr)
	}
	cfg, err := config.Parse(args, os.Stdout)
	if errors.Is(err, config.ErrHelp) || errors.Is(err, config.ErrVersion) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ensemble:", err)
		return 2
	}
	lg := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	m, err := embed.Start(cfg, lg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ensemble:", err)
		return 1
	}
	select {
	case <-ctx.Done():
		lg.Info("stopping on signal")
		m.Close()
		return 0
	case <-m.Server.Failed():
		err := m.Server.Err()
		m.Close()
		fmt.Fprintln(os.Stderr, "ensemble: member failed:", err)
		return 1
	}
}
