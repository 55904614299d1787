// Package backend stores Ensemble's state in one bbolt file, batching many writes into each fsync'd commit.
package backend

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Defaults used when the corresponding Options field is zero.
const (
	DefaultBatchInterval = 100 * time.Millisecond
	DefaultBatchLimit    = 10000
	// DefaultMmapSize is large on purpose: bbolt must stop every reader to
	// remap a growing file, so a generous initial mapping (address space only,
	// not memory) keeps long readers such as snapshot streams from stalling
	// commits.
	DefaultMmapSize = 2 << 30
	// DefaultLockTimeout bounds the wait for another process's file lock, so a
	// second server on the same data dir fails instead of hanging.
	DefaultLockTimeout = 10 * time.Second
)

var (
	// ErrClosed is returned by operations on a closed backend.
	ErrClosed = errors.New("backend: closed")
	// ErrCommitFailed marks the backend unusable after a failed commit: the
	// batch it held is lost, so committing anything after it would persist a
	// state with a hole in it.
	ErrCommitFailed = errors.New("backend: commit failed")
	// ErrBucketNotFound is returned when a write names a bucket that does not exist.
	ErrBucketNotFound = errors.New("backend: bucket not found")
)

// Options configure Open.
type Options struct {
	// Path of the bbolt file; created if missing.
	Path string
	// BatchInterval is the longest a write waits in the batch before a commit.
	BatchInterval time.Duration
	// BatchLimit is the number of writes that forces a commit.
	BatchLimit int
	// Logger receives commit failures and lifecycle messages; nil discards.
	Logger *slog.Logger
	// MmapSize is the initial memory map size in bytes.
	MmapSize int
	// LockTimeout bounds the wait for the file lock (negative: wait forever).
	LockTimeout time.Duration
}

// Backend is a bbolt database with one long-lived batch write transaction.
type Backend struct {
	db *bolt.DB
	lg *slog.Logger
	// path and bopts reopen the database after a defragmentation.
	path  string
	bopts *bolt.Options
	// retired counts old databases that a defragmentation replaced and that
	// close once their last readers are done.
	retired sync.WaitGroup
	// defragCopied, if set, runs after a defragmentation made its copy and
	// before it swaps it in, with writes held; tests read there.
	defragCopied func()

	interval time.Duration
	limit    int

	batch *BatchTx

	readMu     sync.Mutex
	shared     *ReadTx
	committing bool

	size      atomic.Int64
	sizeInUse atomic.Int64
	commits   atomic.Int64

	stopc     chan struct{}
	donec     chan struct{}
	closeOnce sync.Once
	closeErr  error
}

// Open opens (or creates) the database at o.Path and starts the batch
// committer.
func Open(o Options) (*Backend, error) {
	lg := o.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	if o.BatchInterval <= 0 {
		o.BatchInterval = DefaultBatchInterval
	}
	if o.BatchLimit <= 0 {
		o.BatchLimit = DefaultBatchLimit
	}
	if o.MmapSize <= 0 {
		o.MmapSize = DefaultMmapSize
	}
	timeout := o.LockTimeout
	switch {
	case timeout == 0:
		timeout = DefaultLockTimeout
	case timeout < 0:
		timeout = 0
	}
	bopts := &bolt.Options{
		Timeout: timeout,
		// The freelist is rebuilt by scanning on open; not writing it on every
		// commit saves pages and time on the hot path.
		NoFreelistSync:  true,
		FreelistType:    bolt.FreelistMapType,
		InitialMmapSize: o.MmapSize,
	}
	db, err := bolt.Open(o.Path, 0o600, bopts)
	if err != nil {
		return nil, fmt.Errorf("backend: open %s: %w", o.Path, err)
	}
	b := &Backend{
		db:       db,
		lg:       lg,
		path:     o.Path,
		bopts:    bopts,
		interval: o.BatchInterval,
		limit:    o.BatchLimit,
		stopc:    make(chan struct{}),
		donec:    make(chan struct{}),
	}
	b.batch = &BatchTx{b: b}
	tx, err := db.Begin(true)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("backend: begin batch: %w", err)
	}
	b.batch.tx = tx
	b.updateSize(tx)
	go b.run()
	return b, nil
}

func (b *Backend) run() {
	defer close(b.donec)
	t := time.NewTicker(b.interval)
	defer t.Stop()
	for {
		select {
		case <-b.stopc:
			return
		case <-t.C:
		}
		b.batch.Lock()
		if b.batch.pending > 0 {
			b.batch.commit(false)
		}
		b.batch.Unlock()
	}
}

// BatchTx returns the shared batch write transaction. Callers Lock it, use
// the Unsafe* methods, and Unlock it.
func (b *Backend) BatchTx() *BatchTx { return b.batch }

// SetCommitHook installs fn to run after every successful commit, with the
// batch lock held (so no write can slip in between the commit and fn).
func (b *Backend) SetCommitHook(fn func()) {
	b.batch.Lock()
	b.batch.hook = fn
	b.batch.Unlock()
}

// SetPreCommitHook installs fn to run with the batch lock held just before
// every commit of a non-empty batch, so that a user can add writes (such as
// a position marker) once per commit instead of once per change.
func (b *Backend) SetPreCommitHook(fn func(*BatchTx)) {
	b.batch.Lock()
	b.batch.pre = fn
	b.batch.Unlock()
}

// ForceCommit commits the batch now (an fsync), if it holds any write.
func (b *Backend) ForceCommit() {
	b.batch.Lock()
	b.batch.commit(false)
	b.batch.Unlock()
}

// Err returns the error that made the backend unusable, or nil.
func (b *Backend) Err() error {
	b.batch.Lock()
	defer b.batch.Unlock()
	return b.batch.err
}

// Commits returns how many batches have been committed since Open.
func (b *Backend) Commits() int64 { return b.commits.Load() }

// Size is the size of the database file in bytes as of the last commit.
func (b *Backend) Size() int64 { return b.size.Load() }

// SizeInUse is Size less the pages on the freelist, as of the last commit.
func (b *Backend) SizeInUse() int64 { return b.sizeInUse.Load() }

func (b *Backend) updateSize(tx *bolt.Tx) {
	size := tx.Size()
	free := int64(b.db.Stats().FreePageN) * int64(b.db.Info().PageSize)
	b.size.Store(size)
	b.sizeInUse.Store(size - free)
}

// ReadTx returns a read transaction that sees everything committed so far.
// Readers between two commits share one bbolt transaction, which saves
// beginning one per read. The caller must Close it exactly once, soon: an open
// read transaction keeps the file from being remapped as it grows.
func (b *Backend) ReadTx() (*ReadTx, error) {
	b.readMu.Lock()
	defer b.readMu.Unlock()
	if r := b.shared; r != nil {
		r.refs.Add(1)
		return r, nil
	}
	tx, err := b.db.Begin(false)
	if err != nil {
		return nil, fmt.Errorf("backend: begin read: %w", err)
	}
	r := newReadTx(tx)
	if !b.committing {
		// One more reference for the backend, dropped after the next commit.
		// Not while committing: the commit may have to wait for every read
		// transaction to end before it can remap the file.
		r.refs.Add(1)
		b.shared = r
	}
	return r, nil
}

// dropShared releases the backend's reference to the shared read
// transaction; committing says whether new ones may be shared.
func (b *Backend) dropShared(committing bool) {
	b.readMu.Lock()
	r := b.shared
	b.shared = nil
	b.committing = committing
	b.readMu.Unlock()
	if r != nil {
		r.Close()
	}
}

// Close commits the pending batch and closes the database. It reports the
// commit failure, if any, that made the backend unusable.
func (b *Backend) Close() error {
	b.closeOnce.Do(func() {
		close(b.stopc)
		<-b.donec
		bt := b.batch
		bt.Lock()
		bt.commit(true)
		err := bt.err
		bt.closed = true
		bt.Unlock()
		b.dropShared(false)
		b.retired.Wait()
		if cerr := b.db.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("backend: close: %w", cerr)
		}
		b.closeErr = err
	})
	return b.closeErr
}

// Snapshot is a consistent copy of the whole database being streamed.
type Snapshot interface {
	io.ReadCloser
	// Size is the exact number of bytes the stream yields.
	Size() int64
}

type snapshot struct {
	*io.PipeReader
	size int64
}

func (s *snapshot) Size() int64 { return s.size }

// committedReadTx commits the batch and begins a read transaction that holds
// exactly what was committed: it is begun under the batch lock, so that no
// later write can be in it.
func (b *Backend) committedReadTx() (*bolt.Tx, error) {
	b.batch.Lock()
	defer b.batch.Unlock()
	b.batch.commit(false)
	if err := b.batch.err; err != nil {
		return nil, err
	}
	return b.db.Begin(false)
}

// Snapshot commits the batch and returns a stream of the database as of that
// commit. The stream holds a read transaction until it has been read to the
// end or closed, so callers must do one of the two.
func (b *Backend) Snapshot() (Snapshot, error) {
	tx, err := b.committedReadTx()
	if err != nil {
		return nil, fmt.Errorf("backend: snapshot: %w", err)
	}
	pr, pw := io.Pipe()
	go func() {
		_, werr := tx.WriteTo(pw)
		_ = tx.Rollback()
		pw.CloseWithError(werr)
	}()
	return &snapshot{PipeReader: pr, size: tx.Size()}, nil
}

// ReadTx is a read-only view of the database as of a commit. It is safe for
// concurrent use.
type ReadTx struct {
	tx   *bolt.Tx
	refs atomic.Int32
	// buckets are opened once, up front: opening one writes to the
	// transaction, which concurrent users must not do.
	names   []string
	buckets []*bolt.Bucket
}

func newReadTx(tx *bolt.Tx) *ReadTx {
	r := &ReadTx{tx: tx}
	r.refs.Store(1)
	_ = tx.ForEach(func(name []byte, bk *bolt.Bucket) error {
		r.names = append(r.names, string(name))
		r.buckets = append(r.buckets, bk)
		return nil
	})
	return r
}

func (r *ReadTx) bucket(name []byte) *bolt.Bucket {
	for i, n := range r.names {
		if n == string(name) {
			return r.buckets[i]
		}
	}
	return nil
}

// Get returns the value of key in bucket, or nil. The slice is valid only
// until Close.
func (r *ReadTx) Get(bucket, key []byte) []byte {
	bk := r.bucket(bucket)
	if bk == nil {
		return nil
	}
	return bk.Get(key)
}

// Range calls fn for each key in [from, to) of bucket in order (to nil: to the
// end) until fn returns false. Slices are valid only until Close.
func (r *ReadTx) Range(bucket, from, to []byte, fn func(k, v []byte) bool) {
	bk := r.bucket(bucket)
	if bk == nil {
		return
	}
	rangeBucket(bk, from, to, fn)
}

// Size is the database size this transaction sees.
func (r *ReadTx) Size() int64 { return r.tx.Size() }

// Close releases the caller's use of the transaction.
func (r *ReadTx) Close() {
	if r.refs.Add(-1) == 0 {
		_ = r.tx.Rollback()
	}
}

func rangeBucket(bk *bolt.Bucket, from, to []byte, fn func(k, v []byte) bool) {
	c := bk.Cursor()
	var k, v []byte
	if from == nil {
		k, v = c.First()
	} else {
		k, v = c.Seek(from)
	}
	for ; k != nil; k, v = c.Next() {
		if to != nil && string(k) >= string(to) {
			return
		}
		if !fn(k, v) {
			return
		}
	}
}
