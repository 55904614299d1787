package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func (c *ctl) leaseCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lease",
		Short: "Grant, revoke, renew and inspect leases",
	}
	return group(cmd, c.leaseGrantCommand(), c.leaseRevokeCommand(), c.leaseKeepAliveCommand(),
		c.leaseTimeToLiveCommand(), c.leaseListCommand())
}

func (c *ctl) leaseGrantCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "grant TTL",
		Short: "Grant a lease of TTL seconds",
		Args:  exactArgs(1, "a TTL in seconds"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ttl, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || ttl <= 0 {
				return usagef("bad TTL %q: want a positive number of seconds", args[0])
			}
			return c.withClient(cmd, func(ctx context.Context, cli *clientv3.Client) error {
				resp, err := cli.Grant(ctx, ttl)
				if err != nil {
					return fmt.Errorf("cannot grant a lease: %w", err)
				}
				if c.g.output == "json" {
					return printJSON(c.out, resp)
				}
				_, err = fmt.Fprintf(c.out, "lease %016x granted with TTL(%ds)\n", resp.ID, resp.TTL)
				return err
			})
		},
	}
}

func (c *ctl) leaseRevokeCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke LEASE_ID",
		Short: "Revoke a lease and delete the keys attached to it",
		Args:  exactArgs(1, "a lease ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseLeaseID(args[0])
			if err != nil {
				return err
			}
			return c.withClient(cmd, func(ctx context.Context, cli *clientv3.Client) error {
				resp, err := cli.Revoke(ctx, id)
				if err != nil {
					return fmt.Errorf("cannot revoke lease %016x: %w", id, err)
				}
				if c.g.output == "json" {
					return printJSON(c.out, resp)
				}
				_, err = fmt.Fprintf(c.out, "lease %016x revoked\n", id)
				return err
			})
		},
	}
}

func (c *ctl) leaseKeepAliveCommand() *cobra.Command {
	var once bool
	cmd := &cobra.Command{
		Use:   "keep-alive [--once] LEASE_ID",
		Short: "Renew a lease until interrupted (or once)",
		Args:  exactArgs(1, "a lease ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseLeaseID(args[0])
			if err != nil {
				return err
			}
			print := func(resp *clientv3.LeaseKeepAliveResponse) error {
				if c.g.output == "json" {
					return printJSON(c.out, resp)
				}
				_, err := fmt.Fprintf(c.out, "lease %016x keepalived with TTL(%d)\n", resp.ID, resp.TTL)
				return err
			}
			if once {
				return c.withClient(cmd, func(ctx context.Context, cli *clientv3.Client) error {
					resp, err := cli.KeepAliveOnce(ctx, id)
					if err != nil {
						return fmt.Errorf("cannot renew lease %016x: %w", id, err)
					}
					return print(resp)
				})
			}
			cli, err := c.client(cmd.Context())
			if err != nil {
				return err
			}
			defer cli.Close()
			ch, err := cli.KeepAlive(cmd.Context(), id)
			if err != nil {
				return fmt.Errorf("cannot renew lease %016x: %w", id, err)
			}
			for resp := range ch {
				if err := print(resp); err != nil {
					return err
				}
			}
			if cmd.Context().Err() != nil {
				return nil
			}
			return fmt.Errorf("lease %016x expired or revoked", id)
		},
	}
	cmd.Flags().BoolVar(&once, "once", false, "renew once and exit")
	return cmd
}

func (c *ctl) leaseTimeToLiveCommand() *cobra.Command {
	var keys bool
	cmd := &cobra.Command{
		Use:   "timetolive [--keys] LEASE_ID",
		Short: "Show a lease's granted and remaining TTL",
		Args:  exactArgs(1, "a lease ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseLeaseID(args[0])
			if err != nil {
				return err
			}
			var opts []clientv3.LeaseOption
			if keys {
				opts = append(opts, clientv3.WithAttachedKeys())
			}
			return c.withClient(cmd, func(ctx context.Context, cli *clientv3.Client) error {
				resp, err := cli.TimeToLive(ctx, id, opts...)
				if err != nil {
					return err
				}
				if c.g.output == "json" {
					return printJSON(c.out, resp)
				}
				if resp.GrantedTTL == 0 && resp.TTL == -1 {
					_, err = fmt.Fprintf(c.out, "lease %016x already expired\n", resp.ID)
					return err
				}
				line := fmt.Sprintf("lease %016x granted with TTL(%ds), remaining(%ds)", resp.ID, resp.GrantedTTL, resp.TTL)
				if keys {
					ks := make([]string, len(resp.Keys))
					for i, k := range resp.Keys {
						ks[i] = string(k)
					}
					line += fmt.Sprintf(", attached keys([%s])", strings.Join(ks, " "))
				}
				_, err = fmt.Fprintln(c.out, line)
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&keys, "keys", false, "also list the keys attached to the lease")
	return cmd
}

func (c *ctl) leaseListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the active leases",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withClient(cmd, func(ctx context.Context, cli *clientv3.Client) error {
				resp, err := cli.Leases(ctx)
				if err != nil {
					return err
				}
				switch c.g.output {
				case "json":
					return printJSON(c.out, resp)
				case "table":
					t := table{header: []string{"LEASE ID"}}
					for _, l := range resp.Leases {
						t.add(fmt.Sprintf("%016x", l.ID))
					}
					return t.render(c.out)
				}
				var b strings.Builder
				fmt.Fprintf(&b, "found %d leases\n", len(resp.Leases))
				for _, l := range resp.Leases {
					fmt.Fprintf(&b, "%016x\n", l.ID)
				}
				_, err = fmt.Fprint(c.out, b.String())
				return err
			})
		},
	}
}
