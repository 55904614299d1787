package mvcc

import (
	"bytes"
	"encoding/binary"

	"github.com/google/btree"
)

// rev is a position in history: main revision and sub revision.
type rev struct{ main, sub int64 }

func (r rev) less(o rev) bool {
	if r.main != o.main {
		return r.main < o.main
	}
	return r.sub < o.sub
}

const (
	revKeyLen  = 17
	tombKeyLen = 18
	tombMark   = 't'
)

// putRevKey writes the bbolt key of r into b (at least revKeyLen bytes).
func putRevKey(b []byte, r rev) {
	binary.BigEndian.PutUint64(b, uint64(r.main))
	b[8] = '_'
	binary.BigEndian.PutUint64(b[9:], uint64(r.sub))
}

// parseRevKey decodes a bbolt key of the key bucket.
func parseRevKey(b []byte) (r rev, tomb bool, ok bool) {
	if len(b) != revKeyLen && len(b) != tombKeyLen {
		return rev{}, false, false
	}
	if b[8] != '_' || (len(b) == tombKeyLen && b[17] != tombMark) {
		return rev{}, false, false
	}
	r.main = int64(binary.BigEndian.Uint64(b))
	r.sub = int64(binary.BigEndian.Uint64(b[9:]))
	return r, len(b) == tombKeyLen, true
}

// generation is one life of a key: from the put that created it to the
// tombstone that ended it (the last rev of a closed generation).
type generation struct {
	// ver is the version of the key at its last rev in revs. It counts puts
	// since creation, including those compacted away, so versions of the revs
	// still held are derived by counting back from the end.
	ver int64
	// created is the main revision of the put that began the generation.
	created int64
	revs    []rev
}

// keyIndex holds every revision still in storage of one key.
type keyIndex struct {
	key []byte
	// gens is never empty; only the last generation can be open (not ended by
	// a tombstone), and it is empty when the key does not exist now.
	gens []generation
}

func lessKeyIndex(a, b *keyIndex) bool { return bytes.Compare(a.key, b.key) < 0 }

func newKeyIndex(key []byte) *keyIndex {
	return &keyIndex{key: key, gens: make([]generation, 1, 1)}
}

// live reports whether the key exists at the newest revision.
func (ki *keyIndex) live() bool { return len(ki.gens[len(ki.gens)-1].revs) > 0 }

// current returns create revision and version of the live key.
func (ki *keyIndex) current() (created, ver int64) {
	g := &ki.gens[len(ki.gens)-1]
	return g.created, g.ver
}

// put records a put at r with the given create revision and version (as
// stored, so that a rebuilt index matches what was written).
func (ki *keyIndex) put(r rev, created, ver int64) {
	g := &ki.gens[len(ki.gens)-1]
	if len(g.revs) == 0 {
		g.created = created
	}
	g.revs = append(g.revs, r)
	g.ver = ver
}

// tombstone ends the live generation at r. It reports false if the key was
// not live.
func (ki *keyIndex) tombstone(r rev) bool {
	if !ki.live() {
		return false
	}
	g := &ki.gens[len(ki.gens)-1]
	g.revs = append(g.revs, r)
	ki.gens = append(ki.gens, generation{})
	return true
}

// get finds the revision of the key visible at main revision at, with its
// create revision and version.
func (ki *keyIndex) get(at int64) (mod rev, created, ver int64, ok bool) {
	for i := len(ki.gens) - 1; i >= 0; i-- {
		g := &ki.gens[i]
		n := len(g.revs)
		if n == 0 || g.revs[0].main > at {
			continue
		}
		closed := i < len(ki.gens)-1
		if closed && g.revs[n-1].main <= at {
			// The generation had ended by then: the key did not exist.
			return rev{}, 0, 0, false
		}
		j := n - 1
		for j > 0 && g.revs[j].main > at {
			j--
		}
		// In a closed generation the last rev is the tombstone and is not a
		// put, so it does not count as a version.
		last := n - 1
		if closed {
			last = n - 2
		}
		return g.revs[j], g.created, g.ver - int64(last-j), true
	}
	return rev{}, 0, 0, false
}

// compact drops the revisions no read at or after main revision at needs:
// for each generation, everything before its newest revision <= at, and whole
// generations that ended at or before at. The surviving revision <= at that
// is a put (at most one) is added to keep. It reports whether the key is
// gone entirely.
func (ki *keyIndex) compact(at int64, keep map[rev]struct{}) (empty bool) {
	// Generations that ended at or before at are gone entirely.
	drop := 0
	for drop < len(ki.gens)-1 {
		g := &ki.gens[drop]
		if g.revs[len(g.revs)-1].main > at {
			break
		}
		drop++
	}
	if drop > 0 {
		ki.gens = append(ki.gens[:0], ki.gens[drop:]...)
	}
	g := &ki.gens[0]
	n := len(g.revs)
	if n > 0 && g.revs[0].main <= at {
		j := n - 1
		for j > 0 && g.revs[j].main > at {
			j--
		}
		if j > 0 {
			g.revs = append(g.revs[:0], g.revs[j:]...)
		}
		// revs[0] is now the newest rev <= at; it is a put because a
		// tombstone <= at would have dropped the generation above.
		keep[g.revs[0]] = struct{}{}
	}
	return len(ki.gens) == 1 && len(ki.gens[0].revs) == 0
}

// index maps user keys to their keyIndex, ordered by key.
type index struct {
	tree *btree.BTreeG[*keyIndex]
}

func newIndex() *index {
	return &index{tree: btree.NewG[*keyIndex](32, lessKeyIndex)}
}

// visit calls fn for each keyIndex in [key, end) with the Range conventions:
// end nil means key alone, end {0} means every key >= key.
func (x *index) visit(key, end []byte, fn func(ki *keyIndex) bool) {
	probe := &keyIndex{key: key}
	if end == nil || len(end) == 0 {
		if ki, ok := x.tree.Get(probe); ok {
			fn(ki)
		}
		return
	}
	if len(end) == 1 && end[0] == 0 {
		x.tree.AscendGreaterOrEqual(probe, fn)
		return
	}
	if bytes.Compare(end, key) <= 0 {
		return
	}
	x.tree.AscendRange(probe, &keyIndex{key: end}, fn)
}
