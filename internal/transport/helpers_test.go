package transport

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"ensemble/internal/types"

	"go.etcd.io/raft/v3/raftpb"
)

const waitLimit = 15 * time.Second

// recorder is a Handler that remembers everything and lets tests wait for a
// condition on what it has seen.
type recorder struct {
	mu           sync.Mutex
	changed      chan struct{}
	msgs         []raftpb.Message
	unreachable  map[uint64]int
	snapReports  []snapReport
	disconnected map[uint64]int
	// receive, when set, handles snapshots; the default reads db fully.
	receive func(ctx context.Context, m raftpb.Message, db io.Reader, size int64) error
	// keepMsgs false only counts messages (for throughput runs).
	keepMsgs bool
	count    int
}

type snapReport struct {
	id     uint64
	failed bool
}

func newRecorder() *recorder {
	return &recorder{
		changed:      make(chan struct{}, 1),
		unreachable:  make(map[uint64]int),
		disconnected: make(map[uint64]int),
		keepMsgs:     true,
	}
}

func (r *recorder) notify() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

func (r *recorder) Process(_ context.Context, m raftpb.Message) error {
	r.mu.Lock()
	r.count++
	if r.keepMsgs {
		r.msgs = append(r.msgs, m)
	}
	r.mu.Unlock()
	r.notify()
	return nil
}

func (r *recorder) ReceiveSnapshot(ctx context.Context, m raftpb.Message, db io.Reader, size int64) error {
	r.mu.Lock()
	receive := r.receive
	r.mu.Unlock()
	var err error
	if receive != nil {
		err = receive(ctx, m, db, size)
	} else {
		_, err = io.Copy(io.Discard, db)
	}
	r.notify()
	return err
}

func (r *recorder) ReportUnreachable(id uint64) {
	r.mu.Lock()
	r.unreachable[id]++
	r.mu.Unlock()
	r.notify()
}

func (r *recorder) ReportSnapshot(id uint64, failed bool) {
	r.mu.Lock()
	r.snapReports = append(r.snapReports, snapReport{id, failed})
	r.mu.Unlock()
	r.notify()
}

func (r *recorder) PeerDisconnected(id uint64) {
	r.mu.Lock()
	r.disconnected[id]++
	r.mu.Unlock()
	r.notify()
}

// waitFor blocks until cond (called with r.mu held) is true.
func (r *recorder) waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ok := cond()
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.changed:
		case <-deadline.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// set changes the recorder's behaviour under its lock, since the transport's
// goroutines may already be reading it.
func (r *recorder) set(f func(r *recorder)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r)
}

// read returns f's result computed under the recorder's lock.
func read[T any](r *recorder, f func(r *recorder) T) T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return f(r)
}

func (r *recorder) unreachableTo(id uint64) int {
	return read(r, func(r *recorder) int { return r.unreachable[id] })
}

func (r *recorder) firstSnapReport() snapReport {
	return read(r, func(r *recorder) snapReport { return r.snapReports[0] })
}

func (r *recorder) from(id uint64) []raftpb.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []raftpb.Message
	for _, m := range r.msgs {
		if m.From == id {
			out = append(out, m)
		}
	}
	return out
}

// poll waits for a condition that has no notification of its own (such as
// ActivePeers), checking it often; it is bounded, not a fixed sleep.
func poll(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// logBuffer collects log output for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Contains(l.b.String(), s)
}

type member struct {
	id   types.MemberID
	tr   *Transport
	rec  *recorder
	addr string
	l    net.Listener
	logs *logBuffer
	// served is closed when Serve returns.
	served chan error
}

func (m *member) url() string { return "http://" + m.addr }

// startMember starts a transport listening on addr ("127.0.0.1:0" for any
// free port). tweak may adjust the config.
func startMember(t testing.TB, id types.MemberID, cluster types.ClusterID, addr string, tweak func(*Config)) *member {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	m := &member{id: id, rec: newRecorder(), l: l, addr: l.Addr().String(), logs: &logBuffer{}, served: make(chan error, 1)}
	cfg := Config{
		LocalID:    id,
		ClusterID:  cluster,
		Handler:    m.rec,
		Logger:     slog.New(slog.NewTextHandler(m.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		MinBackoff: time.Millisecond,
		MaxBackoff: 20 * time.Millisecond,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	m.tr = New(cfg)
	go func() { m.served <- m.tr.Serve(l) }()
	t.Cleanup(func() { m.tr.Close() })
	return m
}

// connectAll makes every member a peer of every other and waits until all
// outbound connections are up.
func connectAll(t testing.TB, ms ...*member) {
	t.Helper()
	for _, a := range ms {
		for _, b := range ms {
			if a != b {
				a.tr.AddPeer(b.id, []string{b.url()})
			}
		}
	}
	for _, a := range ms {
		poll(t, fmt.Sprintf("member %s to connect", a.id), func() bool { return a.tr.ActivePeers() == len(ms)-1 })
	}
}

func app(from, to, index uint64, data []byte) raftpb.Message {
	return raftpb.Message{
		Type: raftpb.MsgApp, From: from, To: to, Term: 3, Index: index, LogTerm: 3, Commit: index,
		Entries: []raftpb.Entry{{Term: 3, Index: index + 1, Data: data}},
	}
}

// checkNoLeaks waits for the goroutine count to fall back to base and dumps
// the stacks if it does not.
func checkNoLeaks(t testing.TB, base int) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	// A goroutine that has returned may still be counted for a moment.
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("%d goroutines left, want at most %d:\n%s", runtime.NumGoroutine(), base, buf[:n])
		}
		<-tick.C
	}
}
