package transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"

	"ensemble/internal/types"

	"go.etcd.io/raft/v3/raftpb"
)

const cluster types.ClusterID = 0xc1

func TestTwoMembersExchangeInOrder(t *testing.T) {
	a := startMember(t, 1, cluster, "127.0.0.1:0", nil)
	b := startMember(t, 2, cluster, "127.0.0.1:0", nil)
	connectAll(t, a, b)

	const n = 2000
	for i := range uint64(n) {
		// Mix batch shapes: single messages and batches of both peers.
		a.tr.Send([]raftpb.Message{app(1, 2, i, []byte(fmt.Sprint(i)))})
		b.tr.Send([]raftpb.Message{app(2, 1, i, nil), {Type: raftpb.MsgHeartbeat, From: 2, To: 1, Term: 3}})
	}
	b.rec.waitFor(t, "a's messages", func() bool { return len(b.rec.msgs) == n })
	a.rec.waitFor(t, "b's messages", func() bool { return len(a.rec.msgs) == 2*n })

	for i, m := range b.rec.from(1) {
		if m.Index != uint64(i) || string(m.Entries[0].Data) != fmt.Sprint(i) || m.To != 2 {
			t.Fatalf("message %d at b: %+v", i, m)
		}
	}
	got := a.rec.from(2)
	for i := 0; i < len(got); i += 2 {
		if got[i].Type != raftpb.MsgApp || got[i].Index != uint64(i/2) || got[i+1].Type != raftpb.MsgHeartbeat {
			t.Fatalf("messages %d,%d at a out of order: %v %v", i, i+1, got[i].Type, got[i+1].Type)
		}
	}
	if n := read(a.rec, func(r *recorder) int { return len(r.unreachable) }) + read(b.rec, func(r *recorder) int { return len(r.unreachable) }); n != 0 {
		t.Fatalf("%d unexpected unreachable reports", n)
	}
}

func TestThreeMembersExchangeInOrder(t *testing.T) {
	ms := []*member{
		startMember(t, 1, cluster, "127.0.0.1:0", nil),
		startMember(t, 2, cluster, "127.0.0.1:0", nil),
		startMember(t, 3, cluster, "127.0.0.1:0", nil),
	}
	connectAll(t, ms...)
	const n = 1000
	done := make(chan struct{})
	for _, m := range ms {
		go func() {
			defer func() { done <- struct{}{} }()
			batch := make([]raftpb.Message, 0, 20)
			for i := range uint64(n) {
				for _, o := range ms {
					if o != m {
						batch = append(batch, app(uint64(m.id), uint64(o.id), i, []byte("x")))
					}
				}
				if len(batch) == cap(batch) || i == n-1 {
					m.tr.Send(batch)
					batch = batch[:0]
				}
			}
		}()
	}
	for range ms {
		<-done
	}
	for _, m := range ms {
		m.rec.waitFor(t, fmt.Sprintf("messages at %s", m.id), func() bool { return len(m.rec.msgs) == 2*n })
		for _, o := range ms {
			if o == m {
				continue
			}
			for i, msg := range m.rec.from(uint64(o.id)) {
				if msg.Index != uint64(i) {
					t.Fatalf("at %s from %s: message %d has index %d", m.id, o.id, i, msg.Index)
				}
			}
		}
	}
}

func TestBigBatchThroughput(t *testing.T) {
	const n = 100_000
	big := func(c *Config) { c.QueueSize = n }
	a := startMember(t, 1, cluster, "127.0.0.1:0", big)
	b := startMember(t, 2, cluster, "127.0.0.1:0", big)
	b.rec.set(func(r *recorder) { r.keepMsgs = false })
	connectAll(t, a, b)

	data := make([]byte, 100)
	batch := make([]raftpb.Message, 0, 500)
	for i := range uint64(n) {
		batch = append(batch, app(1, 2, i, data))
		if len(batch) == cap(batch) {
			a.tr.Send(batch)
			batch = batch[:0]
		}
	}
	b.rec.waitFor(t, "all messages", func() bool { return b.rec.count == n })
	if n := a.rec.unreachableTo(2); n != 0 {
		t.Fatalf("messages dropped (%d reports)", n)
	}
}

func TestRestartedPeerIsReconnected(t *testing.T) {
	a := startMember(t, 1, cluster, "127.0.0.1:0", nil)
	b := startMember(t, 2, cluster, "127.0.0.1:0", nil)
	connectAll(t, a, b)
	a.tr.Send([]raftpb.Message{app(1, 2, 1, nil)})
	b.rec.waitFor(t, "first message", func() bool { return len(b.rec.msgs) == 1 })

	b.tr.Close()
	a.rec.waitFor(t, "disconnect report", func() bool { return a.rec.disconnected[2] >= 1 })
	poll(t, "a to notice b is gone", func() bool { return a.tr.ActivePeers() == 0 })
	a.tr.Send([]raftpb.Message{app(1, 2, 2, nil)})
	a.rec.waitFor(t, "unreachable report", func() bool { return a.rec.unreachable[2] >= 1 })

	b2 := startMember(t, 2, cluster, b.addr, nil)
	b2.tr.AddPeer(1, []string{a.url()})
	poll(t, "a to reconnect", func() bool { return a.tr.ActivePeers() == 1 })
	a.tr.Send([]raftpb.Message{app(1, 2, 3, nil)})
	b2.rec.waitFor(t, "message after restart", func() bool { return len(b2.rec.msgs) == 1 })
	if got := b2.rec.from(1)[0].Index; got != 3 {
		t.Fatalf("got index %d after restart, want 3", got)
	}
	a.rec.waitFor(t, "a disconnect from b's inbound too", func() bool { return a.rec.disconnected[2] >= 2 })
}

func TestClusterMismatchRefused(t *testing.T) {
	a := startMember(t, 1, cluster, "127.0.0.1:0", nil)
	b := startMember(t, 2, cluster+1, "127.0.0.1:0", nil)
	_, err := a.tr.dial(context.Background(), b.addr, kindMessages, 2)
	if !errors.Is(err, ErrClusterMismatch) || !errors.Is(err, ErrRefused) {
		t.Fatalf("dial across clusters: %v, want %v", err, ErrClusterMismatch)
	}
	poll(t, "refusal log", func() bool { return b.logs.contains("refused peer connection") })
	if !b.logs.contains(ErrClusterMismatch.Error()) {
		t.Fatal("refusal log does not say why")
	}

	a.tr.AddPeer(2, []string{b.url()})
	poll(t, "a's dial error log", func() bool { return a.logs.contains("cannot connect to peer") })
	if a.tr.ActivePeers() != 0 {
		t.Fatal("connection across clusters became active")
	}
	a.tr.Send([]raftpb.Message{app(1, 2, 1, nil)})
	a.rec.waitFor(t, "unreachable", func() bool { return a.rec.unreachable[2] == 1 })
	if len(b.rec.from(1)) != 0 {
		t.Fatal("message crossed clusters")
	}
}

func TestWrongReceiverRefused(t *testing.T) {
	a := startMember(t, 1, cluster, "127.0.0.1:0", nil)
	b := startMember(t, 2, cluster, "127.0.0.1:0", nil)
	_, err := a.tr.dial(context.Background(), b.addr, kindMessages, 3)
	if !errors.Is(err, ErrWrongReceiver) {
		t.Fatalf("dial to the wrong member: %v, want %v", err, ErrWrongReceiver)
	}
	// An unknown sender is fine.
	c, err := a.tr.dial(context.Background(), b.addr, kindMessages, 2)
	if err != nil {
		t.Fatalf("unknown sender refused: %v", err)
	}
	c.Close()
}

func TestSnapshotDelivered(t *testing.T) {
	a := startMember(t, 1, cluster, "127.0.0.1:0", nil)
	b := startMember(t, 2, cluster, "127.0.0.1:0", nil)
	connectAll(t, a, b)

	db := make([]byte, 6<<20+123)
	rand.Read(db)
	want := sha256.Sum256(db)
	var got atomic.Value
	receive := func(_ context.Context, m raftpb.Message, r io.Reader, size int64) error {
		h := sha256.New()
		n, err := io.Copy(h, r)
		if err != nil {
			return err
		}
		if n != size || m.Snapshot.Metadata.Index != 42 || string(m.Snapshot.Data) != "members" {
			return fmt.Errorf("got %d bytes of %d, index %d", n, size, m.Snapshot.Metadata.Index)
		}
		got.Store([32]byte(h.Sum(nil)))
		return nil
	}
	b.rec.set(func(rec *recorder) { rec.receive = receive })
	closed := &closeRecorder{Reader: bytes.NewReader(db)}
	m := raftpb.Message{Type: raftpb.MsgSnap, From: 1, To: 2, Term: 3, Snapshot: &raftpb.Snapshot{
		Data:     []byte("members"),
		Metadata: raftpb.SnapshotMetadata{Index: 42, Term: 3, ConfState: raftpb.ConfState{Voters: []uint64{1, 2}}},
	}}
	// Ordinary traffic keeps flowing while the snapshot is in flight.
	a.tr.SendSnapshot(m, closed, int64(len(db)))
	a.tr.Send([]raftpb.Message{{Type: raftpb.MsgHeartbeat, From: 1, To: 2}})
	b.rec.waitFor(t, "heartbeat", func() bool { return len(b.rec.msgs) == 1 })

	a.rec.waitFor(t, "snapshot report", func() bool { return len(a.rec.snapReports) == 1 })
	if r := a.rec.firstSnapReport(); r.id != 2 || r.failed {
		t.Fatalf("snapshot report %+v, want success for 2", r)
	}
	if g, _ := got.Load().([32]byte); g != want {
		t.Fatal("receiver got different database bytes")
	}
	if !closed.closed.Load() {
		t.Fatal("db not closed")
	}
}

type closeRecorder struct {
	io.Reader
	closed atomic.Bool
}

func (c *closeRecorder) Close() error { c.closed.Store(true); return nil }

func TestSnapshotFailureReported(t *testing.T) {
	for _, tc := range []struct {
		name    string
		receive func(context.Context, raftpb.Message, io.Reader, int64) error
		size    int64 // what the sender claims
		dbLen   int
	}{
		{"handler error", func(context.Context, raftpb.Message, io.Reader, int64) error { return errors.New("disk full") }, 1 << 20, 1 << 20},
		{"handler reads too little", func(_ context.Context, _ raftpb.Message, r io.Reader, _ int64) error {
			_, err := io.ReadFull(r, make([]byte, 10))
			return err
		}, 1 << 20, 1 << 20},
		{"db shorter than size", nil, 1 << 20, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := startMember(t, 1, cluster, "127.0.0.1:0", nil)
			b := startMember(t, 2, cluster, "127.0.0.1:0", nil)
			b.rec.set(func(r *recorder) { r.receive = tc.receive })
			connectAll(t, a, b)
			db := &closeRecorder{Reader: bytes.NewReader(make([]byte, tc.dbLen))}
			m := raftpb.Message{Type: raftpb.MsgSnap, From: 1, To: 2, Snapshot: &raftpb.Snapshot{}}
			a.tr.SendSnapshot(m, db, tc.size)
			a.rec.waitFor(t, "snapshot report", func() bool { return len(a.rec.snapReports) == 1 })
			if r := a.rec.firstSnapReport(); r.id != 2 || !r.failed {
				t.Fatalf("snapshot report %+v, want failure for 2", r)
			}
			if !db.closed.Load() {
				t.Fatal("db not closed")
			}
		})
	}
}

func TestSnapshotToUnknownPeerFails(t *testing.T) {
	a := startMember(t, 1, cluster, "127.0.0.1:0", nil)
	db := &closeRecorder{Reader: bytes.NewReader(nil)}
	a.tr.SendSnapshot(raftpb.Message{Type: raftpb.MsgSnap, From: 1, To: 9, Snapshot: &raftpb.Snapshot{}}, db, 0)
	a.rec.waitFor(t, "snapshot report", func() bool { return len(a.rec.snapReports) == 1 })
	if r := a.rec.firstSnapReport(); !r.failed || !db.closed.Load() {
		t.Fatalf("report %+v, closed %v", r, db.closed.Load())
	}
}

// rawDial opens a message stream to m by hand, as peer from.
func rawDial(t *testing.T, m *member, from types.MemberID) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", m.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var hs [handshakeSize]byte
	handshake{kind: kindMessages, cluster: cluster, from: from, to: m.id}.encode(&hs)
	if _, err := c.Write(hs[:]); err != nil {
		t.Fatal(err)
	}
	var status [1]byte
	if _, err := io.ReadFull(c, status[:]); err != nil || status[0] != statusOK {
		t.Fatalf("handshake answer %v, %v", status, err)
	}
	return c
}

func TestOversizedFrameClosesConnection(t *testing.T) {
	b := startMember(t, 2, cluster, "127.0.0.1:0", func(c *Config) { c.MaxFrameSize = 1 << 10 })
	c := rawDial(t, b, 7)

	// One good frame first, then a length over the limit.
	good, err := appendFrame(nil, &raftpb.Message{Type: raftpb.MsgHeartbeat, From: 7, To: 2}, (&raftpb.Message{Type: raftpb.MsgHeartbeat, From: 7, To: 2}).Size())
	if err != nil {
		t.Fatal(err)
	}
	bad := binary.AppendUvarint(nil, 1<<10+1)
	if _, err := c.Write(append(good, bad...)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection still open after an oversized frame")
	}
	b.rec.waitFor(t, "disconnect report", func() bool { return b.rec.disconnected[7] == 1 && len(b.rec.msgs) == 1 })
	if !b.logs.contains(ErrFrameTooLarge.Error()) {
		t.Fatal("no log line names the oversized frame")
	}

	// The member keeps serving others.
	a := startMember(t, 1, cluster, "127.0.0.1:0", nil)
	a.tr.AddPeer(2, []string{b.url()})
	poll(t, "a to connect", func() bool { return a.tr.ActivePeers() == 1 })
	a.tr.Send([]raftpb.Message{app(1, 2, 5, nil)})
	b.rec.waitFor(t, "message from a", func() bool { return len(b.rec.msgs) == 2 })
}

func TestGarbageFrameClosesConnection(t *testing.T) {
	b := startMember(t, 2, cluster, "127.0.0.1:0", nil)
	c := rawDial(t, b, 7)
	// A valid length followed by bytes that are not a raftpb.Message.
	if _, err := c.Write([]byte{3, 0xff, 0xff, 0xff}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("connection still open after a malformed frame")
	}
	b.rec.waitFor(t, "disconnect report", func() bool { return b.rec.disconnected[7] == 1 })
}

func TestBadMagicGetsNoAnswer(t *testing.T) {
	b := startMember(t, 2, cluster, "127.0.0.1:0", nil)
	c, err := net.Dial("tcp", b.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatalf("got %d bytes of answer to an HTTP request", n)
	}
	poll(t, "refusal log", func() bool { return b.logs.contains(ErrBadMagic.Error()) })
}

func TestSendWhileDisconnectedReportsUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	a := startMember(t, 1, cluster, "127.0.0.1:0", nil)
	a.tr.AddPeer(2, []string{"http://" + dead})
	a.tr.Send([]raftpb.Message{app(1, 2, 1, nil), app(1, 2, 2, nil), app(1, 2, 3, nil)})
	a.rec.waitFor(t, "unreachable", func() bool { return a.rec.unreachable[2] == 1 })
	// Messages to members we do not know are dropped without a report.
	a.tr.Send([]raftpb.Message{app(1, 9, 1, nil)})
	if a.rec.unreachableTo(9) != 0 {
		t.Fatal("unknown peer reported unreachable")
	}
}

func TestQueueOverflowReportsUnreachable(t *testing.T) {
	// A peer that accepts the handshake and then never reads.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		var hs [handshakeSize]byte
		io.ReadFull(c, hs[:])
		c.Write([]byte{statusOK})
		<-t.Context().Done()
	}()
	a := startMember(t, 1, cluster, "127.0.0.1:0", func(c *Config) { c.QueueSize = 4 })
	a.tr.AddPeer(2, []string{l.Addr().String()})
	poll(t, "connected", func() bool { return a.tr.ActivePeers() == 1 })
	payload := make([]byte, 64<<10)
	msgs := make([]raftpb.Message, 200)
	for i := range msgs {
		msgs[i] = app(1, 2, uint64(i), payload)
	}
	// The socket buffers fill, then the queue; overflow must not block Send.
	for a.rec.unreachableTo(2) == 0 {
		a.tr.Send(msgs)
	}
}

func TestUpdatePeerMovesConnection(t *testing.T) {
	a := startMember(t, 1, cluster, "127.0.0.1:0", nil)
	b := startMember(t, 2, cluster, "127.0.0.1:0", nil)
	connectAll(t, a, b)
	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go b.tr.Serve(l2)
	b.l.Close()
	a.tr.UpdatePeer(2, []string{"http://" + l2.Addr().String()})
	a.rec.waitFor(t, "old connection dropped", func() bool { return a.rec.disconnected[2] >= 1 })
	poll(t, "reconnect to the new address", func() bool { return a.tr.ActivePeers() == 1 })
	a.tr.Send([]raftpb.Message{app(1, 2, 1, nil)})
	b.rec.waitFor(t, "message at the new address", func() bool { return len(b.rec.msgs) == 1 })
}

func TestRemovePeer(t *testing.T) {
	a := startMember(t, 1, cluster, "127.0.0.1:0", nil)
	b := startMember(t, 2, cluster, "127.0.0.1:0", nil)
	connectAll(t, a, b)
	a.tr.RemovePeer(2)
	if a.tr.ActivePeers() != 0 {
		t.Fatal("removed peer still active")
	}
	a.tr.Send([]raftpb.Message{app(1, 2, 1, nil)})
	if a.rec.unreachableTo(2) != 0 {
		t.Fatal("removed peer reported unreachable")
	}
	// b loses its inbound stream from a, and a, having removed b, no longer
	// reads b's stream either.
	b.rec.waitFor(t, "b sees a's stream drop", func() bool { return b.rec.disconnected[1] >= 1 })
}

func TestLocalAddrIsSourceAddress(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	from := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		from <- c.RemoteAddr().(*net.TCPAddr).IP.String()
		c.Close()
	}()
	a := startMember(t, 1, cluster, "127.0.0.1:0", func(c *Config) { c.LocalAddr = "127.0.0.2:0" })
	a.tr.AddPeer(2, []string{"http://" + l.Addr().String()})
	if got := <-from; got != "127.0.0.2" {
		t.Fatalf("peer connection came from %s, want 127.0.0.2", got)
	}
}

func TestBadLocalAddrFailsDials(t *testing.T) {
	a := startMember(t, 1, cluster, "127.0.0.1:0", func(c *Config) { c.LocalAddr = "not an address" })
	if _, err := a.tr.dial(context.Background(), "127.0.0.1:1", kindMessages, 2); err == nil {
		t.Fatal("dial with an unresolvable local address succeeded")
	}
}

func TestCloseStopsEverything(t *testing.T) {
	base := runtime.NumGoroutine()
	func() {
		ms := []*member{
			startMember(t, 1, cluster, "127.0.0.1:0", nil),
			startMember(t, 2, cluster, "127.0.0.1:0", nil),
			startMember(t, 3, cluster, "127.0.0.1:0", nil),
		}
		connectAll(t, ms...)
		ms[0].tr.Send([]raftpb.Message{app(1, 2, 1, nil), app(1, 3, 1, nil)})
		ms[1].rec.waitFor(t, "message", func() bool { return len(ms[1].rec.msgs) == 1 })

		// A snapshot whose receiver blocks until the transport closes.
		entered := make(chan struct{})
		ms[2].rec.set(func(r *recorder) {
			r.receive = func(ctx context.Context, _ raftpb.Message, _ io.Reader, _ int64) error {
				close(entered)
				<-ctx.Done()
				return ctx.Err()
			}
		})
		db := &closeRecorder{Reader: bytes.NewReader(make([]byte, 1<<20))}
		ms[0].tr.SendSnapshot(raftpb.Message{Type: raftpb.MsgSnap, From: 1, To: 3, Snapshot: &raftpb.Snapshot{}}, db, 1<<20)
		<-entered
		// A peer that is down keeps a dialer in its backoff loop.
		ms[0].tr.AddPeer(4, []string{"127.0.0.1:1"})

		for _, m := range ms {
			if err := m.tr.Close(); err != nil {
				t.Fatal(err)
			}
			if err := <-m.served; !errors.Is(err, ErrClosed) {
				t.Fatalf("Serve returned %v, want %v", err, ErrClosed)
			}
		}
		if !db.closed.Load() {
			t.Fatal("snapshot db not closed by Close")
		}
		if err := ms[0].tr.Close(); err != nil {
			t.Fatal("second Close:", err)
		}
		// Nothing is reported after Close.
		n := read(ms[0].rec, func(r *recorder) int { return len(r.snapReports) })
		ms[0].tr.Send([]raftpb.Message{app(1, 2, 2, nil)})
		ms[0].tr.SendSnapshot(raftpb.Message{Type: raftpb.MsgSnap, To: 2}, &closeRecorder{Reader: bytes.NewReader(nil)}, 0)
		ms[0].tr.AddPeer(5, []string{"127.0.0.1:1"})
		if err := ms[0].tr.Serve(ms[0].l); !errors.Is(err, ErrClosed) {
			t.Fatalf("Serve after Close: %v", err)
		}
		if read(ms[0].rec, func(r *recorder) int { return len(r.snapReports) }) != n || ms[0].rec.unreachableTo(2) != 0 {
			t.Fatal("handler called after Close")
		}
	}()
	checkNoLeaks(t, base)
}

func TestHostPorts(t *testing.T) {
	got := hostPorts([]string{"http://127.0.0.1:2380", "https://[::1]:2380", "10.0.0.1:2380", " http://127.0.0.1:2380 ", ""})
	want := []string{"127.0.0.1:2380", "[::1]:2380", "10.0.0.1:2380"}
	if !slices.Equal(got, want) {
		t.Fatalf("hostPorts = %q, want %q", got, want)
	}
}

func TestFrameRoundTrip(t *testing.T) {
	msgs := []raftpb.Message{
		{Type: raftpb.MsgHeartbeat, From: 1, To: 2},
		app(1, 2, 7, bytes.Repeat([]byte("e"), 100)),
		app(1, 2, 8, make([]byte, 200<<10)), // larger than the write buffer
		{Type: raftpb.MsgVote, From: 3, To: 2, Term: 9, Context: []byte("ctx")},
	}
	var out bytes.Buffer
	fw := frameWriter{bw: bufio.NewWriterSize(&out, 4096)}
	for i := range msgs {
		if err := fw.write(&msgs[i], msgs[i].Size()); err != nil {
			t.Fatal(err)
		}
	}
	if err := fw.bw.Flush(); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(&out)
	var buf []byte
	for i := range msgs {
		var err error
		buf, err = readFrame(br, buf, DefaultMaxFrameSize)
		if err != nil {
			t.Fatal(err)
		}
		var m raftpb.Message
		if err := decodeMessage(buf, &m); err != nil {
			t.Fatal(err)
		}
		want, _ := msgs[i].Marshal()
		got, _ := m.Marshal()
		if !bytes.Equal(want, got) {
			t.Fatalf("message %d changed in transit", i)
		}
	}
	if _, err := readFrame(br, buf, DefaultMaxFrameSize); err != io.EOF {
		t.Fatalf("after the last frame: %v, want EOF", err)
	}
}

func TestSendAllocations(t *testing.T) {
	a := startMember(t, 1, cluster, "127.0.0.1:0", func(c *Config) { c.QueueSize = 1 << 16 })
	b := startMember(t, 2, cluster, "127.0.0.1:0", nil)
	b.rec.set(func(r *recorder) { r.keepMsgs = false })
	connectAll(t, a, b)
	msgs := []raftpb.Message{app(1, 2, 1, []byte("data"))}
	allocs := testing.AllocsPerRun(1000, func() { a.tr.Send(msgs) })
	if allocs > 0 {
		t.Fatalf("Send allocates %.1f times per call", allocs)
	}
}
