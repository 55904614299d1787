package watch

import (
	"bytes"
	"context"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"ensemble/internal/mvcc"
)

type itemKind uint8

const (
	kindEvents itemKind = iota
	kindCreated
	kindRejected
	kindCanceled
	kindCompacted
	kindProgress
)

// item is one response waiting in a stream's queue, kept small: the wire
// message is built when it is sent.
type item struct {
	kind       itemKind
	w          *watcher
	id         int64
	rev        int64
	compactRev int64
	evs        []*mvccpb.Event
	reason     string
	// owned says evs is this item's own slice (merged), not one shared with
	// other watchers.
	owned bool
	// size estimates the events' bytes, for bounding merges.
	size int
}

// Stream is one client's bidirectional watch stream: its watchers and the
// queue of responses to send, in order. Create, Cancel and RequestProgress
// may be called from one goroutine while Run sends from another.
type Stream struct {
	h *Hub

	// Guarded by Hub.mu.
	watchers map[int64]*watcher
	nextID   int64
	closed   bool

	mu    sync.Mutex
	queue []item
	wake  chan struct{}
	stopc chan struct{}
	once  sync.Once

	// lastOf is Run's scratch for merging a batch.
	lastOf map[*watcher]int
}

// CreateRequest describes a new watch, as etcd's WatchCreateRequest with the
// range already in the store's conventions (end nil: key alone; end {0}:
// every key >= key).
type CreateRequest struct {
	Key, End []byte
	// StartRevision 0 means "after the current revision".
	StartRevision   int64
	WatchID         int64 // 0: the stream picks one
	NoPut, NoDelete bool
	PrevKV          bool
	ProgressNotify  bool
	Fragment        bool
}

// NewStream opens a stream.
func (h *Hub) NewStream() *Stream {
	return &Stream{
		h:        h,
		watchers: make(map[int64]*watcher),
		wake:     make(chan struct{}, 1),
		stopc:    make(chan struct{}),
	}
}

// Create adds a watch and queues its "created" response. A watch starting
// after the current revision joins the live fan-out at once; one starting in
// the past catches up from history first (or is canceled with the
// compaction revision if that history is gone).
func (s *Stream) Create(r CreateRequest) (int64, error) {
	if len(r.End) > 0 && !(len(r.End) == 1 && r.End[0] == 0) && bytes.Compare(r.Key, r.End) >= 0 {
		return -1, ErrEmptyRange
	}
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.closed || h.closed {
		return -1, ErrClosed
	}
	id := r.WatchID
	if id == 0 {
		for s.watchers[s.nextID] != nil {
			s.nextID++
		}
		id = s.nextID
		s.nextID++
	} else if s.watchers[id] != nil {
		return -1, ErrDuplicateID
	}
	w := &watcher{
		id: id, s: s,
		key: r.Key, end: r.End,
		noPut: r.NoPut, noDelete: r.NoDelete,
		prevKV: r.PrevKV, progress: r.ProgressNotify, fragmnt: r.Fragment,
	}
	s.watchers[id] = w
	h.nwatchers.Add(1)
	// "Now" is the newest revision the store has published, which the
	// dispatcher may not have handed out yet: a watch created after a write
	// returned must not see that write.
	h.ringMu.Lock()
	now := h.ring.head
	h.ringMu.Unlock()
	s.enqueue(item{kind: kindCreated, w: w, id: id, rev: now})
	switch {
	case r.StartRevision <= 0:
		w.next = now + 1
		h.joinGroup(w)
	case r.StartRevision > h.cur:
		w.next = r.StartRevision
		h.joinGroup(w)
	default:
		w.next = r.StartRevision
		h.unsynced[w] = struct{}{}
		h.kickSync()
	}
	return id, nil
}

// Reject queues the response etcd sends for a create request it refuses:
// created and canceled at once, with watch id -1 and the reason.
func (s *Stream) Reject(reason string) {
	s.h.mu.Lock()
	rev := s.h.cur
	s.h.mu.Unlock()
	s.enqueue(item{kind: kindRejected, id: -1, rev: rev, reason: reason})
}

// Cancel removes a watch and queues its "canceled" response; what the watch
// still had queued is not sent.
func (s *Stream) Cancel(id int64) error {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	w := s.watchers[id]
	if w == nil {
		return ErrNotFound
	}
	delete(s.watchers, id)
	w.canceled.Store(true)
	h.remove(w)
	s.enqueue(item{kind: kindCanceled, id: id, rev: h.cur})
	h.flushProgress()
	return nil
}

// RequestProgress queues a response with watch id -1 and no events whose
// header revision every watch of the stream is current with; if some watch
// is still catching up, the response waits until none is.
func (s *Stream) RequestProgress() {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.closed {
		return
	}
	h.ringMu.Lock()
	head := h.ring.head
	h.ringMu.Unlock()
	// While the dispatcher is behind the store, the answer waits for it, so
	// that it is at least the revision of any write that returned before.
	if head <= h.cur && s.allCurrent(h.cur) {
		s.enqueue(item{kind: kindProgress, id: -1, rev: h.cur})
		return
	}
	if old, ok := h.wantProgress[s]; !ok || old < head {
		h.wantProgress[s] = head
	}
}

// allCurrent reports whether every watch of s is synced and not waiting for
// a start revision after cur+1, so that a progress response at cur is true
// for all of them. Hub.mu is held.
func (s *Stream) allCurrent(cur int64) bool {
	for _, w := range s.watchers {
		if w.g == nil || w.next > cur+1 {
			return false
		}
	}
	return true
}

// Close removes the stream's watches and stops Run.
func (s *Stream) Close() {
	h := s.h
	h.mu.Lock()
	if !s.closed {
		s.closed = true
		for _, w := range s.watchers {
			w.canceled.Store(true)
			h.remove(w)
		}
		clear(s.watchers)
		delete(h.wantProgress, s)
	}
	h.mu.Unlock()
	s.once.Do(func() { close(s.stopc) })
}

// enqueue appends a response to the queue.
func (s *Stream) enqueue(it item) {
	s.mu.Lock()
	s.queue = append(s.queue, it)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// enqueueEvents queues events for w regardless of its queue limit (catch-up
// sends one response at a time and checks the limit itself).
func (s *Stream) enqueueEvents(w *watcher, rev int64, evs []*mvccpb.Event) {
	w.queued.Add(1)
	s.enqueue(item{kind: kindEvents, w: w, id: w.id, rev: rev, evs: evs})
}

// offerEvents queues a live revision for w unless w already has limit
// responses waiting.
func (s *Stream) offerEvents(w *watcher, rev int64, evs []*mvccpb.Event, limit int) bool {
	if int(w.queued.Load()) >= limit {
		return false
	}
	s.enqueueEvents(w, rev, evs)
	return true
}

// Run sends the stream's responses through send, in order, until ctx ends,
// the stream or hub is closed, or send fails. send receives a response
// whose header carries only the revision. Run also sends the periodic
// progress notifications of watches that asked for them.
func (s *Stream) Run(ctx context.Context, send func(*pb.WatchResponse) error) error {
	tick := time.NewTicker(time.Duration(s.h.progressD.Load()))
	defer tick.Stop()
	var batch []item
	for {
		s.mu.Lock()
		batch, s.queue = s.queue, batch[:0]
		s.mu.Unlock()
		batch = s.merge(batch)
		for i := range batch {
			if err := s.send(&batch[i], send); err != nil {
				s.release(batch[i:])
				return err
			}
			batch[i] = item{}
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-s.wake:
		case <-tick.C:
			s.progressTick()
		case <-s.stopc:
			return ErrClosed
		case <-s.h.stopc:
			return ErrClosed
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Bounds of a merged response.
const (
	maxMergedEvents = 1000
)

// merge joins, within a batch taken from the queue, the event responses of
// each watcher into its first one, when nothing but other watchers' events
// lies between them. A client slower than the writers then gets fewer,
// larger responses instead of falling further behind; each revision still
// arrives whole and in order, as in etcd's catch-up responses.
func (s *Stream) merge(batch []item) []item {
	if len(batch) < 2 {
		return batch
	}
	if s.lastOf == nil {
		s.lastOf = make(map[*watcher]int)
	}
	last := s.lastOf
	limit := s.h.opts.MaxResponseBytes / 2
	out := batch[:0]
	for _, it := range batch {
		if it.kind != kindEvents {
			// A control response orders against every watcher's events.
			clear(last)
			out = append(out, it)
			continue
		}
		if it.size == 0 {
			it.size = eventsSize(it.evs)
		}
		if j, ok := last[it.w]; ok {
			m := &out[j]
			if len(m.evs)+len(it.evs) <= maxMergedEvents && m.size+it.size <= limit {
				if !m.owned {
					m.evs = append(make([]*mvccpb.Event, 0, 2*(len(m.evs)+len(it.evs))), m.evs...)
					m.owned = true
				}
				m.evs = append(m.evs, it.evs...)
				m.rev, m.size = it.rev, m.size+it.size
				s.drained(it.w)
				continue
			}
		}
		last[it.w] = len(out)
		out = append(out, it)
	}
	clear(last)
	// Drop references held past the new end.
	clear(batch[len(out):])
	return out
}

func eventsSize(evs []*mvccpb.Event) int {
	n := 0
	for _, ev := range evs {
		n += len(ev.Kv.Key) + len(ev.Kv.Value) + 32
	}
	return n
}

// release gives back the queue slots of items that will not be sent.
func (s *Stream) release(items []item) {
	for i := range items {
		if w := items[i].w; w != nil && items[i].kind == kindEvents {
			w.queued.Add(-1)
		}
	}
}

// send turns one queued item into wire responses.
func (s *Stream) send(it *item, send func(*pb.WatchResponse) error) error {
	w := it.w
	if w != nil && (it.kind == kindEvents || it.kind == kindProgress) && w.canceled.Load() {
		if it.kind == kindEvents {
			s.drained(w)
		}
		return nil
	}
	resp := &pb.WatchResponse{Header: &pb.ResponseHeader{Revision: it.rev}, WatchId: it.id}
	switch it.kind {
	case kindCreated:
		resp.Created = true
	case kindRejected:
		resp.Created, resp.Canceled, resp.CancelReason = true, true, it.reason
	case kindCanceled:
		resp.Canceled = true
	case kindCompacted:
		resp.Canceled, resp.CompactRevision = true, it.compactRev
	case kindProgress:
	case kindEvents:
		defer s.drained(w)
		resp.Events = it.evs
		if w.prevKV {
			resp.Events = s.withPrevKV(it.evs)
		}
		if w.progress {
			w.sentEvents.Store(true)
		}
		if w.fragmnt {
			return sendFragments(resp, s.h.opts.MaxResponseBytes, send)
		}
	}
	return send(resp)
}

// drained accounts for one sent (or dropped) event response of w.
func (s *Stream) drained(w *watcher) {
	n := w.queued.Add(-1)
	if int(n) <= s.h.opts.QueueLimit/2 && w.blocked.CompareAndSwap(true, false) {
		s.h.kickSync()
	}
}

// withPrevKV copies events, adding the key's previous version, read at the
// revision before each event's, as etcd does; if that is compacted the
// event goes without.
func (s *Stream) withPrevKV(evs []*mvccpb.Event) []*mvccpb.Event {
	src := s.h.source()
	out := make([]*mvccpb.Event, len(evs))
	arr := make([]mvccpb.Event, len(evs))
	for i, ev := range evs {
		arr[i] = *ev
		out[i] = &arr[i]
		if ev.Type == mvccpb.PUT && ev.Kv.Version == 1 {
			continue // a creation has no previous version
		}
		r, err := src.Range(ev.Kv.Key, nil, mvcc.RangeOptions{Rev: ev.Kv.ModRevision - 1})
		if err == nil && len(r.KVs) > 0 {
			arr[i].PrevKv = &r.KVs[0]
		}
	}
	return out
}

// progressTick sends a progress notification to each watch that asked for
// them, is current, and got no events since the last tick.
func (s *Stream) progressTick() {
	h := s.h
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, w := range s.watchers {
		if !w.progress {
			continue
		}
		if w.sentEvents.Swap(false) {
			continue
		}
		if w.g == nil || w.next > h.cur+1 {
			continue
		}
		s.enqueue(item{kind: kindProgress, w: w, id: w.id, rev: h.cur})
	}
}

// sendFragments sends resp in pieces of at most max bytes (but at least one
// event each), all but the last marked Fragment, as etcd does for watches
// created with fragment set.
func sendFragments(resp *pb.WatchResponse, max int, send func(*pb.WatchResponse) error) error {
	if len(resp.Events) < 2 || resp.Size() < max {
		return send(resp)
	}
	evs := resp.Events
	for len(evs) > 0 {
		part := *resp
		part.Events = nil
		size := part.Size()
		n := 0
		for n < len(evs) {
			// Each event costs its size plus the field's tag and length.
			es := evs[n].Size()
			es += 1 + sovLen(es)
			if n > 0 && size+es > max {
				break
			}
			size += es
			n++
		}
		part.Events = evs[:n]
		evs = evs[n:]
		part.Fragment = len(evs) > 0
		if err := send(&part); err != nil {
			return err
		}
	}
	return nil
}

// sovLen is the length of x as a protobuf varint.
func sovLen(x int) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}
