package backend

import (
	"fmt"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// BatchTx is the backend's single write transaction, shared by all writers
// and committed by time, by count, or on demand. Methods named Unsafe* must be
// called with the lock held.
type BatchTx struct {
	mu sync.Mutex
	b  *Backend
	tx *bolt.Tx
	// pending counts the writes since the last commit.
	pending int
	hook    func()
	pre     func(*BatchTx)
	// err is sticky: once a commit failed nothing is ever committed again.
	err    error
	closed bool

	lastName []byte
	last     *bolt.Bucket
}

// Lock takes the batch lock.
func (t *BatchTx) Lock() { t.mu.Lock() }

// Unlock commits first if the batch has reached its write limit, then
// releases the lock.
func (t *BatchTx) Unlock() {
	if t.pending >= t.b.limit {
		t.commit(false)
	}
	t.mu.Unlock()
}

func (t *BatchTx) usable() error {
	if t.err != nil {
		return t.err
	}
	if t.closed || t.tx == nil {
		return ErrClosed
	}
	return nil
}

func (t *BatchTx) bucket(name []byte) *bolt.Bucket {
	if t.last != nil && string(t.lastName) == string(name) {
		return t.last
	}
	bk := t.tx.Bucket(name)
	if bk != nil {
		t.lastName, t.last = append(t.lastName[:0], name...), bk
	}
	return bk
}

// UnsafeCreateBucket creates bucket name if it does not exist.
func (t *BatchTx) UnsafeCreateBucket(name []byte) error {
	if err := t.usable(); err != nil {
		return err
	}
	if _, err := t.tx.CreateBucketIfNotExists(name); err != nil {
		return fmt.Errorf("backend: create bucket %q: %w", name, err)
	}
	t.pending++
	return nil
}

// UnsafePut sets key to value in bucket. bbolt keeps both slices until the
// commit, so the caller must not modify them afterwards.
func (t *BatchTx) UnsafePut(bucket, key, value []byte) error {
	if err := t.usable(); err != nil {
		return err
	}
	bk := t.bucket(bucket)
	if bk == nil {
		return fmt.Errorf("%w: %q", ErrBucketNotFound, bucket)
	}
	if err := bk.Put(key, value); err != nil {
		return fmt.Errorf("backend: put: %w", err)
	}
	t.pending++
	return nil
}

// UnsafeDelete removes key from bucket; a missing key is not an error.
func (t *BatchTx) UnsafeDelete(bucket, key []byte) error {
	if err := t.usable(); err != nil {
		return err
	}
	bk := t.bucket(bucket)
	if bk == nil {
		return fmt.Errorf("%w: %q", ErrBucketNotFound, bucket)
	}
	if err := bk.Delete(key); err != nil {
		return fmt.Errorf("backend: delete: %w", err)
	}
	t.pending++
	return nil
}

// UnsafeGet returns the value of key in bucket as this batch sees it
// (including its uncommitted writes), or nil. The slice is valid only while
// the lock is held.
func (t *BatchTx) UnsafeGet(bucket, key []byte) []byte {
	if t.usable() != nil {
		return nil
	}
	bk := t.bucket(bucket)
	if bk == nil {
		return nil
	}
	return bk.Get(key)
}

// UnsafeRange calls fn for each key in [from, to) of bucket in order (to
// nil: to the end) until fn returns false. fn must not write to the bucket.
func (t *BatchTx) UnsafeRange(bucket, from, to []byte, fn func(k, v []byte) bool) {
	if t.usable() != nil {
		return
	}
	bk := t.bucket(bucket)
	if bk == nil {
		return
	}
	rangeBucket(bk, from, to, fn)
}

// UnsafeForEach calls fn for every key of bucket in order until fn returns false.
func (t *BatchTx) UnsafeForEach(bucket []byte, fn func(k, v []byte) bool) {
	t.UnsafeRange(bucket, nil, nil, fn)
}

// Pending is the number of writes waiting for the next commit.
func (t *BatchTx) Pending() int { return t.pending }

// commit commits the batch (if it holds writes) and, unless closing, begins
// the next one. A failure is logged and made permanent.
func (t *BatchTx) commit(closing bool) {
	if t.usable() != nil {
		return
	}
	b := t.b
	if t.pending > 0 && t.pre != nil {
		t.pre(t)
	}
	if t.pending > 0 {
		b.dropShared(true)
		err := t.tx.Commit()
		// Readers from now on must see this commit, and before the hook runs:
		// it tells users that what was pending is now readable.
		b.dropShared(false)
		t.tx, t.last = nil, nil
		if err != nil {
			t.err = fmt.Errorf("%w: %w", ErrCommitFailed, err)
			b.lg.Error("backend commit failed; refusing all further writes", "err", err, "writes-lost", t.pending)
			t.pending = 0
			return
		}
		t.pending = 0
		b.commits.Add(1)
		if t.hook != nil {
			t.hook()
		}
	} else if closing {
		_ = t.tx.Rollback()
		t.tx, t.last = nil, nil
	}
	if closing {
		return
	}
	if t.tx == nil {
		tx, err := b.db.Begin(true)
		if err != nil {
			t.err = fmt.Errorf("backend: begin batch: %w", err)
			b.lg.Error("backend cannot begin a write transaction; refusing all further writes", "err", err)
			return
		}
		t.tx = tx
		b.updateSize(tx)
	}
}
