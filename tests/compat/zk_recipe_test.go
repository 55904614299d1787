package compat

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ensemble/tests/framework"

	"github.com/go-zookeeper/zk"
)

// TestZKRecipes runs the classic ZooKeeper recipes with go-zookeeper, their
// clients spread over the members.
func TestZKRecipes(t *testing.T) {
	zkClusters(t, func(t *testing.T, c *framework.InProcessCluster, addrs []string) {
		t.Run("Lock", func(t *testing.T) { testZKLock(t, addrs) })
		t.Run("LeaderElection", func(t *testing.T) { testZKElection(t, addrs) })
		t.Run("Barrier", func(t *testing.T) { testZKBarrier(t, addrs) })
		t.Run("Queue", func(t *testing.T) { testZKQueue(t, addrs) })
	})
}

// testZKLock: 5 clients x 20 increments of a counter znode under go-zk's
// lock, each a plain get then set. Exact only if the lock excludes, and
// each set names the version it read, so an overlap fails loudly.
func testZKLock(t *testing.T, addrs []string) {
	const clients, rounds = 5, 20
	setup := framework.ZKConnect(t, addrs[0])
	zkMustCreate(t, setup, "/lock-counter", []byte("0"), zk.FlagPersistent)
	var holders atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		cl := framework.ZKConnect(t, addrs[i%len(addrs)])
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := zk.NewLock(cl, "/lock", zkWorld)
			for range rounds {
				if err := l.Lock(); err != nil {
					errs <- fmt.Errorf("client %d: lock: %w", i, err)
					return
				}
				if n := holders.Add(1); n != 1 {
					errs <- fmt.Errorf("client %d: %d holders of the lock", i, n)
				}
				data, st, err := cl.Get("/lock-counter")
				if err == nil {
					var v int
					v, err = strconv.Atoi(string(data))
					if err == nil {
						_, err = cl.Set("/lock-counter", []byte(strconv.Itoa(v+1)), st.Version)
					}
				}
				holders.Add(-1)
				if uerr := l.Unlock(); err == nil {
					err = uerr
				}
				if err != nil {
					errs <- fmt.Errorf("client %d: increment under the lock: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	zkSync(t, setup, "/lock-counter")
	if data, st := zkMustGet(t, setup, "/lock-counter"); string(data) != strconv.Itoa(clients*rounds) || st.Version != clients*rounds {
		t.Errorf("counter %s at version %d, want %d", data, st.Version, clients*rounds)
	}
	if kids, _, err := setup.Children("/lock"); err != nil || len(kids) != 0 {
		t.Errorf("lock nodes left: %v %v", kids, err)
	}
}

// candidate runs for leader under /election: an ephemeral sequential node,
// leader when it is the lowest, otherwise watching the one just before it.
type candidate struct {
	cl   *zk.Conn
	node string // name under /election
}

// waitLeadership returns once c leads.
func (c *candidate) waitLeadership() error {
	for {
		kids, _, err := c.cl.Children("/election")
		if err != nil {
			return err
		}
		slices.Sort(kids)
		i := slices.Index(kids, c.node)
		if i < 0 {
			return fmt.Errorf("%s lost its node", c.node)
		}
		if i == 0 {
			return nil
		}
		ok, _, ch, err := c.cl.ExistsW("/election/" + kids[i-1])
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		select {
		case ev := <-ch:
			if ev.Err != nil {
				return ev.Err
			}
		case <-time.After(3 * zkWait):
			return fmt.Errorf("%s: predecessor %s did not go", c.node, kids[i-1])
		}
	}
}

// testZKElection: three candidates on different members; the first to join
// leads, and when its session closes the next one takes over, never early.
func testZKElection(t *testing.T, addrs []string) {
	setup := framework.ZKConnect(t, addrs[0])
	zkMustCreate(t, setup, "/election", nil, zk.FlagPersistent)
	const n = 3
	cands := make([]*candidate, n)
	for i := range n {
		cl := framework.ZKConnect(t, addrs[i%len(addrs)])
		p := zkMustCreate(t, cl, "/election/n-", []byte(strconv.Itoa(i)), zk.FlagEphemeralSequential)
		cands[i] = &candidate{cl: cl, node: strings.TrimPrefix(p, "/election/")}
	}
	var resigned atomic.Int32 // how many leaders have closed their sessions
	type report struct {
		who, resignedBefore int
		err                 error
	}
	reports := make(chan report, n)
	for i, c := range cands {
		go func() {
			err := c.waitLeadership()
			reports <- report{i, int(resigned.Load()), err}
		}()
	}
	for want := range n {
		select {
		case r := <-reports:
			if r.err != nil {
				t.Fatalf("candidate %d: %v", r.who, r.err)
			}
			if r.who != want || r.resignedBefore != want {
				t.Fatalf("candidate %d became leader after %d resignations, want candidate %d after %d", r.who, r.resignedBefore, want, want)
			}
		case <-time.After(3 * zkWait):
			t.Fatalf("no leader after %d resignations", want)
		}
		// Seen from another member, the leader's node is the lowest left.
		reader := cands[(want+1)%n].cl
		if want == n-1 {
			reader = setup
		}
		zkSync(t, reader, "/election")
		kids, _, err := reader.Children("/election")
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(kids)
		if len(kids) != n-want || kids[0] != cands[want].node {
			t.Fatalf("after %d resignations the candidates are %v, want %s first of %d", want, kids, cands[want].node, n-want)
		}
		resigned.Add(1)
		cands[want].cl.Close()
	}
}

// testZKBarrier: a double barrier for four; nobody enters before all four
// arrived, and everybody leaves.
func testZKBarrier(t *testing.T, addrs []string) {
	const n = 4
	setup := framework.ZKConnect(t, addrs[0])
	zkMustCreate(t, setup, "/barrier", nil, zk.FlagPersistent)
	waiting := make(chan int, n)
	entered := make(chan error, n)
	enter := func(i int, cl *zk.Conn) {
		if _, err := cl.Create(fmt.Sprintf("/barrier/p%d", i), nil, zk.FlagEphemeral, zkWorld); err != nil {
			entered <- err
			return
		}
		told := false
		for {
			kids, _, ch, err := cl.ChildrenW("/barrier")
			if err != nil {
				entered <- err
				return
			}
			if len(kids) >= n {
				entered <- nil
				return
			}
			if !told {
				waiting <- i
				told = true
			}
			select {
			case <-ch:
			case <-time.After(3 * zkWait):
				entered <- fmt.Errorf("participant %d: still %d of %d at the barrier", i, len(kids), n)
				return
			}
		}
	}
	conns := make([]*zk.Conn, n)
	for i := range n {
		conns[i] = framework.ZKConnect(t, addrs[i%len(addrs)])
	}
	for i := range n - 1 {
		go enter(i, conns[i])
	}
	for range n - 1 {
		select {
		case <-waiting:
		case err := <-entered:
			t.Fatalf("a participant passed the barrier with %d of %d there: %v", n-1, n, err)
		case <-time.After(3 * zkWait):
			t.Fatal("participants did not reach the barrier")
		}
	}
	select {
	case err := <-entered:
		t.Fatalf("a participant passed the barrier with %d of %d there: %v", n-1, n, err)
	default:
	}
	go enter(n-1, conns[n-1])
	for range n {
		select {
		case err := <-entered:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(3 * zkWait):
			t.Fatal("not everybody passed the barrier")
		}
	}
	// Leave: everybody deletes its node; the barrier empties everywhere.
	for i, cl := range conns {
		if err := cl.Delete(fmt.Sprintf("/barrier/p%d", i), -1); err != nil {
			t.Fatal(err)
		}
	}
	for i, cl := range conns {
		zkSync(t, cl, "/barrier")
		if kids, _, err := cl.Children("/barrier"); err != nil || len(kids) != 0 {
			t.Errorf("participant %d sees %v at the barrier after leaving (%v)", i, kids, err)
		}
	}
}

// testZKQueue: two producers add sequential items, three consumers take the
// lowest by deleting it; every item is consumed exactly once, and each
// consumer takes each producer's items in order.
func testZKQueue(t *testing.T, addrs []string) {
	const producers, items, consumers = 2, 25, 3
	setup := framework.ZKConnect(t, addrs[0])
	zkMustCreate(t, setup, "/queue", nil, zk.FlagPersistent)
	var mu sync.Mutex
	consumed := map[string]int{} // item data → consumer
	errs := make(chan error, producers+consumers)
	done := make(chan struct{})
	var taken atomic.Int32
	var wg sync.WaitGroup
	for c := range consumers {
		cl := framework.ZKConnect(t, addrs[c%len(addrs)])
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- consume(cl, c, &mu, consumed, &taken, producers*items, done)
		}()
	}
	for p := range producers {
		cl := framework.ZKConnect(t, addrs[(p+1)%len(addrs)])
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range items {
				if _, err := cl.Create("/queue/item-", []byte(fmt.Sprintf("%d-%03d", p, i)), zk.FlagSequence, zkWorld); err != nil {
					errs <- fmt.Errorf("producer %d: %w", p, err)
					return
				}
			}
			errs <- nil
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if len(consumed) != producers*items {
		t.Errorf("%d items consumed, want %d", len(consumed), producers*items)
	}
}

// consume takes items until total were taken by all consumers together.
func consume(cl *zk.Conn, who int, mu *sync.Mutex, consumed map[string]int, taken *atomic.Int32, total int, done chan struct{}) error {
	last := map[string]string{} // producer → last item it took
	for {
		kids, _, ch, err := cl.ChildrenW("/queue")
		if err != nil {
			return fmt.Errorf("consumer %d: %w", who, err)
		}
		slices.Sort(kids)
		for _, k := range kids {
			p := "/queue/" + k
			data, _, err := cl.Get(p)
			if errors.Is(err, zk.ErrNoNode) {
				continue
			}
			if err != nil {
				return fmt.Errorf("consumer %d: get %s: %w", who, p, err)
			}
			err = cl.Delete(p, -1)
			if errors.Is(err, zk.ErrNoNode) {
				continue // another consumer took it
			}
			if err != nil {
				return fmt.Errorf("consumer %d: delete %s: %w", who, p, err)
			}
			item := string(data)
			producer, seq, _ := strings.Cut(item, "-")
			if prev, ok := last[producer]; ok && seq <= prev {
				return fmt.Errorf("consumer %d took %s after %s-%s", who, item, producer, prev)
			}
			last[producer] = seq
			mu.Lock()
			other, dup := consumed[item]
			consumed[item] = who
			mu.Unlock()
			if dup {
				return fmt.Errorf("item %s consumed by %d and %d", item, other, who)
			}
			if int(taken.Add(1)) == total {
				close(done)
				return nil
			}
		}
		select {
		case <-ch:
		case <-done:
			return nil
		case <-time.After(3 * zkWait):
			return fmt.Errorf("consumer %d: queue idle with %d of %d items taken", who, taken.Load(), total)
		}
	}
}
