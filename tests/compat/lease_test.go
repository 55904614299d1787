package compat

import (
	"errors"
	"testing"
	"time"

	"ensemble/internal/types"
	"ensemble/tests/framework"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func mustGrant(t *testing.T, cli *clientv3.Client, ttl int64) clientv3.LeaseID {
	t.Helper()
	resp, err := cli.Grant(framework.Ctx(t), ttl)
	if err != nil {
		t.Fatalf("grant %d: %v", ttl, err)
	}
	return resp.ID
}

func exists(t *testing.T, cli *clientv3.Client, key string) bool {
	t.Helper()
	g, err := cli.Get(framework.Ctx(t), key)
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	return len(g.Kvs) == 1
}

func TestLeaseGrantTimeToLiveRevoke(t *testing.T) {
	clusters(t, func(t *testing.T, c *framework.InProcessCluster, cli *clientv3.Client) {
		ctx := framework.Ctx(t)
		g, err := cli.Grant(ctx, 60)
		if err != nil {
			t.Fatal(err)
		}
		if g.ID == 0 || g.TTL != 60 || g.ResponseHeader == nil || g.Revision == 0 || g.MemberId == 0 {
			t.Fatalf("grant = %+v", g)
		}
		other := mustGrant(t, cli, 60)
		mustPut(t, cli, "l/b", "1", clientv3.WithLease(g.ID))
		mustPut(t, cli, "l/a", "2", clientv3.WithLease(g.ID))
		mustPut(t, cli, "l/c", "3", clientv3.WithLease(other))
		mustPut(t, cli, "l/free", "4")

		ttl, err := cli.TimeToLive(ctx, g.ID, clientv3.WithAttachedKeys())
		if err != nil {
			t.Fatal(err)
		}
		if ttl.ID != g.ID || ttl.GrantedTTL != 60 || ttl.TTL < 58 || ttl.TTL > 60 {
			t.Fatalf("time to live = id %x ttl %d granted %d", ttl.ID, ttl.TTL, ttl.GrantedTTL)
		}
		if len(ttl.Keys) != 2 || string(ttl.Keys[0]) != "l/a" || string(ttl.Keys[1]) != "l/b" {
			t.Fatalf("attached keys = %q, want l/a, l/b", ttl.Keys)
		}
		if ttl, err := cli.TimeToLive(ctx, g.ID); err != nil || len(ttl.Keys) != 0 {
			t.Fatalf("time to live without keys = %v, %v", ttl, err)
		}

		ls, err := cli.Leases(ctx)
		if err != nil {
			t.Fatal(err)
		}
		found := map[clientv3.LeaseID]bool{}
		for _, l := range ls.Leases {
			found[l.ID] = true
		}
		if !found[g.ID] || !found[other] {
			t.Fatalf("leases = %v, want %x and %x among them", ls.Leases, g.ID, other)
		}

		before, err := cli.Get(ctx, "l/free")
		if err != nil {
			t.Fatal(err)
		}
		rv, err := cli.Revoke(ctx, g.ID)
		if err != nil {
			t.Fatal(err)
		}
		// Both keys went in one revision.
		if rv.Header.Revision != before.Header.Revision+1 {
			t.Fatalf("revoke at revision %d, want %d", rv.Header.Revision, before.Header.Revision+1)
		}
		at, err := cli.Get(ctx, "l/", clientv3.WithPrefix(), clientv3.WithRev(rv.Header.Revision))
		if err != nil {
			t.Fatal(err)
		}
		prev, err := cli.Get(ctx, "l/", clientv3.WithPrefix(), clientv3.WithRev(rv.Header.Revision-1))
		if err != nil {
			t.Fatal(err)
		}
		if keys(at) != "l/c,l/free" || keys(prev) != "l/a,l/b,l/c,l/free" {
			t.Fatalf("keys after revoke %q, before %q", keys(at), keys(prev))
		}

		ttl, err = cli.TimeToLive(ctx, g.ID)
		if err != nil || ttl.TTL != -1 {
			t.Fatalf("time to live of a revoked lease = %+v, %v; want TTL -1", ttl, err)
		}
		if _, err := cli.Revoke(ctx, g.ID); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			t.Fatalf("revoke twice: %v, want %v", err, rpctypes.ErrLeaseNotFound)
		}
		if _, err := cli.KeepAliveOnce(ctx, g.ID); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			t.Fatalf("keepalive of a revoked lease: %v, want %v", err, rpctypes.ErrLeaseNotFound)
		}
		if _, err := cli.Put(ctx, "l/x", "v", clientv3.WithLease(g.ID)); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			t.Fatalf("put with a revoked lease: %v, want %v", err, rpctypes.ErrLeaseNotFound)
		}
		txn, err := cli.Txn(ctx).Then(clientv3.OpPut("l/y", "v", clientv3.WithLease(12345))).Commit()
		if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			t.Fatalf("txn put with an unknown lease: %v, %v; want %v", txn, err, rpctypes.ErrLeaseNotFound)
		}
	})
}

func TestLeaseGrantErrorsAndIDs(t *testing.T) {
	clusters(t, func(t *testing.T, c *framework.InProcessCluster, cli *clientv3.Client) {
		ctx := framework.Ctx(t)
		raw := pb.NewLeaseClient(cli.ActiveConnection())
		const id = 0x1234abcd
		g, err := raw.LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: id, TTL: 30})
		if err != nil || g.ID != id || g.TTL != 30 {
			t.Fatalf("grant with a chosen id = %+v, %v", g, err)
		}
		if _, err := raw.LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: id, TTL: 30}); rpctypes.Error(err) != rpctypes.ErrLeaseExist {
			t.Fatalf("duplicate id: %v, want %v", err, rpctypes.ErrLeaseExist)
		}
		if _, err := cli.Grant(ctx, 9_000_000_001); !errors.Is(err, rpctypes.ErrLeaseTTLTooLarge) {
			t.Fatalf("ttl too large: %v, want %v", err, rpctypes.ErrLeaseTTLTooLarge)
		}
		if g, err := cli.Grant(ctx, 9_000_000_000); err != nil || g.TTL != 9_000_000_000 {
			t.Fatalf("largest ttl = %+v, %v", g, err)
		}
		// Server-assigned ids are distinct and positive.
		a, b := mustGrant(t, cli, 10), mustGrant(t, cli, 10)
		if a <= 0 || b <= 0 || a == b {
			t.Fatalf("assigned ids %x and %x", a, b)
		}
	})
}

func TestLeaseMinimumTTL(t *testing.T) {
	// etcd's minimum: 1.5 election timeouts rounded up to a second.
	c := framework.StartInProcess(t, 1, "--election-timeout", "1500", "--heartbeat-interval", "100")
	cli := framework.NewClient(t, c.Spec.Members[0].ClientURL)
	for _, ttl := range []int64{-5, 0, 1, 2} {
		g, err := cli.Grant(framework.Ctx(t), ttl)
		if err != nil || g.TTL != 3 {
			t.Fatalf("grant ttl %d = %+v, %v; want the minimum 3", ttl, g, err)
		}
	}
	if g := mustGrantResp(t, cli, 4); g.TTL != 4 {
		t.Fatalf("grant ttl 4 gave %d", g.TTL)
	}
}

func mustGrantResp(t *testing.T, cli *clientv3.Client, ttl int64) *clientv3.LeaseGrantResponse {
	t.Helper()
	g, err := cli.Grant(framework.Ctx(t), ttl)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestLeaseKeepAlive(t *testing.T) {
	clusters(t, func(t *testing.T, c *framework.InProcessCluster, cli *clientv3.Client) {
		ctx := framework.Ctx(t)
		id := mustGrant(t, cli, 20)
		ka, err := cli.KeepAliveOnce(ctx, id)
		if err != nil || ka.ID != id || ka.TTL != 20 || ka.ResponseHeader == nil || ka.Revision == 0 {
			t.Fatalf("keepalive once = %+v, %v", ka, err)
		}
		if _, err := cli.KeepAliveOnce(ctx, 987654321); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			t.Fatalf("keepalive of an unknown lease: %v, want %v", err, rpctypes.ErrLeaseNotFound)
		}
		ch, err := cli.KeepAlive(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case r, ok := <-ch:
			if !ok || r.ID != id || r.TTL != 20 {
				t.Fatalf("keepalive stream = %+v, %v", r, ok)
			}
		case <-ctx.Done():
			t.Fatal("no keepalive response")
		}
		// Unknown leases on a raw stream get TTL 0, as etcd answers.
		stream, err := pb.NewLeaseClient(cli.ActiveConnection()).LeaseKeepAlive(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, req := range []int64{int64(id), 42, int64(id)} {
			if err := stream.Send(&pb.LeaseKeepAliveRequest{ID: req}); err != nil {
				t.Fatal(err)
			}
		}
		for i, want := range []int64{20, 0, 20} {
			r, err := stream.Recv()
			if err != nil || r.TTL != want {
				t.Fatalf("stream response %d = %+v, %v; want TTL %d", i, r, err, want)
			}
		}
		stream.CloseSend()
	})
}

func TestLeaseAttachDetach(t *testing.T) {
	clusters(t, func(t *testing.T, c *framework.InProcessCluster, cli *clientv3.Client) {
		ctx := framework.Ctx(t)
		a, b := mustGrant(t, cli, 60), mustGrant(t, cli, 60)
		attached := func(id clientv3.LeaseID) string {
			t.Helper()
			r, err := cli.TimeToLive(ctx, id, clientv3.WithAttachedKeys())
			if err != nil {
				t.Fatal(err)
			}
			s := ""
			for i, k := range r.Keys {
				if i > 0 {
					s += ","
				}
				s += string(k)
			}
			return s
		}
		mustPut(t, cli, "d/1", "v", clientv3.WithLease(a))
		mustPut(t, cli, "d/2", "v", clientv3.WithLease(a))
		mustPut(t, cli, "d/3", "v", clientv3.WithLease(a))
		mustPut(t, cli, "d/1", "v2")                             // a put without the lease detaches
		mustPut(t, cli, "d/2", "v2", clientv3.WithLease(b))      // another lease moves it
		mustPut(t, cli, "d/3", "v2", clientv3.WithIgnoreLease()) // ignore_lease keeps it
		if got := attached(a); got != "d/3" {
			t.Fatalf("lease a has %q, want d/3", got)
		}
		if got := attached(b); got != "d/2" {
			t.Fatalf("lease b has %q, want d/2", got)
		}
		if _, err := cli.Delete(ctx, "d/2"); err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Txn(ctx).Then(clientv3.OpPut("d/4", "v", clientv3.WithLease(b))).Commit(); err != nil {
			t.Fatal(err)
		}
		if got := attached(b); got != "d/4" {
			t.Fatalf("lease b has %q after a delete and a txn put, want d/4", got)
		}
		// Revoking a deletes only what is still attached to it.
		if _, err := cli.Revoke(ctx, a); err != nil {
			t.Fatal(err)
		}
		if !exists(t, cli, "d/1") || exists(t, cli, "d/3") || !exists(t, cli, "d/4") {
			t.Fatal("revoke deleted the wrong keys")
		}
	})
}

// TestLeaseExpiry measures expiry on a three-member cluster through a
// follower: the key lives while kept alive, then disappears no sooner than
// TTL after the last renewal and no later than TTL + 1 s after it.
func TestLeaseExpiry(t *testing.T) {
	c := framework.StartInProcess(t, 3)
	lead := c.WaitLeader(t)
	cli := framework.NewClient(t, c.Spec.Members[(lead+1)%3].ClientURL)
	ctx := framework.Ctx(t)
	const ttl = 2
	id := mustGrant(t, cli, ttl)
	mustPut(t, cli, "e/k", "v", clientv3.WithLease(id))

	// Keep it alive for longer than its TTL.
	tick := time.NewTicker(ttl * time.Second / 4)
	defer tick.Stop()
	start := time.Now()
	var sent, acked time.Time
	for time.Since(start) < 2*ttl*time.Second {
		<-tick.C
		sent = time.Now()
		if _, err := cli.KeepAliveOnce(ctx, id); err != nil {
			t.Fatalf("keepalive: %v", err)
		}
		acked = time.Now()
	}
	if !exists(t, cli, "e/k") {
		t.Fatal("key gone while kept alive")
	}
	// Linearizable reads in a tight loop see the deletion within a few
	// milliseconds of it (watches are not relied on here).
	var deleted time.Time
	for exists(t, cli, "e/k") {
		if ctx.Err() != nil {
			t.Fatal("the lease never expired")
		}
	}
	deleted = time.Now()
	if d := deleted.Sub(sent); d < ttl*time.Second {
		t.Fatalf("deleted %v after the last keepalive was sent, before the TTL", d)
	}
	if d := deleted.Sub(acked); d > ttl*time.Second+time.Second {
		t.Fatalf("deleted %v after the last keepalive, more than TTL + 1 s", d)
	}
	t.Logf("deleted %v after the last keepalive (TTL %ds)", deleted.Sub(acked), ttl)
	if r, err := cli.TimeToLive(ctx, id); err != nil || r.TTL != -1 {
		t.Fatalf("time to live after expiry = %+v, %v", r, err)
	}
}

// TestLeaseSurvivesLeaderChange keeps a lease alive through a follower while
// the leader stops (handing over leadership) and comes back: the key stays,
// and the restarted member still knows the lease and its keys.
func TestLeaseSurvivesLeaderChange(t *testing.T) {
	c := framework.StartInProcess(t, 3)
	lead := c.WaitLeader(t)
	follower := (lead + 1) % 3
	cli := framework.NewClient(t, c.Spec.Members[follower].ClientURL)
	ctx := framework.Ctx(t)
	const ttl = 2
	id := mustGrant(t, cli, ttl)
	mustPut(t, cli, "s/k", "v", clientv3.WithLease(id))
	ch, err := cli.KeepAlive(ctx, id)
	if err != nil {
		t.Fatal(err)
	}

	c.Stop(lead)
	if newLead := c.WaitLeader(t); newLead == lead {
		t.Fatalf("leader did not change")
	}
	changed := time.Now()
	// Renewals keep arriving through the new leader for well over a TTL.
	for time.Since(changed) < 2*ttl*time.Second+time.Second {
		select {
		case r, ok := <-ch:
			if !ok {
				t.Fatal("keepalive channel closed")
			}
			if r.TTL != ttl {
				t.Fatalf("keepalive after the leader change = %+v", r)
			}
		case <-ctx.Done():
			t.Fatal("keepalives stopped")
		}
	}
	if !exists(t, cli, "s/k") {
		t.Fatal("key lost across the leader change")
	}

	c.Restart(t, lead)
	c.WaitLeader(t)
	m := c.Member(lead)
	// The restarted member rebuilt the lease and its key from its store.
	in, err := m.Server.Lessor().Lookup(types.LeaseID(id), true)
	if err != nil || in.TTL != ttl || len(in.Keys) != 1 || in.Keys[0] != "s/k" {
		t.Fatalf("restarted member's lease = %+v, %v", in, err)
	}
	rcli := framework.NewClient(t, c.Spec.Members[lead].ClientURL)
	if r, err := rcli.TimeToLive(ctx, id, clientv3.WithAttachedKeys()); err != nil || r.TTL <= 0 || len(r.Keys) != 1 {
		t.Fatalf("time to live through the restarted member = %+v, %v", r, err)
	}
}

// TestLeaseRestartSingle restarts a single member: leases, their TTLs and
// attached keys come back, and a revoke after the restart deletes the keys.
func TestLeaseRestartSingle(t *testing.T) {
	c := framework.StartInProcess(t, 1)
	cli := framework.NewClient(t, c.Spec.Members[0].ClientURL)
	ctx := framework.Ctx(t)
	id := mustGrant(t, cli, 100)
	gone := mustGrant(t, cli, 100)
	mustPut(t, cli, "r/a", "1", clientv3.WithLease(id))
	mustPut(t, cli, "r/b", "1", clientv3.WithLease(id))
	if _, err := cli.Revoke(ctx, gone); err != nil {
		t.Fatal(err)
	}
	cli.Close()

	c.Stop(0)
	c.Restart(t, 0)
	c.WaitLeader(t)
	cli = framework.NewClient(t, c.Spec.Members[0].ClientURL)
	ls, err := cli.Leases(ctx)
	if err != nil || len(ls.Leases) != 1 || ls.Leases[0].ID != id {
		t.Fatalf("leases after restart = %+v, %v", ls, err)
	}
	r, err := cli.TimeToLive(ctx, id, clientv3.WithAttachedKeys())
	if err != nil || r.GrantedTTL != 100 || r.TTL < 90 || len(r.Keys) != 2 {
		t.Fatalf("time to live after restart = %+v, %v", r, err)
	}
	if _, err := cli.Revoke(ctx, id); err != nil {
		t.Fatal(err)
	}
	if exists(t, cli, "r/a") || exists(t, cli, "r/b") {
		t.Fatal("revoke after restart left keys behind")
	}
}

// TestLeaseCheckpoint shortens the checkpoint interval: a new leader gives a
// lease the remaining TTL recorded through the log, not its full TTL.
func TestLeaseCheckpoint(t *testing.T) {
	c := framework.StartInProcess(t, 3)
	for i := range 3 {
		c.Member(i).Server.SetLeaseCheckpointInterval(200 * time.Millisecond)
	}
	lead := c.WaitLeader(t)
	follower := (lead + 1) % 3
	cli := framework.NewClient(t, c.Spec.Members[follower].ClientURL)
	ctx := framework.Ctx(t)
	const ttl = 30
	id := mustGrant(t, cli, ttl)

	// Wait for a checkpoint to reach the follower through the log.
	var cp int64
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for cp == 0 {
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatal("no checkpoint reached the follower")
		}
		in, err := c.Member(follower).Server.Lessor().Lookup(types.LeaseID(id), false)
		if err != nil {
			t.Fatal(err)
		}
		cp = in.Checkpointed
	}
	if cp >= ttl {
		t.Fatalf("checkpointed %d, want less than the TTL %d", cp, ttl)
	}
	c.Stop(lead)
	c.WaitLeader(t)
	r, err := cli.TimeToLive(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	// The new leader started from the checkpoint (plus an election timeout
	// of grace), not from the full TTL.
	if r.TTL > cp || r.TTL <= 0 {
		t.Fatalf("TTL after the leader change = %d, want at most the checkpointed %d", r.TTL, cp)
	}
	// A renewal restores the full TTL and clears the checkpoint.
	if ka, err := cli.KeepAliveOnce(ctx, id); err != nil || ka.TTL != ttl {
		t.Fatalf("keepalive = %+v, %v", ka, err)
	}
	for {
		in, err := c.Member(follower).Server.Lessor().Lookup(types.LeaseID(id), false)
		if err != nil {
			t.Fatal(err)
		}
		if in.Checkpointed == 0 || in.Checkpointed > cp {
			break
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			t.Fatal("renewal never cleared the checkpoint")
		}
	}
}
