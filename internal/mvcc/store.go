// Package mvcc keeps every revision of Ensemble's keys in the backend and serves reads at any uncompacted revision.
package mvcc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"ensemble/internal/backend"
)

var (
	// ErrCompacted is returned for reads or compactions at a revision history
	// no longer holds.
	ErrCompacted = errors.New("mvcc: required revision has been compacted")
	// ErrFutureRev is returned for reads or compactions past the current revision.
	ErrFutureRev = errors.New("mvcc: required revision is a future revision")
	// ErrCorrupt is returned when storage lacks a revision the index names.
	ErrCorrupt = errors.New("mvcc: storage is corrupt")
)

const (
	// arenaChunk is the size of the blocks that the values of a batch are
	// carved from, so that a put does not cost an allocation of its own.
	arenaChunk = 64 << 10
	// compactBatch is how many stored revisions a compaction step examines
	// while holding the batch lock.
	compactBatch = 1000
)

// pendingKV is a revision written since the last backend commit.
type pendingKV struct {
	r   rev
	val []byte
}

// Store is a multi-version key-value store over a backend. One writer at a
// time (Write..End, Compact, SetConsistentIndex); any number of readers.
type Store struct {
	b  *backend.Backend
	lg *slog.Logger

	keyBucket, metaBucket   []byte
	ciKey, schedKey, finKey []byte

	// wmu serializes writers; arena is the writer's allocation block.
	wmu   sync.Mutex
	arena []byte

	// mu makes (pending, rev) and a backend read transaction one consistent
	// view: every revision <= rev is in pending or in what the read
	// transaction sees.
	mu      sync.Mutex
	pending []pendingKV
	rev     atomic.Int64
	ci      uint64
	term    uint64
	// ciDirty says (ci, term) is newer than what the batch holds; the
	// pre-commit hook writes it once per commit rather than once per write.
	// Guarded by the batch lock.
	ciDirty bool

	// idxMu guards the key index and compactRev, so that a reader checks the
	// compaction and resolves revisions against the same index state.
	idxMu      sync.RWMutex
	idx        *index
	compactRev int64
	compactA   atomic.Int64

	// compactDone is closed when the last scheduled physical compaction ends.
	compactDone chan struct{}
	stopc       chan struct{}
	wg          sync.WaitGroup
	closeOnce   sync.Once

	failed atomic.Pointer[error]

	// observer receives each applied revision's changes (see notify.go).
	observer atomic.Pointer[observerSlot]
}

// Open loads the store kept in b: the key index is rebuilt from storage and
// an interrupted compaction is resumed in the background.
func Open(b *backend.Backend, lg *slog.Logger) (*Store, error) {
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		b:          b,
		lg:         lg,
		keyBucket:  []byte("key"),
		metaBucket: []byte("meta"),
		ciKey:      []byte("consistent_index"),
		schedKey:   []byte("scheduled_compact_rev"),
		finKey:     []byte("finished_compact_rev"),
		idx:        newIndex(),
		stopc:      make(chan struct{}),
	}
	done := make(chan struct{})
	close(done)
	s.compactDone = done

	tx := b.BatchTx()
	tx.Lock()
	err := s.load(tx)
	tx.Unlock()
	if err != nil {
		return nil, err
	}
	b.SetCommitHook(s.onCommit)
	b.SetPreCommitHook(s.preCommit)
	return s, nil
}

func (s *Store) load(tx *backend.BatchTx) error {
	if err := tx.UnsafeCreateBucket(s.keyBucket); err != nil {
		return fmt.Errorf("mvcc: %w", err)
	}
	if err := tx.UnsafeCreateBucket(s.metaBucket); err != nil {
		return fmt.Errorf("mvcc: %w", err)
	}
	if v := tx.UnsafeGet(s.metaBucket, s.ciKey); len(v) == 16 {
		s.ci = binary.BigEndian.Uint64(v)
		s.term = binary.BigEndian.Uint64(v[8:])
	}
	var sched, fin int64
	if v := tx.UnsafeGet(s.metaBucket, s.schedKey); len(v) == 8 {
		sched = int64(binary.BigEndian.Uint64(v))
	}
	if v := tx.UnsafeGet(s.metaBucket, s.finKey); len(v) == 8 {
		fin = int64(binary.BigEndian.Uint64(v))
	}

	cur := int64(1)
	var kv mvccpb.KeyValue
	var err error
	probe := &keyIndex{}
	tx.UnsafeForEach(s.keyBucket, func(k, v []byte) bool {
		r, tomb, ok := parseRevKey(k)
		if !ok {
			err = fmt.Errorf("%w: bad revision key %x", ErrCorrupt, k)
			return false
		}
		// Unmarshal leaves absent fields alone, so start from zero (keeping
		// the buffers).
		kv = mvccpb.KeyValue{Key: kv.Key[:0], Value: kv.Value[:0]}
		if uerr := kv.Unmarshal(v); uerr != nil {
			err = fmt.Errorf("%w: revision %d.%d: %w", ErrCorrupt, r.main, r.sub, uerr)
			return false
		}
		cur = max(cur, r.main)
		probe.key = kv.Key
		ki, found := s.idx.tree.Get(probe)
		if tomb {
			// A tombstone without a live key is what an interrupted compaction
			// leaves behind; that compaction removes it when resumed.
			if found {
				ki.tombstone(r)
			}
			return true
		}
		if !found {
			ki = newKeyIndex(append([]byte(nil), kv.Key...))
			s.idx.tree.ReplaceOrInsert(ki)
		}
		ki.put(r, kv.CreateRevision, kv.Version)
		return true
	})
	if err != nil {
		return err
	}
	// A compaction may have removed the newest revision (a tombstone), and
	// revisions never go back.
	cur = max(cur, sched)
	s.rev.Store(cur)
	if sched > 0 {
		keep := s.compactIndex(sched)
		if sched > fin {
			s.lg.Info("resuming interrupted compaction", "revision", sched, "finished", fin)
			s.startPhysical(sched, keep)
		}
	}
	return nil
}

// preCommit runs before each commit, under the batch lock.
func (s *Store) preCommit(tx *backend.BatchTx) {
	if s.ciDirty {
		s.mu.Lock()
		index, term := s.ci, s.term
		s.mu.Unlock()
		s.putConsistentIndex(tx, index, term)
	}
}

// onCommit runs after each backend commit, under the batch lock: what was
// pending is now visible to new read transactions.
func (s *Store) onCommit() {
	s.mu.Lock()
	if n := len(s.pending); n > 0 {
		// A fresh slice, because readers may still hold the old one.
		s.pending = make([]pendingKV, 0, n)
	}
	s.mu.Unlock()
}

// Rev is the current revision: that of the last change, 1 on an empty store.
func (s *Store) Rev() int64 { return s.rev.Load() }

// CompactRev is the revision of the last compaction (0 if none): reads below
// it fail with ErrCompacted.
func (s *Store) CompactRev() int64 { return s.compactA.Load() }

// ConsistentIndex is the raft entry (index, term) last applied to the store.
func (s *Store) ConsistentIndex() (index, term uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ci, s.term
}

// Err reports the backend failure that made writes since it non-durable, or nil.
func (s *Store) Err() error {
	if p := s.failed.Load(); p != nil {
		return *p
	}
	return nil
}

func (s *Store) fail(err error) {
	if err != nil {
		s.failSlow(err)
	}
}

// failSlow is apart from fail because taking err's address moves it to the
// heap on entry, which the success path must not pay for.
func (s *Store) failSlow(err error) {
	if s.failed.CompareAndSwap(nil, &err) {
		s.lg.Error("mvcc write to backend failed; the store is no longer durable", "err", err)
	}
}

// alloc returns n bytes carved from the writer's arena. Only writers (under
// wmu) call it; the pieces are never written again once handed to the backend.
func (s *Store) alloc(n int) []byte {
	if n > arenaChunk/8 {
		return make([]byte, n)
	}
	if len(s.arena) < n {
		s.arena = make([]byte, arenaChunk)
	}
	b := s.arena[:n:n]
	s.arena = s.arena[n:]
	return b
}

// putConsistentIndex records (index, term) in the batch; the batch lock is
// held.
func (s *Store) putConsistentIndex(tx *backend.BatchTx, index, term uint64) {
	s.ciDirty = false
	// Not from the arena: the pre-commit hook runs without wmu.
	v := make([]byte, 16)
	binary.BigEndian.PutUint64(v, index)
	binary.BigEndian.PutUint64(v[8:], term)
	s.fail(tx.UnsafePut(s.metaBucket, s.ciKey, v))
}

// SetConsistentIndex records a raft entry that changes no keys as applied.
func (s *Store) SetConsistentIndex(index, term uint64) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	tx := s.b.BatchTx()
	tx.Lock()
	s.putConsistentIndex(tx, index, term)
	s.mu.Lock()
	s.ci, s.term = index, term
	s.mu.Unlock()
	tx.Unlock()
}

// Commit forces a backend commit.
func (s *Store) Commit() { s.b.ForceCommit() }

// Close stops background compaction (an unfinished one resumes on the next
// Open) and detaches from the backend, which the caller closes.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stopc)
		s.wg.Wait()
		s.b.SetPreCommitHook(nil)
		s.b.SetCommitHook(nil)
		// The backend commits what is left when it closes; the consistent
		// index must be in that commit.
		tx := s.b.BatchTx()
		tx.Lock()
		if s.ciDirty {
			s.preCommit(tx)
		}
		tx.Unlock()
	})
	return nil
}

// lookupPending finds the stored value of r among the revisions written since
// the last commit (sorted by revision), or returns nil.
func lookupPending(p []pendingKV, r rev) []byte {
	if len(p) == 0 || r.less(p[0].r) {
		return nil
	}
	i := sort.Search(len(p), func(i int) bool { return !p[i].r.less(r) })
	if i < len(p) && p[i].r == r {
		return p[i].val
	}
	return nil
}
