package mvcc

import (
	"go.etcd.io/etcd/api/v3/mvccpb"

	"ensemble/internal/backend"
	"ensemble/internal/types"
)

// TxnWrite is the write transaction of one raft entry. Its changes share one
// main revision and are published together by End.
type TxnWrite struct {
	s            *Store
	tx           *backend.BatchTx
	index, term  uint64
	base         int64
	changes      []mvccpb.KeyValue
	pend         []pendingKV
	ended        bool
	probe        keyIndex
	tombstoneBuf []*keyIndex
	// Most transactions make one change: room for it without more allocations.
	pendArr    [1]pendingKV
	changesArr [1]mvccpb.KeyValue
}

// Write starts the write transaction of raft entry (index, term). Writers are
// serialized: it waits for the previous TxnWrite to End.
func (s *Store) Write(index, term uint64) *TxnWrite {
	s.wmu.Lock()
	tx := s.b.BatchTx()
	// The batch lock is held until End so that no commit splits the
	// transaction and its consistent index.
	tx.Lock()
	w := &TxnWrite{s: s, tx: tx, index: index, term: term, base: s.rev.Load()}
	w.pend, w.changes = w.pendArr[:0], w.changesArr[:0]
	return w
}

// Rev is the revision this transaction has if it changes something, or the
// current one.
func (w *TxnWrite) Rev() int64 {
	if len(w.changes) > 0 {
		return w.base + 1
	}
	return w.base
}

// Changes are the transaction's changes in order; a deletion is a KV with
// just Key and ModRevision. The slice must not be modified.
func (w *TxnWrite) Changes() []mvccpb.KeyValue { return w.changes }

// Range is Store.Range as seen from inside the transaction: it includes the
// transaction's own earlier writes.
func (w *TxnWrite) Range(key, end []byte, o RangeOptions) (*RangeResult, error) {
	return w.s.rangeAt(key, end, o, w.Rev(), nil, batchGetter{w.tx})
}

// batchGetter reads through the batch transaction, whose lock the writer
// holds, so it sees uncommitted writes.
type batchGetter struct{ tx *backend.BatchTx }

func (g batchGetter) Get(bucket, key []byte) []byte { return g.tx.UnsafeGet(bucket, key) }

func (w *TxnWrite) nextRev() rev { return rev{main: w.base + 1, sub: int64(len(w.changes))} }

// Put sets key to value with lease. The key's version and create revision
// follow etcd: a put after nothing or a deletion starts at version 1. key and
// value are kept by reference in Changes and must not be modified.
func (w *TxnWrite) Put(key, value []byte, lease types.LeaseID) {
	s := w.s
	r := w.nextRev()
	created, ver := r.main, int64(1)

	s.idxMu.Lock()
	w.probe.key = key
	ki, ok := s.idx.tree.Get(&w.probe)
	w.probe.key = nil
	if !ok {
		ki = newKeyIndex(append([]byte(nil), key...))
		s.idx.tree.ReplaceOrInsert(ki)
	} else if ki.live() {
		c, v := ki.current()
		created, ver = c, v+1
	}
	ki.put(r, created, ver)
	s.idxMu.Unlock()

	kv := mvccpb.KeyValue{
		Key:            key,
		CreateRevision: created,
		ModRevision:    r.main,
		Version:        ver,
		Value:          value,
		Lease:          int64(lease),
	}
	n := kv.Size()
	buf := s.alloc(revKeyLen + n)
	putRevKey(buf, r)
	if _, err := kv.MarshalToSizedBuffer(buf[revKeyLen:]); err != nil {
		s.fail(err)
	}
	s.fail(w.tx.UnsafePut(s.keyBucket, buf[:revKeyLen], buf[revKeyLen:]))
	w.pend = append(w.pend, pendingKV{r: r, val: buf[revKeyLen:]})
	w.changes = append(w.changes, kv)
}

// DeleteRange deletes the live keys in [key, end) (Range's conventions for
// end) and reports how many there were.
func (w *TxnWrite) DeleteRange(key, end []byte) (deleted int64) {
	s := w.s
	kis := w.tombstoneBuf[:0]
	s.idxMu.Lock()
	s.idx.visit(key, end, func(ki *keyIndex) bool {
		if ki.live() {
			kis = append(kis, ki)
		}
		return true
	})
	first := w.nextRev()
	for i, ki := range kis {
		ki.tombstone(rev{main: first.main, sub: first.sub + int64(i)})
	}
	s.idxMu.Unlock()

	for _, ki := range kis {
		r := w.nextRev()
		// The stored tombstone holds only the key; its revision is in the
		// bbolt key.
		tomb := mvccpb.KeyValue{Key: ki.key}
		n := tomb.Size()
		buf := s.alloc(tombKeyLen + n)
		putRevKey(buf, r)
		buf[revKeyLen] = tombMark
		if _, err := tomb.MarshalToSizedBuffer(buf[tombKeyLen:]); err != nil {
			s.fail(err)
		}
		s.fail(w.tx.UnsafePut(s.keyBucket, buf[:tombKeyLen], buf[tombKeyLen:]))
		w.pend = append(w.pend, pendingKV{r: r, val: buf[tombKeyLen:]})
		w.changes = append(w.changes, mvccpb.KeyValue{Key: ki.key, ModRevision: r.main})
	}
	clear(kis)
	w.tombstoneBuf = kis[:0]
	return int64(len(kis))
}

// End publishes the transaction: its revision becomes visible to readers and
// (index, term) becomes the consistent index, in the same backend batch as
// the changes. The TxnWrite must not be used after End, except for Rev and
// Changes.
func (w *TxnWrite) End() {
	if w.ended {
		return
	}
	w.ended = true
	s := w.s
	if len(w.changes) == 0 {
		// Nothing else may be in the batch to make it commit.
		s.putConsistentIndex(w.tx, w.index, w.term)
	} else {
		// Written by the pre-commit hook, in the commit that holds the changes.
		s.ciDirty = true
	}
	s.mu.Lock()
	// Appending never writes below the length of a slice a reader holds.
	s.pending = append(s.pending, w.pend...)
	s.rev.Store(w.Rev())
	s.ci, s.term = w.index, w.term
	s.mu.Unlock()
	w.pend = nil
	// Unlocking may commit, which runs onCommit; the pending revisions are
	// then already in the commit.
	w.tx.Unlock()
	w.notify()
	s.wmu.Unlock()
}
