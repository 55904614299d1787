package zk

import (
	"strings"
	"sync"
	"sync/atomic"

	"ensemble/internal/api/zk/jute"
	"ensemble/internal/mvcc"
	"ensemble/internal/zktree"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// watchBits are the kinds of watch one connection holds on one path.
type watchBits uint8

const (
	// watchData is a one-shot watch left by getData, or by exists whether
	// the node exists or not (ZooKeeper keeps both in its data table): fired
	// by NodeCreated, NodeDataChanged and NodeDeleted.
	watchData watchBits = 1 << iota
	// watchChild is a one-shot watch left by getChildren: fired by
	// NodeChildrenChanged and NodeDeleted.
	watchChild
	// watchPersistent is addWatch(PERSISTENT): every event of the node,
	// never removed by firing.
	watchPersistent
	// watchRecursive is addWatch(PERSISTENT_RECURSIVE): created, deleted and
	// data-changed events of the node and of every descendant.
	watchRecursive
)

// fires reports whether a watch of kinds b on an event's own path fires for
// an event of type t, and which kinds the firing consumes.
func (b watchBits) fires(t jute.EventType) (fire bool, consumed watchBits) {
	switch t {
	case jute.EventNodeCreated, jute.EventNodeDataChanged:
		return b&(watchData|watchPersistent|watchRecursive) != 0, watchData
	case jute.EventNodeDeleted:
		return b != 0, watchData | watchChild
	case jute.EventNodeChildrenChanged:
		return b&(watchChild|watchPersistent) != 0, watchChild
	}
	return false, 0
}

// watchManager holds the watches of every connection of a Server and turns
// each applied revision into watch events. It is the Server's Observer.
type watchManager struct {
	s *Server

	mu sync.Mutex
	// table maps a path to the connections watching it and how.
	table map[string]map[*conn]watchBits
	// recursive counts table entries with watchRecursive, so that events
	// skip the walk up their ancestors when there are none.
	recursive int
	// notifiedRev is the last revision whose events are in the outboxes;
	// notified mirrors it for lock-free readers.
	notifiedRev int64
	notified    atomic.Int64
	// advanced is closed when notifiedRev next moves, if someone waits.
	advanced chan struct{}
	closed   bool

	// Scratch of Notify, which runs on the apply loop.
	events []zktree.Event
	w      jute.Writer
	seq    uint64 // stamps the connections an event was delivered to
}

func newWatchManager(s *Server) *watchManager {
	return &watchManager{s: s, table: make(map[string]map[*conn]watchBits)}
}

// Notify implements mvcc.Observer: it enqueues the events of rev on the
// outboxes of the connections watching, and then records rev as notified.
// It never blocks on a connection.
func (m *watchManager) Notify(rev int64, changes []mvccpb.KeyValue) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || rev <= m.notifiedRev {
		return
	}
	if len(m.table) > 0 {
		m.events = zktree.Events(m.events[:0], changes)
		for i := range m.events {
			m.fireLocked(m.events[i], rev)
		}
		clear(m.events)
	}
	m.advanceLocked(rev)
}

// Reset implements Observer: a snapshot replaced the store, so every
// connection is closed (its client reconnects and re-sends its watches with
// setWatches, which fires what changed) and rev becomes the notified
// revision.
func (m *watchManager) Reset(rev int64) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.notifiedRev = rev
	m.notified.Store(rev)
	m.wakeLocked()
	m.mu.Unlock()
	m.s.abortAll(errStoreReplaced)
}

// advanceTo raises notifiedRev to rev, for revisions no watch can see.
func (m *watchManager) advanceTo(rev int64) {
	m.mu.Lock()
	if rev > m.notifiedRev {
		m.advanceLocked(rev)
	}
	m.mu.Unlock()
}

func (m *watchManager) advanceLocked(rev int64) {
	m.notifiedRev = rev
	m.notified.Store(rev)
	m.wakeLocked()
}

func (m *watchManager) wakeLocked() {
	if m.advanced != nil {
		close(m.advanced)
		m.advanced = nil
	}
}

// close stops the manager: later revisions are ignored and waiters freed.
func (m *watchManager) close() {
	m.mu.Lock()
	m.closed = true
	m.wakeLocked()
	m.mu.Unlock()
}

// wait returns true once rev has been notified, false if done is closed
// first. Replies wait here so that a client never sees data before the
// events that precede it.
func (m *watchManager) wait(done <-chan struct{}, rev int64) bool {
	for {
		if m.notified.Load() >= rev {
			return true
		}
		m.mu.Lock()
		if m.notifiedRev >= rev {
			m.mu.Unlock()
			return true
		}
		if m.closed {
			m.mu.Unlock()
			return false
		}
		if m.advanced == nil {
			m.advanced = make(chan struct{})
		}
		ch := m.advanced
		m.mu.Unlock()
		select {
		case <-ch:
		case <-done:
			return false
		}
	}
}

// atRev reads the store at a fixed revision, so that the several ranges of
// one zktree read see one state.
type atRev struct {
	kv  *mvcc.Store
	rev int64
}

func (a atRev) Range(key, end []byte, o mvcc.RangeOptions) (*mvcc.RangeResult, error) {
	if o.Rev == 0 {
		o.Rev = a.rev
	}
	res, err := a.kv.Range(key, end, o)
	if err == nil && res.Rev > o.Rev {
		// zktree reads the rest of one answer at the Rev of its first
		// range: that must be the revision this view reads at, not the
		// store's newer current one.
		res.Rev = o.Rev
	}
	return res, err
}

// optimisticReads is how many times view reads without the lock before it
// reads holding it: under a steady stream of revisions an unlocked read may
// keep being overtaken.
const optimisticReads = 2

// view runs read on the store at a revision whose events have all been
// notified and none of the next, then prepare, then commit with the manager
// locked and no revision notified since the read: what commit registers
// fires for exactly the revisions after the state read saw, and what it
// queues precedes their events. read and prepare run without the lock when
// they can, and may run more than once; commit does not run if prepare
// fails. view returns the revision read at.
func (m *watchManager) view(kv *mvcc.Store, read func(r zktree.Reader), prepare func(rev int64) error, commit func()) (int64, error) {
	for range optimisticReads {
		rev := m.notified.Load()
		read(atRev{kv, rev})
		if err := prepare(rev); err != nil {
			return rev, err
		}
		m.mu.Lock()
		if m.notifiedRev == rev {
			commit()
			m.mu.Unlock()
			return rev, nil
		}
		m.mu.Unlock()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	rev := m.notifiedRev
	read(atRev{kv, rev})
	if err := prepare(rev); err != nil {
		return rev, err
	}
	commit()
	return rev, nil
}

// readFresh runs read and prepare at the notified revision, then queue
// without the lock; queue refuses (false) when a later revision's event
// got ahead, and the read runs again at a newer revision. After
// optimisticReads refusals it runs with the lock held, which keeps events
// out until queue is done.
func (m *watchManager) readFresh(kv *mvcc.Store, read func(r zktree.Reader), prepare func(rev int64) error, queue func(rev int64) bool) (int64, error) {
	for range optimisticReads {
		rev := m.notified.Load()
		read(atRev{kv, rev})
		if err := prepare(rev); err != nil {
			return rev, err
		}
		if queue(rev) {
			return rev, nil
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	rev := m.notifiedRev
	read(atRev{kv, rev})
	if err := prepare(rev); err != nil {
		return rev, err
	}
	queue(rev)
	return rev, nil
}

// addLocked gives c a watch of kind b on path.
func (m *watchManager) addLocked(c *conn, path string, b watchBits) {
	if c.watches == nil {
		c.watches = make(map[string]watchBits)
	}
	old := c.watches[path]
	if old&b == b {
		return
	}
	ws := m.table[path]
	if ws == nil {
		ws = make(map[*conn]watchBits, 1)
		m.table[path] = ws
	}
	ws[c] = old | b
	c.watches[path] = old | b
	if b&watchRecursive != 0 && old&watchRecursive == 0 {
		m.recursive++
	}
}

// setLocked sets c's watches on path to b, removing the entry if b is 0.
func (m *watchManager) setLocked(c *conn, path string, old, b watchBits) {
	if old&watchRecursive != 0 && b&watchRecursive == 0 {
		m.recursive--
	}
	if b == 0 {
		delete(c.watches, path)
		if ws := m.table[path]; ws != nil {
			delete(ws, c)
			if len(ws) == 0 {
				delete(m.table, path)
			}
		}
		return
	}
	c.watches[path] = b
	m.table[path][c] = b
}

// remove takes the watches of kinds b off c's path and reports whether
// there were any.
func (m *watchManager) remove(c *conn, path string, b watchBits) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := c.watches[path]
	if old&b == 0 {
		return false
	}
	m.setLocked(c, path, old, old&^b)
	return true
}

// has reports whether c holds a watch of one of the kinds b on path.
func (m *watchManager) has(c *conn, path string, b watchBits) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return c.watches[path]&b != 0
}

// removeConn drops every watch of c, whose connection is gone.
func (m *watchManager) removeConn(c *conn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for path, b := range c.watches {
		m.setLocked(c, path, b, 0)
	}
	c.watches = nil
}

// fireLocked delivers event e of revision rev to the connections it fires
// for, at most once each, and consumes the one-shot watches it fires.
func (m *watchManager) fireLocked(e zktree.Event, rev int64) {
	m.seq++
	var frame []byte
	deliver := func(c *conn) {
		if c.eventSeq == m.seq {
			return
		}
		c.eventSeq = m.seq
		if frame == nil {
			frame = m.eventFrame(e.Type, e.Path, rev)
		}
		c.sendEvent(frame, rev)
	}
	if ws := m.table[e.Path]; ws != nil {
		for c, b := range ws {
			fire, consumed := b.fires(e.Type)
			if !fire {
				continue
			}
			deliver(c)
			if b&consumed != 0 {
				m.setLocked(c, e.Path, b, b&^consumed)
			}
		}
	}
	if m.recursive == 0 || e.Type == jute.EventNodeChildrenChanged {
		return
	}
	for p := e.Path; p != "/"; {
		p = parentPath(p)
		for c, b := range m.table[p] {
			if b&watchRecursive != 0 {
				deliver(c)
			}
		}
	}
}

// eventFrame encodes a notification. The frame is scratch of the manager:
// connections copy it into their outboxes.
func (m *watchManager) eventFrame(t jute.EventType, path string, zxid int64) []byte {
	m.w.Reset()
	start := m.w.BeginFrame()
	h := jute.ReplyHeader{Xid: jute.XidNotification, Zxid: zxid}
	h.Encode(&m.w)
	ev := jute.WatcherEvent{Type: t, State: jute.StateSyncConnected, Path: path}
	ev.Encode(&m.w)
	m.w.EndFrame(start)
	return m.w.Bytes()
}

// fireNowLocked sends c an event that setWatches found already happened;
// like ZooKeeper it carries no zxid.
func (m *watchManager) fireNowLocked(c *conn, t jute.EventType, path string) {
	c.send(m.eventFrame(t, path, -1))
}

// parentPath returns the parent of a znode path ("/" for "/a"; p must not
// be "/").
func parentPath(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}

// summary counts, as ZooKeeper's wchs does, the connections that watch, the
// paths watched and the watches (a path's data and child watches of one
// connection count apart).
func (m *watchManager) summary() (conns, paths, total int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := make(map[*conn]struct{})
	for _, ws := range m.table {
		for c, b := range ws {
			seen[c] = struct{}{}
			if b&(watchData|watchPersistent|watchRecursive) != 0 {
				total++
			}
			if b&(watchChild|watchPersistent) != 0 {
				total++
			}
		}
	}
	return len(seen), len(m.table), total
}
