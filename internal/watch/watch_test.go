package watch

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"ensemble/internal/backend"
	"ensemble/internal/mvcc"
	"ensemble/internal/types"
)

type env struct {
	t     *testing.T
	b     *backend.Backend
	s     *mvcc.Store
	h     *Hub
	index uint64
}

func openStore(t *testing.T) (*backend.Backend, *mvcc.Store) {
	t.Helper()
	b, err := backend.Open(backend.Options{Path: filepath.Join(t.TempDir(), "db"), MmapSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	s, err := mvcc.Open(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		b.Close()
	})
	return b, s
}

func newEnv(t *testing.T, o Options) *env {
	t.Helper()
	b, s := openStore(t)
	e := &env{t: t, b: b, s: s}
	e.h = New(s, o)
	s.SetObserver(e.h)
	t.Cleanup(e.h.Close)
	return e
}

func (e *env) put(k, v string) int64 {
	e.index++
	w := e.s.Write(e.index, 1)
	w.Put([]byte(k), []byte(v), types.NoLease)
	w.End()
	return w.Rev()
}

func (e *env) putMany(kvs ...string) int64 {
	e.index++
	w := e.s.Write(e.index, 1)
	for i := 0; i < len(kvs); i += 2 {
		w.Put([]byte(kvs[i]), []byte(kvs[i+1]), types.NoLease)
	}
	w.End()
	return w.Rev()
}

func (e *env) del(k, end string) int64 {
	e.index++
	w := e.s.Write(e.index, 1)
	var ek []byte
	if end != "" {
		ek = []byte(end)
	}
	w.DeleteRange([]byte(k), ek)
	w.End()
	return w.Rev()
}

// client reads one stream's responses.
type client struct {
	t    *testing.T
	s    *Stream
	out  chan *pb.WatchResponse
	gate chan struct{} // when non-nil, each send waits for a token
	err  chan error
}

func (e *env) open() *client { return e.openGated(nil) }

func (e *env) openGated(gate chan struct{}) *client {
	c := &client{t: e.t, s: e.h.NewStream(), out: make(chan *pb.WatchResponse, 1<<16), gate: gate, err: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		c.err <- c.s.Run(ctx, func(r *pb.WatchResponse) error {
			if c.gate != nil {
				select {
				case <-c.gate:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			c.out <- r
			return nil
		})
	}()
	e.t.Cleanup(func() {
		cancel()
		c.s.Close()
		<-c.err
	})
	return c
}

func (c *client) next() *pb.WatchResponse {
	c.t.Helper()
	select {
	case r := <-c.out:
		return r
	case <-time.After(10 * time.Second):
		c.t.Fatal("no watch response within 10s")
		return nil
	}
}

func (c *client) create(r CreateRequest) int64 {
	c.t.Helper()
	id, err := c.s.Create(r)
	if err != nil {
		c.t.Fatal(err)
	}
	resp := c.next()
	if !resp.Created || resp.WatchId != id {
		c.t.Fatalf("first response %v, want created %d", resp, id)
	}
	return id
}

// events reads responses until n events arrived (skipping progress), and
// checks that each revision came in one response.
func (c *client) events(n int) []*mvccpb.Event {
	c.t.Helper()
	var evs []*mvccpb.Event
	for len(evs) < n {
		r := c.next()
		if r.Canceled {
			c.t.Fatalf("canceled after %d of %d events: %v", len(evs), n, r)
		}
		if len(r.Events) > 0 && len(evs) > 0 && !r.Fragment && evs[len(evs)-1].Kv.ModRevision == r.Events[0].Kv.ModRevision {
			c.t.Fatalf("revision %d split over two responses", r.Events[0].Kv.ModRevision)
		}
		evs = append(evs, r.Events...)
	}
	return evs
}

func str(evs []*mvccpb.Event) []string {
	var out []string
	for _, ev := range evs {
		s := fmt.Sprintf("%s %s@%d", ev.Type, ev.Kv.Key, ev.Kv.ModRevision)
		if ev.Type == mvccpb.PUT {
			s += "=" + string(ev.Kv.Value)
		}
		if ev.PrevKv != nil {
			s += fmt.Sprintf(" prev=%s@%d", ev.PrevKv.Value, ev.PrevKv.ModRevision)
		}
		out = append(out, s)
	}
	return out
}

// oracle is the store's own history of a range, as events.
func (e *env) oracle(key, end []byte, from int64) []*mvccpb.Event {
	e.t.Helper()
	evs, _, err := e.s.History(key, end, from, e.s.Rev(), 0)
	if err != nil {
		e.t.Fatal(err)
	}
	out := make([]*mvccpb.Event, len(evs))
	for i := range evs {
		out[i] = &evs[i]
	}
	return out
}

func TestLiveKeyRangePrefixFromKey(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.open()
	key := c.create(CreateRequest{Key: []byte("a")})
	rng := c.create(CreateRequest{Key: []byte("a"), End: []byte("c")})
	from := c.create(CreateRequest{Key: []byte("b"), End: []byte{0}})
	e.put("a", "1")
	e.put("b", "2")
	e.put("ab", "3")
	e.put("z", "4")
	e.del("a", "")
	got := map[int64][]string{}
	for n := 0; n < 2+4+2; {
		r := c.next()
		got[r.WatchId] = append(got[r.WatchId], str(r.Events)...)
		n += len(r.Events)
	}
	want := map[int64]string{
		key:  "[PUT a@2=1 DELETE a@6]",
		rng:  "[PUT a@2=1 PUT b@3=2 PUT ab@4=3 DELETE a@6]",
		from: "[PUT b@3=2 PUT z@5=4]",
	}
	for id, w := range want {
		if fmt.Sprint(got[id]) != w {
			t.Errorf("watch %d got %v, want %s", id, got[id], w)
		}
	}
}

func TestTxnEventsInOneResponse(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.open()
	c.create(CreateRequest{Key: []byte("t/"), End: []byte("t0")})
	rev := e.putMany("t/1", "a", "t/2", "b", "x", "c", "t/3", "d")
	r := c.next()
	if len(r.Events) != 3 || r.Header.Revision != rev {
		t.Fatalf("txn response %v, want 3 events at %d", str(r.Events), rev)
	}
}

func TestFiltersAndPrevKV(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.open()
	noPut := c.create(CreateRequest{Key: []byte("k"), NoPut: true})
	noDel := c.create(CreateRequest{Key: []byte("k"), NoDelete: true, PrevKV: true})
	e.put("k", "1")
	e.put("k", "2")
	e.del("k", "")
	got := map[int64][]string{}
	for n := 0; n < 3; {
		r := c.next()
		got[r.WatchId] = append(got[r.WatchId], str(r.Events)...)
		n += len(r.Events)
	}
	if fmt.Sprint(got[noPut]) != "[DELETE k@4]" {
		t.Errorf("NOPUT watch got %v", got[noPut])
	}
	if fmt.Sprint(got[noDel]) != "[PUT k@2=1 PUT k@3=2 prev=1@2]" {
		t.Errorf("NODELETE+prev_kv watch got %v", got[noDel])
	}
	// prev_kv on a deletion, from history.
	c2 := e.open()
	c2.create(CreateRequest{Key: []byte("k"), PrevKV: true, StartRevision: 4})
	if got := str(c2.events(1)); fmt.Sprint(got) != "[DELETE k@4 prev=2@3]" {
		t.Errorf("history with prev_kv: %v", got)
	}
}

// TestCatchUpWhileWriting starts watchers in the past while a writer runs:
// each must see exactly the store's history from its start, in order.
func TestCatchUpWhileWriting(t *testing.T) {
	for _, ring := range []int{1, DefaultRingRevisions} {
		t.Run(fmt.Sprintf("ring=%d", ring), func(t *testing.T) {
			e := newEnv(t, Options{RingRevisions: ring})
			for i := range 200 {
				e.put(fmt.Sprintf("p/%d", i%7), fmt.Sprint(i))
			}
			done := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-done:
						return
					default:
					}
					if i%5 == 4 {
						e.del(fmt.Sprintf("p/%d", i%7), "")
					} else {
						e.put(fmt.Sprintf("p/%d", i%7), fmt.Sprint(i))
					}
					if i == 2000 {
						return
					}
				}
			}()
			c := e.open()
			starts := []int64{2, 50, 150, 0}
			ids := make([]int64, len(starts))
			for i, st := range starts {
				id, err := c.s.Create(CreateRequest{Key: []byte("p/"), End: []byte("p0"), StartRevision: st})
				if err != nil {
					t.Fatal(err)
				}
				ids[i] = id
			}
			wg.Wait()
			close(done)
			final := e.s.Rev()
			got := map[int64][]*mvccpb.Event{}
			lastRev := map[int64]int64{}
			for {
				complete := true
				for _, id := range ids {
					if lastRev[id] < final {
						complete = false
					}
				}
				if complete {
					break
				}
				r := c.next()
				if r.Created {
					if len(got[r.WatchId]) > 0 {
						t.Fatalf("watch %d: created after events", r.WatchId)
					}
					continue
				}
				for _, ev := range r.Events {
					if ev.Kv.ModRevision < lastRev[r.WatchId] || ev.Kv.ModRevision == lastRev[r.WatchId] && len(got[r.WatchId]) > 0 && got[r.WatchId][len(got[r.WatchId])-1].Kv.ModRevision != ev.Kv.ModRevision {
						t.Fatalf("watch %d: revision %d after %d", r.WatchId, ev.Kv.ModRevision, lastRev[r.WatchId])
					}
					lastRev[r.WatchId] = ev.Kv.ModRevision
				}
				got[r.WatchId] = append(got[r.WatchId], r.Events...)
			}
			for i, id := range ids {
				if starts[i] == 0 {
					// Started live: its first event is wherever it joined.
					evs := got[id]
					want := e.oracle([]byte("p/"), []byte("p0"), evs[0].Kv.ModRevision)
					if fmt.Sprint(str(evs)) != fmt.Sprint(str(want)) {
						t.Fatalf("live watch: %d events, want %d", len(evs), len(want))
					}
					continue
				}
				want := e.oracle([]byte("p/"), []byte("p0"), starts[i])
				if a, b := str(got[id]), str(want); fmt.Sprint(a) != fmt.Sprint(b) {
					t.Fatalf("watch from %d: %d events, want %d", starts[i], len(a), len(b))
				}
			}
		})
	}
}

// TestSlowConsumerNeverBlocksWrites stalls a stream completely: writes go on,
// and once the stream drains it has every event exactly once.
func TestSlowConsumerNeverBlocksWrites(t *testing.T) {
	e := newEnv(t, Options{QueueLimit: 2, RingRevisions: 8})
	gate := make(chan struct{}, 1)
	c := e.openGated(gate)
	gate <- struct{}{}
	c.create(CreateRequest{Key: []byte("s")})
	for i := range 300 {
		e.put("s", fmt.Sprint(i)) // would hang here if the fan-out blocked
	}
	close(gate)
	evs := c.events(300)
	for i, ev := range evs {
		if string(ev.Kv.Value) != fmt.Sprint(i) || ev.Kv.ModRevision != int64(i+2) {
			t.Fatalf("event %d = %v", i, str(evs[i:i+1]))
		}
	}
}

// TestCompactedWhileBehind cancels a stalled watcher whose history was
// compacted before it caught up, with the compaction revision.
func TestCompactedWhileBehind(t *testing.T) {
	e := newEnv(t, Options{QueueLimit: 1, RingRevisions: 2})
	gate := make(chan struct{}, 1)
	c := e.openGated(gate)
	gate <- struct{}{}
	id := c.create(CreateRequest{Key: []byte("c")})
	for i := range 50 {
		e.put("c", fmt.Sprint(i))
	}
	e.index++
	if _, err := e.s.Compact(e.index, 1, 40); err != nil {
		t.Fatal(err)
	}
	last := e.s.Rev()
	close(gate)
	// What was queued before it fell behind still comes; then the
	// cancellation. Only if its catch-up had stopped exactly at the
	// compaction revision may it go on instead, as etcd allows a watch to
	// start there: then every event up to the last one, without a gap.
	var prev int64
	for {
		r := c.next()
		if r.Canceled {
			if r.WatchId != id || r.CompactRevision != 40 {
				t.Fatalf("cancellation %v, want watch %d compact revision 40", r, id)
			}
			break
		}
		if len(r.Events) == 0 {
			t.Fatalf("unexpected %v", r)
		}
		for _, ev := range r.Events {
			if rev := ev.Kv.ModRevision; prev != 0 && rev != prev+1 {
				t.Fatalf("revision %d after %d: a gap or a duplicate without a cancellation", rev, prev)
			}
			prev = ev.Kv.ModRevision
		}
		if prev == last {
			if prev < 40 {
				t.Fatalf("all events delivered although the watcher was behind the compaction")
			}
			break
		}
	}
}

func TestStartBelowCompaction(t *testing.T) {
	e := newEnv(t, Options{})
	for i := range 10 {
		e.put("x", fmt.Sprint(i))
	}
	e.index++
	if _, err := e.s.Compact(e.index, 1, 5); err != nil {
		t.Fatal(err)
	}
	c := e.open()
	for _, start := range []int64{3, 4} {
		id := c.create(CreateRequest{Key: []byte("x"), StartRevision: start})
		r := c.next()
		if !r.Canceled || r.WatchId != id || r.CompactRevision != 5 {
			t.Fatalf("start %d: %v, want canceled with compact revision 5", start, r)
		}
	}
	// A client told the compact revision restarts from it, as etcd allows.
	c.create(CreateRequest{Key: []byte("x"), StartRevision: 5})
	if evs := c.events(7); evs[0].Kv.ModRevision != 5 || evs[6].Kv.ModRevision != 11 {
		t.Fatalf("from 5: %v", str(evs))
	}
}

func TestIDsAndCancel(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.open()
	if id := c.create(CreateRequest{Key: []byte("a"), WatchID: 7}); id != 7 {
		t.Fatalf("chosen id %d", id)
	}
	if _, err := c.s.Create(CreateRequest{Key: []byte("a"), WatchID: 7}); !errors.Is(err, ErrDuplicateID) {
		t.Fatalf("duplicate id: %v", err)
	}
	if _, err := c.s.Create(CreateRequest{Key: []byte("b"), End: []byte("a")}); !errors.Is(err, ErrEmptyRange) {
		t.Fatalf("empty range: %v", err)
	}
	a := c.create(CreateRequest{Key: []byte("a")})
	b := c.create(CreateRequest{Key: []byte("a")})
	if a != 0 || b != 1 {
		t.Fatalf("server-assigned ids %d %d, want 0 1", a, b)
	}
	if err := c.s.Cancel(a); err != nil {
		t.Fatal(err)
	}
	if r := c.next(); !r.Canceled || r.WatchId != a {
		t.Fatalf("cancel response %v", r)
	}
	if err := c.s.Cancel(a); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second cancel: %v", err)
	}
	e.put("a", "v")
	seen := map[int64]bool{}
	for len(seen) < 2 {
		r := c.next()
		seen[r.WatchId] = true
	}
	if seen[a] || !seen[b] || !seen[7] {
		t.Fatalf("events went to %v", seen)
	}
}

func TestRequestProgress(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.open()
	c.create(CreateRequest{Key: []byte("a")})
	rev := e.put("b", "1")
	c.s.RequestProgress()
	r := c.next()
	if r.WatchId != -1 || len(r.Events) != 0 || r.Header.Revision != rev {
		t.Fatalf("progress %v, want id -1 at %d", r, rev)
	}

	// While a watch catches up, the answer waits: it must not claim a
	// revision whose events are not sent yet.
	gate := make(chan struct{}, 1)
	c2 := e.openGated(gate)
	for i := range 20 {
		e.put("a", fmt.Sprint(i))
	}
	gate <- struct{}{}
	c2.s.Create(CreateRequest{Key: []byte("a"), StartRevision: 2})
	c2.s.RequestProgress()
	close(gate)
	<-c2.out // created
	n := 0
	for {
		r := c2.next()
		if r.WatchId == -1 {
			if n != 20 || r.Header.Revision != e.s.Rev() {
				t.Fatalf("progress at %d after %d events", r.Header.Revision, n)
			}
			break
		}
		n += len(r.Events)
	}
}

func TestProgressNotify(t *testing.T) {
	e := newEnv(t, Options{ProgressInterval: 20 * time.Millisecond})
	c := e.open()
	id := c.create(CreateRequest{Key: []byte("a"), ProgressNotify: true})
	c.create(CreateRequest{Key: []byte("b")})
	rev := e.put("z", "1")
	for {
		r := c.next()
		if r.WatchId == id && len(r.Events) == 0 && r.Header.Revision == rev {
			return
		}
		if r.WatchId != id {
			t.Fatalf("progress for a watch that did not ask: %v", r)
		}
	}
}

func TestFragment(t *testing.T) {
	e := newEnv(t, Options{MaxResponseBytes: 1000})
	c := e.open()
	frag := c.create(CreateRequest{Key: []byte("f/"), End: []byte("f0"), Fragment: true})
	whole := c.create(CreateRequest{Key: []byte("f/"), End: []byte("f0")})
	var kvs []string
	for i := range 20 {
		kvs = append(kvs, fmt.Sprintf("f/%02d", i), string(make([]byte, 200)))
	}
	e.putMany(kvs...)
	var fragments, wholes int
	var got []*mvccpb.Event
	for fragments == 0 || got == nil || len(got) < 20 || wholes == 0 {
		r := c.next()
		switch r.WatchId {
		case frag:
			if r.Size() > 1000 {
				t.Fatalf("fragment of %d bytes", r.Size())
			}
			fragments++
			got = append(got, r.Events...)
			if !r.Fragment && len(got) != 20 {
				t.Fatalf("last fragment after %d events", len(got))
			}
		case whole:
			wholes++
			if len(r.Events) != 20 || r.Fragment {
				t.Fatalf("unfragmented watch got %d events", len(r.Events))
			}
		}
	}
	if fragments < 5 {
		t.Fatalf("%d fragments", fragments)
	}
}

// TestResetToNewStore replaces the store under live and stalled watchers, as
// installing a leader's snapshot does.
func TestResetToNewStore(t *testing.T) {
	e := newEnv(t, Options{})
	c := e.open()
	c.create(CreateRequest{Key: []byte("r")})
	e.put("r", "old")
	c.events(1)

	// The new store has the same first revisions and more.
	_, s2 := openStore(t)
	e2 := &env{t: t, s: s2}
	e2.put("r", "old")
	for i := range 5 {
		e2.put("r", fmt.Sprint(i))
	}
	e.h.Reset(s2)
	s2.SetObserver(e.h)
	e.s = s2
	e.index = e2.index
	e.put("r", "new")
	evs := c.events(6)
	if got := fmt.Sprint(str(evs)); got != "[PUT r@3=0 PUT r@4=1 PUT r@5=2 PUT r@6=3 PUT r@7=4 PUT r@8=new]" {
		t.Fatalf("after reset: %s", got)
	}
}
