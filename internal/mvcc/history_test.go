package mvcc

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"ensemble/internal/backend"
	"ensemble/internal/types"
)

// recorder is an Observer that keeps what it is told.
type recorder struct {
	mu   sync.Mutex
	revs []int64
	evs  [][]string
}

func (r *recorder) Notify(rev int64, changes []mvccpb.KeyValue) {
	var s []string
	for _, kv := range changes {
		s = append(s, describeKV(kv))
	}
	r.mu.Lock()
	r.revs = append(r.revs, rev)
	r.evs = append(r.evs, s)
	r.mu.Unlock()
}

func describeKV(kv mvccpb.KeyValue) string {
	if kv.CreateRevision == 0 {
		return fmt.Sprintf("del %s@%d", kv.Key, kv.ModRevision)
	}
	return fmt.Sprintf("put %s=%s@%d", kv.Key, kv.Value, kv.ModRevision)
}

func describeEvents(evs []mvccpb.Event) []string {
	var s []string
	for _, ev := range evs {
		if ev.Type == mvccpb.DELETE {
			if ev.Kv.CreateRevision != 0 || ev.Kv.Value != nil {
				s = append(s, "bad delete")
			}
		}
		s = append(s, describeKV(*ev.Kv))
	}
	return s
}

func TestObserverGetsEachRevisionOnce(t *testing.T) {
	e := newEnv(t, backend.Options{})
	rec := &recorder{}
	e.s.SetObserver(rec)
	r1 := e.put("a", "1")
	e.index++
	w := e.s.Write(e.index, 1)
	w.Put([]byte("b"), []byte("2"), types.NoLease)
	w.Put([]byte("c"), []byte("3"), types.NoLease)
	w.End()
	r2 := w.Rev()
	// A write that changes nothing is no revision and no notification.
	e.del("zzz", "")
	r3 := e.del("a", "c")
	if r1 != 2 || r2 != 3 || r3 != 4 {
		t.Fatalf("revisions %d %d %d", r1, r2, r3)
	}
	want := fmt.Sprint([][]string{{"put a=1@2"}, {"put b=2@3", "put c=3@3"}, {"del a@4", "del b@4"}})
	if got := fmt.Sprint(rec.evs); got != want || fmt.Sprint(rec.revs) != "[2 3 4]" {
		t.Fatalf("notified %v %s, want [2 3 4] %s", rec.revs, got, want)
	}
	e.s.SetObserver(nil)
	e.put("a", "x")
	if len(rec.revs) != 3 {
		t.Fatalf("notified after SetObserver(nil)")
	}
}

func TestHistoryMatchesWritesAcrossCommits(t *testing.T) {
	// A long batch interval keeps recent revisions pending (uncommitted), so
	// History must merge both sources.
	e := newEnv(t, backend.Options{BatchInterval: time.Hour, BatchLimit: 1 << 30})
	rec := &recorder{}
	e.s.SetObserver(rec)
	for i := range 30 {
		k := fmt.Sprintf("k%d", i%4)
		switch {
		case i%7 == 6:
			e.del(k, "")
		case i%11 == 10:
			e.del("k", "l")
		default:
			e.put(k, fmt.Sprint(i))
		}
		if i%10 == 3 {
			e.s.Commit()
		}
	}
	cur := e.s.Rev()
	var all []string
	for _, evs := range rec.evs {
		all = append(all, evs...)
	}
	evs, next, err := e.s.History([]byte("k"), []byte("l"), 1, cur, 0)
	if err != nil || next != cur+1 {
		t.Fatalf("History = next %d, %v; want %d", next, err, cur+1)
	}
	if got := describeEvents(evs); fmt.Sprint(got) != fmt.Sprint(all) {
		t.Fatalf("History\n%v\nwant\n%v", got, all)
	}

	// One key only.
	var k1 []string
	for _, s := range all {
		if len(s) > 6 && s[4:6] == "k1" {
			k1 = append(k1, s)
		}
	}
	evs, _, err = e.s.History([]byte("k1"), nil, 1, cur, 0)
	if err != nil || fmt.Sprint(describeEvents(evs)) != fmt.Sprint(k1) {
		t.Fatalf("History(k1) = %v %v, want %v", describeEvents(evs), err, k1)
	}

	// In small steps: every revision whole, nothing twice, nothing lost.
	var stepped []string
	for from := int64(1); from <= cur; {
		evs, next, err := e.s.History([]byte{0}, []byte{0}, from, cur, 1)
		if err != nil {
			t.Fatal(err)
		}
		if next <= from {
			t.Fatalf("History from %d made no progress", from)
		}
		for i := 1; i < len(evs); i++ {
			if evs[i].Kv.ModRevision != evs[0].Kv.ModRevision {
				t.Fatalf("one step of one change spans revisions %d and %d", evs[0].Kv.ModRevision, evs[i].Kv.ModRevision)
			}
		}
		stepped = append(stepped, describeEvents(evs)...)
		from = next
	}
	if fmt.Sprint(stepped) != fmt.Sprint(all) {
		t.Fatalf("stepped History\n%v\nwant\n%v", stepped, all)
	}
}

func TestHistoryBounds(t *testing.T) {
	e := newEnv(t, backend.Options{})
	for i := range 10 {
		e.put("a", fmt.Sprint(i))
	}
	cur := e.s.Rev()
	if _, _, err := e.s.History([]byte("a"), nil, 1, cur+1, 0); !errors.Is(err, ErrFutureRev) {
		t.Fatalf("History past the current revision: %v", err)
	}
	if evs, next, err := e.s.History([]byte("a"), nil, cur+1, cur, 0); err != nil || len(evs) != 0 || next != cur+1 {
		t.Fatalf("empty window: %v %d %v", evs, next, err)
	}
	e.index++
	if _, err := e.s.Compact(e.index, 1, 5); err != nil {
		t.Fatal(err)
	}
	for _, from := range []int64{1, 4} {
		if _, _, err := e.s.History([]byte("a"), nil, from, cur, 0); !errors.Is(err, ErrCompacted) {
			t.Fatalf("History from %d after compaction at 5: %v", from, err)
		}
	}
	// From the compaction revision itself is allowed, as etcd allows a watch
	// there: what the compaction kept of that revision is returned.
	if evs, _, err := e.s.History([]byte("a"), nil, 5, cur, 0); err != nil || len(evs) == 0 || evs[0].Kv.ModRevision != 5 {
		t.Fatalf("History from the compaction revision: %v, %v", evs, err)
	}
	evs, next, err := e.s.History([]byte("a"), nil, 6, cur, 0)
	if err != nil || next != cur+1 || len(evs) != int(cur-5) || evs[0].Kv.ModRevision != 6 {
		t.Fatalf("History from 6: %d events, next %d, %v", len(evs), next, err)
	}
}
