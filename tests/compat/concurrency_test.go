package compat

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ensemble/tests/framework"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	epb "go.etcd.io/etcd/server/v3/etcdserver/api/v3election/v3electionpb"
	lpb "go.etcd.io/etcd/server/v3/etcdserver/api/v3lock/v3lockpb"
)

// TestMutexCounter: 8 sessions each take the lock 25 times and increment a
// shared counter with a plain read-modify-write; the lock alone makes it
// exact, and no two holders ever overlap.
func TestMutexCounter(t *testing.T) {
	c := framework.StartInProcess(t, 3)
	var holders, maxHolders atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			cli := framework.NewClient(t, c.Spec.Members[i%3].ClientURL)
			s, err := concurrency.NewSession(cli, concurrency.WithTTL(5))
			if err != nil {
				errs <- err
				return
			}
			defer s.Close()
			m := concurrency.NewMutex(s, "/counter-lock")
			for range 25 {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				if err := m.Lock(ctx); err != nil {
					cancel()
					errs <- fmt.Errorf("lock: %w", err)
					return
				}
				if n := holders.Add(1); n > maxHolders.Load() {
					maxHolders.Store(n)
				}
				g, err := cli.Get(ctx, "/counter")
				if err == nil {
					n := 0
					if len(g.Kvs) == 1 {
						n, _ = strconv.Atoi(string(g.Kvs[0].Value))
					}
					_, err = cli.Put(ctx, "/counter", strconv.Itoa(n+1))
				}
				holders.Add(-1)
				if uerr := m.Unlock(ctx); err == nil {
					err = uerr
				}
				cancel()
				if err != nil {
					errs <- err
					return
				}
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if maxHolders.Load() != 1 {
		t.Fatalf("%d holders of the mutex at once", maxHolders.Load())
	}
	g, err := framework.NewClient(t, c.Spec.Members[0].ClientURL).Get(framework.Ctx(t), "/counter")
	if err != nil || len(g.Kvs) != 1 || string(g.Kvs[0].Value) != "200" {
		t.Fatalf("counter = %v (%v), want 200", g.Kvs, err)
	}
}

// TestElectionHandover: leadership passes on resign and when the leader's
// session is lost, and an observer sees every leader in turn.
func TestElectionHandover(t *testing.T) {
	c := framework.StartInProcess(t, 3)
	cli := framework.NewClient(t, c.Spec.Endpoints()...)
	obsSession, err := concurrency.NewSession(cli)
	if err != nil {
		t.Fatal(err)
	}
	defer obsSession.Close()
	octx, ocancel := context.WithCancel(context.Background())
	defer ocancel()
	observed := concurrency.NewElection(obsSession, "/elect").Observe(octx)

	newCandidate := func(ttl int) (*concurrency.Session, *concurrency.Election) {
		s, err := concurrency.NewSession(framework.NewClient(t, c.Spec.Endpoints()...), concurrency.WithTTL(ttl))
		if err != nil {
			t.Fatal(err)
		}
		return s, concurrency.NewElection(s, "/elect")
	}
	sA, eA := newCandidate(60)
	sB, eB := newCandidate(2)
	sC, eC := newCandidate(60)
	defer sA.Close()
	defer sC.Close()

	ctx := framework.Ctx(t)
	if err := eA.Campaign(ctx, "A"); err != nil {
		t.Fatal(err)
	}
	won := make(chan string, 2)
	go func() {
		if eB.Campaign(context.Background(), "B") == nil {
			won <- "B"
		}
	}()
	go func() {
		if eC.Campaign(context.Background(), "C") == nil {
			won <- "C"
		}
	}()
	expectObserved := func(want string) {
		t.Helper()
		select {
		case r := <-observed:
			if got := string(r.Kvs[0].Value); got != want {
				t.Fatalf("observer saw leader %q, want %q", got, want)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("observer did not see leader %q", want)
		}
	}
	expectObserved("A")
	time.Sleep(200 * time.Millisecond) // let B and C queue up behind A, in that order
	if err := eA.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	first := <-won
	expectObserved(first)
	// Lose the winner's session without resigning: its lease expires.
	if first == "B" {
		sB.Orphan()
		sB.Client().Revoke(ctx, sB.Lease())
	} else {
		sC.Orphan()
		sC.Client().Revoke(ctx, sC.Lease())
	}
	second := <-won
	if second == first {
		t.Fatalf("same candidate won twice")
	}
	expectObserved(second)
	leader, err := concurrency.NewElection(obsSession, "/elect").Leader(ctx)
	if err != nil || string(leader.Kvs[0].Value) != second {
		t.Fatalf("leader = %v (%v), want %s", leader, err, second)
	}
}

// TestSTMTransfers: 8 goroutines each make 50 transfers between two random
// accounts in software transactional memory; the total never changes.
func TestSTMTransfers(t *testing.T) {
	c := framework.StartInProcess(t, 3)
	cli := framework.NewClient(t, c.Spec.Endpoints()...)
	const accounts, initial = 5, 100
	for i := range accounts {
		if _, err := cli.Put(framework.Ctx(t), fmt.Sprintf("/acct/%d", i), strconv.Itoa(initial)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			gcli := framework.NewClient(t, c.Spec.Members[g%3].ClientURL)
			for n := range 50 {
				from, to := (g+n)%accounts, (g+2*n+1)%accounts
				if from == to {
					to = (to + 1) % accounts
				}
				_, err := concurrency.NewSTM(gcli, func(s concurrency.STM) error {
					a, _ := strconv.Atoi(s.Get(fmt.Sprintf("/acct/%d", from)))
					b, _ := strconv.Atoi(s.Get(fmt.Sprintf("/acct/%d", to)))
					amount := a / 3
					s.Put(fmt.Sprintf("/acct/%d", from), strconv.Itoa(a-amount))
					s.Put(fmt.Sprintf("/acct/%d", to), strconv.Itoa(b+amount))
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	r, err := cli.Get(framework.Ctx(t), "/acct/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, kv := range r.Kvs {
		n, _ := strconv.Atoi(string(kv.Value))
		total += n
	}
	if total != accounts*initial {
		t.Fatalf("total after transfers = %d, want %d", total, accounts*initial)
	}
}

// TestElectionAndLockServices drives the v3election and v3lock gRPC services
// that etcd serves, with their generated clients.
func TestElectionAndLockServices(t *testing.T) {
	c := framework.StartInProcess(t, 3)
	cli := framework.NewClient(t, c.Spec.Endpoints()...)
	ctx := framework.Ctx(t)
	ec := epb.NewElectionClient(cli.ActiveConnection())
	lc := lpb.NewLockClient(cli.ActiveConnection())

	lease1, err := cli.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	lease2, err := cli.Grant(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	// Lock: a second locker waits until the first unlocks.
	l1, err := lc.Lock(ctx, &lpb.LockRequest{Name: []byte("svc-lock"), Lease: int64(lease1.ID)})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *lpb.LockResponse, 1)
	go func() {
		r, err := lc.Lock(context.Background(), &lpb.LockRequest{Name: []byte("svc-lock"), Lease: int64(lease2.ID)})
		if err == nil {
			got <- r
		}
	}()
	select {
	case <-got:
		t.Fatalf("second lock granted while the first is held")
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := lc.Unlock(ctx, &lpb.UnlockRequest{Key: l1.Key}); err != nil {
		t.Fatal(err)
	}
	select {
	case l2 := <-got:
		if l2.Header.Revision <= l1.Header.Revision {
			t.Fatalf("second lock's revision %d not after the first's %d", l2.Header.Revision, l1.Header.Revision)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("second lock not granted after unlock")
	}

	// Election: campaign, leader, proclaim, observe, resign.
	camp, err := ec.Campaign(ctx, &epb.CampaignRequest{Name: []byte("svc-elect"), Lease: int64(lease1.ID), Value: []byte("one")})
	if err != nil {
		t.Fatal(err)
	}
	lr, err := ec.Leader(ctx, &epb.LeaderRequest{Name: []byte("svc-elect")})
	if err != nil || string(lr.Kv.Value) != "one" {
		t.Fatalf("leader: %v %v", lr, err)
	}
	octx, ocancel := context.WithCancel(ctx)
	defer ocancel()
	obs, err := ec.Observe(octx, &epb.LeaderRequest{Name: []byte("svc-elect")})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := obs.Recv(); err != nil || string(r.Kv.Value) != "one" {
		t.Fatalf("observe first: %v %v", r, err)
	}
	if _, err := ec.Proclaim(ctx, &epb.ProclaimRequest{Leader: camp.Leader, Value: []byte("two")}); err != nil {
		t.Fatal(err)
	}
	if r, err := obs.Recv(); err != nil || string(r.Kv.Value) != "two" {
		t.Fatalf("observe after proclaim: %v %v", r, err)
	}
	if _, err := ec.Resign(ctx, &epb.ResignRequest{Leader: camp.Leader}); err != nil {
		t.Fatal(err)
	}
	if _, err := ec.Leader(ctx, &epb.LeaderRequest{Name: []byte("svc-elect")}); err == nil {
		t.Fatalf("leader found after resign")
	}
	if _, err := ec.Proclaim(ctx, &epb.ProclaimRequest{Leader: camp.Leader, Value: []byte("three")}); err == nil {
		t.Fatalf("proclaim by a resigned leader succeeded")
	}
	if _, err := ec.Resign(ctx, &epb.ResignRequest{}); err == nil {
		t.Fatalf("resign without a leader key succeeded")
	}
}
