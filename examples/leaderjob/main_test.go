package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"ensemble/tests/framework"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// tracker records who runs the job and fails on any overlap.
type tracker struct {
	mu      sync.Mutex
	running string
	last    int64
	overlap error
	started chan string
}

func (tr *tracker) job(id string) Job {
	return func(ctx context.Context, token int64) error {
		tr.mu.Lock()
		if tr.running != "" && tr.overlap == nil {
			tr.overlap = fmt.Errorf("%s started while %s runs", id, tr.running)
		}
		if token <= tr.last && tr.overlap == nil {
			tr.overlap = fmt.Errorf("%s runs with token %d after token %d", id, token, tr.last)
		}
		tr.running, tr.last = id, token
		tr.mu.Unlock()
		tr.started <- id
		<-ctx.Done()
		tr.mu.Lock()
		tr.running = ""
		tr.mu.Unlock()
		return nil
	}
}

func TestOnlyTheLeaderRunsTheJob(t *testing.T) {
	c := framework.StartInProcess(t, 3)
	eps := c.Spec.Endpoints()
	tr := &tracker{started: make(chan string, 10)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const ttl = 2
	clients := map[string]*clientv3.Client{}
	runs := make(chan error, 3)
	for _, id := range []string{"a", "b", "c"} {
		cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		clients[id] = cli
		cand, err := NewCandidate(cli, id, ttl, tr.job(id), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		go func() { runs <- cand.Run(ctx) }()
	}
	first := waitStart(t, tr, 10*time.Second)

	// The leader's process dies: its client goes away without resigning.
	clients[first].Close()
	killed := time.Now()
	second := waitStart(t, tr, ttl*time.Second+3*time.Second)
	t.Logf("%s took over from %s after %v", second, first, time.Since(killed))
	if second == first {
		t.Fatalf("%s leads again after it died", first)
	}
	if err := <-runs; err == nil {
		t.Fatal("the dead candidate's Run ended without an error")
	}

	// Stopping ends every remaining candidate cleanly, the leader by
	// resigning.
	cancel()
	for range 2 {
		if err := <-runs; err != nil {
			t.Fatal(err)
		}
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.overlap != nil {
		t.Fatal(tr.overlap)
	}
}

func waitStart(t *testing.T, tr *tracker, d time.Duration) string {
	t.Helper()
	select {
	case id := <-tr.started:
		return id
	case <-time.After(d):
		t.Fatalf("no leader ran the job within %v", d)
	}
	return ""
}
