package watch

import (
	"errors"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"ensemble/internal/mvcc"
)

// maxPerRound bounds the watchers one sync round looks at, so that the
// round's snapshot of the unsynced set stays small.
const maxPerRound = 4096

// syncLoop brings unsynced watchers up to date and back into their groups.
func (h *Hub) syncLoop() {
	defer h.wg.Done()
	t := time.NewTicker(h.opts.SyncInterval)
	defer t.Stop()
	var todo []*watcher
	for {
		select {
		case <-h.stopc:
			return
		case <-h.syncKick:
		case <-t.C:
		}
		for {
			h.mu.Lock()
			todo = todo[:0]
			for w := range h.unsynced {
				if !w.blocked.Load() {
					todo = append(todo, w)
				}
				if len(todo) == maxPerRound {
					break
				}
			}
			h.mu.Unlock()
			progressed := false
			for _, w := range todo {
				select {
				case <-h.stopc:
					return
				default:
				}
				if h.syncOne(w) {
					progressed = true
				}
			}
			clear(todo)
			if !progressed || len(todo) < maxPerRound {
				break
			}
		}
	}
}

// syncOne catches w up as far as its queue allows, and joins it to its group
// once it is current. It reports whether w is now synced or gone.
func (h *Hub) syncOne(w *watcher) bool {
	for {
		h.mu.Lock()
		if w.done || w.g != nil {
			h.mu.Unlock()
			return true
		}
		if int(w.queued.Load()) >= h.opts.QueueLimit {
			// The stream wakes the syncer when the queue has drained.
			w.blocked.Store(true)
			if int(w.queued.Load()) <= h.opts.QueueLimit/2 && w.blocked.CompareAndSwap(true, false) {
				// It drained while we looked.
				h.mu.Unlock()
				continue
			}
			h.mu.Unlock()
			return false
		}
		n, cur, src := w.next, h.cur, h.source()
		if n > cur {
			h.joinGroup(w)
			h.flushProgress()
			h.mu.Unlock()
			return true
		}
		if c := src.CompactRev(); n < c {
			h.compacted(w, c)
			h.mu.Unlock()
			return true
		}
		if evs, ok := h.fromRing(w, n, cur); ok {
			if len(evs) > 0 {
				w.s.enqueueEvents(w, cur, evs)
			}
			h.joinGroup(w)
			h.flushProgress()
			h.mu.Unlock()
			return true
		}
		h.mu.Unlock()

		hist, next, err := src.History(w.key, w.end, n, cur, historyBatch)

		h.mu.Lock()
		if w.done || w.g != nil || w.next != n || h.source() != src {
			// Canceled, or the store was replaced meanwhile: start over.
			h.mu.Unlock()
			continue
		}
		switch {
		case errors.Is(err, mvcc.ErrCompacted):
			h.compacted(w, src.CompactRev())
			h.mu.Unlock()
			return true
		case err != nil:
			h.mu.Unlock()
			h.lg.Warn("watcher catch-up failed; retrying", "watch-id", w.id, "from", n, "err", err)
			return false
		}
		if evs := w.filterHistory(hist); len(evs) > 0 {
			// The header says how far the watcher is now known to be
			// current: everything before next was read.
			w.s.enqueueEvents(w, next-1, evs)
		}
		w.next = next
		h.mu.Unlock()
	}
}

// fromRing collects w's events of revisions n..cur from the ring, if it
// holds them all. h.mu is held.
func (h *Hub) fromRing(w *watcher, n, cur int64) ([]*mvccpb.Event, bool) {
	h.ringMu.Lock()
	defer h.ringMu.Unlock()
	if !h.ring.covers(n, cur) {
		return nil, false
	}
	g := group{k: w.groupKey(), key: w.key, end: w.end}
	var out []*mvccpb.Event
	for r := n; r <= cur; r++ {
		for _, ev := range h.ring.get(r).evs {
			if g.wants(ev) {
				out = append(out, ev)
			}
		}
	}
	return out, true
}

// compacted cancels w, whose history is gone, as etcd does: a response
// with the compaction revision. h.mu is held.
func (h *Hub) compacted(w *watcher, compactRev int64) {
	s := w.s
	h.remove(w)
	delete(s.watchers, w.id)
	s.enqueue(item{kind: kindCompacted, w: w, id: w.id, rev: h.cur, compactRev: compactRev})
	h.flushProgress()
}
