package mvcc

import (
	"bytes"
	"fmt"
	"hash/crc32"
)

// KVHash is the hash of the key-value history up to a revision.
type KVHash struct {
	Hash uint32
	// CompactRevision is the compaction the hash was taken under.
	CompactRevision int64
	// Revision is the revision hashed up to.
	Revision int64
}

// HashKV hashes every stored revision up to rev (0: the current one) that a
// compaction keeps, the way etcd does: CRC-32C of the bucket name, then of
// each revision key and value in order. Revisions at or below the compaction
// count only if the compaction keeps them, so members agree whether or not
// they have finished removing the others from disk.
func (s *Store) HashKV(rev int64) (KVHash, error) {
	// Holding the writer lock while committing gives a read transaction that
	// holds every revision up to the current one: none is only pending.
	s.wmu.Lock()
	s.b.ForceCommit()
	s.idxMu.RLock()
	compactRev, cur := s.compactRev, s.rev.Load()
	if rev > 0 && rev < compactRev {
		s.idxMu.RUnlock()
		s.wmu.Unlock()
		return KVHash{}, ErrCompacted
	}
	if rev > cur {
		s.idxMu.RUnlock()
		s.wmu.Unlock()
		return KVHash{}, ErrFutureRev
	}
	if rev <= 0 {
		rev = cur
	}
	keep := s.keptAt(compactRev)
	s.idxMu.RUnlock()
	rtx, err := s.b.ReadTx()
	s.wmu.Unlock()
	if err != nil {
		return KVHash{}, fmt.Errorf("mvcc: %w", err)
	}
	defer rtx.Close()

	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	h.Write(s.keyBucket)
	end := make([]byte, revKeyLen)
	putRevKey(end, revision(rev+1))
	rtx.Range(s.keyBucket, nil, end, func(k, v []byte) bool {
		r, _, ok := parseRevKey(k)
		if !ok {
			err = fmt.Errorf("%w: bad revision key %x", ErrCorrupt, k)
			return false
		}
		if r.main <= compactRev {
			if _, kept := keep[r]; !kept {
				return true
			}
		}
		h.Write(k)
		h.Write(v)
		return true
	})
	if err != nil {
		return KVHash{}, err
	}
	return KVHash{Hash: h.Sum32(), CompactRevision: compactRev, Revision: rev}, nil
}

func revision(main int64) rev { return rev{main: main} }

// keptAt lists the revisions at or below the compaction at that the
// compaction keeps: after compacting the index, the only revision of a key
// at or below it is the put that stays. idxMu is held.
func (s *Store) keptAt(at int64) map[rev]struct{} {
	keep := make(map[rev]struct{})
	if at <= 0 {
		return keep
	}
	s.idx.tree.Ascend(func(ki *keyIndex) bool {
		for i := range ki.gens {
			for _, r := range ki.gens[i].revs {
				if r.main > at {
					return true
				}
				keep[r] = struct{}{}
			}
		}
		return true
	})
	return keep
}

// Hash is a CRC-32C of the whole database except the applied raft index,
// which members reach at different times, with the revision it was taken at.
func (s *Store) Hash() (hash uint32, rev int64, err error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	rev = s.rev.Load()
	hash, err = s.b.Hash(func(bucket, key []byte) bool {
		return bytes.Equal(bucket, s.metaBucket) && bytes.Equal(key, s.ciKey)
	})
	return hash, rev, err
}
