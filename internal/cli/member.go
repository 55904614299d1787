package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func (c *ctl) memberCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "member",
		Short: "List, add, remove, update and promote cluster members",
	}
	return group(cmd, c.memberListCommand(), c.memberAddCommand(), c.memberRemoveCommand(),
		c.memberUpdateCommand(), c.memberPromoteCommand())
}

func parseMemberID(s string) (uint64, error) {
	id, err := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64)
	if err != nil {
		return 0, usagef("bad member ID %q: want a hexadecimal number", s)
	}
	return id, nil
}

func splitURLs(s string) []string {
	var out []string
	for _, u := range strings.Split(s, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

func (c *ctl) memberListCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the members of the cluster",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.withClient(cmd, func(ctx context.Context, cli *clientv3.Client) error {
				resp, err := cli.MemberList(ctx)
				if err != nil {
					return err
				}
				return c.printMemberList(resp)
			})
		},
	}
}

func (c *ctl) printMemberList(resp *clientv3.MemberListResponse) error {
	if c.g.output == "json" {
		return printJSON(c.out, (*pb.MemberListResponse)(resp))
	}
	t := table{header: []string{"ID", "STATUS", "NAME", "PEER ADDRS", "CLIENT ADDRS", "IS LEARNER"}}
	for _, m := range resp.Members {
		status := "started"
		if m.Name == "" {
			status = "unstarted"
		}
		t.add(fmt.Sprintf("%x", m.ID), status, m.Name, strings.Join(m.PeerURLs, ","),
			strings.Join(m.ClientURLs, ","), strconv.FormatBool(m.IsLearner))
	}
	if c.g.output == "table" {
		return t.render(c.out)
	}
	var b strings.Builder
	for _, r := range t.rows {
		b.WriteString(strings.Join(r, ", "))
		b.WriteByte('\n')
	}
	_, err := fmt.Fprint(c.out, b.String())
	return err
}

func (c *ctl) memberAddCommand() *cobra.Command {
	var peerURLs string
	var learner bool
	cmd := &cobra.Command{
		Use:   "add NAME --peer-urls URLS [--learner]",
		Short: "Add a member (then start it with the printed flags)",
		Args:  exactArgs(1, "the new member's name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			urls := splitURLs(peerURLs)
			if len(urls) == 0 {
				return usagef("member add needs --peer-urls")
			}
			return c.withClient(cmd, func(ctx context.Context, cli *clientv3.Client) error {
				var resp *clientv3.MemberAddResponse
				var err error
				if learner {
					resp, err = cli.MemberAddAsLearner(ctx, urls)
				} else {
					resp, err = cli.MemberAdd(ctx, urls)
				}
				if err != nil {
					return err
				}
				if c.g.output == "json" {
					return printJSON(c.out, (*pb.MemberAddResponse)(resp))
				}
				as := " "
				if resp.Member.IsLearner {
					as = " as learner "
				}
				var b strings.Builder
				fmt.Fprintf(&b, "Member %16x added%sto cluster %16x\n", resp.Member.ID, as, resp.Header.ClusterId)
				// The new member joins with the cluster as it now is: every
				// started member under its name, itself under the new one.
				var initial []string
				for _, m := range resp.Members {
					n := m.Name
					if m.ID == resp.Member.ID {
						n = name
					}
					if n == "" {
						continue
					}
					for _, u := range m.PeerURLs {
						initial = append(initial, n+"="+u)
					}
				}
				fmt.Fprintf(&b, "\nStart it with:\n  ensemble --name %s --initial-advertise-peer-urls %s --listen-peer-urls %s \\\n    --initial-cluster %s --initial-cluster-state existing\n",
					name, strings.Join(urls, ","), strings.Join(urls, ","), strings.Join(initial, ","))
				_, err = fmt.Fprint(c.out, b.String())
				return err
			})
		},
	}
	cmd.Flags().StringVar(&peerURLs, "peer-urls", "", "the new member's peer URLs, comma-separated")
	cmd.Flags().BoolVar(&learner, "learner", false, "add the member as a learner (a non-voting member)")
	return cmd
}

func (c *ctl) memberRemoveCommand() *cobra.Command {
	return c.memberByIDCommand("remove", "Remove a member from the cluster", "removed from",
		func(ctx context.Context, cli *clientv3.Client, id uint64) (any, uint64, error) {
			resp, err := cli.MemberRemove(ctx, id)
			if err != nil {
				return nil, 0, err
			}
			return (*pb.MemberRemoveResponse)(resp), resp.Header.ClusterId, nil
		})
}

// memberByIDCommand is a verb that acts on one member named by its ID and
// says "Member ID <done> cluster C", or prints the response as JSON.
func (c *ctl) memberByIDCommand(verb, short, done string, act func(context.Context, *clientv3.Client, uint64) (any, uint64, error)) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " MEMBER_ID",
		Short: short,
		Args:  exactArgs(1, "a member ID (hexadecimal)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseMemberID(args[0])
			if err != nil {
				return err
			}
			return c.withClient(cmd, func(ctx context.Context, cli *clientv3.Client) error {
				resp, cluster, err := act(ctx, cli, id)
				if err != nil {
					return err
				}
				if c.g.output == "json" {
					return printJSON(c.out, resp)
				}
				_, err = fmt.Fprintf(c.out, "Member %16x %s cluster %16x\n", id, done, cluster)
				return err
			})
		},
	}
}

func (c *ctl) memberUpdateCommand() *cobra.Command {
	var peerURLs string
	cmd := &cobra.Command{
		Use:   "update MEMBER_ID --peer-urls URLS",
		Short: "Change a member's peer URLs",
		Args:  exactArgs(1, "a member ID (hexadecimal)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseMemberID(args[0])
			if err != nil {
				return err
			}
			urls := splitURLs(peerURLs)
			if len(urls) == 0 {
				return usagef("member update needs --peer-urls")
			}
			return c.withClient(cmd, func(ctx context.Context, cli *clientv3.Client) error {
				resp, err := cli.MemberUpdate(ctx, id, urls)
				if err != nil {
					return err
				}
				if c.g.output == "json" {
					return printJSON(c.out, (*pb.MemberUpdateResponse)(resp))
				}
				_, err = fmt.Fprintf(c.out, "Member %16x updated in cluster %16x\n", id, resp.Header.ClusterId)
				return err
			})
		},
	}
	cmd.Flags().StringVar(&peerURLs, "peer-urls", "", "the member's new peer URLs, comma-separated")
	return cmd
}

func (c *ctl) memberPromoteCommand() *cobra.Command {
	return c.memberByIDCommand("promote", "Promote a learner to a voting member", "promoted in",
		func(ctx context.Context, cli *clientv3.Client, id uint64) (any, uint64, error) {
			resp, err := cli.MemberPromote(ctx, id)
			if err != nil {
				return nil, 0, err
			}
			return (*pb.MemberPromoteResponse)(resp), resp.Header.ClusterId, nil
		})
}
