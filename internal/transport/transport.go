package transport

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"ensemble/internal/types"

	"go.etcd.io/raft/v3/raftpb"
)

// Handler receives what peers send. It is implemented by the server.
type Handler interface {
	// Process steps m into raft. It is called from the connection's read
	// goroutine, in the order the sender queued the messages.
	Process(ctx context.Context, m raftpb.Message) error
	// ReceiveSnapshot is given a MsgSnap and the state-machine database that
	// came with it; it must consume db fully (or return an error) before
	// returning. The transport replies to the sender with success or failure.
	ReceiveSnapshot(ctx context.Context, m raftpb.Message, db io.Reader, size int64) error
	// ReportUnreachable says that sending to id failed or its queue overflowed.
	ReportUnreachable(id uint64)
	// ReportSnapshot gives the outcome of a SendSnapshot.
	ReportSnapshot(id uint64, failed bool)
	// PeerDisconnected says that the inbound or outbound message connection
	// to id dropped; it is called once per dropped connection.
	PeerDisconnected(id uint64)
}

// Config configures a Transport. Zero values take the defaults noted.
type Config struct {
	LocalID types.MemberID
	// ClusterID must be the same on both ends, else the connection is refused.
	ClusterID types.ClusterID
	Handler   Handler
	Logger    *slog.Logger
	// DialTimeout bounds a dial plus its handshake. Default 1s.
	DialTimeout time.Duration
	// LocalAddr, when set (e.g. "127.0.0.2:0"), is the source address of
	// outbound connections, so that a member's traffic comes from its own IP.
	LocalAddr string
	// QueueSize is the number of messages buffered per peer before Send drops.
	// Default 4096.
	QueueSize int
	// WriteTimeout bounds one write to a peer; a peer that stops reading for
	// longer is disconnected and redialed. Default 5s.
	WriteTimeout time.Duration
	// HandshakeTimeout bounds reading an inbound handshake. Default 5s.
	HandshakeTimeout time.Duration
	// SnapshotAckTimeout bounds the wait for the receiver's verdict after the
	// last database byte is written, so that a receiver that vanished without
	// a reset does not hold raft in snapshot state forever. Default 2m.
	SnapshotAckTimeout time.Duration
	// MaxFrameSize bounds one message frame. Default DefaultMaxFrameSize.
	MaxFrameSize int
	// MinBackoff and MaxBackoff bound the wait between redials of a peer.
	// Defaults 10ms and 500ms.
	MinBackoff, MaxBackoff time.Duration
	// Info, when set, answers FetchInfo requests with a description of the
	// cluster (opaque to the transport).
	Info func() []byte
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = time.Second
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 4096
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 5 * time.Second
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 5 * time.Second
	}
	if c.SnapshotAckTimeout <= 0 {
		c.SnapshotAckTimeout = 2 * time.Minute
	}
	if c.MaxFrameSize <= 0 {
		c.MaxFrameSize = DefaultMaxFrameSize
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 10 * time.Millisecond
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = max(500*time.Millisecond, c.MinBackoff)
	}
}

const ioBufferSize = 64 << 10

// Transport sends raft messages and snapshots to peers and receives theirs.
// All methods are safe for concurrent use. After Close returns, no Handler
// method is called any more.
type Transport struct {
	cfg       Config
	lg        *slog.Logger
	h         Handler
	localAddr net.Addr // nil: let the kernel choose
	localErr  error    // a LocalAddr that did not resolve fails every dial

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	closed atomic.Bool
	wg     sync.WaitGroup

	mu        sync.RWMutex
	peers     map[types.MemberID]*peer
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{} // inbound and snapshot connections, closed by Close
	inbound   map[types.MemberID]net.Conn
}

// New returns a Transport; it dials nothing until AddPeer and accepts nothing
// until Serve.
func New(cfg Config) *Transport {
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	t := &Transport{
		cfg:       cfg,
		lg:        cfg.Logger.With("local", cfg.LocalID.String()),
		h:         cfg.Handler,
		ctx:       ctx,
		cancel:    cancel,
		peers:     make(map[types.MemberID]*peer),
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[net.Conn]struct{}),
		inbound:   make(map[types.MemberID]net.Conn),
	}
	if t.h == nil {
		t.h = nopHandler{}
	}
	if cfg.LocalAddr != "" {
		a, err := net.ResolveTCPAddr("tcp", cfg.LocalAddr)
		if err != nil {
			t.localErr = err
			t.lg.Error("cannot resolve local address for peer connections; dials will fail", "addr", cfg.LocalAddr, "err", err)
		} else {
			t.localAddr = a
		}
	}
	return t
}

// goAdd starts f as a tracked goroutine unless the transport is closed.
// Adding under mu, and setting closed under mu, keeps wg.Add from racing
// with the wg.Wait in Close.
func (t *Transport) goAdd(f func()) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed.Load() {
		return false
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		f()
	}()
	return true
}

// trackConn registers c to be closed by Close. It reports false, having
// closed c, when the transport is already closed.
func (t *Transport) trackConn(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed.Load() {
		c.Close()
		return false
	}
	t.conns[c] = struct{}{}
	return true
}

func (t *Transport) untrackConn(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}

// Serve accepts peer connections on l until Close, which also closes l. It
// may be called for several listeners, each in its own goroutine. It returns
// ErrClosed after Close, or the listener's error if l fails for good.
func (t *Transport) Serve(l net.Listener) error {
	t.mu.Lock()
	if t.closed.Load() {
		t.mu.Unlock()
		l.Close()
		return ErrClosed
	}
	t.listeners[l] = struct{}{}
	t.wg.Add(1)
	t.mu.Unlock()
	defer t.wg.Done()
	defer func() {
		t.mu.Lock()
		delete(t.listeners, l)
		t.mu.Unlock()
	}()

	t.lg.Info("accepting peer connections", "addr", l.Addr().String())
	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if t.closed.Load() {
				return ErrClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Running out of descriptors and the like pass; wait rather than spin.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			t.lg.Warn("accepting peer connection failed; retrying", "addr", l.Addr().String(), "err", err, "retry_in", backoff)
			if !t.wait(backoff) {
				return ErrClosed
			}
			continue
		}
		backoff = 0
		if !t.trackConn(c) {
			return ErrClosed
		}
		if !t.goAdd(func() { t.serveConn(c) }) {
			c.Close()
			return ErrClosed
		}
	}
}

// wait sleeps for d unless the transport closes first.
func (t *Transport) wait(d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-t.ctx.Done():
		return false
	}
}

// serveConn runs one inbound connection: the handshake, then the stream.
func (t *Transport) serveConn(c net.Conn) {
	defer t.untrackConn(c)
	defer c.Close()
	remote := c.RemoteAddr().String()

	c.SetReadDeadline(time.Now().Add(t.cfg.HandshakeTimeout))
	br := bufio.NewReaderSize(c, ioBufferSize)
	h, status, err := readHandshake(br)
	if err == nil && h.kind == kindInfo {
		t.answerInfo(c)
		return
	}
	if err == nil {
		switch {
		case h.cluster != t.cfg.ClusterID:
			status = statusClusterMismatch
			err = ErrClusterMismatch
		case h.to != t.cfg.LocalID:
			status = statusWrongReceiver
			err = ErrWrongReceiver
		}
	}
	if err != nil {
		level := slog.LevelWarn
		if status == statusOK && !errors.Is(err, ErrBadMagic) {
			// Closed or silent before a whole handshake: port scanners and
			// TCP health checks, not a misconfigured member.
			level = slog.LevelDebug
		}
		if !t.closed.Load() {
			args := []any{"remote", remote, "err", err}
			if status == statusClusterMismatch || status == statusWrongReceiver {
				args = append(args, "their_cluster", h.cluster.String(), "our_cluster", t.cfg.ClusterID.String(),
					"from", h.from.String(), "meant_for", h.to.String())
			}
			t.lg.Log(t.ctx, level, "refused peer connection", args...)
		}
		if status != statusOK {
			c.SetWriteDeadline(time.Now().Add(t.cfg.HandshakeTimeout))
			c.Write([]byte{status})
		}
		return
	}
	c.SetWriteDeadline(time.Now().Add(t.cfg.HandshakeTimeout))
	if _, err := c.Write([]byte{statusOK}); err != nil {
		t.lg.Debug("answering peer handshake failed", "remote", remote, "from", h.from.String(), "err", err)
		return
	}
	c.SetDeadline(time.Time{})

	switch h.kind {
	case kindMessages:
		t.readMessages(c, br, h.from)
	case kindSnapshot:
		t.receiveSnapshot(c, br, h.from)
	}
}

// readMessages steps every frame on an inbound message stream into raft, in
// order, until the connection fails.
func (t *Transport) readMessages(c net.Conn, br *bufio.Reader, from types.MemberID) {
	t.mu.Lock()
	if old := t.inbound[from]; old != nil {
		// The peer redialed; its old connection is dead or dying, and two
		// readers for one peer would only reorder its messages.
		old.Close()
	}
	t.inbound[from] = c
	t.mu.Unlock()
	t.lg.Debug("peer stream connected", "from", from.String(), "remote", c.RemoteAddr().String())

	err := t.readLoop(br, from)

	t.mu.Lock()
	current := t.inbound[from] == c
	if current {
		delete(t.inbound, from)
	}
	t.mu.Unlock()
	if t.closed.Load() || !current {
		return
	}
	if errors.Is(err, io.EOF) {
		t.lg.Info("peer stream closed", "from", from.String())
	} else {
		t.lg.Warn("peer stream failed", "from", from.String(), "err", err)
	}
	t.h.PeerDisconnected(uint64(from))
}

func (t *Transport) readLoop(br *bufio.Reader, from types.MemberID) error {
	var (
		buf      []byte
		err      error
		reported bool
	)
	for {
		buf, err = readFrame(br, buf, t.cfg.MaxFrameSize)
		if err != nil {
			return err
		}
		var m raftpb.Message
		if err := decodeMessage(buf, &m); err != nil {
			return err
		}
		if cap(buf) > maxScratch {
			buf = nil
		}
		if err := t.h.Process(t.ctx, m); err != nil {
			if t.closed.Load() {
				return ErrClosed
			}
			// Usually raft is stopping; say so once per connection, not per message.
			if !reported {
				t.lg.Warn("raft refused a peer message", "from", from.String(), "type", m.Type.String(), "err", err)
				reported = true
			}
		}
	}
}

// AddPeer starts keeping a connection to id at one of urls (such as
// "http://127.0.0.1:2380"; the scheme is ignored). Adding a known peer
// updates its URLs.
func (t *Transport) AddPeer(id types.MemberID, urls []string) {
	if id == t.cfg.LocalID {
		return
	}
	addrs := hostPorts(urls)
	t.mu.Lock()
	if p := t.peers[id]; p != nil {
		t.mu.Unlock()
		p.setAddrs(addrs)
		return
	}
	if t.closed.Load() {
		t.mu.Unlock()
		return
	}
	p := newPeer(t, id, addrs)
	t.peers[id] = p
	t.wg.Add(1)
	t.mu.Unlock()
	go func() {
		defer t.wg.Done()
		p.run()
	}()
}

// RemovePeer stops sending to id and closes its outbound connection.
func (t *Transport) RemovePeer(id types.MemberID) {
	t.mu.Lock()
	p := t.peers[id]
	delete(t.peers, id)
	in := t.inbound[id]
	t.mu.Unlock()
	if p != nil {
		p.stop()
		<-p.done
	}
	if in != nil {
		// A removed member's reader would otherwise keep stepping its messages.
		in.Close()
	}
}

// UpdatePeer replaces the URLs of id; a connection to an address no longer
// listed is closed and redialed.
func (t *Transport) UpdatePeer(id types.MemberID, urls []string) {
	t.AddPeer(id, urls)
}

// Send queues msgs for their peers and returns at once. A message for a peer
// that is disconnected, or whose queue is full, is dropped and reported with
// Handler.ReportUnreachable (once per peer per call); raft resends on its own.
// A MsgSnap must go through SendSnapshot; one given here is dropped and
// reported as a failed snapshot.
func (t *Transport) Send(msgs []raftpb.Message) {
	var (
		unreachable [8]uint64
		nu          int
		snapFailed  []uint64
	)
	t.mu.RLock()
	for i := range msgs {
		m := &msgs[i]
		p := t.peers[types.MemberID(m.To)]
		if p == nil {
			t.lg.Debug("dropping message to unknown peer", "to", types.MemberID(m.To).String(), "type", m.Type.String())
			continue
		}
		if m.Type == raftpb.MsgSnap {
			snapFailed = append(snapFailed, m.To)
			continue
		}
		if p.enqueue(m) {
			continue
		}
		seen := false
		for _, id := range unreachable[:min(nu, len(unreachable))] {
			if id == m.To {
				seen = true
				break
			}
		}
		if !seen {
			if nu < len(unreachable) {
				unreachable[nu] = m.To
			}
			nu++
		}
	}
	t.mu.RUnlock()
	if t.closed.Load() {
		return
	}
	for _, id := range unreachable[:min(nu, len(unreachable))] {
		t.h.ReportUnreachable(id)
	}
	for _, id := range snapFailed {
		t.lg.Warn("MsgSnap given to Send instead of SendSnapshot; dropped", "to", types.MemberID(id).String())
		t.h.ReportSnapshot(id, true)
	}
}

// ActivePeers is the number of peers with a working outbound connection.
func (t *Transport) ActivePeers() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	n := 0
	for _, p := range t.peers {
		if p.connected.Load() {
			n++
		}
	}
	return n
}

// Close stops accepting, closes every connection and listener, waits for all
// of the transport's goroutines, and returns. It is safe to call twice.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed.Load() {
		t.mu.Unlock()
		t.wg.Wait()
		return nil
	}
	t.closed.Store(true)
	t.cancel()
	for l := range t.listeners {
		l.Close()
	}
	for c := range t.conns {
		c.Close()
	}
	peers := make([]*peer, 0, len(t.peers))
	for _, p := range t.peers {
		peers = append(peers, p)
	}
	t.mu.Unlock()
	for _, p := range peers {
		p.stop()
	}
	t.wg.Wait()
	return nil
}

// nopHandler stands in for a missing Handler so that no call site has to check.
type nopHandler struct{}

func (nopHandler) Process(context.Context, raftpb.Message) error { return nil }
func (nopHandler) ReceiveSnapshot(_ context.Context, _ raftpb.Message, db io.Reader, _ int64) error {
	_, err := io.Copy(io.Discard, db)
	return err
}
func (nopHandler) ReportUnreachable(uint64)    {}
func (nopHandler) ReportSnapshot(uint64, bool) {}
func (nopHandler) PeerDisconnected(uint64)     {}

// Connected reports whether the outbound stream to peer id is up.
func (t *Transport) Connected(id types.MemberID) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	p, ok := t.peers[id]
	return ok && p.connected.Load()
}
