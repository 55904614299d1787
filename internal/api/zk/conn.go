package zk

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"ensemble/internal/api/zk/jute"
	"ensemble/internal/lease"
	"ensemble/internal/zktree"
)

// Reasons a connection ends; they appear in logs only.
var (
	errSessionMoved     = errors.New("zk: session reconnected on another connection")
	errStoreReplaced    = errors.New("zk: store replaced by a snapshot")
	errOutboxFull       = errors.New("zk: client reads too slowly; outbox full")
	errSessionExpired   = errors.New("zk: session expired")
	errSessionClosed    = errors.New("zk: session closed")
	errIdle             = errors.New("zk: nothing received for the session timeout")
	errClientAhead      = errors.New("zk: client has seen a later zxid than this member")
	errAuthFailed       = errors.New("zk: authentication failed")
	errFourLetterWord   = errors.New("zk: four-letter word answered")
	errCreateSession    = errors.New("zk: session could not be created")
	errMalformedRequest = errors.New("zk: malformed request")
)

const (
	// keepBuffer is the largest read buffer, write scratch or outbox buffer
	// a connection keeps between uses; larger ones are left to the GC so
	// that one big reply does not pin memory on an idle connection.
	keepBuffer = 16 << 10
	// catchUpWait is how long a reconnecting client that has seen a later
	// zxid than this member waits for the member to catch up before it is
	// refused.
	catchUpWait = time.Second
	// connectFrameLimit bounds the connect request, which is tiny.
	connectFrameLimit = 4096
)

// conn is one client connection.
type conn struct {
	s      *Server
	nc     net.Conn
	br     *bufio.Reader
	remote string // client IP, the id of its "ip" auth
	ctx    context.Context
	cancel context.CancelFunc

	// Owned by the reader goroutine.
	rbuf    []byte
	rd      jute.Reader
	w       jute.Writer
	auth    []jute.Id // identities: ip, then digests added by auth
	timeout time.Duration

	sessionID atomic.Int64
	timeoutMs atomic.Int32

	// Session renewal: at most one in flight, at most one per timeout/3.
	renewing  atomic.Bool
	lastRenew atomic.Int64 // unix ns

	out        outbox
	writerDone chan struct{}

	done      chan struct{} // closed by abort
	abortOnce sync.Once
	reason    error // why the connection ended; set once by abort

	stats connStats

	// Guarded by the watch manager's lock.
	watches  map[string]watchBits
	eventSeq uint64
}

func newConn(s *Server, nc net.Conn) *conn {
	c := &conn{
		s:          s,
		nc:         nc,
		br:         bufio.NewReader(nc),
		done:       make(chan struct{}),
		writerDone: make(chan struct{}),
		timeout:    s.maxTimeout(),
	}
	c.timeoutMs.Store(int32(c.timeout.Milliseconds()))
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	c.out.init(s.cfg.OutboxLimit)
	c.stats.init(time.Now())
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		c.remote = a.IP.String()
	} else if host, _, err := net.SplitHostPort(nc.RemoteAddr().String()); err == nil {
		c.remote = host
	} else {
		c.remote = nc.RemoteAddr().String()
	}
	c.auth = []jute.Id{{Scheme: "ip", ID: c.remote}}
	return c
}

// abort ends the connection at once: the socket is closed, which stops both
// goroutines, and whatever is queued is dropped. It never blocks, so the
// apply loop may call it.
func (c *conn) abort(reason error) {
	c.abortOnce.Do(func() {
		c.reason = reason
		close(c.done)
		c.cancel()
		c.nc.Close()
		c.out.kill()
	})
}

// serve runs the connection: the reader is this goroutine.
func (c *conn) serve() {
	defer c.s.wg.Done()
	err := c.run()
	switch {
	case errors.Is(err, errFlush):
		// A last reply is queued (closeSession, a refused connect, a
		// failed auth): let the writer send it before the socket closes.
		// The writer's deadline bounds this.
		c.out.finish()
		<-c.writerDone
		c.abort(err)
		c.logEnd(errors.Unwrap(err))
	default:
		c.abort(err)
		c.logEnd(err)
	}
	<-c.writerDone
	c.s.watches.removeConn(c)
	c.s.removeConn(c)
}

// errFlush wraps the reason of a connection that ends after its queued
// replies are written.
var errFlush = errors.New("zk: closing after the last reply")

type flushError struct{ reason error }

func (e flushError) Error() string        { return e.reason.Error() }
func (e flushError) Is(target error) bool { return target == errFlush }
func (e flushError) Unwrap() error        { return e.reason }

func (c *conn) logEnd(err error) {
	lg := c.s.lg.With("remote", c.nc.RemoteAddr().String(), "session", fmt.Sprintf("0x%x", c.sessionID.Load()))
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, ErrServerClosed), errors.Is(err, errFourLetterWord), errors.Is(err, errSessionClosed):
		lg.Debug("zk: connection closed", "reason", c.reasonOr(err))
	case errors.Is(err, jute.ErrTooLarge), errors.Is(err, jute.ErrMalformed), errors.Is(err, errMalformedRequest):
		lg.Warn("zk: closing connection after a bad frame", "err", err)
	default:
		lg.Info("zk: connection closed", "reason", c.reasonOr(err))
	}
}

// reasonOr prefers the reason given to abort, which says why the socket
// was closed under the reader.
func (c *conn) reasonOr(err error) error {
	select {
	case <-c.done:
		if c.reason != nil {
			return c.reason
		}
	default:
	}
	return err
}

func (c *conn) run() error {
	c.nc.SetReadDeadline(time.Now().Add(c.s.maxTimeout()))
	hdr, err := c.br.Peek(4)
	if err != nil {
		close(c.writerDone)
		return err
	}
	if word := string(hdr); isFourLetterWord(word) {
		close(c.writerDone)
		c.s.fourLetterWord(c, word)
		return errFourLetterWord
	}
	c.s.wg.Add(1)
	go c.writeLoop()
	if err := c.handshake(); err != nil {
		return err
	}
	for {
		if err := c.readRequest(); err != nil {
			return err
		}
	}
}

// readFrame reads the next frame into the connection's buffer.
func (c *conn) readFrame(limit int) ([]byte, error) {
	body, err := jute.ReadFrame(c.br, limit, c.rbuf[:0])
	if err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return nil, errIdle
		}
		return nil, err
	}
	if cap(body) <= keepBuffer {
		c.rbuf = body
	} else {
		c.rbuf = nil
	}
	return body, nil
}

// handshake reads the connect request and opens or resumes its session,
// as ZooKeeperServer.processConnectRequest does.
func (c *conn) handshake() error {
	body, err := c.readFrame(connectFrameLimit)
	if err != nil {
		return err
	}
	c.stats.received.Add(1)
	var req jute.ConnectRequest
	c.rd.Reset(body, connectFrameLimit)
	if err := req.Decode(&c.rd); err != nil {
		return fmt.Errorf("%w: connect request: %w", errMalformedRequest, err)
	}
	// A client that has seen more than this member has applied would go back
	// in time here. Give a lagging member a moment, then refuse without an
	// answer, as ZooKeeper does: the client tries another server.
	if req.LastZxidSeen > c.s.watches.notified.Load() {
		ctx, cancel := context.WithTimeout(c.ctx, c.s.catchUp)
		ok := c.s.watches.wait(ctx.Done(), req.LastZxidSeen)
		cancel()
		if !ok {
			return fmt.Errorf("%w: client 0x%x, member 0x%x", errClientAhead, req.LastZxidSeen, c.s.watches.notified.Load())
		}
	}
	if req.SessionID == 0 {
		return c.createSession(&req)
	}
	return c.resumeSession(&req)
}

// negotiate clamps a requested session timeout (ms) as ZooKeeper does.
func (c *conn) negotiate(ms int32) time.Duration {
	d := time.Duration(ms) * time.Millisecond
	return min(max(d, c.s.minTimeout()), c.s.maxTimeout())
}

// maxSessionAttempts bounds the retries of a new session whose random id is
// taken; with 63-bit ids a second attempt is already a curiosity.
const maxSessionAttempts = 5

func (c *conn) createSession(req *jute.ConnectRequest) error {
	timeout := c.negotiate(req.TimeOut)
	passwd := make([]byte, jute.PasswordLen)
	for range maxSessionAttempts {
		id := randomSessionID()
		rand.Read(passwd)
		ctx, cancel := context.WithTimeout(c.ctx, timeout)
		res, err := c.s.b.ProposeZK(ctx, &zktree.Command{
			Session: id,
			Time:    time.Now().UnixMilli(),
			Op:      jute.OpCreateSession,
			Req:     &zktree.SessionRequest{Timeout: int32(timeout.Milliseconds()), Passwd: passwd},
		})
		cancel()
		if err != nil {
			return fmt.Errorf("%w: %w", errCreateSession, err)
		}
		switch res.Code {
		case jute.CodeOK:
		case jute.CodeRuntimeInconsistency:
			continue // the id is taken
		default:
			return fmt.Errorf("%w: %v", errCreateSession, res.Code)
		}
		if !c.s.watches.wait(c.done, res.Zxid) {
			return c.reasonOr(net.ErrClosed)
		}
		return c.established(id, timeout, passwd)
	}
	return fmt.Errorf("%w: no free session id", errCreateSession)
}

func (c *conn) resumeSession(req *jute.ConnectRequest) error {
	// The session may have been created, closed or expired through another
	// member, in revisions this one has not applied yet: ZooKeeper asks the
	// leader's session tracker, Ensemble waits for a read index.
	ctx, cancel := context.WithTimeout(c.ctx, c.s.maxTimeout())
	err := c.s.b.Sync(ctx)
	cancel()
	if err != nil {
		return fmt.Errorf("zk: resuming a session: %w", err)
	}
	rec, ok, err := zktree.Session(c.s.b.KV(), req.SessionID)
	if err != nil {
		return err
	}
	if !ok || !bytes.Equal(rec.Passwd, req.Passwd) {
		// ZooKeeper's answer for an expired session: timeout 0 and session
		// id 0, after which the client reports the session expired.
		c.sendConnectResponse(&jute.ConnectResponse{Passwd: make([]byte, jute.PasswordLen)})
		return flushError{errSessionExpired}
	}
	// The session's lease was granted with the timeout it was created with,
	// so that is the timeout that holds, whatever this request asks.
	timeout := min(max(time.Duration(rec.Timeout)*time.Millisecond, c.s.minTimeout()), c.s.maxTimeout())
	if err := c.established(req.SessionID, timeout, rec.Passwd); err != nil {
		return err
	}
	// A reconnect proves the client alive: renew now rather than wait for
	// the first ping.
	c.renew(time.Now(), true)
	return nil
}

// established attaches the session to the connection and answers the
// connect request.
func (c *conn) established(id int64, timeout time.Duration, passwd []byte) error {
	c.timeout = timeout
	c.timeoutMs.Store(int32(timeout.Milliseconds()))
	c.sessionID.Store(id)
	c.lastRenew.Store(time.Now().UnixNano())
	if !c.s.attachSession(id, c) {
		return ErrServerClosed
	}
	c.sendConnectResponse(&jute.ConnectResponse{
		ProtocolVersion: jute.ProtocolVersion,
		TimeOut:         int32(timeout.Milliseconds()),
		SessionID:       id,
		Passwd:          passwd,
	})
	return nil
}

func (c *conn) sendConnectResponse(rsp *jute.ConnectResponse) {
	c.w.Reset()
	start := c.w.BeginFrame()
	rsp.Encode(&c.w)
	c.w.EndFrame(start)
	c.send(c.w.Bytes())
}

func randomSessionID() int64 {
	var b [8]byte
	for {
		rand.Read(b[:])
		if id := int64(binary.BigEndian.Uint64(b[:]) &^ (1 << 63)); id != 0 {
			return id
		}
	}
}

// renew renews the session's lease through the leader in the background,
// at most once per timeout/3 unless forced. A session found gone closes
// the connection; the client then learns on reconnect that it expired.
func (c *conn) renew(now time.Time, force bool) {
	id := c.sessionID.Load()
	if id == 0 {
		return
	}
	if !force && now.UnixNano()-c.lastRenew.Load() < int64(c.timeout/3) {
		return
	}
	if !c.renewing.CompareAndSwap(false, true) {
		return
	}
	c.lastRenew.Store(now.UnixNano())
	timeout := c.timeout
	c.s.wg.Add(1)
	go func() {
		defer c.s.wg.Done()
		defer c.renewing.Store(false)
		ctx, cancel := context.WithTimeout(c.ctx, timeout)
		err := c.s.b.RenewSession(ctx, id)
		cancel()
		switch {
		case err == nil:
		case errors.Is(err, lease.ErrLeaseNotFound):
			c.abort(errSessionExpired)
		case c.ctx.Err() == nil:
			// No leader for now: the next packet tries again.
			c.lastRenew.Store(0)
			c.s.lg.Debug("zk: renewing a session failed", "session", fmt.Sprintf("0x%x", id), "err", err)
		}
	}()
}

// readRequest reads and processes one request.
func (c *conn) readRequest() error {
	c.nc.SetReadDeadline(time.Now().Add(c.timeout))
	body, err := c.readFrame(c.s.cfg.MaxBuffer)
	if err != nil {
		return err
	}
	start := time.Now()
	c.stats.received.Add(1)
	c.renew(start, false)
	c.rd.Reset(body, c.s.cfg.MaxBuffer)
	var hdr jute.RequestHeader
	if err := hdr.Decode(&c.rd); err != nil {
		return fmt.Errorf("%w: request header: %w", errMalformedRequest, err)
	}
	c.stats.outstanding.Add(1)
	err = c.handle(hdr, start)
	c.stats.outstanding.Add(-1)
	return err
}

// reply queues the reply to request xid and records its statistics.
func (c *conn) reply(op string, xid int32, zxid int64, code jute.Code, body jute.Record, start time.Time) {
	c.encodeReply(op, xid, zxid, code, body)
	c.send(c.w.Bytes())
	c.replied(op, xid, zxid, start)
}

// encodeReply encodes a reply into the connection's scratch writer.
func (c *conn) encodeReply(op string, xid int32, zxid int64, code jute.Code, body jute.Record) {
	c.w.Reset()
	frame := c.w.BeginFrame()
	h := jute.ReplyHeader{Xid: xid, Zxid: zxid, Err: code}
	h.Encode(&c.w)
	if code == jute.CodeOK && body != nil {
		body.Encode(&c.w)
	}
	c.w.EndFrame(frame)
	if err := c.w.Err(); err != nil {
		// Only a reply beyond 2 GiB gets here; the client could not take it.
		c.s.lg.Error("zk: encoding a reply", "op", op, "err", err)
		c.w.Reset()
		frame = c.w.BeginFrame()
		h.Err = jute.CodeMarshallingError
		h.Encode(&c.w)
		c.w.EndFrame(frame)
	}
}

// replied records the statistics of a reply that was queued.
func (c *conn) replied(op string, xid int32, zxid int64, start time.Time) {
	if cap(c.w.Bytes()) > keepBuffer {
		c.w = jute.Writer{}
	}
	c.stats.response(xid, zxid, op, start, time.Now())
}

// replyWrite queues the reply of a write applied at revision zxid, ahead of
// the events of later revisions held back while it was in flight.
func (c *conn) replyWrite(op string, xid int32, zxid int64, code jute.Code, body jute.Record, start time.Time) {
	c.encodeReply(op, xid, zxid, code, body)
	c.queued(c.out.release(c.w.Bytes(), zxid))
	c.replied(op, xid, zxid, start)
}

// send queues a frame, which the outbox copies.
func (c *conn) send(frame []byte) { c.queued(c.out.push(frame, pushPlain, 0)) }

// sendEvent queues the frame of an event of revision rev.
func (c *conn) sendEvent(frame []byte, rev int64) { c.queued(c.out.push(frame, pushEvent, rev)) }

// sendRead queues the reply of a read at revision rev, unless the outbox
// already had an event of a later revision: ZooKeeper processes requests
// and changes in one order, so a reply that follows an event shows that
// event's change. false means the read must be done again.
func (c *conn) sendRead(frame []byte, rev int64) bool {
	res := c.out.push(frame, pushRead, rev)
	c.queued(res)
	return res != pushStale
}

func (c *conn) queued(res pushResult) {
	switch res {
	case pushOK:
		c.stats.sent.Add(1)
	case pushOverflow:
		c.abort(errOutboxFull)
	}
}

// writeLoop writes what the outbox holds, a batch per write, until the
// connection ends.
func (c *conn) writeLoop() {
	defer c.s.wg.Done()
	defer close(c.writerDone)
	var spare []byte
	for {
		buf, finished, ok := c.out.take(spare, c.done)
		if !ok {
			return
		}
		if len(buf) == 0 && finished {
			return
		}
		c.nc.SetWriteDeadline(time.Now().Add(time.Duration(c.timeoutMs.Load()) * time.Millisecond))
		if _, err := c.nc.Write(buf); err != nil {
			c.abort(err)
			return
		}
		if cap(buf) <= keepBuffer {
			spare = buf[:0]
		} else {
			spare = nil
		}
	}
}

// outbox queues a connection's outgoing frames. Pushing never blocks; the
// bytes queued are capped.
type outbox struct {
	mu       sync.Mutex
	buf      []byte
	limit    int
	dead     bool  // no more frames: the connection is gone
	finished bool  // no more frames: the writer ends once buf is written
	eventRev int64 // the latest revision of an event ever queued
	wake     chan struct{}
	// While the connection's write is in flight, events are held back
	// here, so that its reply can go before those of later revisions.
	holding bool
	held    []heldEvent
	heldLen int
}

type heldEvent struct {
	frame []byte
	rev   int64
}

type pushKind int

const (
	pushPlain pushKind = iota
	pushEvent          // an event of revision rev
	pushRead           // the reply of a read at revision rev
)

type pushResult int

const (
	pushOK pushResult = iota
	pushDropped
	pushOverflow
	pushStale // a read's reply behind an event of a later revision
)

func (o *outbox) init(limit int) {
	o.limit = limit
	o.wake = make(chan struct{}, 1)
}

func (o *outbox) push(frame []byte, kind pushKind, rev int64) pushResult {
	o.mu.Lock()
	if o.dead || o.finished {
		o.mu.Unlock()
		return pushDropped
	}
	switch kind {
	case pushRead:
		if o.eventRev > rev {
			o.mu.Unlock()
			return pushStale
		}
	case pushEvent:
		o.eventRev = max(o.eventRev, rev)
		if o.holding {
			if len(o.buf)+o.heldLen+len(frame) > o.limit {
				o.killLocked()
				o.mu.Unlock()
				return pushOverflow
			}
			o.held = append(o.held, heldEvent{frame: append([]byte(nil), frame...), rev: rev})
			o.heldLen += len(frame)
			o.mu.Unlock()
			return pushOK
		}
	}
	if len(o.buf)+o.heldLen+len(frame) > o.limit {
		o.dead = true
		o.buf = nil
		o.mu.Unlock()
		return pushOverflow
	}
	o.buf = append(o.buf, frame...)
	o.mu.Unlock()
	o.signal()
	return pushOK
}

func (o *outbox) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// take waits for frames and returns them, handing spare to the outbox to
// fill next. finished is true when the outbox is finished and buf holds the
// last frames; ok is false when the connection is gone.
func (o *outbox) take(spare []byte, done <-chan struct{}) (buf []byte, finished, ok bool) {
	for {
		o.mu.Lock()
		if o.dead {
			o.mu.Unlock()
			return nil, false, false
		}
		if len(o.buf) > 0 || o.finished {
			buf, o.buf = o.buf, spare
			finished = o.finished
			o.mu.Unlock()
			return buf, finished, true
		}
		o.mu.Unlock()
		select {
		case <-o.wake:
		case <-done:
			return nil, false, false
		}
	}
}

// finish makes the writer end once what is queued is written.
func (o *outbox) finish() {
	o.mu.Lock()
	o.finished = true
	o.mu.Unlock()
	o.signal()
}

// kill drops what is queued.
func (o *outbox) kill() {
	o.mu.Lock()
	o.killLocked()
	o.mu.Unlock()
}

func (o *outbox) killLocked() {
	o.dead = true
	o.buf = nil
	o.held, o.heldLen, o.holding = nil, 0, false
}

// hold starts holding events back: a write of the connection is in flight.
func (o *outbox) hold() {
	o.mu.Lock()
	o.holding = true
	o.mu.Unlock()
}

// release queues the events held back up to revision rev, then reply (if
// any), then the later ones, and stops holding. ZooKeeper processes a
// session's write and the changes of others in one order, so a client gets
// the events of changes before its write, its reply, then the rest.
func (o *outbox) release(reply []byte, rev int64) pushResult {
	o.mu.Lock()
	if o.dead || o.finished {
		o.held, o.heldLen, o.holding = nil, 0, false
		o.mu.Unlock()
		return pushDropped
	}
	if len(o.buf)+o.heldLen+len(reply) > o.limit {
		o.killLocked()
		o.mu.Unlock()
		return pushOverflow
	}
	replied := reply == nil
	for _, e := range o.held {
		if !replied && e.rev > rev {
			o.buf = append(o.buf, reply...)
			replied = true
		}
		o.buf = append(o.buf, e.frame...)
	}
	if !replied {
		o.buf = append(o.buf, reply...)
	}
	o.held, o.heldLen, o.holding = o.held[:0], 0, false
	o.mu.Unlock()
	o.signal()
	return pushOK
}
