package server

import (
	"context"
	"errors"

	"ensemble/internal/apply"
	"ensemble/internal/backend"
	"ensemble/internal/config"
	"ensemble/internal/mvcc"
	"ensemble/internal/types"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Errors of the maintenance operations.
var (
	ErrBadLeaderTransferee   = errors.New("server: bad leader transferee")
	ErrTimeoutLeaderTransfer = errors.New("server: request timed out, leader transfer took too long")
)

// QuotaBackendBytes is the database size above which writes are refused
// and the NOSPACE alarm raised.
func (s *Server) QuotaBackendBytes() int64 {
	if q := s.cfg.QuotaBackendBytes; q > 0 {
		return q
	}
	return config.DefaultQuotaBackendBytes
}

// checkQuota refuses, before it is proposed, a request that would take the
// database past its quota, and raises the NOSPACE alarm for this member, as
// etcd's quota check does. Requests that cannot grow the database (reads,
// deletes, compactions, alarms) always pass.
func (s *Server) checkQuota(ctx context.Context, r *pb.InternalRaftRequest) error {
	cost := apply.RequestCost(r)
	if cost == 0 || s.be.Load().Size()+int64(cost) < s.QuotaBackendBytes() {
		return nil
	}
	s.raiseNoSpace(ctx)
	return apply.ErrNoSpace
}

// raiseNoSpace proposes the NOSPACE alarm for this member unless it is
// active already. A failure is only logged: the next refused write tries
// again.
func (s *Server) raiseNoSpace(ctx context.Context) {
	for _, a := range s.applier.Alarms(pb.AlarmType_NOSPACE) {
		if a.MemberID == uint64(s.id) {
			return
		}
	}
	s.lg.Warn("database space exceeded; raising the NOSPACE alarm", "size", s.be.Load().Size(), "quota", s.QuotaBackendBytes())
	req := &pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{
		Action:   pb.AlarmRequest_ACTIVATE,
		MemberID: uint64(s.id),
		Alarm:    pb.AlarmType_NOSPACE,
	}}
	if _, err := s.propose(ctx, req); err != nil {
		s.lg.Warn("cannot raise the NOSPACE alarm", "err", err)
	}
}

// Alarm lists, raises or clears alarms through the log, so that every member
// refuses the same requests.
func (s *Server) Alarm(ctx context.Context, req *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	res, err := s.propose(ctx, &pb.InternalRaftRequest{Alarm: req})
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, res.Err
	}
	if resp, ok := res.Resp.(*pb.AlarmResponse); ok {
		return resp, nil
	}
	// An entry cut short by a stop answers with no response.
	return &pb.AlarmResponse{Header: &pb.ResponseHeader{}}, nil
}

// Alarms lists the active alarms.
func (s *Server) Alarms() []*pb.AlarmMember { return s.applier.Alarms(pb.AlarmType_NONE) }

// addMaintenanceStatus adds to st what the Maintenance service reports
// beyond raft and storage figures: active alarms, learner state and quota.
func (s *Server) addMaintenanceStatus(st *Status) {
	for _, a := range s.Alarms() {
		st.Errors = append(st.Errors, a.String())
	}
	st.IsLearner = s.isLearner()
	st.DBSizeQuota = s.QuotaBackendBytes()
}

// Defragment rebuilds this member's database file compactly while reads go
// on; writes wait until it is done.
func (s *Server) Defragment(ctx context.Context) error {
	s.lg.Info("starting defragment")
	if err := s.be.Load().Defrag(); err != nil {
		return err
	}
	s.lg.Info("finished defragment")
	return nil
}

// Hash is a hash of this member's whole database (without the applied
// index) and the revision it was taken at.
func (s *Server) Hash(ctx context.Context) (uint32, int64, error) { return s.KV().Hash() }

// HashKV hashes the key-value history up to rev (0: the current revision);
// every member returns the same hash for the same revision. It also returns
// the current revision.
func (s *Server) HashKV(ctx context.Context, rev int64) (mvcc.KVHash, int64, error) {
	kv := s.KV()
	h, err := kv.HashKV(rev)
	return h, kv.Rev(), err
}

// Snapshot streams a consistent copy of this member's database; the caller
// must read it to the end or close it.
func (s *Server) Snapshot(ctx context.Context) (backend.Snapshot, error) {
	return s.be.Load().Snapshot()
}

// MoveLeader hands leadership from this member, which must lead, to target,
// a voting member that is connected, and waits until target leads.
func (s *Server) MoveLeader(ctx context.Context, target types.MemberID) error {
	if !s.node.IsLeader() {
		return ErrNotLeader
	}
	m, ok := s.members.get(target)
	if !ok || m.IsLearner {
		return ErrBadLeaderTransferee
	}
	if target == s.id {
		return nil
	}
	if !s.transport.Connected(target) {
		return ErrBadLeaderTransferee
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	s.lg.Info("leadership transfer starting", "transferee", target)
	var err error
	for {
		// Raft gives up a transfer after an election timeout, for instance
		// when the transferee still has a membership change to apply and
		// so may not campaign yet: ask again until the deadline.
		attempt, cancelAttempt := context.WithTimeout(ctx, 2*s.cfg.ElectionTimeout)
		err = s.node.TransferLeadership(attempt, uint64(target))
		cancelAttempt()
		if err == nil || ctx.Err() != nil || !s.node.IsLeader() {
			break
		}
	}
	if err != nil && ctx.Err() == nil {
		// Leadership moved meanwhile, if not to the target: wait below.
		err = nil
	}
	for err == nil {
		// Raft moved leadership away from us; wait until the target, not
		// another member that won an election meanwhile, is seen leading.
		changed := s.node.LeaderChanged()
		if types.MemberID(s.node.Leader()) == target {
			break
		}
		select {
		case <-changed:
		case <-ctx.Done():
			err = ctx.Err()
		case <-s.stopping:
			return ErrStopped
		}
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return err
		}
		return ErrTimeoutLeaderTransfer
	}
	s.lg.Info("leadership transfer finished", "leader", target)
	return nil
}
