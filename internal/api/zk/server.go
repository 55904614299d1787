package zk

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"ensemble/internal/api/zk/jute"
	"ensemble/internal/lease"
	"ensemble/internal/mvcc"
	"ensemble/internal/zktree"
)

// Errors of the ZooKeeper front end.
var (
	// ErrServerClosed is returned by Serve once Close has been called.
	ErrServerClosed = errors.New("zk: server closed")
)

// Backend is what the ZooKeeper front end needs from its member.
type Backend interface {
	// KV is the member's store, for local reads (reads are served by the
	// member the client is connected to).
	KV() *mvcc.Store
	// Lessor is the member's lessor (for getEphemerals).
	Lessor() *lease.Lessor
	// ProposeZK replicates c and returns its result once it is applied on
	// this member. Errors are the server's (no leader, timeout, stopped,
	// request too large): the command's outcome is then unknown.
	ProposeZK(ctx context.Context, c *zktree.Command) (zktree.Result, error)
	// Sync returns once this member has applied everything committed before
	// the call (a read-index barrier).
	Sync(ctx context.Context) error
	// RenewSession renews session id's lease through the leader;
	// lease.ErrLeaseNotFound if it is gone.
	RenewSession(ctx context.Context, id int64) error
	// Observe makes o receive every revision this member applies
	// (mvcc.Observer semantics, see internal/mvcc/notify.go) and Reset when a
	// snapshot from the leader replaces the store.
	Observe(o Observer)
	// Info describes the member for the four-letter words.
	Info() MemberInfo
}

// Observer receives the revisions a member applies.
type Observer interface {
	mvcc.Observer    // Notify(rev, changes)
	Reset(rev int64) // the store was replaced by a snapshot at rev
}

// MemberInfo describes the member for the four-letter words.
type MemberInfo struct {
	ID         uint64
	Mode       string // "standalone" (one voter), "leader", "follower", "observer" (learner)
	ClientURLs []string
	PeerURLs   []string
	Members    int
	Version    string
}

// Config configures a Server. The zero value is usable.
type Config struct {
	// TickTime is ZooKeeper's tickTime: session timeouts are negotiated
	// into [2×TickTime, 20×TickTime]. Default 2s.
	TickTime time.Duration
	// MaxBuffer is jute.maxbuffer: a request frame longer than this closes
	// its connection. Default jute.DefaultMaxBuffer.
	MaxBuffer int
	// FourLetterWords is the whitelist of four-letter words ("*": all). As
	// in ZooKeeper, srvr is always allowed.
	FourLetterWords []string
	// OutboxLimit caps the bytes of replies and notifications queued for one
	// connection, besides the batch being written; a connection whose client
	// reads too slowly to stay under it is closed. Default 16×MaxBuffer.
	OutboxLimit int
	// Logger; nil discards.
	Logger *slog.Logger
}

const defaultTickTime = 2 * time.Second

func (c *Config) setDefaults() {
	if c.TickTime <= 0 {
		c.TickTime = defaultTickTime
	}
	if c.MaxBuffer <= 0 {
		c.MaxBuffer = jute.DefaultMaxBuffer
	}
	if c.OutboxLimit <= 0 {
		c.OutboxLimit = 16 * c.MaxBuffer
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Server serves the ZooKeeper protocol on any number of listeners. Its
// methods are safe for concurrent use.
type Server struct {
	b       Backend
	cfg     Config
	lg      *slog.Logger
	words   map[string]bool // whitelisted four-letter words
	watches *watchManager
	started time.Time
	// catchUp is how long a client ahead of this member waits for it
	// (catchUpWait; tests shorten it).
	catchUp time.Duration

	// ctx is canceled by Close; every request's context derives from it.
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	sessions  map[int64]*conn // the connection each session is attached to
	retired   retiredStats    // counters of closed connections
	wg        sync.WaitGroup  // connection, writer and renewal goroutines
}

// New returns a server of b's ZooKeeper tree. It registers itself as b's
// observer at once, so that watches see every revision applied from now on.
func New(b Backend, cfg Config) *Server {
	cfg.setDefaults()
	s := &Server{
		b:         b,
		cfg:       cfg,
		lg:        cfg.Logger,
		words:     whitelist(cfg.FourLetterWords),
		started:   time.Now(),
		catchUp:   catchUpWait,
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*conn]struct{}),
		sessions:  make(map[int64]*conn),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.retired.latency = newLatency()
	s.watches = newWatchManager(s)
	b.Observe(s.watches)
	// Revisions applied before Observe took effect have no watch to fire:
	// start from what the store holds now.
	s.watches.advanceTo(b.KV().Rev())
	return s
}

// minTimeout and maxTimeout bound the negotiated session timeout.
func (s *Server) minTimeout() time.Duration { return 2 * s.cfg.TickTime }
func (s *Server) maxTimeout() time.Duration { return 20 * s.cfg.TickTime }

// Serve accepts connections on ln until ln or the server is closed. It
// returns ErrServerClosed after Close, and the listener's error otherwise.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			if !retryAccept(err) {
				return err
			}
			// Out of file descriptors or a connection aborted before it was
			// accepted: back off rather than spin, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.lg.Warn("zk: accept failed; retrying", "err", err, "after", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-s.ctx.Done():
				t.Stop()
				return ErrServerClosed
			}
			continue
		}
		backoff = 0
		s.startConn(nc)
	}
}

func retryAccept(err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Server) startConn(nc net.Conn) {
	c := newConn(s, nc)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		nc.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go c.serve()
}

// removeConn forgets c once its goroutines are done with the server's maps.
func (s *Server) removeConn(c *conn) {
	snap := c.stats.snapshot()
	s.mu.Lock()
	delete(s.conns, c)
	if id := c.sessionID.Load(); id != 0 && s.sessions[id] == c {
		delete(s.sessions, id)
	}
	s.retired.add(&snap)
	s.mu.Unlock()
}

// attachSession makes c the connection of session id. Like ZooKeeper, a
// session lives on one connection: a client that reconnects replaces its
// old connection, which is closed.
func (s *Server) attachSession(id int64, c *conn) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	old := s.sessions[id]
	s.sessions[id] = c
	s.mu.Unlock()
	if old != nil && old != c {
		old.abort(errSessionMoved)
	}
	return true
}

// connections returns the open connections, for the four-letter words.
func (s *Server) connections() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		cs = append(cs, c)
	}
	return cs
}

// abortAll closes every connection, after a snapshot replaced the store:
// clients reconnect and re-send their watches with setWatches, which fires
// whatever changed.
func (s *Server) abortAll(reason error) {
	for _, c := range s.connections() {
		c.abort(reason)
	}
}

// Close stops the listeners and closes every connection, then waits for
// their goroutines. Sessions live on: their clients reconnect elsewhere.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.wg.Wait()
		return
	}
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	s.cancel()
	for _, c := range conns {
		c.abort(ErrServerClosed)
	}
	s.watches.close()
	s.wg.Wait()
}

// Stats are the server's counters, as the four-letter words report them.
type Stats struct {
	PacketsReceived int64
	PacketsSent     int64
	Connections     int64
	Outstanding     int64
	// Latency of requests in ms, since the start.
	MinLatency, MaxLatency int64
	AvgLatency             float64
	// Watches held by connections on paths.
	WatchingConnections, WatchedPaths, Watches int
	// NotifiedZxid is the last revision turned into watch events.
	NotifiedZxid int64
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	st := Stats{PacketsReceived: s.retired.received, PacketsSent: s.retired.sent}
	lat := s.retired.latency
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		snap := c.stats.snapshot()
		st.Connections++
		st.PacketsReceived += snap.received
		st.PacketsSent += snap.sent
		st.Outstanding += snap.outstanding
		lat.merge(snap.lat)
	}
	st.MinLatency, st.AvgLatency, st.MaxLatency = lat.get()
	st.NotifiedZxid = s.watches.notified.Load()
	st.WatchingConnections, st.WatchedPaths, st.Watches = s.watches.summary()
	return st
}
