package server

import (
	"context"
	"errors"
	"io"
	"slices"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// peerHandler receives what the transport brings from other members. The
// transport dials peers as soon as it exists, a moment before raft does; what
// arrives in that moment is dropped, and raft sends it again.
type peerHandler struct{ s *Server }

var errNotReady = errors.New("server: raft not started yet")

func (h peerHandler) Process(ctx context.Context, m raftpb.Message) error {
	if !h.s.nodeReady.Load() {
		return errNotReady
	}
	return h.s.node.Step(ctx, m)
}

func (h peerHandler) ReceiveSnapshot(ctx context.Context, m raftpb.Message, db io.Reader, size int64) error {
	if !h.s.nodeReady.Load() {
		return errNotReady
	}
	if _, err := h.s.snapshot.SaveDBFrom(db, m.Snapshot.Metadata.Index); err != nil {
		return err
	}
	return h.s.node.Step(ctx, m)
}

func (h peerHandler) ReportUnreachable(id uint64) {
	if h.s.nodeReady.Load() {
		h.s.node.ReportUnreachable(id)
	}
}

func (h peerHandler) ReportSnapshot(id uint64, failed bool) {
	if h.s.nodeReady.Load() {
		h.s.node.ReportSnapshot(id, failed)
	}
}

// PeerDisconnected starts a fast failover when the connection to the leader
// drops: a crashed leader's sockets close at once, so the followers need not
// wait out an election timeout to notice.
func (h peerHandler) PeerDisconnected(id uint64) {
	s := h.s
	if !s.nodeReady.Load() || id == 0 || id != s.node.Leader() || s.node.IsLeader() {
		return
	}
	go s.failover(id)
}

// failoverGrace is how long the first follower waits before it campaigns.
const failoverGrace = 10 * time.Millisecond

// failover makes this follower forget the leader it lost and, in turn by
// member id among the surviving voters, campaign. Safety is raft's: with
// PreVote and CheckQuorum, a follower that still hears from the leader
// refuses the pre-vote, so a connection that merely blipped costs nothing;
// taking turns keeps two followers from splitting the vote.
func (s *Server) failover(lost uint64) {
	st := s.node.Status()
	var voters []uint64
	for id := range st.Config.Voters.IDs() {
		if id != lost {
			voters = append(voters, id)
		}
	}
	slices.Sort(voters)
	rank := slices.Index(voters, uint64(s.id))
	if rank < 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ElectionTimeout)
	defer cancel()
	if err := s.node.ForgetLeader(ctx); err != nil {
		return
	}
	s.lg.Info("connection to the leader lost; forgetting it to elect a new one early", "lost", lost, "rank", rank)
	select {
	// The others need a moment to notice the drop and forget the leader too,
	// or they would refuse the first pre-vote as long as the leader's lease
	// runs.
	case <-time.After(failoverGrace + time.Duration(rank)*2*s.cfg.HeartbeatInterval):
	case <-s.stopping:
		return
	}
	if s.node.Leader() == 0 {
		_ = s.node.Campaign(ctx)
	}
}
