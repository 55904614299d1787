package mvcc

import (
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// RangeOptions select what Range returns.
type RangeOptions struct {
	// Limit caps the number of KVs returned (0: no cap); Count is not capped.
	Limit int64
	// Rev is the revision to read at; 0 means the current one.
	Rev int64
	// CountOnly returns only Count.
	CountOnly bool
	// KeysOnly omits values.
	KeysOnly bool
}

// RangeResult is what Range found.
type RangeResult struct {
	// KVs are sorted by key.
	KVs []mvccpb.KeyValue
	// Rev is the store's current revision at the time of the read.
	Rev int64
	// Count is the number of keys matched, before Limit.
	Count int
}

// rangeScratch is a RangeResult with room for one KV and what finding it
// takes.
type rangeScratch struct {
	res   RangeResult
	kv    [1]mvccpb.KeyValue
	rev   [1]rev
	probe keyIndex
	kbuf  [revKeyLen]byte
}

// getter is where stored values are looked up by revision key.
type getter interface {
	Get(bucket, key []byte) []byte
}

// Range returns the keys in [key, end) as of o.Rev. end nil means key alone;
// end {0} means every key >= key.
func (s *Store) Range(key, end []byte, o RangeOptions) (*RangeResult, error) {
	s.mu.Lock()
	pend := s.pending
	cur := s.rev.Load()
	if o.CountOnly {
		// Counting needs only the index, not the values.
		s.mu.Unlock()
		return s.rangeAt(key, end, o, cur, nil, nil)
	}
	rtx, err := s.b.ReadTx()
	s.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("mvcc: %w", err)
	}
	defer rtx.Close()
	return s.rangeAt(key, end, o, cur, pend, rtx)
}

// rangeAt resolves revisions through the index and reads their values from
// pend or g. The view (cur, pend, g) must have been taken before the index is
// consulted: a compaction scheduled after the view cannot then remove
// anything the view's reads need.
func (s *Store) rangeAt(key, end []byte, o RangeOptions, cur int64, pend []pendingKV, g getter) (*RangeResult, error) {
	at := o.Rev
	if at <= 0 {
		at = cur
	}
	if at > cur {
		return nil, ErrFutureRev
	}
	// One allocation holds what a single-key read needs.
	sc := &rangeScratch{res: RangeResult{Rev: cur}}
	res := &sc.res
	revs := sc.rev[:0]
	s.idxMu.RLock()
	if at < s.compactRev {
		s.idxMu.RUnlock()
		return nil, ErrCompacted
	}
	if len(end) == 0 {
		sc.probe.key = key
		if ki, ok := s.idx.tree.Get(&sc.probe); ok {
			if mod, _, _, ok := ki.get(at); ok {
				res.Count = 1
				revs = append(revs, mod)
			}
		}
		sc.probe.key = nil
	} else {
		limit := o.Limit
		s.idx.visit(key, end, func(ki *keyIndex) bool {
			mod, _, _, ok := ki.get(at)
			if !ok {
				return true
			}
			res.Count++
			if !o.CountOnly && (limit <= 0 || int64(len(revs)) < limit) {
				revs = append(revs, mod)
			}
			return true
		})
	}
	s.idxMu.RUnlock()
	if o.CountOnly || len(revs) == 0 {
		return res, nil
	}
	if len(revs) == 1 {
		res.KVs = sc.kv[:]
	} else {
		res.KVs = make([]mvccpb.KeyValue, len(revs))
	}
	kbuf := sc.kbuf[:]
	for i, r := range revs {
		v := lookupPending(pend, r)
		if v == nil {
			putRevKey(kbuf, r)
			v = g.Get(s.keyBucket, kbuf)
		}
		if v == nil {
			return nil, fmt.Errorf("%w: revision %d.%d is indexed but not stored", ErrCorrupt, r.main, r.sub)
		}
		if err := decodeKV(&res.KVs[i], v, o.KeysOnly); err != nil {
			return nil, fmt.Errorf("%w: revision %d.%d: %w", ErrCorrupt, r.main, r.sub, err)
		}
	}
	return res, nil
}
