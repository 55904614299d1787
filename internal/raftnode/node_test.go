package raftnode

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"ensemble/internal/wal"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

type memLog struct{}

func (memLog) Save(raftpb.HardState, []raftpb.Entry) error         { return nil }
func (memLog) SaveUnsynced(raftpb.HardState, []raftpb.Entry) error { return nil }
func (memLog) SaveSnapshot(wal.Snapshot) error                     { return nil }
func (memLog) ReleaseLockTo(uint64) error                          { return nil }

type memSnaps struct{}

func (memSnaps) Save(raftpb.Snapshot) error { return nil }

type recTransport struct {
	mu   sync.Mutex
	sent []raftpb.Message
}

func (t *recTransport) Send(msgs []raftpb.Message) {
	t.mu.Lock()
	t.sent = append(t.sent, msgs...)
	t.mu.Unlock()
}

// startFollower starts member 1 of voters 1, 2, 3 with a clock that never
// ticks, so that only the messages a test steps change its state, and
// applies what it commits.
func startFollower(t *testing.T) *Node {
	return startFollowerWith(t, memLog{}, nil)
}

// startFollowerWith is startFollower with its own log, and a hook that
// sees every batch to apply before the batch is applied.
func startFollowerWith(t *testing.T, log LogStore, seen func(Apply)) *Node {
	t.Helper()
	n := Start(Config{
		ID: 1, ElectionTicks: 10, HeartbeatTicks: 1, TickInterval: time.Hour,
		Storage: raft.NewMemoryStorage(), Log: log, Snapshots: memSnaps{}, Transport: &recTransport{},
	}, []raft.Peer{{ID: 1}, {ID: 2}, {ID: 3}})
	stop := make(chan struct{})
	applied := make(chan struct{})
	go func() {
		defer close(applied)
		for {
			select {
			case ap := <-n.ApplyC():
				if seen != nil {
					seen(ap)
				}
				<-ap.Persisted
				for _, e := range ap.Entries {
					if e.Type == raftpb.EntryConfChange {
						var cc raftpb.ConfChange
						if err := cc.Unmarshal(e.Data); err == nil {
							n.ApplyConfChange(cc)
						}
					}
				}
				close(ap.Done)
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-applied
		n.Stop()
	})
	return n
}

// waitLeader waits until n names lead as its leader.
func waitLeader(t *testing.T, n *Node, lead uint64) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		changed := n.LeaderChanged()
		if n.Leader() == lead {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("leader is %x, want %x", n.Leader(), lead)
		}
	}
}

func heartbeat(from, term uint64) raftpb.Message {
	return raftpb.Message{Type: raftpb.MsgHeartbeat, From: from, To: 1, Term: term}
}

func proposal(from uint64) raftpb.Message {
	return raftpb.Message{Type: raftpb.MsgProp, From: from, To: 1, Entries: []raftpb.Entry{{Data: []byte("x")}}}
}

func TestForwardedProposalWithoutLeaderIsDropped(t *testing.T) {
	n := startFollower(t)
	done := make(chan error, 1)
	go func() { done <- n.Step(context.Background(), proposal(2)) }()
	select {
	case err := <-done:
		if !errors.Is(err, raft.ErrProposalDropped) {
			t.Fatalf("Step(MsgProp) without a leader = %v, want raft.ErrProposalDropped", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Step(MsgProp) without a leader blocked")
	}
}

// TestForwardedProposalDoesNotHoldBackLeader is the liveness failure of
// long runs: a leader paused with proposals forwarded to it queued on a
// peer's stream steps down on resuming; the transport steps that stream's
// messages one by one, so a proposal stepped after the step-down must not
// block the heartbeats behind it that name the new leader.
func TestForwardedProposalDoesNotHoldBackLeader(t *testing.T) {
	n := startFollower(t)
	if err := n.Step(context.Background(), heartbeat(2, 1)); err != nil {
		t.Fatal(err)
	}
	waitLeader(t, n, 2)
	// A proposal while the leader is known goes through to it.
	if err := n.Step(context.Background(), proposal(3)); err != nil {
		t.Fatalf("Step(MsgProp) with a leader: %v", err)
	}
	for round := range 20 {
		// The member loses its leader; the next messages on a peer's
		// stream are a proposal and then the new leader's heartbeat.
		// Stepping them right after the loss races raft's state against
		// the loop's view of it, both ways across the rounds.
		if err := n.ForgetLeader(context.Background()); err != nil {
			t.Fatal(err)
		}
		reader := make(chan error, 1)
		go func() {
			if err := n.Step(context.Background(), proposal(3)); err != nil && !errors.Is(err, raft.ErrProposalDropped) {
				reader <- err
				return
			}
			reader <- n.Step(context.Background(), heartbeat(2, 1))
		}()
		select {
		case err := <-reader:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("round %d: a forwarded proposal stepped without a leader blocked the stream", round)
		}
		waitLeader(t, n, 2)
	}
}

// gateLog is a log whose saves of entries wait, once armed, until released.
type gateLog struct {
	memLog
	armed   chan struct{} // closed to arm
	release chan struct{} // closed to let saves finish
	saved   chan uint64   // the last index of every save of entries
}

func (g *gateLog) Save(hs raftpb.HardState, ents []raftpb.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	select {
	case <-g.armed:
		<-g.release
	default:
	}
	g.saved <- ents[len(ents)-1].Index
	return nil
}

// TestReplacedEntriesAreAppliedOnlyOnceSaved: a follower has saved
// entries up to 10 of an old term; a new leader replaces them from 8 on
// with a shorter suffix, already committed. The entries to apply end below
// the follower's old last index, but they are not the entries on its disk:
// applying them before the new ones are saved would leave the store ahead
// of the log after a power failure.
func TestReplacedEntriesAreAppliedOnlyOnceSaved(t *testing.T) {
	g := &gateLog{armed: make(chan struct{}), release: make(chan struct{}), saved: make(chan uint64, 64)}
	early := make(chan uint64, 16) // indexes handed over before they were saved
	var once sync.Once
	n := startFollowerWith(t, g, func(ap Apply) {
		var first uint64
		for _, e := range ap.Entries {
			if e.Term == 2 && first == 0 {
				first = e.Index
			}
		}
		if first == 0 {
			return // not yet the batch under test
		}
		select {
		case <-ap.Persisted:
			early <- first
		default:
		}
		once.Do(func() { close(g.release) })
	})
	// The first three entries are the membership StartNode wrote.
	old := raftpb.Message{Type: raftpb.MsgApp, From: 2, To: 1, Term: 1, Index: 3, LogTerm: 1, Commit: 3}
	for i := uint64(4); i <= 10; i++ {
		old.Entries = append(old.Entries, raftpb.Entry{Index: i, Term: 1, Data: []byte("old")})
	}
	if err := n.Step(context.Background(), old); err != nil {
		t.Fatal(err)
	}
	waitLeader(t, n, 2)
	for last := uint64(0); last < 10; {
		select {
		case last = <-g.saved:
		case <-time.After(10 * time.Second):
			t.Fatal("the old entries were never saved")
		}
	}
	close(g.armed)
	repl := raftpb.Message{Type: raftpb.MsgApp, From: 3, To: 1, Term: 2, Index: 7, LogTerm: 1, Commit: 9,
		Entries: []raftpb.Entry{{Index: 8, Term: 2, Data: []byte("new")}, {Index: 9, Term: 2, Data: []byte("new")}}}
	if err := n.Step(context.Background(), repl); err != nil {
		t.Fatal(err)
	}
	waitLeader(t, n, 3)
	select {
	case <-g.release:
	case <-time.After(10 * time.Second):
		t.Fatal("the replacing entries were never handed over to apply")
	}
	select {
	case i := <-early:
		t.Fatalf("entry %d of the new term was released to apply before it was saved", i)
	default:
	}
}

// chanTransport hands every message sent to a channel.
type chanTransport struct{ c chan raftpb.Message }

func (t chanTransport) Send(msgs []raftpb.Message) {
	for _, m := range msgs {
		t.c <- m
	}
}

// next returns the next message of type typ sent to to.
func (t chanTransport) next(tb testing.TB, typ raftpb.MessageType, to uint64) raftpb.Message {
	tb.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-t.c:
			if m.Type == typ && m.To == to {
				return m
			}
		case <-deadline:
			tb.Fatalf("no %v to %x was sent", typ, to)
		}
	}
}

// TestReadIndexRetryIsNotConfirmedByAStaleAck is the stale read of a long
// run (all-3): a leader paused and deposed answered, on resuming, a
// linearizable read with its old commit index. A read retried with the
// context of an earlier, already answered attempt was queued again behind
// newer reads; a follower's acknowledgement of the earlier attempt's
// heartbeat, delayed by the pause, then counted for the retry, and raft
// released every read queued before it, unconfirmed.
func TestReadIndexRetryIsNotConfirmedByAStaleAck(t *testing.T) {
	tr := chanTransport{c: make(chan raftpb.Message, 1024)}
	n := Start(Config{
		ID: 1, ElectionTicks: 10, HeartbeatTicks: 1, TickInterval: time.Hour,
		Storage: raft.NewMemoryStorage(), Log: memLog{}, Snapshots: memSnaps{}, Transport: tr,
	}, []raft.Peer{{ID: 1}, {ID: 2}, {ID: 3}})
	applied := make(chan raftpb.Entry, 64)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case ap := <-n.ApplyC():
				<-ap.Persisted
				for _, e := range ap.Entries {
					if e.Type == raftpb.EntryConfChange {
						var cc raftpb.ConfChange
						if cc.Unmarshal(e.Data) == nil {
							n.ApplyConfChange(cc)
						}
					}
					applied <- e
				}
				close(ap.Done)
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done; n.Stop() })
	ctx := context.Background()
	step := func(m raftpb.Message) {
		t.Helper()
		if err := n.Step(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	// Member 1 wins an election with member 2's votes. raft refuses to
	// campaign until the initial membership is applied, which the loop
	// reports to raft a moment after handing it over: ask until it does.
	var pv raftpb.Message
	for pv.Type != raftpb.MsgPreVote {
		if err := n.Campaign(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-tr.c:
			pv = m
		case <-time.After(100 * time.Millisecond):
		}
	}
	step(raftpb.Message{Type: raftpb.MsgPreVoteResp, From: 2, To: 1, Term: pv.Term})
	v := tr.next(t, raftpb.MsgVote, 2)
	step(raftpb.Message{Type: raftpb.MsgVoteResp, From: 2, To: 1, Term: v.Term})
	waitLeader(t, n, 1)
	term := v.Term
	// commit has member 2 acknowledge the leader's log up to index and
	// waits until that entry is applied.
	commit := func(index uint64) {
		t.Helper()
		step(raftpb.Message{Type: raftpb.MsgAppResp, From: 2, To: 1, Term: term, Index: index})
		deadline := time.After(10 * time.Second)
		for {
			select {
			case e := <-applied:
				if e.Index >= index {
					return
				}
			case <-deadline:
				t.Fatalf("entry %d never applied", index)
			}
		}
	}
	app := tr.next(t, raftpb.MsgApp, 2) // the new leader's empty entry
	commit(app.Index + uint64(len(app.Entries)))

	readState := func() raft.ReadState {
		t.Helper()
		select {
		case rs := <-n.ReadStates():
			return rs
		case <-time.After(10 * time.Second):
			t.Fatal("no read state")
		}
		return raft.ReadState{}
	}
	// A read, confirmed by member 2's acknowledgement of its heartbeat.
	if err := n.ReadIndex(ctx, []byte("A")); err != nil {
		t.Fatal(err)
	}
	hbA := tr.next(t, raftpb.MsgHeartbeat, 3)
	step(raftpb.Message{Type: raftpb.MsgHeartbeatResp, From: 2, To: 1, Term: term, Context: hbA.Context})
	if rs := readState(); string(rs.RequestCtx) != "A" {
		t.Fatalf("read state for %q, want A", rs.RequestCtx)
	}
	// A newer read, then a retry of the first with the same context.
	if err := n.ReadIndex(ctx, []byte("B")); err != nil {
		t.Fatal(err)
	}
	tr.next(t, raftpb.MsgHeartbeat, 3)
	if err := n.ReadIndex(ctx, []byte("A")); err != nil {
		t.Fatal(err)
	}
	hbRetry := tr.next(t, raftpb.MsgHeartbeat, 3)
	// Member 3's acknowledgement of the first heartbeat arrives late. It
	// says nothing about leadership after B was asked.
	step(raftpb.Message{Type: raftpb.MsgHeartbeatResp, From: 3, To: 1, Term: term, Context: hbA.Context})
	// Everything the step above made raft emit is out once a later entry
	// is applied: the loop hands over read states before committed entries.
	if err := n.Propose(ctx, []byte("sync")); err != nil {
		t.Fatal(err)
	}
	p := tr.next(t, raftpb.MsgApp, 2)
	for len(p.Entries) == 0 {
		p = tr.next(t, raftpb.MsgApp, 2)
	}
	commit(p.Entries[len(p.Entries)-1].Index)
	select {
	case rs := <-n.ReadStates():
		t.Fatalf("read %q was confirmed by an acknowledgement older than it", rs.RequestCtx)
	default:
	}
	// An acknowledgement of the retry's own heartbeat confirms both.
	step(raftpb.Message{Type: raftpb.MsgHeartbeatResp, From: 3, To: 1, Term: term, Context: hbRetry.Context})
	for _, want := range []string{"B", "A"} {
		if rs := readState(); string(rs.RequestCtx) != want {
			t.Fatalf("read state for %q, want %s", rs.RequestCtx, want)
		}
	}
}
