// Package integration runs clusters of several members inside the test
// process to check cluster behaviour: catching up, restarting, snapshots.
package integration

import (
	"fmt"
	"testing"
	"time"

	"ensemble/tests/framework"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func countPrefix(t *testing.T, cli *clientv3.Client, prefix string, opts ...clientv3.OpOption) int64 {
	t.Helper()
	resp, err := cli.Get(framework.Ctx(t), prefix, append(opts, clientv3.WithPrefix(), clientv3.WithCountOnly())...)
	if err != nil {
		t.Fatalf("count %s: %v", prefix, err)
	}
	return resp.Count
}

func TestLaggingFollowerCatchesUpBySnapshot(t *testing.T) {
	c := framework.StartInProcess(t, 3, "--snapshot-count", "50")
	lead := c.WaitLeader(t)
	f := (lead + 1) % 3
	c.Stop(f)
	cli := framework.NewClient(t, c.Spec.Members[lead].ClientURL)
	for i := range 300 {
		if _, err := cli.Put(framework.Ctx(t), fmt.Sprintf("lag/%04d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	// The leader has compacted its log far past what the follower has, so
	// only a snapshot with the database can bring it back.
	c.Restart(t, f)
	fcli := framework.NewClient(t, c.Spec.Members[f].ClientURL)
	deadline := time.Now().Add(15 * time.Second)
	for countPrefix(t, fcli, "lag/", clientv3.WithSerializable()) != 300 {
		if time.Now().After(deadline) {
			t.Fatalf("follower has %d of 300 keys after 15s", countPrefix(t, fcli, "lag/", clientv3.WithSerializable()))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := c.Member(f).Server.Status().SnapshotsInstalled; n == 0 {
		t.Fatalf("follower caught up without installing a snapshot; the test did not exercise snapshot sending")
	}
	// It keeps following: new writes reach it, and it serves linearizable reads.
	if _, err := cli.Put(framework.Ctx(t), "lag/after", "v"); err != nil {
		t.Fatal(err)
	}
	if n := countPrefix(t, fcli, "lag/"); n != 301 {
		t.Fatalf("linearizable count through the follower: %d, want 301", n)
	}
	// And the follower restarts cleanly from the snapshot it installed.
	c.Stop(f)
	c.Restart(t, f)
	if n := countPrefix(t, framework.NewClient(t, c.Spec.Members[f].ClientURL), "lag/"); n != 301 {
		t.Fatalf("after restart from the installed snapshot: %d keys, want 301", n)
	}
}

func TestWholeClusterRestart(t *testing.T) {
	c := framework.StartInProcess(t, 3, "--snapshot-count", "100")
	cli := framework.NewClient(t, c.Spec.Endpoints()...)
	var last int64
	for i := range 250 {
		r, err := cli.Put(framework.Ctx(t), fmt.Sprintf("all/%04d", i), fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		last = r.Header.Revision
	}
	c.Close()
	for i := range c.Spec.Members {
		c.Restart(t, i)
	}
	c.WaitLeader(t)
	for i := range c.Spec.Members {
		mcli := framework.NewClient(t, c.Spec.Members[i].ClientURL)
		if n := countPrefix(t, mcli, "all/"); n != 250 {
			t.Fatalf("member %d has %d keys after a full restart, want 250", i, n)
		}
		r, err := mcli.Get(framework.Ctx(t), "all/0249")
		if err != nil || r.Kvs[0].ModRevision != last {
			t.Fatalf("member %d: last key has mod revision %v, want %d (%v)", i, r.Kvs, last, err)
		}
	}
}

// TestStopWithOpenWatchStream: a graceful stop ends watch streams instead of
// waiting out the whole drain period for clients to close them.
func TestStopWithOpenWatchStream(t *testing.T) {
	c := framework.StartInProcess(t, 1)
	cli := framework.NewClient(t, c.Spec.Members[0].ClientURL)
	wch := cli.Watch(framework.Ctx(t), "w", clientv3.WithPrefix())
	if _, err := cli.Put(framework.Ctx(t), "w/1", "v"); err != nil {
		t.Fatal(err)
	}
	if r := <-wch; len(r.Events) != 1 {
		t.Fatalf("watch: %+v", r)
	}
	start := time.Now()
	c.Stop(0)
	// The drain bound is 5 s; a stop that waited for the stream would take it all.
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("stop with an open watch stream took %v", d)
	}
}
