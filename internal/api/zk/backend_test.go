package zk

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ensemble/internal/api/zk/jute"
	"ensemble/internal/apply"
	"ensemble/internal/backend"
	"ensemble/internal/lease"
	"ensemble/internal/mvcc"
	"ensemble/internal/types"
	"ensemble/internal/zktree"

	"github.com/go-zookeeper/zk"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// testBackend is a single member without raft: proposals are applied at
// once, under a mutex, by the real applier.
type testBackend struct {
	t   testing.TB
	be  *backend.Backend
	kv  *mvcc.Store
	l   *lease.Lessor
	app *apply.Applier

	mu    sync.Mutex
	index uint64

	// failPropose makes the next proposals fail as a server without a
	// leader would.
	failPropose atomic.Bool
	proposals   atomic.Int64
	// afterApply, if set, runs once after the next proposal is applied and
	// before its proposer hears of it: a change by someone else that lands
	// while the proposer's reply is on its way.
	afterApply atomic.Pointer[func()]
}

var errNoLeader = errors.New("test: no leader")

func newTestBackend(t testing.TB) *testBackend {
	t.Helper()
	be, err := backend.Open(backend.Options{Path: filepath.Join(t.TempDir(), "db"), MmapSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := mvcc.Open(be, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := lease.New(lease.Config{MinTTL: 1})
	if err := l.Recover(be, kv); err != nil {
		t.Fatal(err)
	}
	app := apply.New(kv, nil)
	app.SetLessor(l)
	b := &testBackend{t: t, be: be, kv: kv, l: l, app: app}
	b.index, _ = kv.ConsistentIndex()
	t.Cleanup(func() {
		kv.Close()
		be.Close()
	})
	return b
}

func (b *testBackend) KV() *mvcc.Store       { return b.kv }
func (b *testBackend) Lessor() *lease.Lessor { return b.l }

func (b *testBackend) ProposeZK(ctx context.Context, c *zktree.Command) (zktree.Result, error) {
	if err := ctx.Err(); err != nil {
		return zktree.Result{}, err
	}
	if b.failPropose.Load() {
		return zktree.Result{}, errNoLeader
	}
	b.proposals.Add(1)
	b.mu.Lock()
	b.index++
	res := b.app.ApplyZK(b.index, 1, c)
	b.mu.Unlock()
	if res.Err != nil {
		return zktree.Result{}, res.Err
	}
	if hook := b.afterApply.Swap(nil); hook != nil {
		(*hook)()
	}
	return res.Resp.(zktree.Result), nil
}

func (b *testBackend) Sync(ctx context.Context) error { return ctx.Err() }

func (b *testBackend) RenewSession(ctx context.Context, id int64) error {
	if !b.l.LeaseExists(types.LeaseID(id)) {
		return lease.ErrLeaseNotFound
	}
	return ctx.Err()
}

func (b *testBackend) Observe(o Observer) { b.kv.SetObserver(o) }

func (b *testBackend) Info() MemberInfo {
	return MemberInfo{ID: 1, Mode: "standalone", Members: 1, Version: "test+1", ClientURLs: []string{"http://127.0.0.1:2379"}}
}

// expire ends a session as the leader's lessor would when its lease runs
// out: the lease is revoked through the log, with the session's ephemerals.
func (b *testBackend) expire(id int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.index++
	if res := b.app.Apply(b.index, 1, &pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: id}}); res.Err != nil {
		b.t.Errorf("revoking session 0x%x: %v", id, res.Err)
	}
}

// env is a server on a loopback listener over a test backend.
type env struct {
	t     testing.TB
	b     *testBackend
	cfg   Config
	s     *Server
	addr  string
	hosts *testHosts
	done  chan error
	// catchUp, if set, replaces the server's catchUpWait.
	catchUp time.Duration
}

func newEnv(t testing.TB, cfg Config, opts ...func(*env)) *env {
	e := &env{t: t, b: newTestBackend(t), cfg: cfg, hosts: &testHosts{}}
	for _, o := range opts {
		o(e)
	}
	e.start()
	t.Cleanup(e.stop)
	return e
}

// start serves the backend on a new listener; clients follow it there.
func (e *env) start() {
	e.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	e.s = New(e.b, e.cfg)
	if e.catchUp > 0 {
		e.s.catchUp = e.catchUp
	}
	e.addr = ln.Addr().String()
	e.hosts.set(e.addr)
	done := make(chan error, 1)
	e.done = done
	s := e.s
	go func() { done <- s.Serve(ln) }()
}

func (e *env) stop() {
	if e.s == nil {
		return
	}
	e.s.Close()
	if err := <-e.done; !errors.Is(err, ErrServerClosed) {
		e.t.Errorf("Serve returned %v, want ErrServerClosed", err)
	}
	e.s = nil
}

// restart replaces the server by a new one on the same backend.
func (e *env) restart() {
	e.stop()
	e.start()
}

// testHosts points go-zookeeper at the env's current address and retries
// at once rather than after the second its own provider waits.
type testHosts struct{ addr atomic.Pointer[string] }

func (h *testHosts) set(addr string)      { h.addr.Store(&addr) }
func (h *testHosts) Init([]string) error  { return nil }
func (h *testHosts) Len() int             { return 1 }
func (h *testHosts) Next() (string, bool) { return *h.addr.Load(), false }
func (h *testHosts) Connected()           {}

type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

// client is a go-zookeeper connection with its session events.
type client struct {
	*zk.Conn
	states chan zk.State
}

const waitLong = 10 * time.Second

func (e *env) newClient(timeout time.Duration) *client {
	e.t.Helper()
	c := &client{states: make(chan zk.State, 256)}
	var mu sync.Mutex
	conn, _, err := zk.Connect([]string{e.addr}, timeout,
		zk.WithHostProvider(e.hosts),
		zk.WithDialer(func(network, addr string, timeout time.Duration) (net.Conn, error) {
			nc, err := net.DialTimeout(network, addr, timeout)
			if err != nil {
				return nil, err
			}
			return syncConn{Conn: nc, mu: &mu}, nil
		}),
		zk.WithLogger(quietLogger{}),
		zk.WithEventCallback(func(ev zk.Event) {
			if ev.Type == zk.EventSession {
				select {
				case c.states <- ev.State:
				default:
				}
			}
		}))
	if err != nil {
		e.t.Fatal(err)
	}
	c.Conn = conn
	e.t.Cleanup(conn.Close)
	c.waitState(e.t, zk.StateHasSession)
	return c
}

// syncConn works around a data race in go-zookeeper v1.0.4: after a
// reconnect, sendSetWatches reads Conn.lastZxid in one goroutine while
// recvLoop writes it in another when a reply arrives, with nothing but the
// socket ordering the two. Holding a mutex across each write and taking it
// after each read gives the race detector the happens-before edge that a
// request and its reply imply. (A reply that recvLoop gets before the
// setWatches request is sent still races; tests wait for the server to see
// setWatches before they send requests on a reconnected client.)
type syncConn struct {
	net.Conn
	mu *sync.Mutex
}

func (c syncConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.Write(b)
}

func (c syncConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	c.mu.Unlock() // empty on purpose: taking the lock is the edge
	return n, err
}

// waitWatched waits until some connection of the server watches path: a
// reconnected client's setWatches has arrived.
func (e *env) waitWatched(path string) {
	e.t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		e.s.watches.mu.Lock()
		n := len(e.s.watches.table[path])
		e.s.watches.mu.Unlock()
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("nobody watches %s", path)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitState waits for the session to reach state.
func (c *client) waitState(t testing.TB, want zk.State) {
	t.Helper()
	deadline := time.After(waitLong)
	for {
		select {
		case s := <-c.states:
			if s == want {
				return
			}
		case <-deadline:
			t.Fatalf("session never reached %v", want)
		}
	}
}

func waitEvent(t testing.TB, ch <-chan zk.Event) zk.Event {
	t.Helper()
	select {
	case ev := <-ch:
		return ev
	case <-time.After(waitLong):
		t.Fatal("no watch event")
	}
	return zk.Event{}
}

// raw is a hand-driven protocol connection, for what go-zookeeper cannot
// send and for checking bytes and ordering exactly.
type raw struct {
	t      testing.TB
	nc     net.Conn
	br     *bufio.Reader
	xid    int32
	events []jute.WatcherEvent
	zxids  []int64 // header zxid of each event
	w      jute.Writer
}

func dialRaw(t testing.TB, addr string) *raw {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &raw{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (r *raw) send(recs ...jute.Record) {
	r.t.Helper()
	r.w.Reset()
	start := r.w.BeginFrame()
	for _, rec := range recs {
		rec.Encode(&r.w)
	}
	r.w.EndFrame(start)
	if _, err := r.nc.Write(r.w.Bytes()); err != nil {
		r.t.Fatal(err)
	}
}

func (r *raw) readFrame() ([]byte, error) {
	r.nc.SetReadDeadline(time.Now().Add(waitLong))
	return jute.ReadFrame(r.br, 1<<24, nil)
}

// connect sends a connect request and returns the response.
func (r *raw) connect(req jute.ConnectRequest) jute.ConnectResponse {
	r.t.Helper()
	r.send(&req)
	body, err := r.readFrame()
	if err != nil {
		r.t.Fatalf("reading the connect response: %v", err)
	}
	var rsp jute.ConnectResponse
	if err := rsp.Decode(jute.NewReader(body, 0)); err != nil {
		r.t.Fatal(err)
	}
	return rsp
}

// call sends a request and returns its reply, collecting the notifications
// that arrive before it.
func (r *raw) call(op jute.OpCode, req jute.Record) (jute.ReplyHeader, *jute.Reader) {
	r.t.Helper()
	r.xid++
	xid := r.xid
	if op == jute.OpPing {
		xid = jute.XidPing
	}
	hdr := jute.RequestHeader{Xid: xid, Type: op}
	if req == nil {
		r.send(&hdr)
	} else {
		r.send(&hdr, req)
	}
	for {
		body, err := r.readFrame()
		if err != nil {
			r.t.Fatalf("%v: reading the reply: %v", op, err)
		}
		rd := jute.NewReader(body, 0)
		var h jute.ReplyHeader
		if err := h.Decode(rd); err != nil {
			r.t.Fatal(err)
		}
		if h.Xid == jute.XidNotification {
			var ev jute.WatcherEvent
			if err := ev.Decode(rd); err != nil {
				r.t.Fatal(err)
			}
			r.events = append(r.events, ev)
			r.zxids = append(r.zxids, h.Zxid)
			continue
		}
		if h.Xid != xid {
			r.t.Fatalf("%v: reply to xid %d, want %d", op, h.Xid, xid)
		}
		return h, rd
	}
}

// callOK is call for a request that must succeed; it decodes the reply
// into rsp (if not nil).
func (r *raw) callOK(op jute.OpCode, req, rsp jute.Record) int64 {
	r.t.Helper()
	h, rd := r.call(op, req)
	if h.Err != jute.CodeOK {
		r.t.Fatalf("%v: %v", op, h.Err)
	}
	if rsp != nil {
		if err := rsp.Decode(rd); err != nil {
			r.t.Fatalf("%v: decoding the reply: %v", op, err)
		}
	}
	return h.Zxid
}

// takeEvents returns and forgets the notifications collected so far.
func (r *raw) takeEvents() []jute.WatcherEvent {
	evs := r.events
	r.events, r.zxids = nil, nil
	return evs
}

// expectClosed reads until the server closes the connection.
func (r *raw) expectClosed() {
	r.t.Helper()
	r.nc.SetReadDeadline(time.Now().Add(waitLong))
	if _, err := io.Copy(io.Discard, r.br); err != nil {
		r.t.Fatalf("connection not closed by the server: %v", err)
	}
}

// raw dials the server and opens a session with a timeout of timeoutMs.
func (e *env) raw(timeoutMs int32) *raw {
	e.t.Helper()
	r := dialRaw(e.t, e.addr)
	rsp := r.connect(jute.ConnectRequest{TimeOut: timeoutMs, Passwd: make([]byte, 16)})
	if rsp.SessionID == 0 {
		e.t.Fatalf("no session: %+v", rsp)
	}
	return r
}
