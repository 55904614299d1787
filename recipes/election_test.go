package recipes_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"ensemble/recipes"

	"go.etcd.io/etcd/client/v3/concurrency"
)

func testElectionObserve(t *testing.T, b *backend) {
	name := prefix(t)
	ctx := ctxFor(t, 30*time.Second)
	obs := recipes.NewElection(b.session(t, 5), name).Observe(ctx)

	ea := recipes.NewElection(b.session(t, 5), name)
	la, err := ea.Campaign(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if l := <-obs; l.Value != "a" || l.Token != la.Token() {
		t.Fatalf("observed %+v, want a with token %d", l, la.Token())
	}
	eb := recipes.NewElection(b.session(t, 5), name)
	type result struct {
		l   *recipes.Leadership
		err error
	}
	bDone := make(chan result, 1)
	go func() {
		l, err := eb.Campaign(ctx, "b")
		bDone <- result{l, err}
	}()
	waitKeys(t, b, name+"/", 2)
	if err := la.Proclaim(ctx, "a2"); err != nil {
		t.Fatal(err)
	}
	if l := <-obs; l.Value != "a2" || l.Token != la.Token() {
		t.Fatalf("observed %+v after proclaim", l)
	}
	if cur, err := ea.Leader(ctx); err != nil || cur.Value != "a2" {
		t.Fatalf("Leader = %+v, %v", cur, err)
	}
	if err := la.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(la.Err(), recipes.ErrResigned) {
		t.Fatalf("after Resign, Err = %v", la.Err())
	}
	r := <-bDone
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.l.Token() <= la.Token() {
		t.Fatalf("new term's token %d not above %d", r.l.Token(), la.Token())
	}
	if l := <-obs; l.Value != "b" || l.Token != r.l.Token() {
		t.Fatalf("observed %+v, want b", l)
	}
	if err := r.l.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := eb.Leader(ctx); !errors.Is(err, recipes.ErrNoLeader) {
		t.Fatalf("Leader with nobody campaigning = %v", err)
	}
}

// testElectionRevoked: the leader's lease ends on the cluster (revoked by
// someone else, as an expiry would); the leader learns it.
func testElectionRevoked(t *testing.T, b *backend) {
	name := prefix(t)
	ctx := ctxFor(t, 30*time.Second)
	sa := b.session(t, 5)
	la, err := recipes.NewElection(sa, name).Campaign(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.client(t).Revoke(ctx, sa.Lease()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-la.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("leader whose lease was revoked was not told within 5s")
	}
	if !errors.Is(la.Err(), recipes.ErrLeadershipLost) || !errors.Is(context.Cause(la.Context()), recipes.ErrLeadershipLost) {
		t.Fatalf("Err = %v, cause = %v", la.Err(), context.Cause(la.Context()))
	}
	if err := la.Proclaim(ctx, "still me"); !errors.Is(err, recipes.ErrLeadershipLost) {
		t.Fatalf("Proclaim after loss = %v", err)
	}
}

// testElectionPartitioned: the leader is cut off from the cluster, so its
// lease expires there and another candidate takes over; the old leader
// learns it lost within TTL + 1 s of the cut, from its keep-alive deadline.
func testElectionPartitioned(t *testing.T, b *backend) {
	name := prefix(t)
	ctx := ctxFor(t, 30*time.Second)
	const ttl = 2
	cli, proxy := b.cutClient(t)
	sa, err := concurrency.NewSession(cli, concurrency.WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	la, err := recipes.NewElection(sa, name).Campaign(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	eb := recipes.NewElection(b.session(t, 5), name)
	bDone := make(chan *recipes.Leadership, 1)
	go func() {
		l, err := eb.Campaign(ctx, "b")
		if err != nil {
			t.Error(err)
		}
		bDone <- l
	}()
	waitKeys(t, b, name+"/", 2)

	proxy.Cut()
	cut := time.Now()
	var lost time.Duration
	select {
	case <-la.Lost():
		lost = time.Since(cut)
	case <-time.After(ttl*time.Second + 5*time.Second):
		t.Fatal("cut-off leader was not told it lost leadership")
	}
	var lb *recipes.Leadership
	select {
	case lb = <-bDone:
	case <-time.After(10 * time.Second):
		t.Fatal("no new leader 10s after the old one was cut off")
	}
	if lb == nil {
		t.FailNow()
	}
	t.Logf("old leader told after %v, new leader after %v", lost, time.Since(cut))
	if lost > ttl*time.Second+time.Second {
		t.Fatalf("old leader told %v after the cut, later than TTL + 1 s", lost)
	}
	if !errors.Is(la.Err(), recipes.ErrLeadershipLost) {
		t.Fatalf("Err = %v", la.Err())
	}
	if lb.Token() <= la.Token() {
		t.Fatalf("new term token %d not above %d", lb.Token(), la.Token())
	}
}
