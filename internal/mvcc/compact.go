package mvcc

import (
	"encoding/binary"
	"time"
)

// Compact discards history below rev. Reads below rev fail with ErrCompacted
// as soon as it returns; for every key, its newest revision <= rev is kept
// unless it is a deletion. The compaction and (index, term) are recorded in
// the current batch; the stored revisions are removed in the background in
// small steps, and the returned channel is closed when that is done.
func (s *Store) Compact(index, term uint64, rev int64) (<-chan struct{}, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if rev <= s.compactA.Load() {
		return nil, ErrCompacted
	}
	if rev > s.rev.Load() {
		return nil, ErrFutureRev
	}
	tx := s.b.BatchTx()
	tx.Lock()
	v := s.alloc(8)
	binary.BigEndian.PutUint64(v, uint64(rev))
	s.fail(tx.UnsafePut(s.metaBucket, s.schedKey, v))
	s.putConsistentIndex(tx, index, term)
	s.mu.Lock()
	s.ci, s.term = index, term
	s.mu.Unlock()
	tx.Unlock()

	keep := s.compactIndex(rev)
	return s.startPhysical(rev, keep), nil
}

// compactIndex drops from the index what a compaction at rev removes and
// returns the stored revisions <= rev that survive it.
func (s *Store) compactIndex(at int64) map[rev]struct{} {
	keep := make(map[rev]struct{})
	var empty []*keyIndex
	start := time.Now()
	s.idxMu.Lock()
	s.compactRev = at
	s.compactA.Store(at)
	s.idx.tree.Ascend(func(ki *keyIndex) bool {
		if ki.compact(at, keep) {
			empty = append(empty, ki)
		}
		return true
	})
	for _, ki := range empty {
		s.idx.tree.Delete(ki)
	}
	s.idxMu.Unlock()
	s.lg.Debug("compacted key index", "revision", at, "keys-removed", len(empty), "took", time.Since(start))
	return keep
}

// startPhysical removes stored revisions <= at that are not in keep, after
// any earlier compaction has finished, and records at as finished.
func (s *Store) startPhysical(at int64, keep map[rev]struct{}) <-chan struct{} {
	prev := s.compactDone
	done := make(chan struct{})
	s.compactDone = done
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(done)
		select {
		case <-prev:
		case <-s.stopc:
			return
		}
		s.physicalCompact(at, keep)
	}()
	return done
}

func (s *Store) physicalCompact(at int64, keep map[rev]struct{}) {
	start := time.Now()
	end := make([]byte, revKeyLen)
	putRevKey(end, rev{main: at + 1})
	from := make([]byte, 0, tombKeyLen+1)
	// dels holds copies of the keys to delete: bbolt's slices are only valid
	// until the first change.
	dels := make([]byte, 0, compactBatch*tombKeyLen)
	var offs []int
	removed := 0
	tx := s.b.BatchTx()
	for {
		select {
		case <-s.stopc:
			return
		default:
		}
		scanned := 0
		dels, offs = dels[:0], offs[:0]
		var last []byte
		tx.Lock()
		tx.UnsafeRange(s.keyBucket, from, end, func(k, _ []byte) bool {
			scanned++
			last = k
			r, _, ok := parseRevKey(k)
			if _, kept := keep[r]; ok && !kept {
				offs = append(offs, len(dels))
				dels = append(dels, k...)
			}
			return scanned < compactBatch
		})
		if last != nil {
			// The next step starts just after the last key seen.
			from = append(append(from[:0], last...), 0)
		}
		for i, off := range offs {
			e := len(dels)
			if i+1 < len(offs) {
				e = offs[i+1]
			}
			s.fail(tx.UnsafeDelete(s.keyBucket, dels[off:e]))
		}
		removed += len(offs)
		finished := scanned < compactBatch
		if finished {
			v := make([]byte, 8)
			binary.BigEndian.PutUint64(v, uint64(at))
			s.fail(tx.UnsafePut(s.metaBucket, s.finKey, v))
		}
		tx.Unlock()
		if finished {
			s.lg.Info("compaction finished", "revision", at, "removed", removed, "took", time.Since(start))
			return
		}
	}
}
