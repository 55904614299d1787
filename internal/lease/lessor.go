// Package lease keeps etcd leases: the replicated set of leases with their
// TTLs and attached keys, and, on the leader, when each one expires.
package lease

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"ensemble/internal/backend"
	"ensemble/internal/mvcc"
	"ensemble/internal/types"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// MaxLeaseTTL is the longest TTL a lease may be granted, in seconds, as etcd.
const MaxLeaseTTL = 9_000_000_000

// Errors of the lessor. They are deterministic where the state machine
// returns them (grant, revoke, put with a lease).
var (
	ErrLeaseNotFound    = errors.New("lease: requested lease not found")
	ErrLeaseExists      = errors.New("lease: lease already exists")
	ErrLeaseTTLTooLarge = errors.New("lease: too large lease TTL")
	// ErrNotPrimary is returned by leader-only operations on a member that
	// does not lead: the caller forwards to the leader.
	ErrNotPrimary = errors.New("lease: not the primary lessor")
)

// retryRevokeAfter is how long an expired lease whose revocation is under
// way waits before it is handed out for revocation again, in case the
// proposal was lost.
const retryRevokeAfter = 3 * time.Second

var bucket = []byte("lease")

// Config configures a Lessor.
type Config struct {
	// MinTTL is the smallest TTL granted, in seconds; smaller requests are
	// raised to it. Every member must use the same value.
	MinTTL int64
	// Logger; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now. Only leader-side timing uses it.
	Now func() time.Time
}

// lease is one lease. Fields other than expiry, at and idx are replicated
// state; those three are the leader's timing, guarded by the lessor's lock.
type lease struct {
	id        types.LeaseID
	ttl       int64
	remaining int64 // checkpointed remaining TTL in seconds; 0: none
	keys      map[string]struct{}
	revoked   chan struct{} // closed when the lease is revoked

	expiry time.Time // zero: never (not the leader)
	at     time.Time // when the expiry loop next looks at it
	idx    int       // position in the expiry heap, -1 if absent
}

func (l *lease) startTTL() int64 {
	if l.remaining > 0 {
		return l.remaining
	}
	return l.ttl
}

// Lessor holds the leases of a member. The state machine changes it (Grant,
// Revoke, Checkpoint, ApplyChanges) from its one goroutine; the leader side
// (Promote, Renew, Expired, Checkpoints) runs from others.
type Lessor struct {
	lg     *slog.Logger
	minTTL int64
	now    func() time.Time

	mu       sync.RWMutex
	be       *backend.Backend
	leases   map[types.LeaseID]*lease
	keyLease map[string]types.LeaseID
	primary  bool
	demoted  chan struct{} // closed when this member stops leading
	heap     expiryHeap
	clears   map[types.LeaseID]struct{} // renewed leases whose checkpoint must be cleared

	// attached counts keys with a lease, so that writes without leases skip
	// the lock when no key has one.
	attached atomic.Int64
}

// New returns a lessor with no leases; Recover loads them.
func New(cfg Config) *Lessor {
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Lessor{
		lg:       lg,
		minTTL:   cfg.MinTTL,
		now:      now,
		leases:   make(map[types.LeaseID]*lease),
		keyLease: make(map[string]types.LeaseID),
		clears:   make(map[types.LeaseID]struct{}),
	}
}

// MinTTL is the smallest TTL the lessor grants, in seconds.
func (le *Lessor) MinTTL() int64 { return le.minTTL }

// Recover loads the leases kept in be and attaches to them the keys of kv
// that name them. It runs at start and after a snapshot replaced the store.
func (le *Lessor) Recover(be *backend.Backend, kv *mvcc.Store) error {
	leases := make(map[types.LeaseID]*lease)
	tx := be.BatchTx()
	tx.Lock()
	err := tx.UnsafeCreateBucket(bucket)
	if err == nil {
		tx.UnsafeForEach(bucket, func(k, v []byte) bool {
			if len(k) != 8 || len(v) != 16 {
				err = fmt.Errorf("lease: bad record %x", k)
				return false
			}
			id := types.LeaseID(binary.BigEndian.Uint64(k))
			leases[id] = &lease{
				id:        id,
				ttl:       int64(binary.BigEndian.Uint64(v)),
				remaining: int64(binary.BigEndian.Uint64(v[8:])),
				keys:      make(map[string]struct{}),
				revoked:   make(chan struct{}),
				idx:       -1,
			}
			return true
		})
	}
	tx.Unlock()
	if err != nil {
		return fmt.Errorf("lease: recover: %w", err)
	}

	keyLease := make(map[string]types.LeaseID)
	// Pages bound the memory a large store needs here.
	const page = 10000
	from := []byte{0}
	for {
		rr, rerr := kv.Range(from, []byte{0}, mvcc.RangeOptions{Limit: page, KeysOnly: true})
		if rerr != nil {
			return fmt.Errorf("lease: recover attachments: %w", rerr)
		}
		for i := range rr.KVs {
			kvl := &rr.KVs[i]
			if kvl.Lease == 0 {
				continue
			}
			l := leases[types.LeaseID(kvl.Lease)]
			if l == nil {
				continue
			}
			k := string(kvl.Key)
			l.keys[k] = struct{}{}
			keyLease[k] = l.id
		}
		if len(rr.KVs) < page {
			break
		}
		from = append(slices.Clone(rr.KVs[len(rr.KVs)-1].Key), 0)
	}

	le.mu.Lock()
	defer le.mu.Unlock()
	for id, old := range le.leases {
		if _, ok := leases[id]; !ok {
			close(old.revoked)
		}
	}
	le.be = be
	le.leases = leases
	le.keyLease = keyLease
	le.attached.Store(int64(len(keyLease)))
	clear(le.heap)
	le.heap = le.heap[:0]
	clear(le.clears)
	if le.primary {
		now := le.now()
		for _, l := range leases {
			le.refreshLocked(l, now, 0)
		}
	}
	return nil
}

func (le *Lessor) persist(l *lease) error {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], uint64(l.id))
	v := make([]byte, 16)
	binary.BigEndian.PutUint64(v, uint64(l.ttl))
	binary.BigEndian.PutUint64(v[8:], uint64(l.remaining))
	return le.be.BatchTx().UnsafePut(bucket, k[:], v)
}

// Grant creates lease id with ttl seconds (raised to the minimum TTL) and
// returns the TTL granted. w is the open write transaction of the entry
// being applied: the lease is stored in the same backend batch as the
// entry's index, which the transaction's batch lock keeps together.
func (le *Lessor) Grant(w *mvcc.TxnWrite, id types.LeaseID, ttl int64) (int64, error) {
	if id == types.NoLease {
		return 0, ErrLeaseNotFound
	}
	if ttl > MaxLeaseTTL {
		return 0, ErrLeaseTTLTooLarge
	}
	le.mu.Lock()
	defer le.mu.Unlock()
	if _, ok := le.leases[id]; ok {
		return 0, ErrLeaseExists
	}
	l := &lease{id: id, ttl: max(ttl, le.minTTL), keys: make(map[string]struct{}), revoked: make(chan struct{}), idx: -1}
	if err := le.persist(l); err != nil {
		return 0, fmt.Errorf("lease: grant: %w", err)
	}
	le.leases[id] = l
	if le.primary {
		le.refreshLocked(l, le.now(), 0)
	}
	return l.ttl, nil
}

// Revoke deletes every key attached to lease id in w (one revision) and the
// lease itself, in the same backend batch.
func (le *Lessor) Revoke(w *mvcc.TxnWrite, id types.LeaseID) error {
	le.mu.Lock()
	defer le.mu.Unlock()
	l := le.leases[id]
	if l == nil {
		return ErrLeaseNotFound
	}
	keys := make([]string, 0, len(l.keys))
	for k := range l.keys {
		keys = append(keys, k)
	}
	// Every member deletes in the same order, so sub revisions agree.
	slices.Sort(keys)
	for _, k := range keys {
		w.DeleteRange([]byte(k), nil)
		delete(le.keyLease, k)
	}
	le.attached.Add(-int64(len(keys)))
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], uint64(id))
	err := le.be.BatchTx().UnsafeDelete(bucket, k[:])
	delete(le.leases, id)
	delete(le.clears, id)
	if l.idx >= 0 {
		le.heap.remove(l)
	}
	close(l.revoked)
	if err != nil {
		return fmt.Errorf("lease: revoke: %w", err)
	}
	return nil
}

// Checkpoint records the remaining TTL of a lease (0 clears it), which a new
// leader gives the lease instead of its full TTL. Unknown leases are ignored.
func (le *Lessor) Checkpoint(w *mvcc.TxnWrite, id types.LeaseID, remaining int64) error {
	le.mu.Lock()
	defer le.mu.Unlock()
	l := le.leases[id]
	if l == nil || l.remaining == remaining {
		return nil
	}
	l.remaining = remaining
	if remaining == 0 {
		delete(le.clears, id)
	}
	if err := le.persist(l); err != nil {
		return fmt.Errorf("lease: checkpoint: %w", err)
	}
	return nil
}

// LeaseExists reports whether lease id exists.
func (le *Lessor) LeaseExists(id types.LeaseID) bool {
	le.mu.RLock()
	_, ok := le.leases[id]
	le.mu.RUnlock()
	return ok
}

// ApplyChanges attaches and detaches keys after a write: a put attaches its
// key to the put's lease (detaching it from any other), a put without a
// lease or a deletion detaches it.
func (le *Lessor) ApplyChanges(changes []mvccpb.KeyValue) {
	if le.attached.Load() == 0 {
		found := false
		for i := range changes {
			if changes[i].Lease != 0 {
				found = true
				break
			}
		}
		if !found {
			return
		}
	}
	le.mu.Lock()
	defer le.mu.Unlock()
	for i := range changes {
		c := &changes[i]
		id := types.LeaseID(c.Lease)
		if c.Version == 0 { // a deletion
			id = types.NoLease
		}
		old, had := le.keyLease[string(c.Key)]
		if had && old == id {
			continue
		}
		if had {
			if l := le.leases[old]; l != nil {
				delete(l.keys, string(c.Key))
			}
			delete(le.keyLease, string(c.Key))
			le.attached.Add(-1)
		}
		if id == types.NoLease {
			continue
		}
		if l := le.leases[id]; l != nil {
			k := string(c.Key)
			l.keys[k] = struct{}{}
			le.keyLease[k] = id
			le.attached.Add(1)
		}
	}
}

// Info is a point-in-time view of one lease.
type Info struct {
	ID  types.LeaseID
	TTL int64 // granted, seconds
	// Remaining is the time left before expiry; only meaningful on the
	// leader (Primary true).
	Remaining time.Duration
	Primary   bool
	// Checkpointed is the remaining TTL last recorded through the log, in
	// seconds (0: none).
	Checkpointed int64
	Keys         []string // sorted; only when asked for
}

// Lookup describes lease id.
func (le *Lessor) Lookup(id types.LeaseID, withKeys bool) (Info, error) {
	le.mu.RLock()
	defer le.mu.RUnlock()
	l := le.leases[id]
	if l == nil {
		return Info{}, ErrLeaseNotFound
	}
	in := Info{ID: id, TTL: l.ttl, Primary: le.primary, Checkpointed: l.remaining}
	if le.primary && !l.expiry.IsZero() {
		in.Remaining = max(l.expiry.Sub(le.now()), 0)
	}
	if withKeys {
		in.Keys = make([]string, 0, len(l.keys))
		for k := range l.keys {
			in.Keys = append(in.Keys, k)
		}
		slices.Sort(in.Keys)
	}
	return in, nil
}

// Leases lists the ids of every lease, in order.
func (le *Lessor) Leases() []types.LeaseID {
	le.mu.RLock()
	ids := make([]types.LeaseID, 0, len(le.leases))
	for id := range le.leases {
		ids = append(ids, id)
	}
	le.mu.RUnlock()
	slices.Sort(ids)
	return ids
}

// Len is the number of leases.
func (le *Lessor) Len() int {
	le.mu.RLock()
	defer le.mu.RUnlock()
	return len(le.leases)
}

// IsPrimary reports whether this lessor is the leader's.
func (le *Lessor) IsPrimary() bool {
	le.mu.RLock()
	defer le.mu.RUnlock()
	return le.primary
}

// Promote makes this the primary lessor, on the member that became leader:
// every lease gets its TTL again from now (its checkpointed remaining TTL if
// it has one), plus extend, so that leases are not expired for the time the
// cluster spent without a leader.
func (le *Lessor) Promote(extend time.Duration) {
	le.mu.Lock()
	defer le.mu.Unlock()
	if le.primary {
		return
	}
	le.primary = true
	le.demoted = make(chan struct{})
	now := le.now()
	le.heap = le.heap[:0]
	for _, l := range le.leases {
		l.idx = -1
		le.refreshLocked(l, now, extend)
	}
}

// Demote stops leader-side timing, on a member that no longer leads.
func (le *Lessor) Demote() {
	le.mu.Lock()
	defer le.mu.Unlock()
	if !le.primary {
		return
	}
	le.primary = false
	close(le.demoted)
	for _, l := range le.leases {
		l.expiry, l.at, l.idx = time.Time{}, time.Time{}, -1
	}
	clear(le.heap)
	le.heap = le.heap[:0]
	clear(le.clears)
}

func (le *Lessor) refreshLocked(l *lease, now time.Time, extend time.Duration) {
	l.expiry = now.Add(extend + seconds(l.startTTL()))
	l.at = l.expiry
	if l.idx >= 0 {
		le.heap.fix(l)
	} else {
		le.heap.push(l)
	}
}

func seconds(n int64) time.Duration {
	if n > int64(math.MaxInt64/time.Second) {
		return math.MaxInt64
	}
	return time.Duration(n) * time.Second
}

// Renew restarts lease id's TTL on the leader and returns the TTL. A lease
// that has expired is being revoked: Renew waits for that and reports it
// gone, rather than bring it back.
func (le *Lessor) Renew(ctx context.Context, id types.LeaseID) (int64, error) {
	le.mu.Lock()
	if !le.primary {
		le.mu.Unlock()
		return 0, ErrNotPrimary
	}
	l := le.leases[id]
	if l == nil {
		le.mu.Unlock()
		return 0, ErrLeaseNotFound
	}
	now := le.now()
	if !l.expiry.After(now) {
		revoked, demoted := l.revoked, le.demoted
		le.mu.Unlock()
		select {
		case <-revoked:
			return 0, ErrLeaseNotFound
		case <-demoted:
			return 0, ErrNotPrimary
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	l.expiry = now.Add(seconds(l.ttl))
	l.at = l.expiry
	le.heap.fix(l)
	if l.remaining > 0 {
		le.clears[id] = struct{}{}
	}
	ttl := l.ttl
	le.mu.Unlock()
	return ttl, nil
}

// Expired returns up to limit leases past their expiry, on the leader. Each
// is handed out again after a while if it is still there, in case its
// revocation was lost.
func (le *Lessor) Expired(limit int) []types.LeaseID {
	le.mu.Lock()
	defer le.mu.Unlock()
	if !le.primary {
		return nil
	}
	now := le.now()
	var ids []types.LeaseID
	for len(le.heap) > 0 && len(ids) < limit {
		l := le.heap[0]
		if l.at.After(now) {
			break
		}
		ids = append(ids, l.id)
		l.at = now.Add(retryRevokeAfter)
		le.heap.fix(l)
	}
	return ids
}

// NextExpiry is when the earliest lease is next due, on the leader; zero if
// none is.
func (le *Lessor) NextExpiry() time.Time {
	le.mu.RLock()
	defer le.mu.RUnlock()
	if !le.primary || len(le.heap) == 0 {
		return time.Time{}
	}
	return le.heap[0].at
}

// CheckpointItem is one lease's remaining TTL to record through the log.
type CheckpointItem struct {
	ID        types.LeaseID
	Remaining int64
}

// Checkpoints returns, on the leader, the remaining TTLs worth recording:
// zero for leases renewed since they were checkpointed and, if due, those of
// leases with more than interval left that moved since their last checkpoint.
// Leases with less than interval left are not worth it: one interval of
// leader churn cannot extend them by more than their TTL.
func (le *Lessor) Checkpoints(interval time.Duration, due bool) []CheckpointItem {
	le.mu.Lock()
	defer le.mu.Unlock()
	if !le.primary {
		return nil
	}
	now := le.now()
	var out []CheckpointItem
	for id := range le.clears {
		out = append(out, CheckpointItem{ID: id})
	}
	for _, l := range le.leases {
		if !due {
			break
		}
		if _, cleared := le.clears[l.id]; cleared || l.expiry.IsZero() {
			continue
		}
		left := l.expiry.Sub(now)
		if left <= interval {
			continue
		}
		rem := int64(math.Ceil(left.Seconds()))
		if rem >= l.ttl || rem == l.remaining {
			continue
		}
		out = append(out, CheckpointItem{ID: l.id, Remaining: rem})
	}
	slices.SortFunc(out, func(a, b CheckpointItem) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	clear(le.clears)
	return out
}

// PendingClears reports whether renewed leases wait for their checkpoint to
// be cleared.
func (le *Lessor) PendingClears() bool {
	le.mu.RLock()
	defer le.mu.RUnlock()
	return len(le.clears) > 0
}
