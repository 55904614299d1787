package watch

import (
	"bytes"
	"sync/atomic"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// watcher is one watch of a stream.
type watcher struct {
	id int64
	s  *Stream
	// key and end use the store's conventions: end nil is key alone, end
	// {0} every key >= key.
	key, end                  []byte
	noPut, noDelete           bool
	prevKV, progress, fragmnt bool

	// Guarded by Hub.mu.
	// next is the first revision the watcher still needs; for a synced
	// watcher it only matters while it is ahead of Hub.cur (a start
	// revision in the future).
	next int64
	// g is the group of a synced watcher, nil while unsynced.
	g  *group
	gi int
	// done is set once the watcher is gone from the hub.
	done bool

	// queued counts the watcher's event responses waiting in its stream.
	queued atomic.Int32
	// blocked says the watcher left the fan-out because queued was full;
	// the send loop wakes the syncer when the queue drains.
	blocked atomic.Bool
	// canceled drops whatever of the watcher is still queued.
	canceled atomic.Bool
	// sentEvents says events went out since the last progress tick.
	sentEvents atomic.Bool
}

// groupKey identifies watchers that see exactly the same events.
type groupKey struct {
	key, end        string
	single          bool
	noPut, noDelete bool
}

// group is the synced watchers of one groupKey.
type group struct {
	k        groupKey
	key, end []byte
	ws       []*watcher
	mark     uint64
}

func (w *watcher) groupKey() groupKey {
	return groupKey{key: string(w.key), end: string(w.end), single: w.end == nil, noPut: w.noPut, noDelete: w.noDelete}
}

// matchKey reports whether k is in the group's range.
func (g *group) matchKey(k []byte) bool {
	if g.k.single {
		return bytes.Equal(k, g.key)
	}
	if bytes.Compare(k, g.key) < 0 {
		return false
	}
	if len(g.end) == 1 && g.end[0] == 0 {
		return true
	}
	return bytes.Compare(k, g.end) < 0
}

func (g *group) wants(ev *mvccpb.Event) bool {
	if ev.Type == mvccpb.PUT && g.k.noPut || ev.Type == mvccpb.DELETE && g.k.noDelete {
		return false
	}
	return g.matchKey(ev.Kv.Key)
}

// filter returns the events of one revision the group sees: evs itself when
// it sees them all, which is the common case and costs nothing.
func (g *group) filter(evs []*mvccpb.Event) []*mvccpb.Event {
	n := 0
	for _, ev := range evs {
		if g.wants(ev) {
			n++
		}
	}
	if n == len(evs) {
		return evs
	}
	if n == 0 {
		return nil
	}
	out := make([]*mvccpb.Event, 0, n)
	for _, ev := range evs {
		if g.wants(ev) {
			out = append(out, ev)
		}
	}
	return out
}

// filterHistory picks the events w sees from a history read, which matched
// its range already.
func (w *watcher) filterHistory(evs []mvccpb.Event) []*mvccpb.Event {
	var out []*mvccpb.Event
	for i := range evs {
		ev := &evs[i]
		if ev.Type == mvccpb.PUT && w.noPut || ev.Type == mvccpb.DELETE && w.noDelete {
			continue
		}
		out = append(out, ev)
	}
	return out
}

// joinGroup makes w synced. h.mu is held.
func (h *Hub) joinGroup(w *watcher) {
	delete(h.unsynced, w)
	w.blocked.Store(false)
	k := w.groupKey()
	g := h.groups[k]
	if g == nil {
		g = &group{k: k, key: w.key, end: w.end}
		h.groups[k] = g
		if k.single {
			h.singles[k.key] = append(h.singles[k.key], g)
		} else {
			h.ranges = append(h.ranges, g)
		}
	}
	w.g, w.gi = g, len(g.ws)
	g.ws = append(g.ws, w)
}

// leaveGroup removes a synced w from its group. h.mu is held.
func (h *Hub) leaveGroup(w *watcher) {
	g := w.g
	if g == nil {
		return
	}
	last := len(g.ws) - 1
	g.ws[w.gi] = g.ws[last]
	g.ws[w.gi].gi = w.gi
	g.ws[last] = nil
	g.ws = g.ws[:last]
	w.g = nil
	if len(g.ws) > 0 {
		return
	}
	delete(h.groups, g.k)
	if g.k.single {
		gs := h.singles[g.k.key]
		for i, x := range gs {
			if x == g {
				gs = append(gs[:i], gs[i+1:]...)
				break
			}
		}
		if len(gs) == 0 {
			delete(h.singles, g.k.key)
		} else {
			h.singles[g.k.key] = gs
		}
		return
	}
	for i, x := range h.ranges {
		if x == g {
			h.ranges = append(h.ranges[:i], h.ranges[i+1:]...)
			break
		}
	}
}

// remove takes w out of the hub for good. h.mu is held.
func (h *Hub) remove(w *watcher) {
	if w.done {
		return
	}
	w.done = true
	h.leaveGroup(w)
	delete(h.unsynced, w)
	h.nwatchers.Add(-1)
}
