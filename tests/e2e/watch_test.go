package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"ensemble/tests/framework"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// seenEvent is one event as a watcher saw it.
type seenEvent struct {
	rev  int64
	typ  mvccpb.Event_EventType
	key  string
	val  string
	resp int // which response of the watcher carried it
}

func (e seenEvent) String() string { return fmt.Sprintf("%d %s %s=%s", e.rev, e.typ, e.key, e.val) }

// guardedWatcher follows one range through one member at a time and, when
// told that its member died, resumes on the next member from the revision
// after the last event it saw.
type guardedWatcher struct {
	key, end string
	member   int
	switchc  chan int // the index of a member that died
	evs      []seenEvent
	err      error
}

const sentinelKey = "g/0/~end"

func (w *guardedWatcher) run(ctx context.Context, clis []*clientv3.Client, from int64, dead func(int) bool) {
	next := from
	resp := 0
	for {
		wctx, cancel := context.WithCancel(ctx)
		opts := []clientv3.OpOption{clientv3.WithRev(next)}
		if w.end != "" {
			opts = append(opts, clientv3.WithRange(w.end))
		}
		wch := clis[w.member].Watch(wctx, w.key, opts...)
	stream:
		for {
			select {
			case <-ctx.Done():
				cancel()
				w.err = fmt.Errorf("watcher %s on member %d: no sentinel before the test deadline (at revision %d)", w.key, w.member, next)
				return
			case m := <-w.switchc:
				if m == w.member {
					for dead(w.member) {
						w.member = (w.member + 1) % len(clis)
					}
					break stream
				}
			case r, ok := <-wch:
				if !ok {
					break stream // resume where we were
				}
				if err := r.Err(); err != nil {
					cancel()
					w.err = fmt.Errorf("watcher %s: %w", w.key, err)
					return
				}
				resp++
				for _, ev := range r.Events {
					w.evs = append(w.evs, seenEvent{rev: ev.Kv.ModRevision, typ: ev.Type, key: string(ev.Kv.Key), val: string(ev.Kv.Value), resp: resp})
					next = ev.Kv.ModRevision + 1
					if string(ev.Kv.Key) == sentinelKey {
						cancel()
						return
					}
				}
			}
		}
		cancel()
	}
}

// TestWatchGuaranteesAcrossLeaderKill runs writers against three processes,
// SIGKILLs the leader once, and checks every watcher's stream against the
// store's history: ordered by revision, no duplicate, no gap, and exactly
// the events of its range, including after resuming on another member.
func TestWatchGuaranteesAcrossLeaderKill(t *testing.T) {
	spec := readmeRecipe(t, t.TempDir())
	c := framework.StartProcesses(t, binary, spec)
	lead := c.Leader(t)
	clis := make([]*clientv3.Client, 3)
	for i := range clis {
		clis[i] = framework.NewClient(t, spec.Members[i].ClientURL)
	}
	all := framework.NewClient(t, spec.Endpoints()...)
	start, err := all.Put(framework.Ctx(t), "g/start", "")
	if err != nil {
		t.Fatal(err)
	}
	from := start.Header.Revision

	var deadMu sync.Mutex
	deadSet := map[int]bool{}
	dead := func(i int) bool { deadMu.Lock(); defer deadMu.Unlock(); return deadSet[i] }

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var watchers []*guardedWatcher
	for m := range 3 {
		watchers = append(watchers,
			&guardedWatcher{key: "g/", end: "g0", member: m, switchc: make(chan int, 1)},
			&guardedWatcher{key: "g/0/", end: "g/00", member: m, switchc: make(chan int, 1)},
		)
	}
	var wwg sync.WaitGroup
	for _, w := range watchers {
		wwg.Add(1)
		go func() { defer wwg.Done(); w.run(ctx, clis, from, dead) }()
	}

	// Writers: puts, deletes, and two-key transactions (one revision, two
	// events), through every member.
	wctx, stopWriters := context.WithCancel(ctx)
	defer stopWriters()
	var acked sync.Map
	var writers sync.WaitGroup
	for wr := range 2 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for n := 0; wctx.Err() == nil; n++ {
				k := fmt.Sprintf("g/%d/%02d", wr, n%40)
				pctx, pcancel := context.WithTimeout(wctx, 2*time.Second)
				var err error
				switch {
				case n%7 == 6:
					_, err = all.Delete(pctx, k)
				case n%11 == 10:
					_, err = all.Txn(pctx).Then(
						clientv3.OpPut(fmt.Sprintf("g/%d/a", wr), fmt.Sprint(n)),
						clientv3.OpPut(fmt.Sprintf("g/%d/b", wr), fmt.Sprint(n)),
					).Commit()
				default:
					_, err = all.Put(pctx, k, fmt.Sprint(n))
				}
				pcancel()
				if err == nil {
					acked.Store(fmt.Sprint(wr, n), true)
				}
			}
		}()
	}
	waitAcked := func(n int) {
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			k := 0
			acked.Range(func(any, any) bool { k++; return true })
			if k >= n {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("writers did not reach %d acknowledged writes", n)
	}
	waitAcked(300)
	c.Kill(lead)
	deadMu.Lock()
	deadSet[lead] = true
	deadMu.Unlock()
	for _, w := range watchers {
		w.switchc <- lead
	}
	c.Leader(t)
	waitAcked(700)
	stopWriters()
	writers.Wait()

	live := (lead + 1) % 3
	end, err := clis[live].Put(framework.Ctx(t), sentinelKey, "")
	if err != nil {
		t.Fatal(err)
	}
	wwg.Wait()
	for _, w := range watchers {
		if w.err != nil {
			t.Fatal(w.err)
		}
	}

	// The store's history for "g/": every revision from the start to the
	// sentinel writes under g/, so it must appear, in order, with no gap.
	oracle := &guardedWatcher{key: "g/", end: "g0", member: live}
	octx, ocancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer ocancel()
	oracle.run(octx, clis, from, dead)
	if oracle.err != nil {
		t.Fatal(oracle.err)
	}
	want := from
	for _, ev := range oracle.evs {
		if ev.rev == want+1 {
			want++
		} else if ev.rev != want {
			t.Fatalf("history from a fresh watch jumps from %d to %d", want, ev.rev)
		}
	}
	if want != end.Header.Revision {
		t.Fatalf("history ends at %d, sentinel at %d", want, end.Header.Revision)
	}
	// And it replays into what a read at the sentinel's revision returns.
	state := map[string]string{}
	for _, ev := range oracle.evs {
		if ev.typ == mvccpb.DELETE {
			delete(state, ev.key)
		} else {
			state[ev.key] = ev.val
		}
	}
	got, err := clis[live].Get(framework.Ctx(t), "g/", clientv3.WithPrefix(), clientv3.WithRev(end.Header.Revision))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Kvs) != len(state) {
		t.Fatalf("replayed history has %d keys, a read at %d has %d", len(state), end.Header.Revision, len(got.Kvs))
	}
	for _, kv := range got.Kvs {
		if v, ok := state[string(kv.Key)]; !ok || v != string(kv.Value) {
			t.Fatalf("replayed history has %s=%q, a read has %q", kv.Key, v, kv.Value)
		}
	}

	for i, w := range watchers {
		var exp []string
		for _, ev := range oracle.evs {
			if ev.key >= w.key && ev.key < w.end {
				exp = append(exp, ev.String())
			}
		}
		var have []string
		seen := map[string]bool{}
		for j, ev := range w.evs {
			if j > 0 && ev.rev < w.evs[j-1].rev {
				t.Fatalf("watcher %d: revision %d after %d", i, ev.rev, w.evs[j-1].rev)
			}
			if j > 0 && ev.rev == w.evs[j-1].rev && ev.resp != w.evs[j-1].resp {
				t.Fatalf("watcher %d: revision %d split over two responses", i, ev.rev)
			}
			id := fmt.Sprint(ev.rev, ev.key)
			if seen[id] {
				t.Fatalf("watcher %d: duplicate event %s", i, ev)
			}
			seen[id] = true
			have = append(have, ev.String())
		}
		if a, b := strings.Join(have, "\n"), strings.Join(exp, "\n"); a != b {
			t.Fatalf("watcher %d (%s on member %d) saw %d events, history has %d", i, w.key, w.member, len(have), len(exp))
		}
	}
	t.Logf("%d watchers checked against %d revisions of history across a leader SIGKILL", len(watchers), end.Header.Revision-from)
}
