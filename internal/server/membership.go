package server

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"ensemble/internal/types"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Errors of membership changes.
var (
	ErrMemberNotFound         = errors.New("server: member not found")
	ErrMemberExists           = errors.New("server: member id already exists")
	ErrPeerURLExists          = errors.New("server: peer URLs already exist")
	ErrMemberBadURLs          = errors.New("server: given member URLs are invalid")
	ErrMemberNotLearner       = errors.New("server: can only promote a learner member")
	ErrLearnerNotReady        = errors.New("server: can only promote a learner member which is in sync with leader")
	ErrNotEnoughStarted       = errors.New("server: re-configuration failed due to not enough started members")
	ErrRemoved                = errors.New("server: this member was removed from the cluster")
	ErrNotSupportedForLearner = errors.New("server: rpc not supported for learner")
	ErrNotLeader              = errors.New("server: not leader")
)

// learnerReadyPercent is how close to the leader a learner's log must be
// before it may become a voter, as etcd requires.
const learnerReadyPercent = 0.9

func checkPeerURLs(urls []string) error {
	if len(urls) == 0 {
		return ErrMemberBadURLs
	}
	for _, s := range urls {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Port() == "" {
			return fmt.Errorf("%w: %q", ErrMemberBadURLs, s)
		}
	}
	return nil
}

func (s *Server) isLearner() bool {
	m, ok := s.members.get(s.id)
	return ok && m.IsLearner
}

// startedVoters counts the voters this member can reach (itself included):
// etcd's strict reconfiguration check refuses changes that would leave the
// cluster without a quorum of started members.
func (s *Server) startedVoters() int {
	n := 0
	for _, m := range s.members.list() {
		if m.IsLearner {
			continue
		}
		if m.ID == s.id || s.transport.Connected(m.ID) {
			n++
		}
	}
	return n
}

func (s *Server) voters() int {
	n := 0
	for _, m := range s.members.list() {
		if !m.IsLearner {
			n++
		}
	}
	return n
}

// MemberAdd adds a member (a voter, or a learner) and returns it with the
// member list after the change.
func (s *Server) MemberAdd(ctx context.Context, peerURLs []string, learner bool) (Member, []Member, error) {
	if err := checkPeerURLs(peerURLs); err != nil {
		return Member{}, nil, err
	}
	for _, m := range s.members.list() {
		for _, u := range m.PeerURLs {
			if slices.Contains(peerURLs, u) {
				return Member{}, nil, ErrPeerURLExists
			}
		}
	}
	// Adding the second voter to a one-member cluster is allowed although the
	// new member is not started yet: it is how a cluster grows from one.
	if started, voters := s.startedVoters(), s.voters(); !learner && !(started == 1 && voters == 1) && started < (voters+1)/2+1 {
		return Member{}, nil, ErrNotEnoughStarted
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	id := memberID(peerURLs, fmt.Sprintf("%x-%d", rnd, time.Now().UnixNano()))
	m := Member{ID: id, PeerURLs: peerURLs, IsLearner: learner}
	typ := raftpb.ConfChangeAddNode
	if learner {
		typ = raftpb.ConfChangeAddLearnerNode
	}
	if err := s.proposeConfChange(ctx, typ, id, m); err != nil {
		return Member{}, nil, err
	}
	return m, s.members.list(), nil
}

// MemberRemove removes a member.
func (s *Server) MemberRemove(ctx context.Context, id types.MemberID) ([]Member, error) {
	m, ok := s.members.get(id)
	if !ok {
		return nil, ErrMemberNotFound
	}
	if !m.IsLearner {
		remaining := s.startedVoters()
		if id == s.id || s.transport.Connected(id) {
			remaining--
		}
		if remaining < (s.voters()-1)/2+1 {
			return nil, ErrNotEnoughStarted
		}
	}
	if err := s.proposeConfChange(ctx, raftpb.ConfChangeRemoveNode, id, Member{ID: id}); err != nil {
		return nil, err
	}
	return s.members.list(), nil
}

// MemberUpdate changes a member's peer URLs.
func (s *Server) MemberUpdate(ctx context.Context, id types.MemberID, peerURLs []string) ([]Member, error) {
	if err := checkPeerURLs(peerURLs); err != nil {
		return nil, err
	}
	m, ok := s.members.get(id)
	if !ok {
		return nil, ErrMemberNotFound
	}
	for _, o := range s.members.list() {
		if o.ID == id {
			continue
		}
		for _, u := range o.PeerURLs {
			if slices.Contains(peerURLs, u) {
				return nil, ErrPeerURLExists
			}
		}
	}
	m.PeerURLs = peerURLs
	if err := s.proposeConfChange(ctx, raftpb.ConfChangeUpdateNode, id, m); err != nil {
		return nil, err
	}
	return s.members.list(), nil
}

// MemberPromote turns a learner that has caught up into a voter. Only the
// leader knows how far the learner is, so followers forward the request.
func (s *Server) MemberPromote(ctx context.Context, id types.MemberID) ([]Member, error) {
	m, ok := s.members.get(id)
	if !ok {
		return nil, ErrMemberNotFound
	}
	if !m.IsLearner {
		return nil, ErrMemberNotLearner
	}
	if !s.node.IsLeader() {
		return s.forwardPromote(ctx, id)
	}
	st := s.node.Status()
	pr, ok := st.Progress[uint64(id)]
	if !ok || float64(pr.Match) < float64(st.Commit)*learnerReadyPercent {
		return nil, ErrLearnerNotReady
	}
	m.IsLearner = false
	if err := s.proposeConfChange(ctx, raftpb.ConfChangeAddNode, id, m); err != nil {
		return nil, err
	}
	return s.members.list(), nil
}

func (s *Server) forwardPromote(ctx context.Context, id types.MemberID) ([]Member, error) {
	conn, err := s.leaderConn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	resp, err := pb.NewClusterClient(conn).MemberPromote(ctx, &pb.MemberPromoteRequest{ID: uint64(id)})
	if err != nil {
		return nil, err
	}
	out := make([]Member, 0, len(resp.Members))
	for _, m := range resp.Members {
		out = append(out, Member{ID: types.MemberID(m.ID), Name: m.Name, PeerURLs: m.PeerURLs, ClientURLs: m.ClientURLs, IsLearner: m.IsLearner})
	}
	return out, nil
}

// leaderConn dials the leader's first advertised client URL.
func (s *Server) leaderConn(ctx context.Context) (*grpc.ClientConn, error) {
	if err := s.waitLeader(ctx); err != nil {
		return nil, err
	}
	lead, ok := s.members.get(types.MemberID(s.node.Leader()))
	if !ok || len(lead.ClientURLs) == 0 {
		return nil, ErrNoLeader
	}
	target := lead.ClientURLs[0]
	target = strings.TrimPrefix(strings.TrimPrefix(target, "http://"), "https://")
	return grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

// proposeConfChange replicates a membership change and waits until it is
// applied here.
func (s *Server) proposeConfChange(ctx context.Context, typ raftpb.ConfChangeType, id types.MemberID, m Member) error {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	if err := s.waitLeader(ctx); err != nil {
		return err
	}
	mctx, _ := json.Marshal(m)
	cc := raftpb.ConfChange{ID: s.reqIDs.id(), Type: typ, NodeID: uint64(id), Context: mctx}
	ch := s.waits.register(cc.ID)
	if err := s.node.ProposeConfChange(ctx, cc); err != nil {
		s.waits.cancel(cc.ID)
		return s.proposeErr(err)
	}
	select {
	case res := <-ch:
		return res.Err
	case <-ctx.Done():
		s.waits.cancel(cc.ID)
		return s.proposeErr(ctx.Err())
	case <-s.stopping:
		s.waits.cancel(cc.ID)
		return ErrStopped
	}
}

// applyConfChange carries out a committed membership change: in raft, in the
// member list and in the transport. It is idempotent, since entries after a
// snapshot are replayed on restart.
func (s *Server) applyConfChange(cc raftpb.ConfChange) (removedSelf bool) {
	s.confState = *s.node.ApplyConfChange(cc)
	id := types.MemberID(cc.NodeID)
	var m Member
	if len(cc.Context) > 0 {
		_ = json.Unmarshal(cc.Context, &m)
	}
	switch cc.Type {
	case raftpb.ConfChangeAddNode, raftpb.ConfChangeAddLearnerNode:
		m.ID = id
		m.IsLearner = cc.Type == raftpb.ConfChangeAddLearnerNode
		s.members.add(m)
		if id != s.id {
			s.transport.AddPeer(id, m.PeerURLs)
		}
	case raftpb.ConfChangeRemoveNode:
		s.members.remove(id)
		if id == s.id {
			return true
		}
		s.transport.RemovePeer(id)
	case raftpb.ConfChangeUpdateNode:
		s.members.setPeerURLs(id, m.PeerURLs)
		if id != s.id {
			s.transport.UpdatePeer(id, m.PeerURLs)
		}
	}
	return false
}
