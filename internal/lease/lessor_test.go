package lease

import (
	"context"
	"errors"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"ensemble/internal/backend"
	"ensemble/internal/mvcc"
	"ensemble/internal/types"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type env struct {
	t     *testing.T
	path  string
	be    *backend.Backend
	kv    *mvcc.Store
	le    *Lessor
	clk   *clock
	index uint64
}

func newEnv(t *testing.T) *env {
	e := &env{t: t, path: filepath.Join(t.TempDir(), "db"), clk: &clock{now: time.Unix(1000, 0)}}
	e.open()
	t.Cleanup(e.close)
	return e
}

func (e *env) open() {
	e.t.Helper()
	var err error
	if e.be, err = backend.Open(backend.Options{Path: e.path}); err != nil {
		e.t.Fatal(err)
	}
	if e.kv, err = mvcc.Open(e.be, nil); err != nil {
		e.t.Fatal(err)
	}
	e.le = New(Config{MinTTL: 2, Now: e.clk.Now})
	if err := e.le.Recover(e.be, e.kv); err != nil {
		e.t.Fatal(err)
	}
	e.index, _ = e.kv.ConsistentIndex()
}

func (e *env) close() {
	if e.kv != nil {
		e.kv.Close()
		e.be.Close()
		e.kv, e.be = nil, nil
	}
}

func (e *env) reopen() {
	e.close()
	e.open()
}

// write runs fn in the write transaction of the next entry, as the applier
// does, and tells the lessor about the changes.
func (e *env) write(fn func(w *mvcc.TxnWrite) error) error {
	e.index++
	w := e.kv.Write(e.index, 1)
	err := fn(w)
	w.End()
	e.le.ApplyChanges(w.Changes())
	return err
}

func (e *env) grant(id types.LeaseID, ttl int64) (int64, error) {
	var got int64
	err := e.write(func(w *mvcc.TxnWrite) error {
		var err error
		got, err = e.le.Grant(w, id, ttl)
		return err
	})
	return got, err
}

func (e *env) put(key string, id types.LeaseID) {
	e.write(func(w *mvcc.TxnWrite) error {
		w.Put([]byte(key), []byte("v"), id)
		return nil
	})
}

func (e *env) keys(id types.LeaseID) []string {
	e.t.Helper()
	in, err := e.le.Lookup(id, true)
	if err != nil {
		e.t.Fatalf("lookup %d: %v", id, err)
	}
	return in.Keys
}

func TestGrantErrors(t *testing.T) {
	e := newEnv(t)
	if ttl, err := e.grant(1, 1); err != nil || ttl != 2 {
		t.Fatalf("grant below the minimum = %d, %v; want 2", ttl, err)
	}
	if ttl, err := e.grant(2, 10); err != nil || ttl != 10 {
		t.Fatalf("grant = %d, %v", ttl, err)
	}
	if _, err := e.grant(1, 10); !errors.Is(err, ErrLeaseExists) {
		t.Fatalf("duplicate: %v", err)
	}
	if _, err := e.grant(3, MaxLeaseTTL+1); !errors.Is(err, ErrLeaseTTLTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	if _, err := e.grant(types.NoLease, 10); err == nil {
		t.Fatal("granted lease 0")
	}
	if !e.le.LeaseExists(1) || e.le.LeaseExists(3) {
		t.Fatal("LeaseExists disagrees with the grants")
	}
	if got := e.le.Leases(); !slices.Equal(got, []types.LeaseID{1, 2}) {
		t.Fatalf("leases = %v", got)
	}
}

func TestAttachDetachRevoke(t *testing.T) {
	e := newEnv(t)
	e.grant(1, 10)
	e.grant(2, 10)
	e.put("a", 1)
	e.put("b", 1)
	e.put("c", 1)
	e.put("d", 2)
	e.put("b", 0) // detached by a put without a lease
	e.put("c", 2) // moved
	e.write(func(w *mvcc.TxnWrite) error { w.DeleteRange([]byte("d"), nil); return nil })
	e.put("x", 99) // unknown leases are never attached (the applier refuses them)
	if got := e.keys(1); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("lease 1 keys = %v", got)
	}
	if got := e.keys(2); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("lease 2 keys = %v", got)
	}
	e.put("e", 1)
	rev := e.kv.Rev()
	if err := e.write(func(w *mvcc.TxnWrite) error { return e.le.Revoke(w, 1) }); err != nil {
		t.Fatal(err)
	}
	if e.kv.Rev() != rev+1 {
		t.Fatalf("revoke moved the revision from %d to %d, want one step", rev, e.kv.Rev())
	}
	rr, err := e.kv.Range([]byte{0}, []byte{0}, mvcc.RangeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var live []string
	for _, kv := range rr.KVs {
		live = append(live, string(kv.Key))
	}
	if !slices.Equal(live, []string{"b", "c", "x"}) {
		t.Fatalf("keys after revoke = %v", live)
	}
	if err := e.write(func(w *mvcc.TxnWrite) error { return e.le.Revoke(w, 1) }); !errors.Is(err, ErrLeaseNotFound) {
		t.Fatalf("second revoke: %v", err)
	}
}

func TestRecover(t *testing.T) {
	e := newEnv(t)
	e.grant(5, 30)
	e.grant(6, 40)
	e.grant(7, 50)
	for i := range 25 {
		e.put(string(rune('a'+i)), 5)
	}
	e.put("z6", 6)
	e.write(func(w *mvcc.TxnWrite) error { return e.le.Revoke(w, 7) })
	e.write(func(w *mvcc.TxnWrite) error { return e.le.Checkpoint(w, 6, 17) })
	e.reopen()
	if got := e.le.Leases(); !slices.Equal(got, []types.LeaseID{5, 6}) {
		t.Fatalf("leases after reopen = %v", got)
	}
	if got := e.keys(5); len(got) != 25 {
		t.Fatalf("lease 5 has %d keys after reopen, want 25", len(got))
	}
	in, err := e.le.Lookup(6, true)
	if err != nil || in.TTL != 40 || in.Checkpointed != 17 || !slices.Equal(in.Keys, []string{"z6"}) {
		t.Fatalf("lease 6 after reopen = %+v, %v", in, err)
	}
	// The restored lessor leads with the checkpoint.
	e.le.Promote(time.Second)
	in, _ = e.le.Lookup(6, false)
	if in.Remaining != 18*time.Second {
		t.Fatalf("remaining after promote = %v, want 18s", in.Remaining)
	}
}

func TestExpiryOnLeaderOnly(t *testing.T) {
	e := newEnv(t)
	e.grant(1, 10)
	e.grant(2, 5)
	e.clk.advance(time.Hour)
	if got := e.le.Expired(100); got != nil {
		t.Fatalf("a follower expired %v", got)
	}
	if _, err := e.le.Renew(context.Background(), 1); !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("renew on a follower: %v", err)
	}
	e.le.Promote(0)
	e.grant(3, 7)
	e.clk.advance(4 * time.Second)
	if ttl, err := e.le.Renew(context.Background(), 2); err != nil || ttl != 5 {
		t.Fatalf("renew = %d, %v", ttl, err)
	}
	if got := e.le.Expired(100); len(got) != 0 {
		t.Fatalf("expired too early: %v", got)
	}
	e.clk.advance(3 * time.Second) // t=7: lease 3 is due
	if got := e.le.Expired(100); !slices.Equal(got, []types.LeaseID{3}) {
		t.Fatalf("expired at 7s = %v, want [3]", got)
	}
	if got := e.le.Expired(100); len(got) != 0 {
		t.Fatalf("handed out twice at once: %v", got)
	}
	e.clk.advance(3 * time.Second) // t=10: 1 (10 s), 2 (renewed at 4 s) and 3 again
	if got := e.le.Expired(100); !slices.Equal(sorted(got), []types.LeaseID{1, 2, 3}) {
		t.Fatalf("expired at 10s = %v", got)
	}
	if e.le.NextExpiry().IsZero() {
		t.Fatal("no next expiry while leases wait for revocation")
	}
	e.le.Demote()
	if got := e.le.Expired(100); got != nil || !e.le.NextExpiry().IsZero() {
		t.Fatalf("a demoted lessor expired %v", got)
	}
}

func sorted(ids []types.LeaseID) []types.LeaseID {
	slices.Sort(ids)
	return ids
}

func TestRenewOfExpiredLeaseWaitsForRevoke(t *testing.T) {
	e := newEnv(t)
	e.le.Promote(0)
	e.grant(1, 3)
	e.grant(2, 3)
	e.clk.advance(4 * time.Second)
	errc := make(chan error, 2)
	go func() { _, err := e.le.Renew(context.Background(), 1); errc <- err }()
	go func() { _, err := e.le.Renew(context.Background(), 2); errc <- err }()
	e.write(func(w *mvcc.TxnWrite) error { return e.le.Revoke(w, 1) })
	if err := <-errc; !errors.Is(err, ErrLeaseNotFound) {
		t.Fatalf("renew of a revoked lease: %v", err)
	}
	e.le.Demote()
	if err := <-errc; !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("renew across a demotion: %v", err)
	}
}

func TestCheckpoints(t *testing.T) {
	e := newEnv(t)
	e.le.Promote(0)
	e.grant(1, 100)
	e.grant(2, 3) // too short to be worth checkpointing
	e.clk.advance(10 * time.Second)
	cps := e.le.Checkpoints(time.Second, true)
	if len(cps) != 1 || cps[0] != (CheckpointItem{ID: 1, Remaining: 90}) {
		t.Fatalf("checkpoints = %+v", cps)
	}
	if cps := e.le.Checkpoints(time.Second, false); len(cps) != 0 {
		t.Fatalf("checkpoints when not due = %+v", cps)
	}
	e.write(func(w *mvcc.TxnWrite) error { return e.le.Checkpoint(w, 1, 90) })
	if cps := e.le.Checkpoints(time.Second, true); len(cps) != 0 {
		t.Fatalf("unchanged lease checkpointed again: %+v", cps)
	}
	if e.le.PendingClears() {
		t.Fatal("clear pending before any renewal")
	}
	e.le.Renew(context.Background(), 1)
	if !e.le.PendingClears() {
		t.Fatal("renewal of a checkpointed lease does not ask to clear it")
	}
	cps = e.le.Checkpoints(time.Second, false)
	if len(cps) != 1 || cps[0] != (CheckpointItem{ID: 1}) {
		t.Fatalf("clearing checkpoints = %+v", cps)
	}
	e.write(func(w *mvcc.TxnWrite) error { return e.le.Checkpoint(w, 1, 0) })
	if in, _ := e.le.Lookup(1, false); in.Checkpointed != 0 {
		t.Fatalf("checkpoint not cleared: %+v", in)
	}
	// A new leader without a checkpoint gives the full TTL.
	e.le.Demote()
	e.le.Promote(2 * time.Second)
	if in, _ := e.le.Lookup(1, false); in.Remaining != 102*time.Second {
		t.Fatalf("remaining after promote = %v", in.Remaining)
	}
}

func TestHeapOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h expiryHeap
	base := time.Unix(0, 0)
	var all []*lease
	for i := range 500 {
		l := &lease{id: types.LeaseID(i + 1), idx: -1, at: base.Add(time.Duration(r.IntN(1000)) * time.Millisecond)}
		h.push(l)
		all = append(all, l)
	}
	for range 2000 {
		l := all[r.IntN(len(all))]
		if l.idx < 0 {
			continue
		}
		if r.IntN(4) == 0 {
			h.remove(l)
			continue
		}
		l.at = base.Add(time.Duration(r.IntN(1000)) * time.Millisecond)
		h.fix(l)
	}
	prev := time.Time{}
	for len(h) > 0 {
		l := h[0]
		if l.at.Before(prev) {
			t.Fatalf("heap out of order: %v after %v", l.at, prev)
		}
		prev = l.at
		h.remove(l)
	}
}
