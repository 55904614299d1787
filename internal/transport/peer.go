package transport

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"ensemble/internal/types"

	"go.etcd.io/raft/v3/raftpb"
)

// peer owns the outbound message connection to one member: a bounded queue
// filled by Send and one goroutine (run) that dials, writes and redials.
type peer struct {
	t     *Transport
	id    types.MemberID
	lg    *slog.Logger
	queue chan raftpb.Message
	// connected is true while a handshaken connection is being written; Send
	// drops instead of queueing when it is false, so that a dead peer does not
	// collect a queue of stale messages.
	connected atomic.Bool

	ctx    context.Context // cancelled by stop
	cancel context.CancelFunc
	done   chan struct{} // closed when run returns

	mu       sync.Mutex
	addrs    []string
	next     int      // index into addrs of the next dial
	conn     net.Conn // the current connection, closed by stop or an address change
	connAddr string
}

func newPeer(t *Transport, id types.MemberID, addrs []string) *peer {
	ctx, cancel := context.WithCancel(t.ctx)
	return &peer{
		t:      t,
		id:     id,
		lg:     t.lg.With("peer", id.String()),
		queue:  make(chan raftpb.Message, t.cfg.QueueSize),
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
		addrs:  addrs,
	}
}

// enqueue hands m to the writer without blocking; false means m was dropped.
func (p *peer) enqueue(m *raftpb.Message) bool {
	if !p.connected.Load() {
		return false
	}
	select {
	case p.queue <- *m:
		return true
	default:
		return false
	}
}

func (p *peer) stop() {
	p.cancel()
	p.mu.Lock()
	if p.conn != nil {
		p.conn.Close()
	}
	p.mu.Unlock()
}

func (p *peer) setAddrs(addrs []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.addrs = addrs
	p.next = 0
	if p.conn != nil && !slices.Contains(addrs, p.connAddr) {
		p.lg.Info("peer address changed; reconnecting", "old", p.connAddr, "new", addrs)
		p.conn.Close()
	}
}

// nextAddr picks the address to dial, rotating through the list so that a
// member listening on several URLs is reached through whichever one works.
func (p *peer) nextAddr() (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.addrs) == 0 {
		return "", false
	}
	a := p.addrs[p.next%len(p.addrs)]
	p.next++
	return a, true
}

func (p *peer) addrList() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.addrs)
}

// setConn publishes c as the current connection so that stop and setAddrs
// can close it; it refuses (and closes c) when the peer is already stopped.
func (p *peer) setConn(c net.Conn, addr string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ctx.Err() != nil || !slices.Contains(p.addrs, addr) {
		c.Close()
		return false
	}
	p.conn, p.connAddr = c, addr
	return true
}

func (p *peer) clearConn() {
	p.mu.Lock()
	p.conn, p.connAddr = nil, ""
	p.mu.Unlock()
}

// run keeps a connection to the peer until stop: dial with capped
// exponential backoff, stream the queue, and on failure start over.
func (p *peer) run() {
	defer close(p.done)
	cfg := &p.t.cfg
	backoff := cfg.MinBackoff
	var lastErr string
	for p.ctx.Err() == nil {
		addr, ok := p.nextAddr()
		var (
			c   net.Conn
			err error
		)
		if !ok {
			err = fmt.Errorf("%w: no address for %s", ErrUnknownPeer, p.id)
		} else {
			c, err = p.t.dial(p.ctx, addr, kindMessages, p.id)
		}
		if err != nil {
			if p.ctx.Err() != nil {
				return
			}
			// Log each distinct failure once; a peer that is down stays quiet.
			if msg := err.Error(); msg != lastErr {
				p.lg.Warn("cannot connect to peer", "addr", addr, "err", err, "retry_in", backoff)
				lastErr = msg
			}
			if !p.sleep(backoff) {
				return
			}
			backoff = min(2*backoff, cfg.MaxBackoff)
			continue
		}
		if !p.setConn(c, addr) {
			continue
		}
		backoff, lastErr = cfg.MinBackoff, ""
		p.connected.Store(true)
		p.lg.Info("connected to peer", "addr", addr)

		err = p.stream(c)

		p.connected.Store(false)
		p.clearConn()
		c.Close()
		p.dropQueued()
		if p.ctx.Err() != nil {
			return
		}
		p.lg.Warn("lost connection to peer", "addr", addr, "err", err)
		if !p.t.closed.Load() {
			p.t.h.PeerDisconnected(uint64(p.id))
		}
		if !p.sleep(cfg.MinBackoff) {
			return
		}
	}
}

func (p *peer) sleep(d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-p.ctx.Done():
		return false
	}
}

// dropQueued discards what was queued for a connection that failed; raft
// will resend what still matters once it learns the peer is unreachable.
func (p *peer) dropQueued() {
	n := 0
	for {
		select {
		case <-p.queue:
			n++
			continue
		default:
		}
		break
	}
	if n > 0 && !p.t.closed.Load() && p.ctx.Err() == nil {
		p.t.h.ReportUnreachable(uint64(p.id))
	}
}

// errPeerHungUp reports that the peer closed an outbound stream; it never
// writes on it, so any read result means the connection is gone.
var errPeerHungUp = fmt.Errorf("transport: peer closed the connection: %w", io.EOF)

// stream writes queued messages to c until a write fails, the peer hangs up,
// or the peer is stopped. Messages are batched: the writer flushes only when
// the queue is momentarily empty or its buffer is full.
func (p *peer) stream(c net.Conn) error {
	hungUp := make(chan struct{})
	go func() {
		// Watch for the peer going away even while we have nothing to send,
		// so that failover does not wait for the next heartbeat.
		var b [64]byte
		for {
			if _, err := c.Read(b[:]); err != nil {
				close(hungUp)
				return
			}
		}
	}()
	defer func() {
		c.Close()
		<-hungUp
	}()

	fw := frameWriter{bw: bufio.NewWriterSize(deadlineWriter{c: c, timeout: p.t.cfg.WriteTimeout}, ioBufferSize)}
	for {
		select {
		case m := <-p.queue:
			if err := p.write(&fw, &m); err != nil {
				return err
			}
		drain:
			for {
				select {
				case m := <-p.queue:
					if err := p.write(&fw, &m); err != nil {
						return err
					}
				default:
					break drain
				}
			}
			if err := fw.bw.Flush(); err != nil {
				return err
			}
		case <-hungUp:
			return errPeerHungUp
		case <-p.ctx.Done():
			return p.ctx.Err()
		}
	}
}

func (p *peer) write(fw *frameWriter, m *raftpb.Message) error {
	size := m.Size()
	if size > p.t.cfg.MaxFrameSize {
		// The receiver would refuse it and drop the connection; drop it here.
		p.lg.Warn("dropping message larger than the frame limit", "type", m.Type.String(), "bytes", size, "limit", p.t.cfg.MaxFrameSize)
		return nil
	}
	return fw.write(m, size)
}

// deadlineWriter gives every write to the connection its own deadline, so
// that a long burst is not cut off by a deadline set at its start, while a
// peer that stops reading is still noticed.
type deadlineWriter struct {
	c       net.Conn
	timeout time.Duration
}

func (w deadlineWriter) Write(b []byte) (int, error) {
	if err := w.c.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
		return 0, err
	}
	return w.c.Write(b)
}

// dial connects to addr and performs the handshake for a stream of kind to
// member to, within DialTimeout, from Config.LocalAddr when set.
func (t *Transport) dial(ctx context.Context, addr string, kind streamKind, to types.MemberID) (net.Conn, error) {
	if t.localErr != nil {
		return nil, fmt.Errorf("transport: local address %q: %w", t.cfg.LocalAddr, t.localErr)
	}
	d := net.Dialer{Timeout: t.cfg.DialTimeout}
	if t.localAddr != nil {
		d.LocalAddr = t.localAddr
	}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	// Cancelling ctx must also cut a handshake short, not only the dial.
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	err = t.handshake(c, kind, to)
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (t *Transport) handshake(c net.Conn, kind streamKind, to types.MemberID) error {
	if err := c.SetDeadline(time.Now().Add(t.cfg.DialTimeout)); err != nil {
		return err
	}
	var b [handshakeSize]byte
	handshake{kind: kind, cluster: t.cfg.ClusterID, from: t.cfg.LocalID, to: to}.encode(&b)
	if _, err := c.Write(b[:]); err != nil {
		return fmt.Errorf("transport: send handshake: %w", err)
	}
	var status [1]byte
	if _, err := io.ReadFull(c, status[:]); err != nil {
		return fmt.Errorf("transport: read handshake answer: %w", err)
	}
	if err := statusError(status[0]); err != nil {
		return err
	}
	return c.SetDeadline(time.Time{})
}

// hostPorts turns peer URLs into dialable host:port strings.
func hostPorts(urls []string) []string {
	out := make([]string, 0, len(urls))
	for _, s := range urls {
		s = strings.TrimSpace(s)
		if strings.Contains(s, "://") {
			if u, err := url.Parse(s); err == nil {
				s = u.Host
			}
		}
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
