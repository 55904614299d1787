package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// watchOpts are the flags of `watch`, also accepted by watch lines of an
// interactive watch.
type watchOpts struct {
	prefix, prevKV, progress bool
	rev                      int64
}

func (o *watchOpts) bind(fs *pflag.FlagSet) {
	fs.BoolVar(&o.prefix, "prefix", false, "watch the keys with the given prefix")
	fs.Int64Var(&o.rev, "rev", 0, "start at this revision (0: from now)")
	fs.BoolVar(&o.prevKV, "prev-kv", false, "print each event's previous key-value pair")
	fs.BoolVar(&o.progress, "progress-notify", false, "print the server's periodic progress notifications")
}

func (o *watchOpts) op(args []string) (string, []clientv3.OpOption, error) {
	if len(args) < 1 || len(args) > 2 {
		return "", nil, usagef("watch takes a key and an optional range end")
	}
	if len(args) == 2 && o.prefix {
		return "", nil, usagef("a range end cannot be given with --prefix")
	}
	if o.rev < 0 {
		return "", nil, usagef("--rev cannot be negative")
	}
	key := args[0]
	opts := []clientv3.OpOption{clientv3.WithRev(o.rev)}
	switch {
	case len(args) == 2:
		opts = append(opts, clientv3.WithRange(args[1]))
	case o.prefix && key == "":
		key = "\x00"
		opts = append(opts, clientv3.WithFromKey())
	case o.prefix:
		opts = append(opts, clientv3.WithPrefix())
	}
	if o.prevKV {
		opts = append(opts, clientv3.WithPrevKV())
	}
	if o.progress {
		opts = append(opts, clientv3.WithProgressNotify())
	}
	return key, opts, nil
}

func (c *ctl) watchCommand() *cobra.Command {
	var o watchOpts
	var interactive bool
	cmd := &cobra.Command{
		Use:   "watch [flags] KEY [RANGE_END] | watch -i",
		Short: "Print the changes to a key or a range of keys until interrupted",
		Long: `Print the changes to a key or a range of keys until interrupted.

With -i, watches are read from stdin, one per line ("watch [flags] KEY
[RANGE_END]"); a line "progress" asks the server for a progress notification
on every watch.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if interactive {
				if len(args) != 0 {
					return usagef("watch -i takes its watches from stdin, not from arguments")
				}
				return c.watchInteractive(cmd)
			}
			key, opts, err := o.op(args)
			if err != nil {
				return err
			}
			cli, err := c.client(cmd.Context())
			if err != nil {
				return err
			}
			defer cli.Close()
			ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(cmd.Context()))
			defer cancel()
			return c.printWatch(cmd.Context(), cli.Watch(ctx, key, opts...))
		},
	}
	o.bind(cmd.Flags())
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "read watch and progress requests from stdin")
	return cmd
}

// printWatch prints the responses of wch until it ends; an end because
// ctx was cancelled (the user stopped the command) is no error.
func (c *ctl) printWatch(ctx context.Context, wch clientv3.WatchChan) error {
	for resp := range wch {
		if err := c.printWatchResponse(resp); err != nil {
			return err
		}
		if resp.Canceled {
			return fmt.Errorf("watch canceled by the server: %w", resp.Err())
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return errors.New("watch ended: the connection to the cluster was lost")
}

func (c *ctl) printWatchResponse(resp clientv3.WatchResponse) error {
	if c.g.output == "json" {
		return printJSON(c.out, resp)
	}
	var buf bytes.Buffer
	if resp.IsProgressNotify() {
		fmt.Fprintf(&buf, "progress notify: %d\n", resp.Header.Revision)
	}
	for _, ev := range resp.Events {
		buf.WriteString(ev.Type.String())
		buf.WriteByte('\n')
		if ev.PrevKv != nil {
			printKV(&buf, ev.PrevKv, false)
		}
		printKV(&buf, ev.Kv, false)
	}
	if buf.Len() == 0 {
		return nil
	}
	_, err := c.out.Write(buf.Bytes())
	return err
}

// watchInteractive reads watch and progress requests from stdin. When stdin
// ends, the watches already started go on until the command is stopped.
func (c *ctl) watchInteractive(cmd *cobra.Command) error {
	ctx := cmd.Context()
	cli, err := c.client(ctx)
	if err != nil {
		return err
	}
	defer cli.Close()
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	// The first watch to fail ends the command.
	failed := make(chan error, 1)
	watches := 0
	sc := bufio.NewScanner(c.env.Stdin)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	lines := make(chan string)
	go func() {
		defer close(lines)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-wctx.Done():
				return
			}
		}
	}()
	for {
		var line string
		var ok bool
		select {
		case <-ctx.Done():
			return nil
		case err := <-failed:
			return err
		case line, ok = <-lines:
		}
		if !ok {
			break
		}
		words, err := splitWords(line)
		if err != nil {
			fmt.Fprintf(c.env.Stderr, "Invalid line %q: %v\n", line, err)
			continue
		}
		if len(words) == 0 {
			continue
		}
		switch words[0] {
		case "watch":
			var o watchOpts
			fs := quietFlagSet("watch")
			o.bind(fs)
			if err := fs.Parse(words[1:]); err != nil {
				fmt.Fprintf(c.env.Stderr, "Invalid line %q: %v\n", line, err)
				continue
			}
			key, opts, err := o.op(fs.Args())
			if err != nil {
				fmt.Fprintf(c.env.Stderr, "Invalid line %q: %v\n", line, err)
				continue
			}
			watches++
			wch := cli.Watch(wctx, key, opts...)
			go func() {
				if err := c.printWatch(wctx, wch); err != nil {
					select {
					case failed <- err:
					default:
					}
				}
			}()
		case "progress":
			if err := cli.RequestProgress(wctx); err != nil {
				return fmt.Errorf("progress request: %w", err)
			}
		default:
			fmt.Fprintf(c.env.Stderr, "Invalid line %q: want \"watch [flags] KEY [RANGE_END]\" or \"progress\"\n", strings.TrimSpace(line))
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("cannot read stdin: %w", err)
	}
	if watches == 0 {
		return nil
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-failed:
		return err
	}
}
