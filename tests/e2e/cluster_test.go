package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"ensemble/tests/framework"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// writer puts keys w/0, w/1, ... until stopped, and records which writes
// were acknowledged and which were attempted.
type writer struct {
	mu        sync.Mutex
	acked     map[string]string
	attempted map[string]string
}

func (w *writer) run(ctx context.Context, cli *clientv3.Client, prefix string) {
	for i := 0; ctx.Err() == nil; i++ {
		k, v := fmt.Sprintf("%s/%06d", prefix, i), fmt.Sprintf("value-%d", i)
		w.mu.Lock()
		w.attempted[k] = v
		w.mu.Unlock()
		pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, err := cli.Put(pctx, k, v)
		cancel()
		if err == nil {
			w.mu.Lock()
			w.acked[k] = v
			w.mu.Unlock()
		}
	}
}

// checkMember reads everything under prefix from one member and checks that
// every acknowledged write is there and nothing that was never attempted is.
func (w *writer) checkMember(t *testing.T, endpoint, prefix string) {
	t.Helper()
	cli := framework.NewClient(t, endpoint)
	ctx := framework.Ctx(t)
	// A linearizable read first: once it returns, this member has applied
	// everything committed before it, so its local (serializable) view is
	// the one to check.
	if _, err := cli.Get(ctx, "sync-probe"); err != nil {
		t.Fatalf("%s: %v", endpoint, err)
	}
	resp, err := cli.Get(ctx, prefix+"/", clientv3.WithPrefix(), clientv3.WithSerializable())
	if err != nil {
		t.Fatalf("%s: %v", endpoint, err)
	}
	got := map[string]string{}
	for _, kv := range resp.Kvs {
		got[string(kv.Key)] = string(kv.Value)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, v := range w.acked {
		if !strings.HasPrefix(k, prefix+"/") {
			continue
		}
		if got[k] != v {
			t.Errorf("%s: acknowledged write %s=%s missing (have %q)", endpoint, k, v, got[k])
		}
	}
	for k, v := range got {
		if w.attempted[k] != v {
			t.Errorf("%s: %s=%s was never written", endpoint, k, v)
		}
	}
}

func TestThreeMembersKillLeaderUnderLoad(t *testing.T) {
	spec := readmeRecipe(t, t.TempDir())
	c := framework.StartProcesses(t, binary, spec)
	lead := c.Leader(t)
	a, b := (lead+1)%3, (lead+2)%3

	// Write through one member, read linearizably through another.
	ca := framework.NewClient(t, spec.Members[a].ClientURL)
	cb := framework.NewClient(t, spec.Members[b].ClientURL)
	ctx := framework.Ctx(t)
	put, err := ca.Put(ctx, "hello", "world")
	if err != nil {
		t.Fatal(err)
	}
	got, err := cb.Get(ctx, "hello")
	if err != nil || len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "world" || got.Header.Revision < put.Header.Revision {
		t.Fatalf("linearizable read through another member: %v %v", got, err)
	}

	w := &writer{acked: map[string]string{}, attempted: map[string]string{}}
	wctx, stopWriter := context.WithCancel(context.Background())
	defer stopWriter()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.run(wctx, framework.NewClient(t, spec.Members[a].ClientURL, spec.Members[b].ClientURL), "w")
	}()
	waitAcked := func(n int) {
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			w.mu.Lock()
			k := len(w.acked)
			w.mu.Unlock()
			if k >= n {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("writer did not reach %d acknowledged writes", n)
	}
	waitAcked(50)
	probe := framework.NewClient(t, spec.Members[a].ClientURL)
	killed := time.Now()
	c.Kill(lead)
	// How long writes are unavailable: retry a put with a short deadline
	// until one is acknowledged (a figure to report, not a timed assertion).
	var gap time.Duration
	for i := 0; ; i++ {
		pctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
		_, err := probe.Put(pctx, fmt.Sprintf("probe/%d", i), "v")
		cancel()
		if err == nil {
			gap = time.Since(killed)
			break
		}
		if time.Since(killed) > 20*time.Second {
			t.Fatalf("no write acknowledged within 20s of killing the leader: %v", err)
		}
	}
	t.Logf("SIGKILL of the leader -> first acknowledged write: %v", gap.Round(time.Millisecond))
	oldLeader := spec.Members[lead].Name
	w.mu.Lock()
	before := len(w.acked)
	w.mu.Unlock()
	newLead := c.Leader(t)
	if newLead == lead {
		t.Fatalf("killed member still reported as leader")
	}
	t.Logf("killed leader %s; %s took over", oldLeader, spec.Members[newLead].Name)
	waitAcked(before + 50) // writes flow again under the new leader
	c.Restart(t, lead)
	w.mu.Lock()
	before = len(w.acked)
	w.mu.Unlock()
	waitAcked(before + 50)
	stopWriter()
	wg.Wait()
	for i := range spec.Members {
		w.checkMember(t, spec.Members[i].ClientURL, "w")
	}
	t.Logf("%d writes acknowledged, %d attempted", len(w.acked), len(w.attempted))
}
