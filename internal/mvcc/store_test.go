package mvcc

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"ensemble/internal/backend"
	"ensemble/internal/types"
)

type testEnv struct {
	t    testing.TB
	path string
	opts backend.Options
	b    *backend.Backend
	s    *Store
	// index numbers the raft entries the test writes.
	index uint64
}

func newEnv(t testing.TB, o backend.Options) *testEnv {
	t.Helper()
	o.Path = filepath.Join(t.TempDir(), "db")
	if o.MmapSize == 0 {
		o.MmapSize = 1 << 20
	}
	e := &testEnv{t: t, path: o.Path, opts: o}
	e.open()
	t.Cleanup(e.close)
	return e
}

func (e *testEnv) open() {
	e.t.Helper()
	b, err := backend.Open(e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	s, err := Open(b, nil)
	if err != nil {
		b.Close()
		e.t.Fatal(err)
	}
	e.b, e.s = b, s
}

func (e *testEnv) close() {
	if e.s == nil {
		return
	}
	e.s.Close()
	if err := e.b.Close(); err != nil {
		e.t.Error(err)
	}
	e.s, e.b = nil, nil
}

func (e *testEnv) reopen() {
	e.t.Helper()
	e.close()
	e.open()
}

func (e *testEnv) put(k, v string) int64 {
	e.index++
	w := e.s.Write(e.index, 1)
	w.Put([]byte(k), []byte(v), types.NoLease)
	w.End()
	return w.Rev()
}

func (e *testEnv) del(k, end string) int64 {
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

func (e *testEnv) get(k string, at int64) (mvccpb.KeyValue, bool) {
	e.t.Helper()
	r, err := e.s.Range([]byte(k), nil, RangeOptions{Rev: at})
	if err != nil {
		e.t.Fatal(err)
	}
	if len(r.KVs) == 0 {
		return mvccpb.KeyValue{}, false
	}
	return r.KVs[0], true
}

func keysOf(r *RangeResult) []string {
	var ks []string
	for _, kv := range r.KVs {
		ks = append(ks, string(kv.Key))
	}
	return ks
}

func TestPutVersionsAcrossDeleteAndRecreate(t *testing.T) {
	e := newEnv(t, backend.Options{})
	if e.s.Rev() != 1 {
		t.Fatalf("empty store rev %d", e.s.Rev())
	}
	want := []struct {
		rev, create, ver int64
		val              string
	}{}
	r := e.put("a", "1")
	want = append(want, struct {
		rev, create, ver int64
		val              string
	}{r, 2, 1, "1"})
	r = e.put("a", "2")
	want = append(want, struct {
		rev, create, ver int64
		val              string
	}{r, 2, 2, "2"})
	if r != 3 {
		t.Fatalf("rev %d", r)
	}
	delRev := e.del("a", "")
	if delRev != 4 {
		t.Fatalf("delete rev %d", delRev)
	}
	if _, ok := e.get("a", 0); ok {
		t.Fatal("deleted key visible")
	}
	r = e.put("a", "3")
	want = append(want, struct {
		rev, create, ver int64
		val              string
	}{r, 5, 1, "3"})

	for _, w := range want {
		kv, ok := e.get("a", w.rev)
		if !ok || kv.ModRevision != w.rev || kv.CreateRevision != w.create || kv.Version != w.ver || string(kv.Value) != w.val {
			t.Errorf("at %d: got %+v ok=%v, want %+v", w.rev, kv, ok, w)
		}
	}
	if _, ok := e.get("a", 4); ok {
		t.Error("key visible at its deletion revision")
	}
	if _, ok := e.get("a", 1); ok {
		t.Error("key visible before creation")
	}
	if _, err := e.s.Range([]byte("a"), nil, RangeOptions{Rev: 6}); !errors.Is(err, ErrFutureRev) {
		t.Errorf("future read: %v", err)
	}
}

func TestLeaseStored(t *testing.T) {
	e := newEnv(t, backend.Options{})
	w := e.s.Write(1, 1)
	w.Put([]byte("k"), []byte("v"), types.LeaseID(42))
	w.End()
	kv, _ := e.get("k", 0)
	if kv.Lease != 42 {
		t.Fatalf("lease %d", kv.Lease)
	}
}

func TestRangeOptions(t *testing.T) {
	e := newEnv(t, backend.Options{})
	for _, k := range []string{"a", "b", "c", "d"} {
		e.put(k, "v"+k)
	}
	cases := []struct {
		name       string
		key, end   []byte
		o          RangeOptions
		keys       []string
		count      int
		valuesNone bool
	}{
		{"single", []byte("b"), nil, RangeOptions{}, []string{"b"}, 1, false},
		{"missing", []byte("bb"), nil, RangeOptions{}, nil, 0, false},
		{"range", []byte("b"), []byte("d"), RangeOptions{}, []string{"b", "c"}, 2, false},
		{"from key", []byte("b"), []byte{0}, RangeOptions{}, []string{"b", "c", "d"}, 3, false},
		{"all", []byte{0}, []byte{0}, RangeOptions{}, []string{"a", "b", "c", "d"}, 4, false},
		{"limit", []byte("a"), []byte{0}, RangeOptions{Limit: 2}, []string{"a", "b"}, 4, false},
		{"count only", []byte("a"), []byte("z"), RangeOptions{CountOnly: true}, nil, 4, false},
		{"keys only", []byte("a"), []byte("c"), RangeOptions{KeysOnly: true}, []string{"a", "b"}, 2, true},
		{"end before key", []byte("c"), []byte("a"), RangeOptions{}, nil, 0, false},
		{"at old rev", []byte("a"), []byte{0}, RangeOptions{Rev: 3}, []string{"a", "b"}, 2, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := e.s.Range(c.key, c.end, c.o)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(keysOf(r), c.keys) || r.Count != c.count || r.Rev != 5 {
				t.Fatalf("keys %v count %d rev %d; want %v %d 5", keysOf(r), r.Count, r.Rev, c.keys, c.count)
			}
			for _, kv := range r.KVs {
				if c.valuesNone && kv.Value != nil {
					t.Fatalf("keys-only returned value %q", kv.Value)
				}
				if !c.valuesNone && string(kv.Value) != "v"+string(kv.Key) {
					t.Fatalf("value %q for %q", kv.Value, kv.Key)
				}
			}
		})
	}
}

func TestTxnReadsOwnWritesAndSharesRevision(t *testing.T) {
	e := newEnv(t, backend.Options{})
	e.put("x", "old")
	w := e.s.Write(10, 2)
	if w.Rev() != 2 {
		t.Fatalf("txn rev before changes %d", w.Rev())
	}
	w.Put([]byte("a"), []byte("1"), 0)
	w.Put([]byte("x"), []byte("new"), 0)
	if w.Rev() != 3 {
		t.Fatalf("txn rev %d", w.Rev())
	}
	r, err := w.Range([]byte("a"), []byte{0}, RangeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(keysOf(r), []string{"a", "x"}) || string(r.KVs[1].Value) != "new" || r.KVs[1].Version != 2 {
		t.Fatalf("txn range %+v", r.KVs)
	}
	// Concurrent readers do not see the unfinished transaction.
	if kv, _ := e.get("x", 0); string(kv.Value) != "old" {
		t.Fatalf("reader saw unpublished write %q", kv.Value)
	}
	if _, ok := e.get("a", 0); ok {
		t.Fatal("reader saw unpublished key")
	}
	if n := w.DeleteRange([]byte("a"), nil); n != 1 {
		t.Fatalf("deleted %d", n)
	}
	if r, _ := w.Range([]byte("a"), nil, RangeOptions{}); len(r.KVs) != 0 {
		t.Fatal("txn sees key it deleted")
	}
	w.Put([]byte("a"), []byte("2"), 0)
	w.End()

	ch := w.Changes()
	if len(ch) != 4 {
		t.Fatalf("changes %d", len(ch))
	}
	for _, c := range ch {
		if c.ModRevision != 3 {
			t.Fatalf("change %+v not at rev 3", c)
		}
	}
	if string(ch[2].Key) != "a" || ch[2].Value != nil || ch[2].Version != 0 {
		t.Fatalf("tombstone change %+v", ch[2])
	}
	kv, _ := e.get("a", 0)
	if kv.CreateRevision != 3 || kv.Version != 1 || string(kv.Value) != "2" {
		t.Fatalf("recreated in same txn: %+v", kv)
	}
	if e.s.Rev() != 3 {
		t.Fatalf("rev %d", e.s.Rev())
	}
	if i, tm := e.s.ConsistentIndex(); i != 10 || tm != 2 {
		t.Fatalf("consistent index %d/%d", i, tm)
	}
}

func TestEmptyTxnDoesNotMoveRevision(t *testing.T) {
	e := newEnv(t, backend.Options{})
	e.put("a", "1")
	w := e.s.Write(5, 1)
	if n := w.DeleteRange([]byte("zz"), nil); n != 0 {
		t.Fatalf("deleted %d", n)
	}
	w.End()
	if e.s.Rev() != 2 || w.Rev() != 2 || len(w.Changes()) != 0 {
		t.Fatalf("rev moved to %d", e.s.Rev())
	}
	if i, _ := e.s.ConsistentIndex(); i != 5 {
		t.Fatalf("consistent index %d", i)
	}
	// Deleting an already deleted key writes no second tombstone.
	e.del("a", "")
	if r := e.del("a", ""); r != 3 {
		t.Fatalf("delete of missing key moved rev to %d", r)
	}
}

func TestConsistentIndexSurvivesReopen(t *testing.T) {
	e := newEnv(t, backend.Options{BatchInterval: time.Hour})
	w := e.s.Write(7, 2)
	w.Put([]byte("a"), []byte("1"), 0)
	w.End()
	e.s.Commit()
	e.reopen()
	if i, tm := e.s.ConsistentIndex(); i != 7 || tm != 2 {
		t.Fatalf("after reopen %d/%d", i, tm)
	}
	e.s.SetConsistentIndex(9, 3)
	e.reopen()
	if i, tm := e.s.ConsistentIndex(); i != 9 || tm != 3 {
		t.Fatalf("after reopen %d/%d", i, tm)
	}
	if kv, _ := e.get("a", 0); string(kv.Value) != "1" || e.s.Rev() != 2 {
		t.Fatalf("data lost: %+v rev %d", kv, e.s.Rev())
	}
}

// TestConsistentIndexCommittedWithChanges checks that a commit never holds a
// write without its consistent index or the other way round.
func TestConsistentIndexCommittedWithChanges(t *testing.T) {
	e := newEnv(t, backend.Options{BatchInterval: time.Hour})
	w := e.s.Write(3, 1)
	w.Put([]byte("a"), []byte("1"), 0)
	w.End()
	e.s.Commit()
	r, err := e.b.ReadTx()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	v := r.Get([]byte("meta"), []byte("consistent_index"))
	if len(v) != 16 || v[7] != 3 {
		t.Fatalf("committed consistent index %x", v)
	}
}

func TestReadsSeeUncommittedWrites(t *testing.T) {
	e := newEnv(t, backend.Options{BatchInterval: time.Hour})
	e.s.Commit()
	commits := e.b.Commits()
	for i := range 50 {
		e.put(fmt.Sprintf("k%02d", i), strconv.Itoa(i))
	}
	e.del("k10", "k20")
	if e.b.Commits() != commits {
		t.Fatal("backend committed; the test needs uncommitted writes")
	}
	check := func() {
		t.Helper()
		r, err := e.s.Range([]byte("k"), []byte{0}, RangeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(r.KVs) != 40 {
			t.Fatalf("%d keys", len(r.KVs))
		}
		kv, ok := e.get("k15", 17)
		if !ok || string(kv.Value) != "15" {
			t.Fatalf("historical uncommitted read: %+v %v", kv, ok)
		}
	}
	check()
	e.s.Commit()
	if e.b.Commits() == commits {
		t.Fatal("no commit")
	}
	check()
}

func countStored(t *testing.T, b *backend.Backend) int {
	t.Helper()
	n := 0
	tx := b.BatchTx()
	tx.Lock()
	tx.UnsafeForEach([]byte("key"), func(_, _ []byte) bool { n++; return true })
	tx.Unlock()
	return n
}

func TestCompaction(t *testing.T) {
	e := newEnv(t, backend.Options{BatchInterval: time.Hour})
	e.put("a", "1") // 2
	e.put("a", "2") // 3
	e.put("a", "3") // 4
	e.put("b", "1") // 5
	e.del("b", "")  // 6
	e.put("c", "1") // 7
	e.put("d", "1") // 8
	e.del("d", "")  // 9
	if n := countStored(t, e.b); n != 8 {
		t.Fatalf("stored %d", n)
	}
	if _, err := e.s.Compact(100, 1, 10); !errors.Is(err, ErrFutureRev) {
		t.Fatalf("future compaction: %v", err)
	}
	done, err := e.s.Compact(100, 1, 6)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Range([]byte("a"), nil, RangeOptions{Rev: 5}); !errors.Is(err, ErrCompacted) {
		t.Fatalf("read below compaction: %v", err)
	}
	<-done
	if e.s.CompactRev() != 6 {
		t.Fatalf("compact rev %d", e.s.CompactRev())
	}
	// a@4 (newest <= 6) and c, d, d's tombstone (all > 6) remain.
	if n := countStored(t, e.b); n != 4 {
		t.Fatalf("stored after compaction %d", n)
	}
	if kv, ok := e.get("a", 6); !ok || kv.ModRevision != 4 || kv.Version != 3 || kv.CreateRevision != 2 {
		t.Fatalf("kept revision %+v", kv)
	}
	if _, ok := e.get("b", 6); ok {
		t.Fatal("deleted key visible")
	}
	if _, err := e.s.Compact(101, 1, 6); !errors.Is(err, ErrCompacted) {
		t.Fatalf("repeated compaction: %v", err)
	}
	if i, _ := e.s.ConsistentIndex(); i != 100 {
		t.Fatalf("consistent index %d", i)
	}
	before, _ := e.s.Range([]byte{0}, []byte{0}, RangeOptions{})

	// Compacting at the newest revision (a tombstone) removes it, and the
	// revision must not go back on reopen.
	done, err = e.s.Compact(102, 1, 9)
	if err != nil {
		t.Fatal(err)
	}
	<-done
	if n := countStored(t, e.b); n != 2 {
		t.Fatalf("stored after second compaction %d", n)
	}
	e.reopen()
	if e.s.Rev() != 9 || e.s.CompactRev() != 9 {
		t.Fatalf("after reopen rev %d compact %d", e.s.Rev(), e.s.CompactRev())
	}
	if _, err := e.s.Range([]byte("a"), nil, RangeOptions{Rev: 8}); !errors.Is(err, ErrCompacted) {
		t.Fatalf("read below compaction after reopen: %v", err)
	}
	after, _ := e.s.Range([]byte{0}, []byte{0}, RangeOptions{})
	if !kvsEqual(before.KVs, after.KVs) {
		t.Fatalf("range changed: %v vs %v", before.KVs, after.KVs)
	}
	if r := e.put("e", "1"); r != 10 {
		t.Fatalf("next rev %d", r)
	}
}

func TestInterruptedCompactionResumesOnOpen(t *testing.T) {
	e := newEnv(t, backend.Options{BatchInterval: time.Hour})
	for i := range 30 {
		e.put("k", strconv.Itoa(i)) // revs 2..31
	}
	// Record a scheduled compaction at 20 as Compact does, but stop before
	// the physical removal, as a crash would.
	tx := e.b.BatchTx()
	tx.Lock()
	v := []byte{0, 0, 0, 0, 0, 0, 0, 20}
	if err := tx.UnsafePut([]byte("meta"), []byte("scheduled_compact_rev"), v); err != nil {
		t.Fatal(err)
	}
	tx.Unlock()
	e.reopen()
	if e.s.CompactRev() != 20 {
		t.Fatalf("compact rev %d", e.s.CompactRev())
	}
	e.s.wmu.Lock()
	done := e.s.compactDone
	e.s.wmu.Unlock()
	<-done
	if n := countStored(t, e.b); n != 12 { // revs 20..31
		t.Fatalf("stored %d", n)
	}
	if kv, ok := e.get("k", 20); !ok || kv.Version != 19 || string(kv.Value) != "18" {
		t.Fatalf("kept %+v", kv)
	}
	e.reopen()
	e.s.wmu.Lock()
	done = e.s.compactDone
	e.s.wmu.Unlock()
	<-done // already finished: nothing scheduled
	if kv, ok := e.get("k", 0); !ok || kv.Version != 30 {
		t.Fatalf("latest %+v", kv)
	}
}

func TestWritesAndReadsDuringCompaction(t *testing.T) {
	e := newEnv(t, backend.Options{BatchInterval: time.Millisecond, BatchLimit: 500})
	const keys = 50
	for i := range 5000 {
		e.put(fmt.Sprintf("k%02d", i%keys), strconv.Itoa(i))
	}
	at := e.s.Rev()
	done, err := e.s.Compact(1, 1, at)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			r, err := e.s.Range([]byte("k"), []byte{0}, RangeOptions{Rev: at})
			if err != nil {
				t.Error(err)
				return
			}
			if len(r.KVs) != keys {
				t.Errorf("read at compaction rev saw %d keys", len(r.KVs))
				return
			}
		}
	}()
	// Writes proceed while the compaction runs.
	for i := range 500 {
		e.put(fmt.Sprintf("n%03d", i), "x")
	}
	<-done
	wg.Wait()
	e.s.Commit()
	if n := countStored(t, e.b); n != keys+500 {
		t.Fatalf("stored %d", n)
	}
	r, err := e.s.Range([]byte{0}, []byte{0}, RangeOptions{CountOnly: true})
	if err != nil || r.Count != keys+500 {
		t.Fatalf("count %d err %v", r.Count, err)
	}
}

func kvsEqual(a, b []mvccpb.KeyValue) bool {
	return slices.EqualFunc(a, b, func(x, y mvccpb.KeyValue) bool {
		return bytes.Equal(x.Key, y.Key) && bytes.Equal(x.Value, y.Value) && x.CreateRevision == y.CreateRevision &&
			x.ModRevision == y.ModRevision && x.Version == y.Version && x.Lease == y.Lease
	})
}

// model is a trivially correct store used as the reference for random
// operations: the full key space at every revision.
type model struct {
	cur     map[string]mvccpb.KeyValue
	history []map[string]mvccpb.KeyValue // by revision; index 0 and 1 empty
}

func newModel() *model {
	return &model{cur: map[string]mvccpb.KeyValue{}, history: []map[string]mvccpb.KeyValue{{}, {}}}
}

func (m *model) commit(changed bool) {
	if changed {
		m.history = append(m.history, clone(m.cur))
	}
}

func clone(s map[string]mvccpb.KeyValue) map[string]mvccpb.KeyValue {
	c := make(map[string]mvccpb.KeyValue, len(s))
	for k, v := range s {
		c[k] = v
	}
	return c
}

func rangeOf(snap map[string]mvccpb.KeyValue, from, end string) []mvccpb.KeyValue {
	var out []mvccpb.KeyValue
	for k, v := range snap {
		if k >= from && k < end {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b mvccpb.KeyValue) int { return bytes.Compare(a.Key, b.Key) })
	return out
}

func TestRandomOpsAgainstModelAndReopen(t *testing.T) {
	e := newEnv(t, backend.Options{BatchInterval: time.Hour, BatchLimit: 37})
	m := newModel()
	rng := rand.New(rand.NewPCG(1, 2))
	// Keys include 0x00 and 0xff bytes.
	keyspace := []string{"\x00", "\x00\x00", "a", "a\x00", "a\xff", "b", "\xff", "\xff\xff", "m", "z"}
	compactAt := int64(0)
	for step := range 400 {
		e.index++
		w := e.s.Write(e.index, 1)
		rev := e.s.Rev() + 1
		changed := false
		sub := 0
		for range 1 + rng.IntN(3) {
			k := keyspace[rng.IntN(len(keyspace))]
			if rng.IntN(4) == 0 {
				// Not "\x00", which as an end means "every key from".
				end := keyspace[1+rng.IntN(len(keyspace)-1)]
				var deleted int64
				for mk := range m.cur {
					if mk >= k && mk < end {
						delete(m.cur, mk)
						deleted++
					}
				}
				if got := w.DeleteRange([]byte(k), []byte(end)); got != deleted {
					t.Fatalf("step %d: deleted %d, model %d", step, got, deleted)
				}
				changed = changed || deleted > 0
				sub += int(deleted)
				continue
			}
			v := []byte{byte(rng.IntN(256)), 0, 0xff}
			old, ok := m.cur[k]
			kv := mvccpb.KeyValue{Key: []byte(k), Value: v, ModRevision: rev, CreateRevision: rev, Version: 1, Lease: int64(rng.IntN(3))}
			if ok {
				kv.CreateRevision, kv.Version = old.CreateRevision, old.Version+1
			}
			m.cur[k] = kv
			w.Put(kv.Key, v, types.LeaseID(kv.Lease))
			changed = true
			sub++
		}
		got, err := w.Range([]byte{0}, []byte{0}, RangeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if want := rangeOf(m.cur, "", "\xff\xff\xff"); !kvsEqual(got.KVs, want) {
			t.Fatalf("step %d: txn view differs", step)
		}
		w.End()
		m.commit(changed)
		if len(w.Changes()) != sub {
			t.Fatalf("changes %d, want %d", len(w.Changes()), sub)
		}
		if step%97 == 96 {
			compactAt = e.s.Rev() - int64(rng.IntN(20))
			done, err := e.s.Compact(e.index, 1, compactAt)
			if err != nil {
				t.Fatal(err)
			}
			if step%2 == 0 {
				<-done
			}
		}
		if step%53 == 0 {
			e.reopen()
		}
	}
	if e.s.Rev() != int64(len(m.history)-1) {
		t.Fatalf("rev %d, model %d", e.s.Rev(), len(m.history)-1)
	}
	checkAll := func() {
		t.Helper()
		for at := int64(1); at <= e.s.Rev(); at++ {
			got, err := e.s.Range([]byte{0}, []byte{0}, RangeOptions{Rev: at})
			if at < compactAt {
				if !errors.Is(err, ErrCompacted) {
					t.Fatalf("at %d below %d: %v", at, compactAt, err)
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := rangeOf(m.history[at], "", "\xff\xff\xff"); !kvsEqual(got.KVs, want) {
				t.Fatalf("at %d: got %v want %v", at, got.KVs, want)
			}
			// Sub-ranges with binary bounds.
			got, err = e.s.Range([]byte("\x00\x00"), []byte("a\xff"), RangeOptions{Rev: at})
			if err != nil {
				t.Fatal(err)
			}
			if want := rangeOf(m.history[at], "\x00\x00", "a\xff"); !kvsEqual(got.KVs, want) {
				t.Fatalf("sub-range at %d: got %v want %v", at, got.KVs, want)
			}
		}
	}
	checkAll()
	e.reopen()
	checkAll()
}

func TestConcurrentReadersSeeConsistentRevisions(t *testing.T) {
	// A small batch limit makes commits (and pending-buffer resets) frequent.
	e := newEnv(t, backend.Options{BatchInterval: time.Millisecond, BatchLimit: 7})
	const n = 1000
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, err := e.s.Range([]byte("k"), nil, RangeOptions{})
				if err != nil {
					t.Error(err)
					return
				}
				if r.Rev == 1 {
					continue
				}
				// Each put of k stores its own revision as the value.
				if len(r.KVs) != 1 || string(r.KVs[0].Value) != strconv.FormatInt(r.Rev, 10) {
					t.Errorf("rev %d: %v", r.Rev, r.KVs)
					return
				}
				if r.Rev > 2 {
					old, err := e.s.Range([]byte("k"), nil, RangeOptions{Rev: r.Rev - 1})
					if err != nil || len(old.KVs) != 1 || old.KVs[0].ModRevision != r.Rev-1 {
						t.Errorf("historical read at %d: %v %v", r.Rev-1, old, err)
						return
					}
				}
			}
		}()
	}
	for i := range n {
		e.put("k", strconv.Itoa(i+2))
	}
	close(stop)
	wg.Wait()
}
