// Command leaderjob runs a periodic job that only the elected leader of a
// group of candidates runs; when the leader dies or is cut off, another
// candidate takes over, and the old one stops as soon as it learns it lost.
//
//	go run ./examples/leaderjob --endpoints 127.0.0.1:2379 --id a &
//	go run ./examples/leaderjob --endpoints 127.0.0.1:2379 --id b
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"ensemble/recipes"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// electionName is the election the candidates share.
const electionName = "/elections/leaderjob"

// Job is the leader-only work: it runs until ctx ends (when leadership is
// lost or the program stops), and should carry token on every side effect
// so that a deposed leader's late writes can be refused.
type Job func(ctx context.Context, token int64) error

// Candidate campaigns for leadership and runs its job while it leads.
type Candidate struct {
	ID  string
	s   *concurrency.Session
	job Job
	log io.Writer
}

// NewCandidate returns a candidate on a session of ttl seconds.
func NewCandidate(cli *clientv3.Client, id string, ttl int, job Job, log io.Writer) (*Candidate, error) {
	s, err := concurrency.NewSession(cli, concurrency.WithTTL(ttl))
	if err != nil {
		return nil, err
	}
	return &Candidate{ID: id, s: s, job: job, log: log}, nil
}

// Run campaigns, runs the job while leading, and campaigns again after a
// loss, until ctx ends or the session is gone.
func (c *Candidate) Run(ctx context.Context) error {
	e := recipes.NewElection(c.s, electionName)
	for {
		l, err := e.Campaign(ctx, c.ID)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		fmt.Fprintf(c.log, "%s: leading (term %d)\n", c.ID, l.Token())
		jctx, cancel := context.WithCancel(l.Context())
		stop := context.AfterFunc(ctx, cancel)
		err = c.job(jctx, l.Token())
		stop()
		cancel()
		switch {
		case ctx.Err() != nil:
			rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
			l.Resign(rctx)
			rcancel()
			return nil
		case l.Err() != nil:
			fmt.Fprintf(c.log, "%s: lost leadership: %v\n", c.ID, l.Err())
		case err != nil:
			return err
		}
		select {
		case <-c.s.Done():
			return errors.New("leaderjob: session ended")
		default:
		}
	}
}

// Session is the candidate's session; closing it steps down.
func (c *Candidate) Session() *concurrency.Session { return c.s }

func main() {
	endpoints := flag.String("endpoints", "127.0.0.1:2379", "comma-separated client URLs")
	id := flag.String("id", "", "this candidate's name (default: host name and pid)")
	flag.Parse()
	if *id == "" {
		host, _ := os.Hostname()
		*id = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(*endpoints, ","), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "leaderjob:", err)
		os.Exit(1)
	}
	defer cli.Close()
	c, err := NewCandidate(cli, *id, 5, tick(os.Stdout, *id), os.Stdout)
	if err == nil {
		err = c.Run(ctx)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "leaderjob:", err)
		os.Exit(1)
	}
}

// tick is the demo job: report once a second while leading.
func tick(out io.Writer, id string) Job {
	return func(ctx context.Context, token int64) error {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				fmt.Fprintf(out, "%s: job runs (term %d)\n", id, token)
			}
		}
	}
}
