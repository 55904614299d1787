package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"ensemble/internal/config"
	"ensemble/internal/restore"
)

const snapshotUsage = `Usage:
  ensemble snapshot restore FILE [--skip-hash-check] --name NAME --data-dir DIR \
    --initial-cluster NAME=URL,... --initial-cluster-token TOKEN \
    --initial-advertise-peer-urls URL,...

Turns a snapshot saved from a running cluster (etcdctl snapshot save, or the
Maintenance Snapshot call) into the data directory of one member of a new
cluster. Run it once per member, each with its own --name, --data-dir and
--initial-advertise-peer-urls and the same --initial-cluster and token; then
start every member with the same flags and --initial-cluster-state new. The
new cluster holds every key of the snapshot, with its revisions.

The snapshot's SHA-256 is verified before anything is written; the data
directory must not exist or must be empty. --skip-hash-check accepts a
database copied from a data directory, which carries no checksum.
`

// runSnapshot runs `ensemble snapshot ...` and returns the exit code: 0 on
// success, 2 for a usage error, 1 when the restore itself failed.
func runSnapshot(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || isHelp(args[0]) || args[0] == "help" {
		fmt.Fprint(stdout, snapshotUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] != "restore" {
		fmt.Fprintf(stderr, "ensemble snapshot: unknown command %q; the one command is restore\n", args[0])
		return 2
	}
	args = args[1:]
	for _, a := range args {
		if isHelp(a) {
			fmt.Fprint(stdout, snapshotUsage)
			return 0
		}
	}
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(stderr, "ensemble snapshot restore: the snapshot FILE must be the first argument")
		return 2
	}
	file := args[0]
	skip := false
	var rest []string
	for _, a := range args[1:] {
		switch a {
		case "--skip-hash-check", "-skip-hash-check", "--skip-hash-check=true", "-skip-hash-check=true":
			skip = true
		case "--skip-hash-check=false", "-skip-hash-check=false":
		default:
			rest = append(rest, a)
		}
	}
	// The member flags mean what they mean to the server, and are checked
	// the same way: the restored member is started with them.
	cfg, err := config.Parse(rest, stdout)
	if errors.Is(err, config.ErrVersion) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "ensemble snapshot restore:", err)
		return 2
	}
	if cfg.InitialClusterState != "new" {
		fmt.Fprintln(stderr, "ensemble snapshot restore: --initial-cluster-state must be new: a restored member starts a new cluster")
		return 2
	}
	lg := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	res, err := restore.Restore(restore.Options{Snapshot: file, DataDir: cfg.DataDir, SkipHashCheck: skip, Logger: lg})
	if err != nil {
		fmt.Fprintln(stderr, "ensemble snapshot restore:", err)
		return 1
	}
	fmt.Fprintf(stdout, "restored %s into %s for member %s: %d keys at revision %d (%d bytes)\n",
		file, cfg.DataDir, cfg.Name, res.Keys, res.Revision, res.DBBytes)
	fmt.Fprintln(stdout, "start it with the same --name, --initial-cluster, --initial-cluster-token and --initial-advertise-peer-urls, and --initial-cluster-state new")
	return 0
}

func isHelp(a string) bool { return a == "-h" || a == "--help" || a == "-help" }
