// Package raftnode drives etcd raft's Ready loop: it persists entries to the WAL,
// sends messages through a Transport, and hands committed entries to the state
// machine in order. It knows nothing of mvcc, leases or gRPC.
//
// The loop follows the rules of go.etcd.io/raft: hard state, entries and
// snapshots are made durable before a follower sends anything that depends on
// them; the leader sends its appends to followers in parallel with its own
// fsync (raft thesis §10.2.1), so the commit latency is one fsync, not two.
package raftnode

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"ensemble/internal/wal"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Transport carries raft messages to the other members. It is declared here,
// where it is consumed, and implemented by internal/transport.
type Transport interface {
	// Send queues messages for delivery; it never blocks on the network.
	Send(msgs []raftpb.Message)
}

// LogStore is the durable log: the WAL.
type LogStore interface {
	Save(hs raftpb.HardState, ents []raftpb.Entry) error
	SaveUnsynced(hs raftpb.HardState, ents []raftpb.Entry) error
	SaveSnapshot(s wal.Snapshot) error
	ReleaseLockTo(index uint64) error
}

// SnapshotStore keeps raft snapshot files.
type SnapshotStore interface {
	Save(snap raftpb.Snapshot) error
}

// Config configures a Node.
type Config struct {
	ID             uint64
	ElectionTicks  int
	HeartbeatTicks int
	TickInterval   time.Duration
	// Applied is the last index the state machine has durably applied; raft
	// will not hand out committed entries at or below it again.
	Applied   uint64
	Storage   *raft.MemoryStorage
	Log       LogStore
	Snapshots SnapshotStore
	Transport Transport
	Logger    *slog.Logger
}

// Apply is one batch of work for the state machine, handed over in log order.
type Apply struct {
	Entries []raftpb.Entry
	// Snapshot, when not empty, replaces the state machine; it may only be
	// installed once Persisted is closed.
	Snapshot  raftpb.Snapshot
	Persisted <-chan struct{}
	// Done must be closed by the state machine once the batch is applied. The
	// loop waits for it only when the batch changes the membership.
	Done chan struct{}
}

// Node is a running raft member.
type Node struct {
	cfg  Config
	lg   *slog.Logger
	raft raft.Node

	applyc    chan Apply
	readStatc chan raft.ReadState
	snapMsgc  chan raftpb.Message

	lead atomic.Uint64
	term atomic.Uint64
	// readSeq tells the attempts of ReadIndex apart; it starts from the
	// clock so that a restarted member does not repeat its predecessor's.
	readSeq atomic.Uint64

	leaderMu      sync.Mutex
	leaderChanged chan struct{} // closed and replaced whenever the leader changes
	// leaderCtx is cancelled, and replaced, whenever the leader changes and
	// when the loop stops: forwarded proposals wait on raft no longer than
	// the leader they were stepped under.
	leaderCtx    context.Context
	leaderCancel context.CancelFunc

	logMu sync.Mutex // serializes WAL writes from the Ready loop and from snapshots

	// persistedIndex is the last log index on disk; owned by the Ready loop.
	persistedIndex uint64

	stopc chan struct{}
	donec chan struct{}
	errMu sync.Mutex
	err   error
}

// Start boots a brand-new member of a new cluster whose voters are peers.
func Start(cfg Config, peers []raft.Peer) *Node {
	return newNode(cfg, func(rc *raft.Config) raft.Node { return raft.StartNode(rc, peers) })
}

// Restart resumes a member from the storage it already has.
func Restart(cfg Config) *Node {
	return newNode(cfg, raft.RestartNode)
}

func newNode(cfg Config, start func(*raft.Config) raft.Node) *Node {
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	rc := &raft.Config{
		ID:              cfg.ID,
		ElectionTick:    cfg.ElectionTicks,
		HeartbeatTick:   cfg.HeartbeatTicks,
		Storage:         cfg.Storage,
		Applied:         cfg.Applied,
		MaxSizePerMsg:   1 << 20,
		MaxInflightMsgs: 4096 / 8,
		// Bound the memory that uncommitted proposals can hold when followers lag.
		MaxUncommittedEntriesSize: 1 << 30,
		CheckQuorum:               true,
		PreVote:                   true,
		Logger:                    newRaftLogger(lg),
	}
	n := &Node{
		cfg:           cfg,
		lg:            lg,
		applyc:        make(chan Apply, 128),
		readStatc:     make(chan raft.ReadState, 64),
		snapMsgc:      make(chan raftpb.Message, 4),
		leaderChanged: make(chan struct{}),
		stopc:         make(chan struct{}),
		donec:         make(chan struct{}),
	}
	n.leaderCtx, n.leaderCancel = context.WithCancel(context.Background())
	n.readSeq.Store(uint64(time.Now().UnixNano()))
	// What storage holds at start came from disk, and so does the term: raft
	// reports a hard state only when it changes.
	n.persistedIndex, _ = cfg.Storage.LastIndex()
	if hs, _, err := cfg.Storage.InitialState(); err == nil {
		n.term.Store(hs.Term)
	}
	n.raft = start(rc)
	go n.run()
	return n
}

// ApplyC delivers committed work in log order.
func (n *Node) ApplyC() <-chan Apply { return n.applyc }

// ReadStates delivers the answers to ReadIndex requests.
func (n *Node) ReadStates() <-chan raft.ReadState { return n.readStatc }

// SnapshotMessages delivers MsgSnap messages: the state machine must attach
// its database and send them itself, because only it can take a copy of the
// database that matches the index it has applied.
func (n *Node) SnapshotMessages() <-chan raftpb.Message { return n.snapMsgc }

// Done is closed when the loop has stopped, by Stop or by a fatal error.
func (n *Node) Done() <-chan struct{} { return n.donec }

// Err is the fatal error that stopped the loop, if any.
func (n *Node) Err() error {
	n.errMu.Lock()
	defer n.errMu.Unlock()
	return n.err
}

// Leader is the id of the current leader, or 0 when there is none.
func (n *Node) Leader() uint64 { return n.lead.Load() }

// Term is the current raft term as last seen by the loop.
func (n *Node) Term() uint64 { return n.term.Load() }

// IsLeader reports whether this member leads.
func (n *Node) IsLeader() bool { return n.lead.Load() == n.cfg.ID }

// LeaderChanged returns a channel that is closed at the next leader change.
func (n *Node) LeaderChanged() <-chan struct{} {
	n.leaderMu.Lock()
	defer n.leaderMu.Unlock()
	return n.leaderChanged
}

// Propose hands data to raft for replication.
func (n *Node) Propose(ctx context.Context, data []byte) error { return n.raft.Propose(ctx, data) }

// ProposeConfChange proposes a membership change.
func (n *Node) ProposeConfChange(ctx context.Context, cc raftpb.ConfChangeI) error {
	return n.raft.ProposeConfChange(ctx, cc)
}

// ReadIndex asks the leader for the commit index that a linearizable read
// identified by rctx must wait for; the answer arrives on ReadStates, with
// rctx as its RequestCtx.
//
// Every call, a retry with the same rctx too, reaches raft under a context
// of its own (rctx and a sequence number). raft confirms a read when a
// quorum acknowledges a heartbeat that carried the read's context, and then
// releases every read queued before it; were a retry to reuse the context
// of an attempt already answered, a late acknowledgement of that attempt's
// heartbeat (from before a pause, say) would confirm the retry and, with it,
// newer reads that no quorum had confirmed: a stale read from a deposed
// leader.
func (n *Node) ReadIndex(ctx context.Context, rctx []byte) error {
	c := make([]byte, len(rctx)+readSeqSize)
	copy(c, rctx)
	binary.BigEndian.PutUint64(c[len(rctx):], n.readSeq.Add(1))
	return n.raft.ReadIndex(ctx, c)
}

// readSeqSize is the length of the sequence number ReadIndex appends.
const readSeqSize = 8

// Step hands a message from a peer to raft.
//
// raft.Node blocks a proposal while it knows no leader, and the transport
// steps each peer's messages in order on one goroutine: a proposal forwarded
// to a leader that has since stepped down would hold back, for good, the
// heartbeats behind it that name the new leader (a leader paused with
// proposals queued to it, then resumed, campaigned in vain until stopped).
// So a forwarded proposal is dropped with raft.ErrProposalDropped, as raft
// drops one that reaches a member without a leader, when no leader is
// known, and waits no longer than the leader it was stepped under. Its
// proposer retries.
func (n *Node) Step(ctx context.Context, m raftpb.Message) error {
	if m.Type != raftpb.MsgProp {
		return n.raft.Step(ctx, m)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	n.leaderMu.Lock()
	lctx := n.leaderCtx
	n.leaderMu.Unlock()
	if n.lead.Load() == 0 {
		return raft.ErrProposalDropped
	}
	if err := n.raft.Step(lctx, m); err != nil {
		if lctx.Err() != nil {
			return raft.ErrProposalDropped
		}
		return err
	}
	return nil
}

// ApplyConfChange tells raft that a committed membership change was applied.
func (n *Node) ApplyConfChange(cc raftpb.ConfChangeI) *raftpb.ConfState {
	return n.raft.ApplyConfChange(cc)
}

// Status is raft's view of the member.
func (n *Node) Status() raft.Status { return n.raft.Status() }

// ReportUnreachable tells raft that a peer could not be reached.
func (n *Node) ReportUnreachable(id uint64) { n.raft.ReportUnreachable(id) }

// ReportSnapshot tells raft how sending a snapshot to id ended.
func (n *Node) ReportSnapshot(id uint64, failed bool) {
	st := raft.SnapshotFinish
	if failed {
		st = raft.SnapshotFailure
	}
	n.raft.ReportSnapshot(id, st)
}

// ForgetLeader makes a follower drop its leader at once, so that it can grant
// votes without waiting out the election timeout after the leader is gone.
func (n *Node) ForgetLeader(ctx context.Context) error { return n.raft.ForgetLeader(ctx) }

// Campaign starts an election (a pre-vote first, since PreVote is on).
func (n *Node) Campaign(ctx context.Context) error { return n.raft.Campaign(ctx) }

// TransferLeadership asks the leader to hand over to transferee and waits
// until leadership moved or ctx ends.
func (n *Node) TransferLeadership(ctx context.Context, transferee uint64) error {
	n.raft.TransferLeadership(ctx, n.cfg.ID, transferee)
	for {
		changed := n.LeaderChanged()
		if lead := n.Leader(); lead != n.cfg.ID && lead != 0 {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-n.donec:
			return errors.New("raftnode: stopped")
		}
	}
}

// CreateSnapshot records a snapshot of the state machine at index (which the
// caller has made durable in its own store) and releases the log before
// compactTo. Data is small metadata; the state itself lives in the backend.
func (n *Node) CreateSnapshot(index uint64, cs *raftpb.ConfState, data []byte, compactTo uint64) error {
	snap, err := n.cfg.Storage.CreateSnapshot(index, cs, data)
	if err != nil {
		if errors.Is(err, raft.ErrSnapOutOfDate) {
			return nil
		}
		return err
	}
	n.logMu.Lock()
	defer n.logMu.Unlock()
	if err := n.cfg.Snapshots.Save(snap); err != nil {
		return fmt.Errorf("raftnode: save snapshot: %w", err)
	}
	if err := n.cfg.Log.SaveSnapshot(wal.Snapshot{Index: snap.Metadata.Index, Term: snap.Metadata.Term}); err != nil {
		return fmt.Errorf("raftnode: save snapshot marker: %w", err)
	}
	if compactTo > 0 {
		if err := n.cfg.Storage.Compact(compactTo); err != nil && !errors.Is(err, raft.ErrCompacted) {
			return err
		}
		if err := n.cfg.Log.ReleaseLockTo(compactTo); err != nil {
			return fmt.Errorf("raftnode: release wal: %w", err)
		}
	}
	return nil
}

// Stop ends the loop and raft.
func (n *Node) Stop() {
	select {
	case <-n.stopc:
	default:
		close(n.stopc)
	}
	<-n.donec
}

func (n *Node) fail(err error) {
	n.errMu.Lock()
	if n.err == nil {
		n.err = err
	}
	n.errMu.Unlock()
	n.lg.Error("raft loop stopped", "err", err)
}

func (n *Node) setLeader(lead, term uint64) {
	n.term.Store(term)
	if n.lead.Swap(lead) == lead {
		return
	}
	n.leaderMu.Lock()
	close(n.leaderChanged)
	n.leaderChanged = make(chan struct{})
	n.leaderCancel()
	n.leaderCtx, n.leaderCancel = context.WithCancel(context.Background())
	n.leaderMu.Unlock()
	n.lg.Info("leader changed", "leader", fmt.Sprintf("%x", lead), "term", term)
}

func (n *Node) run() {
	defer close(n.donec)
	defer n.raft.Stop()
	defer func() {
		n.leaderMu.Lock()
		n.leaderCancel()
		n.leaderMu.Unlock()
	}()
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	term := n.term.Load()
	for {
		select {
		case <-ticker.C:
			n.raft.Tick()
		case rd := <-n.raft.Ready():
			if rd.HardState.Term != 0 {
				term = rd.HardState.Term
			}
			if rd.SoftState != nil {
				n.setLeader(rd.SoftState.Lead, term)
			} else if term != n.term.Load() {
				n.term.Store(term)
			}
			if err := n.handleReady(rd); err != nil {
				return
			}
			n.raft.Advance()
		case <-n.stopc:
			return
		}
	}
}

func (n *Node) handleReady(rd raft.Ready) error {
	for _, rs := range rd.ReadStates {
		if len(rs.RequestCtx) >= readSeqSize {
			rs.RequestCtx = rs.RequestCtx[:len(rs.RequestCtx)-readSeqSize]
		}
		select {
		case n.readStatc <- rs:
		case <-n.stopc:
			return nil
		}
	}
	persisted := make(chan struct{})
	ap := Apply{Entries: rd.CommittedEntries, Snapshot: rd.Snapshot, Persisted: persisted, Done: make(chan struct{})}
	hasWork := len(ap.Entries) > 0 || !raft.IsEmptySnap(rd.Snapshot)
	// The log on disk holds the right entries up to durable: those this
	// Ready saves replace everything from their first index on, even
	// entries saved before (a follower's uncommitted suffix overwritten by
	// a new leader's shorter one).
	durable := n.persistedIndex
	if len(rd.Entries) > 0 {
		durable = min(durable, rd.Entries[0].Index-1)
	}
	if raft.IsEmptySnap(rd.Snapshot) && (len(ap.Entries) == 0 || ap.Entries[len(ap.Entries)-1].Index <= durable) {
		// Everything to apply is on disk already (the usual case: raft counts
		// the leader's own entries only once they are persisted, and a
		// follower mostly learns that an entry is committed after it saved
		// it), so the state machine need not wait for this Ready's fsync.
		ap.Persisted = closedChan
	}
	if hasWork {
		select {
		case n.applyc <- ap:
		case <-n.stopc:
			return nil
		}
	}
	leader := n.IsLeader()
	msgs := rd.Messages
	if leader {
		// The leader's appends go out while it writes its own log.
		n.send(msgs)
	} else {
		// A follower's forwarded proposals and read-index requests claim
		// nothing about its own log, so they need not wait for its fsync;
		// everything else (append and vote responses) must.
		msgs = n.sendUndurable(msgs)
	}
	n.logMu.Lock()
	err := n.persist(rd)
	n.logMu.Unlock()
	if err != nil {
		// Record the failure before releasing the state machine, which checks
		// Err once Persisted is closed and must not apply what was not saved.
		n.fail(err)
		close(persisted)
		return err
	}
	close(persisted)
	if len(rd.Entries) > 0 {
		n.persistedIndex = rd.Entries[len(rd.Entries)-1].Index
	} else if !raft.IsEmptySnap(rd.Snapshot) {
		n.persistedIndex = max(n.persistedIndex, rd.Snapshot.Metadata.Index)
	}
	if !leader {
		if hasWork && hasConfChange(rd.CommittedEntries) {
			// A follower that sends before the membership change is applied
			// could address a member that no longer exists.
			if !n.wait(ap.Done) {
				return nil
			}
		}
		n.send(msgs)
	}
	return nil
}

// closedChan is a Persisted channel for work that needs no wait.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// sendUndurable sends the messages that do not depend on this member's
// durable state and returns the others, in order.
func (n *Node) sendUndurable(msgs []raftpb.Message) []raftpb.Message {
	var now []raftpb.Message
	later := msgs[:0:0]
	for _, m := range msgs {
		if m.Type == raftpb.MsgProp || m.Type == raftpb.MsgReadIndex {
			now = append(now, m)
		} else {
			later = append(later, m)
		}
	}
	if len(now) > 0 {
		n.send(now)
	}
	return later
}

func (n *Node) persist(rd raft.Ready) error {
	if !raft.IsEmptySnap(rd.Snapshot) {
		if err := n.cfg.Snapshots.Save(rd.Snapshot); err != nil {
			return fmt.Errorf("raftnode: save received snapshot: %w", err)
		}
		if err := n.cfg.Log.SaveSnapshot(wal.Snapshot{Index: rd.Snapshot.Metadata.Index, Term: rd.Snapshot.Metadata.Term}); err != nil {
			return fmt.Errorf("raftnode: save snapshot marker: %w", err)
		}
	}
	save := n.cfg.Log.Save
	if !rd.MustSync {
		save = n.cfg.Log.SaveUnsynced
	}
	if err := save(rd.HardState, rd.Entries); err != nil {
		return fmt.Errorf("raftnode: save to wal: %w", err)
	}
	if !raft.IsEmptySnap(rd.Snapshot) {
		if err := n.cfg.Storage.ApplySnapshot(rd.Snapshot); err != nil && !errors.Is(err, raft.ErrSnapOutOfDate) {
			return fmt.Errorf("raftnode: apply snapshot to storage: %w", err)
		}
	}
	if !raft.IsEmptyHardState(rd.HardState) {
		if err := n.cfg.Storage.SetHardState(rd.HardState); err != nil {
			return err
		}
	}
	if err := n.cfg.Storage.Append(rd.Entries); err != nil {
		return fmt.Errorf("raftnode: append to storage: %w", err)
	}
	return nil
}

func (n *Node) wait(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	case <-n.stopc:
		return false
	}
}

// send hands ordinary messages to the transport and snapshot messages to the
// state machine, which attaches its database.
func (n *Node) send(msgs []raftpb.Message) {
	if len(msgs) == 0 {
		return
	}
	out := msgs[:0:0]
	for _, m := range msgs {
		if m.Type == raftpb.MsgSnap {
			select {
			case n.snapMsgc <- m:
			default:
				// The state machine is busy with earlier snapshots; raft will ask again.
				n.raft.ReportSnapshot(m.To, raft.SnapshotFailure)
			}
			continue
		}
		out = append(out, m)
	}
	if len(out) > 0 {
		n.cfg.Transport.Send(out)
	}
}

func hasConfChange(ents []raftpb.Entry) bool {
	for i := range ents {
		if ents[i].Type == raftpb.EntryConfChange || ents[i].Type == raftpb.EntryConfChangeV2 {
			return true
		}
	}
	return false
}
