package framework

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"ensemble/internal/config"
	"ensemble/internal/embed"
)

// InProcessCluster runs every member inside the test process.
type InProcessCluster struct {
	Spec    ClusterSpec
	t       testing.TB
	mu      sync.Mutex
	members []*embed.Member
}

// StartInProcess starts size members in this process and waits for a leader.
func StartInProcess(t testing.TB, size int, extra ...string) *InProcessCluster {
	t.Helper()
	c := &InProcessCluster{Spec: NewClusterSpec(t, size, t.TempDir(), extra...), t: t}
	c.members = make([]*embed.Member, size)
	var wg sync.WaitGroup
	errs := make([]error, size)
	for i := range size {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs[i] = c.start(i)
		}(i)
	}
	wg.Wait()
	t.Cleanup(c.Close)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("start member %d: %v", i, err)
		}
	}
	c.WaitLeader(t)
	return c
}

func (c *InProcessCluster) start(i int) error {
	cfg, err := config.Parse(c.Spec.Args(i), os.Stderr)
	if err != nil {
		return err
	}
	lg := slog.New(slog.DiscardHandler)
	if os.Getenv("ENSEMBLE_TEST_LOG") != "" {
		lg = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("name", c.Spec.Members[i].Name)
	}
	m, err := embed.Start(cfg, lg)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.members[i] = m
	c.mu.Unlock()
	return nil
}

// Member returns the running member i (nil if stopped).
func (c *InProcessCluster) Member(i int) *embed.Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.members[i]
}

// Stop stops member i gracefully.
func (c *InProcessCluster) Stop(i int) {
	c.mu.Lock()
	m := c.members[i]
	c.members[i] = nil
	c.mu.Unlock()
	if m != nil {
		m.Close()
	}
}

// Restart starts a stopped member i again from its data directory.
func (c *InProcessCluster) Restart(t testing.TB, i int) {
	t.Helper()
	if err := c.start(i); err != nil {
		t.Fatalf("restart member %d: %v", i, err)
	}
}

// WaitLeader waits until every running member agrees on one leader and
// returns the leader's index.
func (c *InProcessCluster) WaitLeader(t testing.TB) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		lead, agreed := uint64(0), true
		idx := -1
		for i := range c.Spec.Members {
			m := c.Member(i)
			if m == nil {
				continue
			}
			l := uint64(m.Server.Leader())
			if l == 0 || (lead != 0 && l != lead) {
				agreed = false
				break
			}
			lead = l
			if uint64(m.Server.ID()) == l {
				idx = i
			}
		}
		if agreed && lead != 0 && idx >= 0 {
			return idx
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no leader agreed on within 10s")
	return -1
}

// Close stops every member.
func (c *InProcessCluster) Close() {
	var wg sync.WaitGroup
	for i := range c.Spec.Members {
		wg.Add(1)
		go func(i int) { defer wg.Done(); c.Stop(i) }(i)
	}
	wg.Wait()
}

// Ctx is a context bounded for one test step.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
