// Package watch delivers the store's changes to etcd watchers: live
// revisions fan out to synced watcher groups, and watchers that start in the
// past or fall behind catch up from history, then rejoin with no gap and no
// duplicate.
//
// # How a revision travels
//
// The store calls Hub.Notify for every applied revision (under its writer
// lock, so Notify only appends the revision to an in-memory ring and wakes
// the dispatcher). The dispatcher goroutine hands each revision, in order, to
// the synced watchers whose range it touches; watchers with the same range
// and filters share one group, so a revision costs one match per group, not
// per watcher. A watcher is synced when every revision up to the dispatched
// one (Hub.cur) is already in its stream's queue; it is unsynced otherwise,
// with next the first revision it still needs. The syncer goroutine brings
// unsynced watchers up to cur, from the ring if it still holds the revisions
// or else from the store's history, and moves them into their group while
// holding the hub lock, which the dispatcher needs too: no revision can slip
// between the catch-up and the join.
//
// A watcher whose stream is slow to drain (more than Options.QueueLimit
// responses waiting) leaves its group instead of blocking anyone, and catches
// up once its queue drains; if history was compacted meanwhile it is
// canceled with the compaction revision, as etcd does. Nothing is dropped
// silently.
//
// # Locks
//
// Hub.mu guards watchers, groups and streams' watcher sets; Hub.ringMu
// guards the ring; Stream.mu guards a stream's queue. The order is Hub.mu,
// then Hub.ringMu or Stream.mu. The store's writer lock comes before
// ringMu (Notify); nothing here calls into the store with a lock held.
package watch

import (
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"ensemble/internal/mvcc"
)

// Errors of the watch package.
var (
	// ErrDuplicateID is returned when a client picks a watch id that its
	// stream already uses.
	ErrDuplicateID = errors.New("watch: duplicate watch ID provided on the WatchStream")
	// ErrEmptyRange is returned for a range whose end is not after its key.
	ErrEmptyRange = errors.New("watch: watcher range is empty")
	// ErrClosed is returned by a closed stream or hub.
	ErrClosed = errors.New("watch: closed")
	// ErrNotFound is returned when canceling a watch id the stream lacks.
	ErrNotFound = errors.New("watch: watcher does not exist")
)

// Defaults of Options.
const (
	DefaultProgressInterval = 10 * time.Minute
	DefaultMaxResponseBytes = 1536 * 1024
	DefaultQueueLimit       = 64
	DefaultRingRevisions    = 4096
	DefaultRingBytes        = 64 << 20
	DefaultSyncInterval     = 100 * time.Millisecond
	// historyBatch is how many stored changes one history read examines.
	historyBatch = 10000
)

// Source is the store that watchers catch up from; *mvcc.Store is one.
type Source interface {
	History(key, end []byte, from, to int64, maxChanges int) ([]mvccpb.Event, int64, error)
	Range(key, end []byte, o mvcc.RangeOptions) (*mvcc.RangeResult, error)
	Rev() int64
	CompactRev() int64
}

// Options tune a Hub; zero values mean the defaults.
type Options struct {
	Logger *slog.Logger
	// ProgressInterval is how often a watcher that asked for progress
	// notifications and received no events gets one.
	ProgressInterval time.Duration
	// MaxResponseBytes is the size above which a watcher that asked for
	// fragments gets its events split over several responses.
	MaxResponseBytes int
	// QueueLimit is how many responses of one watcher may wait in its stream
	// before the watcher leaves the live fan-out and catches up later.
	QueueLimit int
	// RingRevisions and RingBytes bound the recent revisions kept in memory
	// for catching up without reading the store.
	RingRevisions int
	RingBytes     int
	// SyncInterval is how often watchers that fell behind are retried
	// without being woken (after a failed history read, say).
	SyncInterval time.Duration
}

func (o *Options) fill() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ProgressInterval <= 0 {
		o.ProgressInterval = DefaultProgressInterval
	}
	if o.MaxResponseBytes <= 0 {
		o.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if o.QueueLimit <= 0 {
		o.QueueLimit = DefaultQueueLimit
	}
	if o.RingRevisions <= 0 {
		o.RingRevisions = DefaultRingRevisions
	}
	if o.RingBytes <= 0 {
		o.RingBytes = DefaultRingBytes
	}
	if o.SyncInterval <= 0 {
		o.SyncInterval = DefaultSyncInterval
	}
}

// srcBox lets the current Source sit in an atomic pointer, for the send
// loops' prev_kv reads.
type srcBox struct{ s Source }

// Hub holds every watcher of a member and feeds them from one store.
type Hub struct {
	opts Options
	lg   *slog.Logger

	// nwatchers lets Notify skip building events when nobody watches.
	nwatchers atomic.Int64
	progressD atomic.Int64
	src       atomic.Pointer[srcBox]

	ringMu sync.Mutex
	ring   ring

	mu sync.Mutex
	// cur is the newest revision handed to every synced watcher.
	cur      int64
	groups   map[groupKey]*group
	singles  map[string][]*group
	ranges   []*group
	unsynced map[*watcher]struct{}
	// wantProgress are streams with a RequestProgress not yet answered,
	// with the revision the answer must reach.
	wantProgress map[*Stream]int64
	closed       bool
	// mark numbers dispatch rounds, to collect each touched group once.
	mark uint64

	dispatchKick chan struct{}
	syncKick     chan struct{}
	stopc        chan struct{}
	wg           sync.WaitGroup
}

// New returns a hub over src, current with its present revision. The caller
// makes the hub src's observer (src.SetObserver(hub)).
func New(src Source, o Options) *Hub {
	o.fill()
	h := &Hub{
		opts:         o,
		lg:           o.Logger,
		groups:       make(map[groupKey]*group),
		singles:      make(map[string][]*group),
		unsynced:     make(map[*watcher]struct{}),
		wantProgress: make(map[*Stream]int64),
		dispatchKick: make(chan struct{}, 1),
		syncKick:     make(chan struct{}, 1),
		stopc:        make(chan struct{}),
	}
	h.progressD.Store(int64(o.ProgressInterval))
	h.src.Store(&srcBox{src})
	h.cur = src.Rev()
	h.ring.init(o.RingRevisions, o.RingBytes, h.cur)
	h.wg.Add(2)
	go h.dispatchLoop()
	go h.syncLoop()
	return h
}

// SetProgressInterval changes the progress notification interval of streams
// opened from now on.
func (h *Hub) SetProgressInterval(d time.Duration) {
	if d > 0 {
		h.progressD.Store(int64(d))
	}
}

// Close stops the hub; its streams stop delivering.
func (h *Hub) Close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	h.mu.Unlock()
	close(h.stopc)
	h.wg.Wait()
}

// Notify takes one applied revision from the store (mvcc.Observer). It only
// records the revision and wakes the dispatcher.
func (h *Hub) Notify(rev int64, changes []mvccpb.KeyValue) {
	var evs []*mvccpb.Event
	size := 0
	if h.nwatchers.Load() > 0 {
		evs = make([]*mvccpb.Event, len(changes))
		arr := make([]mvccpb.Event, len(changes))
		for i := range changes {
			kv := &changes[i]
			arr[i].Kv = kv
			if kv.CreateRevision == 0 {
				arr[i].Type = mvccpb.DELETE
			}
			evs[i] = &arr[i]
			size += len(kv.Key) + len(kv.Value) + 64
		}
	}
	h.ringMu.Lock()
	if evs == nil {
		// Nobody to deliver to: remember only how far the store is. A
		// watcher created meanwhile finds the gap and reads the store.
		h.ring.skip(rev)
	} else {
		h.ring.add(rev, evs, size)
	}
	h.ringMu.Unlock()
	select {
	case h.dispatchKick <- struct{}{}:
	default:
	}
}

// Reset points the hub at a new store that replaced the old one (a snapshot
// from the leader was installed): every watcher catches up from the new
// store's history, or is canceled if that is compacted. The caller then
// makes the hub the new store's observer.
func (h *Hub) Reset(src Source) {
	h.mu.Lock()
	for _, g := range h.groups {
		for _, w := range g.ws {
			w.g = nil
			w.next = max(w.next, h.cur+1)
			h.unsynced[w] = struct{}{}
		}
	}
	clear(h.groups)
	clear(h.singles)
	h.ranges = nil
	h.src.Store(&srcBox{src})
	rev := src.Rev()
	h.ringMu.Lock()
	h.ring.reset(rev)
	h.ringMu.Unlock()
	h.cur = max(h.cur, rev)
	h.mu.Unlock()
	h.kickSync()
	h.lg.Info("watchers resynchronizing with a replaced store", "revision", rev)
}

func (h *Hub) source() Source { return h.src.Load().s }

func (h *Hub) kickSync() {
	select {
	case h.syncKick <- struct{}{}:
	default:
	}
}

// dispatchLoop hands recorded revisions to synced watchers, in order.
func (h *Hub) dispatchLoop() {
	defer h.wg.Done()
	var batch []ringEntry
	for {
		select {
		case <-h.stopc:
			return
		case <-h.dispatchKick:
		}
		for {
			h.mu.Lock()
			cur := h.cur
			h.ringMu.Lock()
			batch = h.ring.since(cur, batch[:0], 256)
			head := h.ring.head
			h.ringMu.Unlock()
			if len(batch) == 0 && head <= cur {
				h.mu.Unlock()
				break
			}
			if len(batch) == 0 || batch[0].rev != cur+1 {
				// The ring lacks revisions after cur: nobody watched when
				// they came, or the dispatcher fell a ring behind. Synced
				// watchers get them from the store.
				upto := head
				if len(batch) > 0 {
					upto = batch[0].rev - 1
				}
				h.unsyncAll(cur + 1)
				h.cur = upto
			}
			for i := range batch {
				h.dispatch(batch[i].rev, batch[i].evs)
				h.cur = batch[i].rev
			}
			h.flushProgress()
			h.mu.Unlock()
			clear(batch)
		}
	}
}

// unsyncAll moves every synced watcher to the unsynced set, needing
// revisions from next on. h.mu is held.
func (h *Hub) unsyncAll(next int64) {
	moved := false
	for _, g := range h.groups {
		for _, w := range g.ws {
			w.g = nil
			w.next = max(w.next, next)
			h.unsynced[w] = struct{}{}
			moved = true
		}
	}
	clear(h.groups)
	clear(h.singles)
	h.ranges = nil
	if moved {
		h.kickSync()
	}
}

// dispatch hands revision rev to the synced watchers it concerns. h.mu is
// held.
func (h *Hub) dispatch(rev int64, evs []*mvccpb.Event) {
	h.mark++
	var touched []*group
	for _, ev := range evs {
		for _, g := range h.singles[string(ev.Kv.Key)] {
			if g.mark != h.mark {
				g.mark = h.mark
				touched = append(touched, g)
			}
		}
	}
	for _, g := range h.ranges {
		for _, ev := range evs {
			if g.matchKey(ev.Kv.Key) {
				touched = append(touched, g)
				break
			}
		}
	}
	for _, g := range touched {
		sel := g.filter(evs)
		if len(sel) == 0 {
			continue
		}
		// Iterate from the end: a watcher that falls behind is swapped out
		// of g.ws, which must not skip another.
		for i := len(g.ws) - 1; i >= 0; i-- {
			w := g.ws[i]
			if rev < w.next {
				continue // it starts in the future
			}
			if !w.s.offerEvents(w, rev, sel, h.opts.QueueLimit) {
				// Its stream is not draining: it catches up later instead
				// of holding anyone up.
				h.leaveGroup(w)
				w.next = rev
				h.unsynced[w] = struct{}{}
				w.blocked.Store(true)
				if int(w.queued.Load()) <= h.opts.QueueLimit/2 && w.blocked.CompareAndSwap(true, false) {
					// It drained before it was marked: nobody else will wake
					// the syncer for it.
					h.kickSync()
				}
			}
		}
	}
}

// flushProgress answers the RequestProgress calls of streams whose watchers
// are now all current. h.mu is held.
func (h *Hub) flushProgress() {
	for s, atLeast := range h.wantProgress {
		if h.cur >= atLeast && s.allCurrent(h.cur) {
			delete(h.wantProgress, s)
			s.enqueue(item{kind: kindProgress, id: -1, rev: h.cur})
		}
	}
}
