package mvcc

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"ensemble/internal/backend"
)

// writeHistory makes the same history on any store: puts, overwrites,
// deletions and re-creations, some of it left uncommitted.
func writeHistory(e *testEnv) (mid int64) {
	for i := range 300 {
		r := e.put(fmt.Sprintf("k%02d", i%40), fmt.Sprint(i))
		if i == 150 {
			mid = r
		}
		if i%50 == 49 {
			e.del(fmt.Sprintf("k%02d", i%40), "")
		}
	}
	e.del("k1", "k2")
	e.put("k15", "again")
	return mid
}

func TestHashKVAgreesAcrossCompactionProgress(t *testing.T) {
	a := newEnv(t, backend.Options{BatchInterval: time.Hour})
	b := newEnv(t, backend.Options{BatchInterval: time.Hour})
	mid := writeHistory(a)
	writeHistory(b)
	cur := a.s.Rev()

	ha, err := a.s.HashKV(0)
	if err != nil {
		t.Fatal(err)
	}
	hb, _ := b.s.HashKV(cur)
	if ha != hb || ha.Revision != cur || ha.CompactRevision != 0 {
		t.Fatalf("same history, hashes %+v and %+v", ha, hb)
	}
	before, _ := a.s.HashKV(mid)

	a.index++
	done, err := a.s.Compact(a.index, 1, mid)
	if err != nil {
		t.Fatal(err)
	}
	<-done
	b.index++
	if _, err := b.s.Compact(b.index, 1, mid); err != nil {
		t.Fatal(err)
	}
	// b hashes at whatever point its removal of old revisions has reached,
	// then again after a restart interrupted it.
	afterA, err := a.s.HashKV(mid)
	if err != nil {
		t.Fatal(err)
	}
	afterB, _ := b.s.HashKV(mid)
	b.reopen()
	reopenedB, _ := b.s.HashKV(mid)
	if afterA != afterB || afterA != reopenedB {
		t.Fatalf("after compaction at %d: %+v, %+v, after reopen %+v", mid, afterA, afterB, reopenedB)
	}
	if afterA.CompactRevision != mid || afterA.Hash == before.Hash {
		t.Fatalf("compaction not reflected: %+v, before %+v", afterA, before)
	}
	curA, _ := a.s.HashKV(0)
	curB, _ := b.s.HashKV(0)
	if curA != curB {
		t.Fatalf("current revision: %+v and %+v", curA, curB)
	}

	if _, err := a.s.HashKV(mid - 1); !errors.Is(err, ErrCompacted) {
		t.Fatalf("below the compaction: %v", err)
	}
	if _, err := a.s.HashKV(cur + 1); !errors.Is(err, ErrFutureRev) {
		t.Fatalf("future revision: %v", err)
	}
	// Later writes do not change the hash of an earlier revision.
	a.put("later", "x")
	if h, _ := a.s.HashKV(cur); h != curA {
		t.Fatalf("hash at %d changed with a later write: %+v, was %+v", cur, h, curA)
	}
}

func TestHashIgnoresConsistentIndex(t *testing.T) {
	e := newEnv(t, backend.Options{})
	e.put("a", "1")
	h1, rev, err := e.s.Hash()
	if err != nil || rev != 2 {
		t.Fatalf("hash: %d %v", rev, err)
	}
	e.s.SetConsistentIndex(100, 3)
	h2, _, _ := e.s.Hash()
	if h1 != h2 {
		t.Fatal("hash changed with the applied index alone")
	}
	e.put("a", "2")
	if h3, _, _ := e.s.Hash(); h3 == h2 {
		t.Fatal("hash did not change with a write")
	}
}
