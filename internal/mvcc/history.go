package mvcc

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// History returns, as watch events in revision order, the changes to keys in
// [key, end) (Range's conventions for end) made by revisions from..to. A put
// is a PUT event with the new KeyValue; a deletion is a DELETE event whose
// KeyValue holds only Key and ModRevision. Events have no PrevKv.
//
// To keep read transactions short, it stops once it has examined maxChanges
// stored changes (of any key; <= 0: no limit), but never inside a revision:
// next is the first revision not covered, to+1 when all were. It fails with
// ErrCompacted when from is below the compacted revision, and with
// ErrFutureRev when to is past the current one. From the compaction revision
// itself it returns what the compaction kept of it, as etcd's watch does (a
// deletion at exactly that revision is gone with its tombstone).
func (s *Store) History(key, end []byte, from, to int64, maxChanges int) (evs []mvccpb.Event, next int64, err error) {
	if from < 1 {
		from = 1
	}
	if to < from {
		return nil, from, nil
	}
	s.mu.Lock()
	pend := s.pending
	cur := s.rev.Load()
	rtx, err := s.b.ReadTx()
	s.mu.Unlock()
	if err != nil {
		return nil, from, fmt.Errorf("mvcc: %w", err)
	}
	defer rtx.Close()
	// The view is taken before the check: a compaction scheduled later cannot
	// remove what the read transaction sees.
	s.idxMu.RLock()
	compacted := s.compactRev
	s.idxMu.RUnlock()
	if from < compacted {
		return nil, from, ErrCompacted
	}
	if to > cur {
		return nil, from, ErrFutureRev
	}

	h := historyReader{key: key, end: end, limit: maxChanges, next: from}
	// The revisions in pend are the newest ones; the read transaction may
	// also see some of them (a commit and the clearing of pend are not
	// atomic), so it is read only below the first pending revision. A commit
	// never splits a revision, so no revision is in both parts.
	txTo := to
	if len(pend) > 0 && pend[0].r.main-1 < txTo {
		txTo = pend[0].r.main - 1
	}
	if from <= txTo {
		lo := make([]byte, revKeyLen)
		hi := make([]byte, revKeyLen)
		putRevKey(lo, rev{main: from})
		putRevKey(hi, rev{main: txTo + 1})
		rtx.Range(s.keyBucket, lo, hi, func(k, v []byte) bool {
			r, tomb, ok := parseRevKey(k)
			if !ok {
				h.err = fmt.Errorf("%w: bad revision key %x", ErrCorrupt, k)
				return false
			}
			return h.add(r, tomb, v)
		})
		if h.err != nil {
			return nil, from, h.err
		}
		if !h.stopped {
			h.next = txTo + 1
		}
	}
	if !h.stopped {
		for _, p := range pend {
			if p.r.main < from || p.r.main > to {
				continue
			}
			// A stored tombstone holds only the key; a put always has a
			// mod revision.
			if !h.add(p.r, modRevision(p.val) == 0, p.val) {
				break
			}
		}
		if h.err != nil {
			return nil, from, h.err
		}
		if !h.stopped {
			h.next = to + 1
		}
	}
	return h.events(), h.next, nil
}

// historyReader collects the matching changes of a History scan.
type historyReader struct {
	key, end []byte
	limit    int
	scanned  int
	// next is the first revision not yet fully examined.
	next    int64
	stopped bool
	err     error
	kvs     []mvccpb.KeyValue
	tombs   []bool
}

// add examines one stored change and reports whether to go on.
func (h *historyReader) add(r rev, tomb bool, v []byte) bool {
	if r.main != h.next-1 || h.scanned == 0 {
		// First change of a new revision: the previous ones are complete.
		if h.limit > 0 && h.scanned >= h.limit {
			h.next = r.main
			h.stopped = true
			return false
		}
	}
	h.next = r.main + 1
	h.scanned++
	k, ok := storedKey(v)
	if !ok {
		h.err = fmt.Errorf("%w: revision %d.%d: %w", ErrCorrupt, r.main, r.sub, errBadKV)
		return false
	}
	if !inRange(k, h.key, h.end) {
		return true
	}
	var kv mvccpb.KeyValue
	if tomb {
		kv.Key = append([]byte(nil), k...)
		kv.ModRevision = r.main
	} else if err := decodeKV(&kv, v, false); err != nil {
		h.err = fmt.Errorf("%w: revision %d.%d: %w", ErrCorrupt, r.main, r.sub, err)
		return false
	}
	h.kvs = append(h.kvs, kv)
	h.tombs = append(h.tombs, tomb)
	return true
}

// events turns the collected changes into events; the KeyValues are
// addressed in place, so they are built only once kvs stops growing.
func (h *historyReader) events() []mvccpb.Event {
	if len(h.kvs) == 0 {
		return nil
	}
	evs := make([]mvccpb.Event, len(h.kvs))
	for i := range h.kvs {
		evs[i].Kv = &h.kvs[i]
		if h.tombs[i] {
			evs[i].Type = mvccpb.DELETE
		}
	}
	return evs
}

// inRange reports whether k is in [key, end) with Range's conventions: end
// nil means key alone, end {0} every key >= key.
func inRange(k, key, end []byte) bool {
	if len(end) == 0 {
		return bytes.Equal(k, key)
	}
	if bytes.Compare(k, key) < 0 {
		return false
	}
	if len(end) == 1 && end[0] == 0 {
		return true
	}
	return bytes.Compare(k, end) < 0
}

// storedKey returns the key field (1) of a marshaled KeyValue without
// decoding the rest, so that changes to other keys cost no copy.
func storedKey(data []byte) ([]byte, bool) {
	for i := 0; i < len(data); {
		tag, n := binary.Uvarint(data[i:])
		if n <= 0 {
			return nil, false
		}
		i += n
		switch tag & 7 {
		case 0:
			_, n := binary.Uvarint(data[i:])
			if n <= 0 {
				return nil, false
			}
			i += n
		case 2:
			l, n := binary.Uvarint(data[i:])
			if n <= 0 || l > uint64(len(data)-i-n) {
				return nil, false
			}
			i += n
			if tag>>3 == 1 {
				return data[i : i+int(l)], true
			}
			i += int(l)
		case 1:
			i += 8
		case 5:
			i += 4
		default:
			return nil, false
		}
	}
	// A KeyValue with an empty key marshals without field 1.
	return nil, true
}

// modRevision returns the mod_revision field (3) of a marshaled KeyValue, 0
// when absent (as in a stored tombstone).
func modRevision(data []byte) int64 {
	for i := 0; i < len(data); {
		tag, n := binary.Uvarint(data[i:])
		if n <= 0 {
			return 0
		}
		i += n
		switch tag & 7 {
		case 0:
			x, n := binary.Uvarint(data[i:])
			if n <= 0 {
				return 0
			}
			i += n
			if tag>>3 == 3 {
				return int64(x)
			}
		case 2:
			l, n := binary.Uvarint(data[i:])
			if n <= 0 || l > uint64(len(data)-i-n) {
				return 0
			}
			i += n + int(l)
		case 1:
			i += 8
		case 5:
			i += 4
		default:
			return 0
		}
	}
	return 0
}
