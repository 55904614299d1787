package watch

import "go.etcd.io/etcd/api/v3/mvccpb"

// ringEntry is one recent revision with all its events.
type ringEntry struct {
	rev  int64
	evs  []*mvccpb.Event
	size int
}

// ring keeps the newest revisions, contiguous, bounded in count and bytes.
// It holds the revisions head-n+1..head; head is the newest revision
// notified, kept or not.
type ring struct {
	buf      []ringEntry
	start, n int
	bytes    int
	maxBytes int
	head     int64
}

func (r *ring) init(revisions, maxBytes int, head int64) {
	r.buf = make([]ringEntry, revisions)
	r.maxBytes = maxBytes
	r.head = head
}

// lo is the oldest revision held (head+1 when empty).
func (r *ring) lo() int64 { return r.head - int64(r.n) + 1 }

func (r *ring) at(i int) *ringEntry { return &r.buf[(r.start+i)%len(r.buf)] }

func (r *ring) dropOldest() {
	e := r.at(0)
	r.bytes -= e.size
	*e = ringEntry{}
	r.start = (r.start + 1) % len(r.buf)
	r.n--
}

// add records revision rev. Revisions at or below head were seen already
// (an observer swap can repeat one); a jump forward empties the ring, which
// must stay contiguous.
func (r *ring) add(rev int64, evs []*mvccpb.Event, size int) {
	if rev <= r.head {
		return
	}
	if rev != r.head+1 {
		r.reset(rev - 1)
	}
	for r.n > 0 && (r.n == len(r.buf) || r.bytes+size > r.maxBytes) {
		r.dropOldest()
	}
	*r.at(r.n) = ringEntry{rev: rev, evs: evs, size: size}
	r.n++
	r.bytes += size
	r.head = rev
}

// skip records that revision rev happened without keeping it.
func (r *ring) skip(rev int64) {
	if rev <= r.head {
		return
	}
	r.reset(rev)
}

// reset empties the ring at head.
func (r *ring) reset(head int64) {
	for r.n > 0 {
		r.dropOldest()
	}
	r.start = 0
	r.head = head
}

// since appends to out up to max entries with revisions after rev.
func (r *ring) since(rev int64, out []ringEntry, max int) []ringEntry {
	lo := r.lo()
	i := 0
	if rev >= lo {
		i = int(rev - lo + 1)
	}
	for ; i < r.n && len(out) < max; i++ {
		out = append(out, *r.at(i))
	}
	return out
}

// covers reports whether the ring holds every revision from..to.
func (r *ring) covers(from, to int64) bool {
	return r.n > 0 && from >= r.lo() && to <= r.head
}

// get returns the entry of revision rev, which the ring must hold.
func (r *ring) get(rev int64) *ringEntry { return r.at(int(rev - r.lo())) }
