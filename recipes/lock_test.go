package recipes_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ensemble/recipes"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// recipeCases is the suite TestRecipes runs on every backend.
var recipeCases = []recipeCase{
	{"MutexExclusion", testMutexExclusion},
	{"MutexStaleTokenRejected", testMutexStaleTokenRejected},
	{"MutexTryLockAndCancel", testMutexTryLockAndCancel},
	{"RWMutex", testRWMutex},
	{"SemaphoreSlotsAndFencing", testSemaphore},
	{"ElectionObserveAndResign", testElectionObserve},
	{"ElectionLeaderLearnsRevokedLease", testElectionRevoked},
	{"ElectionLeaderLearnsPartition", testElectionPartitioned},
	{"Barrier", testBarrier},
	{"DoubleBarrier", testDoubleBarrier},
	{"Queue", testQueue},
	{"PriorityQueue", testPriorityQueue},
	{"Counter", testCounter},
	{"RegistryDiscover", testRegistryDiscover},
	{"RegistryKilledInstanceDisappears", testRegistryKilled},
	{"ConfigJSON", testConfigJSON},
	{"ConfigYAML", testConfigYAML},
	{"RingFollowsRegistry", testRingFollowsRegistry},
	{"ReadmeSnippets", testReadmeSnippets},
}

// errStaleToken is what the fake resource answers a stale lock holder.
var errStaleToken = errors.New("resource: stale fencing token")

// fencedResource is the protected resource of the fencing tests: it
// remembers the highest token it has accepted and refuses lower ones.
type fencedResource struct {
	mu      sync.Mutex
	highest int64
	writes  []string
}

func (r *fencedResource) Write(token int64, what string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if token < r.highest {
		return fmt.Errorf("%w: %d < %d", errStaleToken, token, r.highest)
	}
	r.highest = token
	r.writes = append(r.writes, what)
	return nil
}

func testMutexExclusion(t *testing.T, b *backend) {
	name := prefix(t)
	var inside, maxInside atomic.Int32
	var mu sync.Mutex
	var tokens []int64
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := range 4 {
		s := b.session(t, 5)
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := recipes.NewMutex(s, name)
			for range 8 {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				if err := m.Lock(ctx); err != nil {
					cancel()
					errs <- fmt.Errorf("worker %d lock: %w", i, err)
					return
				}
				n := inside.Add(1)
				for {
					old := maxInside.Load()
					if n <= old || maxInside.CompareAndSwap(old, n) {
						break
					}
				}
				mu.Lock()
				tokens = append(tokens, m.Token())
				mu.Unlock()
				inside.Add(-1)
				err := m.Unlock(ctx)
				cancel()
				if err != nil {
					errs <- fmt.Errorf("worker %d unlock: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if maxInside.Load() != 1 {
		t.Fatalf("%d holders at once", maxInside.Load())
	}
	// Grants happen in token order, so the recorded tokens increase.
	for i := 1; i < len(tokens); i++ {
		if tokens[i] <= tokens[i-1] {
			t.Fatalf("token %d granted after %d", tokens[i], tokens[i-1])
		}
	}
}

// testMutexStaleTokenRejected is the failure case: the holder's session
// expires while it stalls, another takes the lock, and the old holder's
// late write is refused by the resource.
func testMutexStaleTokenRejected(t *testing.T, b *backend) {
	name := prefix(t)
	ctx := ctxFor(t, 30*time.Second)
	res := &fencedResource{}

	sa := b.session(t, 2)
	a := recipes.NewMutex(sa, name)
	if err := a.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := res.Write(a.Token(), "a1"); err != nil {
		t.Fatal(err)
	}
	// A stalls: its keep-alives stop, so its lease expires on the cluster.
	sa.Orphan()

	sb := b.session(t, 5)
	bm := recipes.NewMutex(sb, name)
	start := time.Now()
	if err := bm.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("B granted %v after A stalled", time.Since(start))
	if bm.Token() <= a.Token() {
		t.Fatalf("new token %d not above stale %d", bm.Token(), a.Token())
	}
	if err := res.Write(bm.Token(), "b1"); err != nil {
		t.Fatal(err)
	}
	// A wakes up and, not knowing, writes with its old token.
	if err := res.Write(a.Token(), "a2"); !errors.Is(err, errStaleToken) {
		t.Fatalf("stale write: got %v, want %v", err, errStaleToken)
	}
	// The cluster agrees: A's hold is gone and its guarded writes fail.
	if err := a.Held(ctx); !errors.Is(err, recipes.ErrNotHeld) {
		t.Fatalf("A.Held = %v, want ErrNotHeld", err)
	}
	cli := b.client(t)
	resp, err := cli.Txn(ctx).If(a.Guard()).Then(clientv3.OpPut(name+"-data", "a")).Commit()
	if err != nil || resp.Succeeded {
		t.Fatalf("guarded write by stale holder: succeeded=%v err=%v", resp != nil && resp.Succeeded, err)
	}
	resp, err = cli.Txn(ctx).If(bm.Guard()).Then(clientv3.OpPut(name+"-data", "b")).Commit()
	if err != nil || !resp.Succeeded {
		t.Fatalf("guarded write by holder: %v", err)
	}
	if err := a.Unlock(ctx); !errors.Is(err, recipes.ErrNotHeld) {
		t.Fatalf("stale Unlock = %v, want ErrNotHeld", err)
	}
	if err := bm.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(res.writes); got != "[a1 b1]" {
		t.Fatalf("resource saw %s", got)
	}
}

func testMutexTryLockAndCancel(t *testing.T, b *backend) {
	name := prefix(t)
	ctx := ctxFor(t, 20*time.Second)
	a := recipes.NewMutex(b.session(t, 5), name)
	bm := recipes.NewMutex(b.session(t, 5), name)
	if err := a.TryLock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := bm.TryLock(ctx); !errors.Is(err, recipes.ErrLocked) {
		t.Fatalf("TryLock on a held lock = %v", err)
	}
	// A waiter that gives up leaves no key behind to block later ones.
	wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err := bm.Lock(wctx)
	cancel()
	if err == nil {
		t.Fatal("Lock on a held lock returned without its ctx ending")
	}
	if err := a.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := bm.TryLock(ctx); err != nil {
		t.Fatalf("TryLock on a free lock = %v", err)
	}
	g, err := b.client(t).Get(ctx, name+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || g.Count != 1 {
		t.Fatalf("keys under the lock: %v %v", g, err)
	}
}

func testRWMutex(t *testing.T, b *backend) {
	name := prefix(t)
	ctx := ctxFor(t, 30*time.Second)
	r1 := recipes.NewRWMutex(b.session(t, 5), name)
	r2 := recipes.NewRWMutex(b.session(t, 5), name)
	w := recipes.NewRWMutex(b.session(t, 5), name)
	r3 := recipes.NewRWMutex(b.session(t, 5), name)
	if err := r1.RLock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r2.RLock(ctx); err != nil {
		t.Fatalf("second reader: %v", err)
	}
	wDone := make(chan error, 1)
	go func() { wDone <- w.Lock(ctx) }()
	waitKeys(t, b, name+"/w/", 1)
	r3Done := make(chan error, 1)
	go func() { r3Done <- r3.RLock(ctx) }()
	waitKeys(t, b, name+"/r/", 3)
	select {
	case err := <-wDone:
		t.Fatalf("writer got in while readers hold: %v", err)
	case err := <-r3Done:
		t.Fatalf("reader got past a waiting writer: %v", err)
	default:
	}
	if err := r1.RUnlock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r2.RUnlock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-wDone; err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-r3Done:
		t.Fatalf("reader got in while the writer holds: %v", err)
	default:
	}
	if w.Token() <= r2.Token() {
		t.Fatalf("writer token %d not above readers'", w.Token())
	}
	if err := w.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-r3Done; err != nil {
		t.Fatal(err)
	}
	if r3.Token() <= w.Token() {
		t.Fatalf("later reader's token %d not above writer's %d", r3.Token(), w.Token())
	}
}

// waitKeys waits until exactly n keys exist under pfx.
func waitKeys(t *testing.T, b *backend, pfx string, n int64) {
	t.Helper()
	cli := b.client(t)
	ctx := ctxFor(t, 10*time.Second)
	g, err := cli.Get(ctx, pfx, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if g.Count == n {
		return
	}
	for wr := range cli.Watch(ctx, pfx, clientv3.WithPrefix(), clientv3.WithRev(g.Header.Revision+1)) {
		c, err := cli.Get(ctx, pfx, clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithRev(wr.Header.Revision))
		if err != nil {
			t.Fatal(err)
		}
		if c.Count == n {
			return
		}
	}
	t.Fatalf("never saw %d keys under %s", n, pfx)
}

func testSemaphore(t *testing.T, b *backend) {
	name := prefix(t)
	ctx := ctxFor(t, 30*time.Second)
	sa := b.session(t, 2)
	a := recipes.NewSemaphore(sa, name, 2)
	bs := recipes.NewSemaphore(b.session(t, 5), name, 2)
	c := recipes.NewSemaphore(b.session(t, 5), name, 2)
	if err := a.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if err := bs.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if a.Slot() == bs.Slot() {
		t.Fatalf("two holders in slot %d", a.Slot())
	}
	// Per slot, the resource keeps the highest token it accepted.
	var mu sync.Mutex
	highest := map[int]int64{}
	write := func(sm *recipes.Semaphore, slot int, token int64) error {
		mu.Lock()
		defer mu.Unlock()
		if token < highest[slot] {
			return errStaleToken
		}
		highest[slot] = token
		return nil
	}
	if err := write(a, a.Slot(), a.Token()); err != nil {
		t.Fatal(err)
	}
	cDone := make(chan error, 1)
	go func() { cDone <- c.Acquire(ctx) }()
	waitKeys(t, b, name+"/q/", 3)
	select {
	case err := <-cDone:
		t.Fatalf("third holder admitted to a semaphore of 2: %v", err)
	default:
	}
	// A stalls and its session expires: C takes its place.
	aSlot, aToken := a.Slot(), a.Token()
	sa.Orphan()
	if err := <-cDone; err != nil {
		t.Fatal(err)
	}
	if c.Slot() != aSlot || c.Token() <= aToken {
		t.Fatalf("C has slot %d token %d; A had slot %d token %d", c.Slot(), c.Token(), aSlot, aToken)
	}
	if err := write(c, c.Slot(), c.Token()); err != nil {
		t.Fatal(err)
	}
	if err := write(a, aSlot, aToken); !errors.Is(err, errStaleToken) {
		t.Fatalf("stale semaphore holder's write = %v", err)
	}
	if err := c.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := bs.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx); !errors.Is(err, recipes.ErrNotHeld) {
		t.Fatalf("release by expired holder = %v", err)
	}
}

func testBarrier(t *testing.T, b *backend) {
	ctx := ctxFor(t, 20*time.Second)
	key := prefix(t)
	bar := recipes.NewBarrier(b.client(t), key)
	if err := bar.Hold(ctx); err != nil {
		t.Fatal(err)
	}
	var passed atomic.Int32
	var wg sync.WaitGroup
	for range 3 {
		w := recipes.NewBarrier(b.client(t), key)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.Wait(ctx); err != nil {
				t.Error(err)
			}
			passed.Add(1)
		}()
	}
	// Make sure the waiters are waiting: a Wait on a held barrier does not
	// return within a round trip.
	probe, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err := recipes.NewBarrier(b.client(t), key).Wait(probe)
	cancel()
	if err == nil || passed.Load() != 0 {
		t.Fatalf("Wait on a held barrier returned %v (passed %d)", err, passed.Load())
	}
	if err := bar.Release(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if passed.Load() != 3 {
		t.Fatalf("%d waiters passed", passed.Load())
	}
}

func testDoubleBarrier(t *testing.T, b *backend) {
	name := prefix(t)
	ctx := ctxFor(t, 30*time.Second)
	const n = 3
	var entered, left atomic.Int32
	var wg, othersLeaving sync.WaitGroup
	var enteredEarly, leftEarly atomic.Bool
	othersLeaving.Add(n - 1)
	for i := range n {
		d := recipes.NewDoubleBarrier(b.session(t, 5), name, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == n-1 {
				// The last one arrives once the others are waiting in Enter.
				waitKeys(t, b, name+"/waiters/", n-1)
			}
			entered.Add(1)
			if err := d.Enter(ctx); err != nil {
				t.Error(err)
				return
			}
			if entered.Load() != n {
				enteredEarly.Store(true)
			}
			if i == 0 {
				// Leave last: nobody may get out before this one.
				othersLeaving.Wait()
			}
			left.Add(1)
			if i != 0 {
				othersLeaving.Done()
			}
			if err := d.Leave(ctx); err != nil {
				t.Error(err)
				return
			}
			if left.Load() != n {
				leftEarly.Store(true)
			}
		}()
	}
	wg.Wait()
	if enteredEarly.Load() || leftEarly.Load() {
		t.Fatalf("passed early: enter %v leave %v", enteredEarly.Load(), leftEarly.Load())
	}
}

func testQueue(t *testing.T, b *backend) {
	ctx := ctxFor(t, 30*time.Second)
	q := recipes.NewQueue(b.client(t), prefix(t))
	for i := range 5 {
		if err := q.Enqueue(ctx, strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		v, err := q.Dequeue(ctx)
		if err != nil || v != strconv.Itoa(i) {
			t.Fatalf("dequeue %d: %q %v", i, v, err)
		}
	}
	// Several consumers, one blocked before anything arrives: every item
	// goes to exactly one of them.
	const items = 30
	got := make(chan string, items)
	var wg sync.WaitGroup
	for range 3 {
		c := recipes.NewQueue(b.client(t), prefix(t))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				v, err := c.Dequeue(ctx)
				if err != nil {
					return
				}
				got <- v
				if v == "stop" {
					return
				}
			}
		}()
	}
	for i := range items {
		if err := q.Enqueue(ctx, strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for range items {
		v := <-got
		if seen[v] {
			t.Fatalf("item %s delivered twice", v)
		}
		seen[v] = true
	}
	for range 3 {
		if err := q.Enqueue(ctx, "stop"); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if n, err := q.Len(ctx); err != nil || n != 0 {
		t.Fatalf("left in queue: %d %v", n, err)
	}
}

func testPriorityQueue(t *testing.T, b *backend) {
	ctx := ctxFor(t, 20*time.Second)
	q := recipes.NewPriorityQueue(b.client(t), prefix(t))
	in := []struct {
		v   string
		pri uint16
	}{{"low-1", 9}, {"high-1", 1}, {"mid", 5}, {"high-2", 1}, {"low-2", 9}}
	for _, it := range in {
		if err := q.Enqueue(ctx, it.v, it.pri); err != nil {
			t.Fatal(err)
		}
	}
	var out []string
	for range in {
		v, _, err := q.Dequeue(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if got := fmt.Sprint(out); got != "[high-1 high-2 mid low-1 low-2]" {
		t.Fatalf("order %s", got)
	}
}

func testCounter(t *testing.T, b *backend) {
	ctx := ctxFor(t, 30*time.Second)
	key := prefix(t)
	var wg sync.WaitGroup
	for range 4 {
		c := recipes.NewCounter(b.client(t), key)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if _, err := c.Add(ctx, 1); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	c := recipes.NewCounter(b.client(t), key)
	if n, err := c.Get(ctx); err != nil || n != 80 {
		t.Fatalf("counter = %d, %v; want 80", n, err)
	}
	if n, err := c.Add(ctx, -30); err != nil || n != 50 {
		t.Fatalf("Add(-30) = %d, %v", n, err)
	}
}
