package cli

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// target is one member (or one --endpoints entry) that a per-member verb
// talks to.
type target struct {
	Endpoint string
	Name     string
	ID       uint64
}

func (c *ctl) endpointCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "endpoint",
		Short: "Check the health and status of every member",
	}
	return group(cmd, c.endpointHealthCommand(), c.endpointStatusCommand())
}

// targets lists the members to ask: with cluster, every member of the
// cluster (found with MemberList through --endpoints), else each of
// --endpoints.
func (c *ctl) targets(ctx context.Context, cluster bool) ([]target, error) {
	if !cluster {
		out := make([]target, len(c.g.endpoints))
		for i, ep := range c.g.endpoints {
			out[i] = target{Endpoint: ep}
		}
		return out, nil
	}
	cli, err := c.client(ctx)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	lctx, cancel := context.WithTimeout(ctx, c.g.commandTimeout)
	defer cancel()
	resp, err := cli.MemberList(lctx)
	if err != nil {
		return nil, fmt.Errorf("cannot list the members: %w", err)
	}
	var out []target
	for _, m := range resp.Members {
		t := target{Name: m.Name, ID: m.ID}
		if len(m.ClientURLs) > 0 {
			t.Endpoint = m.ClientURLs[0]
		}
		out = append(out, t)
	}
	return out, nil
}

// eachTarget runs f for every target at once and returns the results in
// the targets' order.
func eachTarget[R any](ts []target, f func(target) R) []R {
	out := make([]R, len(ts))
	var wg sync.WaitGroup
	for i, t := range ts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = f(t)
		}()
	}
	wg.Wait()
	return out
}

// epHealth is etcdctl's JSON shape of one endpoint's health.
type epHealth struct {
	Ep     string `json:"endpoint"`
	Health bool   `json:"health"`
	Took   string `json:"took"`
	Error  string `json:"error,omitempty"`
}

func (c *ctl) endpointHealthCommand() *cobra.Command {
	cluster := true
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Check that every member commits a read and has no alarm",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ts, err := c.targets(cmd.Context(), cluster)
			if err != nil {
				return err
			}
			hs := eachTarget(ts, func(t target) epHealth { return c.health(cmd.Context(), t) })
			bad := 0
			for _, h := range hs {
				if !h.Health {
					bad++
				}
			}
			if err := c.printHealth(hs); err != nil {
				return err
			}
			if bad > 0 {
				return fmt.Errorf("unhealthy cluster: %d of %d members unhealthy", bad, len(hs))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&cluster, "cluster", true, "check every member of the cluster (false: only --endpoints)")
	return cmd
}

func (c *ctl) health(ctx context.Context, t target) epHealth {
	h := epHealth{Ep: t.Endpoint}
	if t.Endpoint == "" {
		h.Ep = fmt.Sprintf("(member %x)", t.ID)
		h.Error = "member has no client URL (not started yet?)"
		return h
	}
	start := time.Now()
	cli, err := c.clientFor(ctx, []string{t.Endpoint})
	if err != nil {
		h.Error = err.Error()
		return h
	}
	defer cli.Close()
	rctx, cancel := context.WithTimeout(ctx, c.g.commandTimeout)
	defer cancel()
	// A linearizable read needs a leader and a quorum, as a proposal does;
	// being denied permission still proves that.
	_, err = cli.Get(rctx, "health")
	h.Took = time.Since(start).String()
	if err != nil && !errors.Is(err, rpctypes.ErrPermissionDenied) {
		h.Error = errorLine(err, c.g.commandTimeout)
		return h
	}
	alarms, err := cli.AlarmList(rctx)
	if err != nil {
		h.Error = "cannot list alarms: " + errorLine(err, c.g.commandTimeout)
		return h
	}
	if len(alarms.Alarms) > 0 {
		var names []string
		for _, a := range alarms.Alarms {
			names = append(names, a.Alarm.String())
		}
		h.Error = "active alarm(s): " + strings.Join(names, " ")
		return h
	}
	h.Health = true
	return h
}

func (c *ctl) printHealth(hs []epHealth) error {
	switch c.g.output {
	case "json":
		return printJSON(c.out, hs)
	case "table":
		t := table{header: []string{"ENDPOINT", "HEALTH", "TOOK", "ERROR"}}
		for _, h := range hs {
			t.add(h.Ep, strconv.FormatBool(h.Health), h.Took, h.Error)
		}
		return t.render(c.out)
	}
	var b strings.Builder
	for _, h := range hs {
		if h.Health {
			fmt.Fprintf(&b, "%s is healthy: successfully committed proposal: took = %s\n", h.Ep, h.Took)
		} else {
			fmt.Fprintf(&b, "%s is unhealthy: failed to commit proposal: %s\n", h.Ep, h.Error)
		}
	}
	_, err := fmt.Fprint(c.out, b.String())
	return err
}

// epStatus is etcdctl's JSON shape of one endpoint's status, with the
// member's name, the round trip of the Status call and any error added.
type epStatus struct {
	Ep      string                   `json:"Endpoint"`
	Resp    *clientv3.StatusResponse `json:"Status,omitempty"`
	Name    string                   `json:"Name,omitempty"`
	Latency string                   `json:"Latency,omitempty"`
	Error   string                   `json:"Error,omitempty"`

	latency time.Duration
}

func (c *ctl) endpointStatusCommand() *cobra.Command {
	cluster := true
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show every member's leader, term, raft index, database size and latency",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ts, err := c.targets(cmd.Context(), cluster)
			if err != nil {
				return err
			}
			ss := eachTarget(ts, func(t target) epStatus { return c.status(cmd.Context(), t) })
			bad := 0
			for _, s := range ss {
				if s.Resp == nil {
					bad++
				}
			}
			if err := c.printStatus(ss); err != nil {
				return err
			}
			if bad > 0 {
				return fmt.Errorf("%d of %d members did not report their status", bad, len(ss))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&cluster, "cluster", true, "ask every member of the cluster (false: only --endpoints)")
	return cmd
}

func (c *ctl) status(ctx context.Context, t target) epStatus {
	s := epStatus{Ep: t.Endpoint, Name: t.Name}
	if t.Endpoint == "" {
		s.Ep = fmt.Sprintf("(member %x)", t.ID)
		s.Error = "member has no client URL (not started yet?)"
		return s
	}
	cli, err := c.clientFor(ctx, []string{t.Endpoint})
	if err != nil {
		s.Error = err.Error()
		return s
	}
	defer cli.Close()
	rctx, cancel := context.WithTimeout(ctx, c.g.commandTimeout)
	defer cancel()
	start := time.Now()
	resp, err := cli.Status(rctx, t.Endpoint)
	s.latency = time.Since(start)
	if err != nil {
		s.Error = errorLine(err, c.g.commandTimeout)
		return s
	}
	s.Resp = resp
	s.Latency = s.latency.String()
	return s
}

func (c *ctl) printStatus(ss []epStatus) error {
	if c.g.output == "json" {
		return printJSON(c.out, ss)
	}
	t := table{header: []string{"ENDPOINT", "ID", "NAME", "VERSION", "DB SIZE", "IN USE", "IS LEADER",
		"IS LEARNER", "RAFT TERM", "RAFT INDEX", "APPLIED INDEX", "LATENCY", "ERRORS"}}
	for _, s := range ss {
		r := s.Resp
		if r == nil {
			t.add(s.Ep, "", s.Name, "", "", "", "", "", "", "", "", "", s.Error)
			continue
		}
		id := uint64(0)
		if r.Header != nil {
			id = r.Header.MemberId
		}
		errs := strings.Join(r.Errors, "; ")
		t.add(s.Ep, fmt.Sprintf("%x", id), s.Name, r.Version, humanBytes(r.DbSize), humanBytes(r.DbSizeInUse),
			strconv.FormatBool(r.Leader != 0 && r.Leader == id), strconv.FormatBool(r.IsLearner),
			strconv.FormatUint(r.RaftTerm, 10), strconv.FormatUint(r.RaftIndex, 10),
			strconv.FormatUint(r.RaftAppliedIndex, 10), roundLatency(s.latency), errs)
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

// roundLatency keeps three significant digits: a table has no use for
// nanoseconds.
func roundLatency(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	default:
		return d.Round(time.Microsecond).String()
	}
}
