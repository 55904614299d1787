package framework

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"ensemble/internal/api/zk/jute"

	"github.com/go-zookeeper/zk"
)

// ZKWait bounds every single wait of the ZooKeeper helpers: a reply, an
// event, a session. Generous, because -race on two cores is slow, and never
// spent when the server behaves.
const ZKWait = 10 * time.Second

// ZKSessionTimeout is what ZKConnect's go-zookeeper sessions ask for; inside
// the default [4 s, 40 s] range, so the server keeps it.
const ZKSessionTimeout = 10 * time.Second

// zkQuiet drops go-zookeeper's log lines; failures reach the tests as errors.
type zkQuiet struct{}

func (zkQuiet) Printf(string, ...any) {}

// ZKConnect opens a go-zookeeper session on servers and waits until it has
// one. The session is closed when the test ends.
func ZKConnect(t testing.TB, servers ...string) *zk.Conn {
	t.Helper()
	c, _ := ZKConnectEvents(t, servers...)
	return c
}

// ZKConnectEvents is ZKConnect that also returns the session's event
// channel (go-zookeeper drops events when nobody reads it).
func ZKConnectEvents(t testing.TB, servers ...string) (*zk.Conn, <-chan zk.Event) {
	t.Helper()
	c, events, err := zk.Connect(servers, ZKSessionTimeout, zk.WithLogger(zkQuiet{}), zk.WithLogInfo(false))
	if err != nil {
		t.Fatalf("zk.Connect(%v): %v", servers, err)
	}
	t.Cleanup(c.Close)
	timeout := time.After(ZKWait)
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("session on %v closed before it was established", servers)
			}
			if ev.State == zk.StateHasSession {
				return c, events
			}
		case <-timeout:
			t.Fatalf("no session on %v within %v (state %v)", servers, ZKWait, c.State())
		}
	}
}

// ZKRaw is a minimal ZooKeeper client on top of internal/api/zk/jute, for
// what go-zookeeper cannot send: the newer opcodes, the special xids, and
// malformed or hostile input. It is synchronous: a call reads frames until
// its reply, keeping the notifications that come first in Events. Its
// helpers that fail the test must run on the test's goroutine.
type ZKRaw struct {
	T       testing.TB
	Addr    string
	Conn    net.Conn
	Xid     int32 // last ordinary xid used
	Session int64
	Passwd  []byte
	Timeout int32 // negotiated, ms
	Zxid    int64 // zxid of the last reply
	// Events are notifications read but not yet taken.
	Events []jute.WatcherEvent

	br *bufio.Reader
	w  jute.Writer
}

// DialZKRaw opens a TCP connection to addr without a handshake; it is
// closed when the test ends.
func DialZKRaw(t testing.TB, addr string) *ZKRaw {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, ZKWait)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &ZKRaw{T: t, Addr: addr, Conn: conn, br: bufio.NewReader(conn)}
}

// NewZKRawSession opens a new session on addr asking for timeoutMs.
func NewZKRawSession(t testing.TB, addr string, timeoutMs int32) *ZKRaw {
	t.Helper()
	r := DialZKRaw(t, addr)
	resp, err := r.Connect(jute.ConnectRequest{TimeOut: timeoutMs, Passwd: make([]byte, jute.PasswordLen)})
	if err != nil {
		t.Fatalf("connect to %s: %v", addr, err)
	}
	if resp.SessionID == 0 || resp.TimeOut <= 0 || len(resp.Passwd) != jute.PasswordLen {
		t.Fatalf("connect to %s: no session in %+v", addr, resp)
	}
	return r
}

// ResumeZKRaw reconnects to addr with an existing session, as a client does
// after losing its server, and returns the connection and the server's
// answer (timeout 0 and session 0 when the session is refused).
func ResumeZKRaw(t testing.TB, addr string, session int64, passwd []byte, lastZxid int64) (*ZKRaw, jute.ConnectResponse, error) {
	t.Helper()
	r := DialZKRaw(t, addr)
	resp, err := r.Connect(jute.ConnectRequest{TimeOut: 30000, SessionID: session, Passwd: passwd, LastZxidSeen: lastZxid})
	return r, resp, err
}

// Connect sends req as the connection's handshake and reads the answer.
func (r *ZKRaw) Connect(req jute.ConnectRequest) (jute.ConnectResponse, error) {
	var resp jute.ConnectResponse
	if err := r.WriteFrame(req.Encode); err != nil {
		return resp, err
	}
	body, err := r.readFrame(ZKWait)
	if err != nil {
		return resp, err
	}
	if err := resp.Decode(jute.NewReader(body, 0)); err != nil {
		return resp, err
	}
	if resp.SessionID != 0 {
		r.Session, r.Passwd, r.Timeout = resp.SessionID, bytes.Clone(resp.Passwd), resp.TimeOut
	}
	return resp, nil
}

// WriteFrame writes one frame whose body enc appends.
func (r *ZKRaw) WriteFrame(enc func(w *jute.Writer)) error {
	r.w.Reset()
	start := r.w.BeginFrame()
	enc(&r.w)
	r.w.EndFrame(start)
	if err := r.w.Err(); err != nil {
		return err
	}
	return r.WriteRaw(r.w.Bytes())
}

// WriteRaw writes b as it is.
func (r *ZKRaw) WriteRaw(b []byte) error {
	if err := r.Conn.SetWriteDeadline(time.Now().Add(ZKWait)); err != nil {
		return err
	}
	_, err := r.Conn.Write(b)
	return err
}

func (r *ZKRaw) readFrame(within time.Duration) ([]byte, error) {
	if err := r.Conn.SetReadDeadline(time.Now().Add(within)); err != nil {
		return nil, err
	}
	return jute.ReadFrame(r.br, 64<<20, nil)
}

// Send writes one request frame (req may be nil for an empty body).
func (r *ZKRaw) Send(xid int32, op jute.OpCode, req jute.Record) error {
	return r.WriteFrame(func(w *jute.Writer) {
		h := jute.RequestHeader{Xid: xid, Type: op}
		h.Encode(w)
		if req != nil {
			req.Encode(w)
		}
	})
}

// CallXid sends req under xid and reads up to its reply, decoding the body
// into resp when the reply carries no error. Notifications read on the way
// are appended to Events; replies to other xids (late pings) are dropped.
func (r *ZKRaw) CallXid(xid int32, op jute.OpCode, req, resp jute.Record) (jute.ReplyHeader, error) {
	if err := r.Send(xid, op, req); err != nil {
		return jute.ReplyHeader{}, err
	}
	for {
		body, err := r.readFrame(ZKWait)
		if err != nil {
			return jute.ReplyHeader{}, err
		}
		rd := jute.NewReader(body, 0)
		var h jute.ReplyHeader
		if err := h.Decode(rd); err != nil {
			return h, err
		}
		if h.Xid == jute.XidNotification {
			var ev jute.WatcherEvent
			if err := ev.Decode(rd); err != nil {
				return h, err
			}
			r.Events = append(r.Events, ev)
			continue
		}
		if h.Xid != xid {
			continue
		}
		if h.Zxid > 0 {
			r.Zxid = h.Zxid
		}
		if h.Err == jute.CodeOK && resp != nil {
			if err := resp.Decode(rd); err != nil {
				return h, fmt.Errorf("decoding the %v reply: %w", op, err)
			}
		}
		return h, nil
	}
}

// Call is CallXid with the next ordinary xid.
func (r *ZKRaw) Call(op jute.OpCode, req, resp jute.Record) (jute.ReplyHeader, error) {
	r.Xid++
	return r.CallXid(r.Xid, op, req, resp)
}

// Do is Call for a test: a broken connection fails the test; the reply's
// code is returned.
func (r *ZKRaw) Do(op jute.OpCode, req, resp jute.Record) jute.Code {
	r.T.Helper()
	h, err := r.Call(op, req, resp)
	if err != nil {
		r.T.Fatalf("%v on %s: %v", op, r.Addr, err)
	}
	return h.Err
}

// MustDo is Do that also fails the test on an error code.
func (r *ZKRaw) MustDo(op jute.OpCode, req, resp jute.Record) {
	r.T.Helper()
	if code := r.Do(op, req, resp); code != jute.CodeOK {
		r.T.Fatalf("%v %+v on %s: %v", op, req, r.Addr, code)
	}
}

// WantCode runs one request and checks its reply's code.
func (r *ZKRaw) WantCode(what string, op jute.OpCode, req jute.Record, want jute.Code) {
	r.T.Helper()
	if got := r.Do(op, req, nil); got != want {
		r.T.Errorf("%s: got %v (%d), want %v (%d)", what, got, int32(got), want, int32(want))
	}
}

// Flush returns (and takes) every notification the server owes this client
// for changes committed before the call: sync makes the member catch up
// with the leader, and by the ordering guarantee the events of everything a
// read can see come before that read's reply.
func (r *ZKRaw) Flush() []jute.WatcherEvent {
	r.T.Helper()
	r.MustDo(jute.OpSync, &jute.SyncRequest{Path: "/"}, &jute.SyncResponse{})
	r.MustDo(jute.OpExists, &jute.ExistsRequest{Path: "/"}, &jute.ExistsResponse{})
	evs := r.Events
	r.Events = nil
	return evs
}

// ExpectClosed reads (and drops) whatever the server still sends until it
// closes the connection; it fails the test if the connection stays open.
func (r *ZKRaw) ExpectClosed(what string) {
	r.T.Helper()
	if n := r.drain(what); n < 0 {
		r.T.Errorf("%s: the server kept the connection open for %v", what, ZKWait)
	}
}

// ExpectClosedSilently is ExpectClosed that also fails if the server sent
// anything before closing.
func (r *ZKRaw) ExpectClosedSilently(what string) {
	r.T.Helper()
	switch n := r.drain(what); {
	case n < 0:
		r.T.Errorf("%s: the server kept the connection open for %v", what, ZKWait)
	case n > 0:
		r.T.Errorf("%s: the server sent %d bytes before closing, want none", what, n)
	}
}

// drain reads until the connection ends and returns how many bytes came,
// or -1 if it was still open after ZKWait.
func (r *ZKRaw) drain(what string) int64 {
	if err := r.Conn.SetReadDeadline(time.Now().Add(ZKWait)); err != nil {
		r.T.Fatalf("%s: %v", what, err)
	}
	n, err := io.Copy(io.Discard, r.br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return -1
	}
	return n
}
