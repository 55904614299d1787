package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// lockInfo is what `lock` reports once it holds the lock.
type lockInfo struct {
	Name string `json:"name"`
	Key  string `json:"key"`
	// Revision is the fencing token: the revision that created the lock's
	// key. A later holder always has a larger one, so a resource that
	// remembers the largest token it has seen can refuse a stale holder.
	Revision int64 `json:"revision"`
}

func (c *ctl) lockCommand() *cobra.Command {
	var ttl int
	cmd := &cobra.Command{
		Use:   "lock [--ttl SECONDS] NAME [COMMAND [ARG...]]",
		Short: "Hold a distributed lock until interrupted, or while COMMAND runs",
		Long: `Acquire the lock NAME (etcd's concurrency.Mutex, so it excludes etcdctl and
clientv3 holders of the same name) and print its key and fencing revision.

Without COMMAND the lock is held until ensemblectl is interrupted. With
COMMAND, the lock is held while it runs, the key and revision go to stderr,
and COMMAND gets them as ENSEMBLE_LOCK_KEY and ENSEMBLE_LOCK_REV (and as
etcdctl's ETCD_LOCK_KEY and ETCD_LOCK_REV); ensemblectl exits with COMMAND's
exit code. If the lock's session is lost (the cluster is unreachable for
longer than --ttl), COMMAND is sent SIGTERM and ensemblectl fails.

The fencing revision grows with every new holder: pass it to the resource the
lock protects and have the resource refuse anything older than the newest it
has seen.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 {
				return usagef("lock takes a lock name and an optional command")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if ttl <= 0 {
				return usagef("--ttl must be positive, not %d", ttl)
			}
			ctx := cmd.Context()
			cli, err := c.client(ctx)
			if err != nil {
				return err
			}
			defer cli.Close()
			s, err := concurrency.NewSession(cli, concurrency.WithTTL(ttl))
			if err != nil {
				return fmt.Errorf("cannot start a session: %w", err)
			}
			defer s.Close()
			m := concurrency.NewMutex(s, args[0])
			if err := m.Lock(ctx); err != nil {
				if ctx.Err() != nil {
					// Not a success: a script must not take this for the
					// lock (or its command) having been had.
					return fmt.Errorf("interrupted while waiting for lock %q", args[0])
				}
				return fmt.Errorf("cannot acquire lock %q: %w", args[0], err)
			}
			info, err := c.lockInfo(ctx, cli, args[0], m.Key())
			if err != nil {
				unlock(m, c.g.commandTimeout)
				return err
			}
			if len(args) == 1 {
				if err := c.printLock(c.out, info); err != nil {
					unlock(m, c.g.commandTimeout)
					return err
				}
				select {
				case <-ctx.Done():
					return unlock(m, c.g.commandTimeout)
				case <-s.Done():
					return fmt.Errorf("lock %q lost: its session expired", args[0])
				}
			}
			if err := c.printLock(c.env.Stderr, info); err != nil {
				unlock(m, c.g.commandTimeout)
				return err
			}
			runErr := c.runLocked(ctx, s, info, args[1:])
			if uerr := unlock(m, c.g.commandTimeout); uerr != nil && runErr == nil {
				return uerr
			}
			return runErr
		},
	}
	cmd.Flags().IntVar(&ttl, "ttl", 10, "seconds the lock survives ensemblectl losing the cluster")
	// Flags after NAME belong to COMMAND.
	cmd.Flags().SetInterspersed(false)
	return cmd
}

func unlock(m *concurrency.Mutex, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := m.Unlock(ctx); err != nil {
		return fmt.Errorf("cannot release the lock: %w", err)
	}
	return nil
}

// lockInfo reads the holder's key back for its create revision, the
// fencing token.
func (c *ctl) lockInfo(ctx context.Context, cli *clientv3.Client, name, key string) (lockInfo, error) {
	gctx, cancel := context.WithTimeout(ctx, c.g.commandTimeout)
	defer cancel()
	resp, err := cli.Get(gctx, key)
	if err != nil {
		return lockInfo{}, fmt.Errorf("cannot read the lock's key: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return lockInfo{}, fmt.Errorf("lock %q lost as soon as it was acquired", name)
	}
	return lockInfo{Name: name, Key: key, Revision: resp.Kvs[0].CreateRevision}, nil
}

func (c *ctl) printLock(w io.Writer, info lockInfo) error {
	if c.g.output == "json" {
		return printJSON(w, info)
	}
	_, err := fmt.Fprintf(w, "locked %s (key %s, fencing revision %d)\n", info.Name, info.Key, info.Revision)
	return err
}

// runLocked runs argv while the session lives; losing the session stops
// the command, since it no longer holds the lock.
func (c *ctl) runLocked(ctx context.Context, s *concurrency.Session, info lockInfo, argv []string) error {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	lost := make(chan struct{})
	go func() {
		select {
		case <-s.Done():
			close(lost)
			cancel()
		case <-cctx.Done():
		}
	}()
	cmd := exec.CommandContext(cctx, argv[0], argv[1:]...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	cmd.Stdin, cmd.Stdout, cmd.Stderr = c.env.Stdin, c.env.Stdout, c.env.Stderr
	rev := fmt.Sprint(info.Revision)
	cmd.Env = append(os.Environ(),
		"ENSEMBLE_LOCK_KEY="+info.Key, "ENSEMBLE_LOCK_REV="+rev,
		"ETCD_LOCK_KEY="+info.Key, "ETCD_LOCK_REV="+rev)
	err := cmd.Run()
	select {
	case <-lost:
		return fmt.Errorf("lock %q lost while %s ran: its session expired", info.Name, argv[0])
	default:
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		// Killed by a signal, the command has no code of its own (-1).
		return exitCodeError{code: max(ee.ExitCode(), 1)}
	}
	if err != nil {
		return fmt.Errorf("cannot run %s: %w", argv[0], err)
	}
	return nil
}

func (c *ctl) electCommand() *cobra.Command {
	var listen bool
	cmd := &cobra.Command{
		Use:   "elect NAME [PROPOSAL] | elect -l NAME",
		Short: "Campaign in an election until interrupted, or observe it with -l",
		Long: `Campaign to lead the election NAME with PROPOSAL as the leader's value
(etcd's concurrency.Election); once elected, print the leader's key and value
and lead until interrupted, then resign. With -l, print the leader's key and
value each time the leadership changes.`,
		Args: rangeArgs(1, 2, "an election name and a proposal (or -l and a name)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case listen && len(args) != 1:
				return usagef("elect -l takes only the election name")
			case !listen && len(args) != 2:
				return usagef("elect takes an election name and a proposal (or -l to observe)")
			}
			ctx := cmd.Context()
			cli, err := c.client(ctx)
			if err != nil {
				return err
			}
			defer cli.Close()
			s, err := concurrency.NewSession(cli)
			if err != nil {
				return fmt.Errorf("cannot start a session: %w", err)
			}
			defer s.Close()
			e := concurrency.NewElection(s, args[0])
			if listen {
				for resp := range e.Observe(ctx) {
					if err := c.printGet(&resp, false, false); err != nil {
						return err
					}
				}
				if ctx.Err() != nil {
					return nil
				}
				return errors.New("observing the election failed: the connection to the cluster was lost")
			}
			if err := e.Campaign(ctx, args[1]); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("campaign failed: %w", err)
			}
			gctx, cancel := context.WithTimeout(ctx, c.g.commandTimeout)
			resp, err := cli.Get(gctx, e.Key())
			cancel()
			if err != nil {
				return err
			}
			if len(resp.Kvs) == 0 {
				return errors.New("leadership lost as soon as it was won")
			}
			if err := c.printGet(resp, false, false); err != nil {
				return err
			}
			select {
			case <-ctx.Done():
				rctx, cancel := context.WithTimeout(context.Background(), c.g.commandTimeout)
				defer cancel()
				if err := e.Resign(rctx); err != nil {
					return fmt.Errorf("cannot resign: %w", err)
				}
				return nil
			case <-s.Done():
				return errors.New("leadership lost: the session expired")
			}
		},
	}
	cmd.Flags().BoolVarP(&listen, "listen", "l", false, "observe the election instead of campaigning")
	return cmd
}
