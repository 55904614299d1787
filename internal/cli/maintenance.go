package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"ensemble/internal/config"
)

func (c *ctl) snapshotCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Save a member's database to a file",
	}
	return group(cmd, &cobra.Command{
		Use:   "save FILE",
		Short: "Save a snapshot of one member's database (restore it with `ensemble snapshot restore`)",
		Long: `Save a snapshot of the database of the one member given by --endpoints to FILE.

The file ends with the SHA-256 of the database, which restore checks; the
server's checksum is verified before FILE is written in place, and the SHA-256
of the whole file (as sha256sum computes it) is printed. Without an explicit
--command-timeout the transfer may take as long as it needs. On a terminal a
progress bar is drawn on stderr.`,
		Args: exactArgs(1, "the file to save to"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(c.g.endpoints) != 1 {
				return usagef("snapshot save needs exactly one endpoint, not %d", len(c.g.endpoints))
			}
			ctx := cmd.Context()
			if cmd.Flags().Changed("command-timeout") {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, c.g.commandTimeout)
				defer cancel()
			}
			cli, err := c.client(cmd.Context())
			if err != nil {
				return err
			}
			defer cli.Close()
			res, err := saveSnapshot(ctx, pb.NewMaintenanceClient(cli.ActiveConnection()), args[0], c.progressOut())
			if err != nil {
				return err
			}
			if c.g.output == "json" {
				return printJSON(c.out, res)
			}
			_, err = fmt.Fprintf(c.out, "Snapshot saved at %s (%s, revision %d)\nSHA-256: %s\n",
				res.Path, humanBytes(res.Size), res.Revision, res.SHA256)
			return err
		},
	})
}

// progressOut is where progress bars go: stderr when it is a terminal,
// nowhere otherwise, so that logs and pipes stay clean.
func (c *ctl) progressOut() io.Writer {
	f, ok := c.env.Stderr.(*os.File)
	if !ok {
		return nil
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 || f.Name() == os.DevNull {
		return nil
	}
	return f
}

// snapshotResult is what `snapshot save` reports.
type snapshotResult struct {
	Path     string `json:"path"`
	Size     int64  `json:"size"`
	Revision int64  `json:"revision"`
	SHA256   string `json:"sha256"`
}

// saveSnapshot streams a snapshot into path, checks it against the
// checksum the server appends, and makes it durable before it takes the
// name path. Progress, if not nil, receives a progress bar.
func saveSnapshot(ctx context.Context, mc pb.MaintenanceClient, path string, progress io.Writer) (snapshotResult, error) {
	res := snapshotResult{Path: path}
	part := path + ".part"
	f, err := os.OpenFile(part, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return res, fmt.Errorf("cannot create the snapshot file: %w", err)
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			os.Remove(part)
		}
	}()
	stream, err := mc.Snapshot(ctx, &pb.SnapshotRequest{})
	if err != nil {
		return res, fmt.Errorf("cannot start the snapshot: %w", err)
	}
	// Chunks are small (32 KiB); a large buffer keeps the writes few.
	w := bufio.NewWriterSize(f, 1<<20)
	dbHash, fileHash := sha256.New(), sha256.New()
	var total, got int64 = -1, 0
	var trailer []byte
	bar := newProgressBar(progress)
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			bar.abort()
			return res, fmt.Errorf("snapshot transfer failed: %w", err)
		}
		blob := resp.Blob
		if total < 0 {
			total = int64(len(blob)) + int64(resp.RemainingBytes)
			if resp.Header != nil {
				res.Revision = resp.Header.Revision
			}
		}
		// The database comes first, then its SHA-256 in a message of its own.
		n := min(int64(len(blob)), total-got)
		dbHash.Write(blob[:n])
		got += n
		trailer = append(trailer, blob[n:]...)
		fileHash.Write(blob)
		if _, err := w.Write(blob); err != nil {
			bar.abort()
			return res, fmt.Errorf("cannot write the snapshot file: %w", err)
		}
		bar.update(got, total)
	}
	bar.finish()
	switch {
	case total < 0 || got != total:
		return res, fmt.Errorf("snapshot ended early: got %d of %d bytes", max(got, 0), max(total, 0))
	case len(trailer) != sha256.Size:
		return res, fmt.Errorf("snapshot has no SHA-256 checksum (%d trailing bytes)", len(trailer))
	case !bytes.Equal(trailer, dbHash.Sum(nil)):
		return res, errors.New("snapshot integrity check failed: sha256 mismatch")
	}
	if err := w.Flush(); err != nil {
		return res, fmt.Errorf("cannot write the snapshot file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return res, fmt.Errorf("cannot sync the snapshot file: %w", err)
	}
	if err := f.Close(); err != nil {
		return res, fmt.Errorf("cannot close the snapshot file: %w", err)
	}
	done = true
	if err := os.Rename(part, path); err != nil {
		os.Remove(part)
		return res, fmt.Errorf("cannot name the snapshot file: %w", err)
	}
	// The rename is durable only once the directory is.
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		serr := d.Sync()
		d.Close()
		if serr != nil {
			return res, fmt.Errorf("cannot sync the snapshot's directory: %w", serr)
		}
	}
	res.Size = total + sha256.Size
	res.SHA256 = hex.EncodeToString(fileHash.Sum(nil))
	return res, nil
}

// progressBar draws "[#####.....]  45%  12 MB / 27 MB" on one terminal line.
type progressBar struct {
	w       io.Writer
	percent int
	drawn   bool
}

func newProgressBar(w io.Writer) *progressBar { return &progressBar{w: w, percent: -1} }

func (p *progressBar) update(done, total int64) {
	if p.w == nil || total <= 0 {
		return
	}
	pct := int(done * 100 / total)
	if pct == p.percent {
		return
	}
	p.percent = pct
	const width = 30
	fill := pct * width / 100
	fmt.Fprintf(p.w, "\r[%s%s] %3d%%  %s / %s", strings.Repeat("#", fill), strings.Repeat(".", width-fill),
		pct, humanBytes(done), humanBytes(total))
	p.drawn = true
}

func (p *progressBar) finish() {
	if p.w != nil && p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}

func (p *progressBar) abort() { p.finish() }

func (c *ctl) compactionCommand() *cobra.Command {
	var physical bool
	cmd := &cobra.Command{
		Use:   "compaction [--physical] REVISION",
		Short: "Discard the history before REVISION",
		Args:  exactArgs(1, "a revision"),
		RunE: func(cmd *cobra.Command, args []string) error {
			rev, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || rev <= 0 {
				return usagef("bad revision %q: want a positive number", args[0])
			}
			var opts []clientv3.CompactOption
			if physical {
				opts = append(opts, clientv3.WithCompactPhysical())
			}
			return c.withClient(cmd, func(ctx context.Context, cli *clientv3.Client) error {
				resp, err := cli.Compact(ctx, rev, opts...)
				if err != nil {
					return err
				}
				if c.g.output == "json" {
					return printJSON(c.out, (*pb.CompactionResponse)(resp))
				}
				_, err = fmt.Fprintf(c.out, "compacted revision %d\n", rev)
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&physical, "physical", false, "wait until the history is removed from disk")
	return cmd
}

// defragResult is one member's outcome of `defrag`.
type defragResult struct {
	Endpoint string `json:"endpoint"`
	Took     string `json:"took,omitempty"`
	Error    string `json:"error,omitempty"`
}

func (c *ctl) defragCommand() *cobra.Command {
	var cluster bool
	cmd := &cobra.Command{
		Use:   "defrag [--cluster]",
		Short: "Rebuild the database of each of --endpoints (or every member) compactly",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ts, err := c.targets(cmd.Context(), cluster)
			if err != nil {
				return err
			}
			// One member at a time: a member stalls writes while it
			// defragments, and the cluster must keep a quorum.
			var rs []defragResult
			bad := 0
			for _, t := range ts {
				r := c.defrag(cmd.Context(), t)
				if r.Error != "" {
					bad++
				}
				rs = append(rs, r)
			}
			if c.g.output == "json" {
				if err := printJSON(c.out, rs); err != nil {
					return err
				}
			} else {
				var b strings.Builder
				for _, r := range rs {
					if r.Error == "" {
						fmt.Fprintf(&b, "Finished defragmenting etcd member[%s]. took %s\n", r.Endpoint, r.Took)
					} else {
						fmt.Fprintf(&b, "Failed to defragment etcd member[%s]: %s\n", r.Endpoint, r.Error)
					}
				}
				if _, err := fmt.Fprint(c.out, b.String()); err != nil {
					return err
				}
			}
			if bad > 0 {
				return fmt.Errorf("defragmentation failed on %d of %d members", bad, len(rs))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&cluster, "cluster", false, "defragment every member of the cluster")
	return cmd
}

func (c *ctl) defrag(ctx context.Context, t target) defragResult {
	r := defragResult{Endpoint: t.Endpoint}
	if t.Endpoint == "" {
		r.Endpoint = fmt.Sprintf("(member %x)", t.ID)
		r.Error = "member has no client URL (not started yet?)"
		return r
	}
	cli, err := c.clientFor(ctx, []string{t.Endpoint})
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer cli.Close()
	dctx, cancel := context.WithTimeout(ctx, c.g.commandTimeout)
	defer cancel()
	start := time.Now()
	if _, err := cli.Defragment(dctx, t.Endpoint); err != nil {
		r.Error = errorLine(err, c.g.commandTimeout)
		return r
	}
	r.Took = time.Since(start).String()
	return r
}

func (c *ctl) alarmCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "alarm",
		Short: "List or disarm the cluster's alarms",
	}
	return group(cmd, &cobra.Command{
		Use:   "list",
		Short: "List the active alarms",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withClient(cmd, func(ctx context.Context, cli *clientv3.Client) error {
				resp, err := cli.AlarmList(ctx)
				if err != nil {
					return err
				}
				return c.printAlarms(resp)
			})
		},
	}, &cobra.Command{
		Use:   "disarm",
		Short: "Disarm every active alarm",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withClient(cmd, func(ctx context.Context, cli *clientv3.Client) error {
				resp, err := cli.AlarmDisarm(ctx, &clientv3.AlarmMember{})
				if err != nil {
					return err
				}
				return c.printAlarms(resp)
			})
		},
	})
}

func (c *ctl) printAlarms(resp *clientv3.AlarmResponse) error {
	switch c.g.output {
	case "json":
		return printJSON(c.out, (*pb.AlarmResponse)(resp))
	case "table":
		t := table{header: []string{"MEMBER ID", "ALARM"}}
		for _, a := range resp.Alarms {
			t.add(fmt.Sprintf("%x", a.MemberID), a.Alarm.String())
		}
		return t.render(c.out)
	}
	var b strings.Builder
	for _, a := range resp.Alarms {
		fmt.Fprintf(&b, "memberID:%d alarm:%s\n", a.MemberID, a.Alarm)
	}
	_, err := fmt.Fprint(c.out, b.String())
	return err
}

func (c *ctl) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of ensemblectl",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			if c.g.output == "json" {
				return printJSON(c.out, map[string]string{"ensemblectl": config.Version})
			}
			_, err := fmt.Fprintf(c.out, "ensemblectl version %s\n", config.Version)
			return err
		},
	}
}
