package etcd

import (
	"context"

	"ensemble/internal/server"
	"ensemble/internal/types"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// ClusterMember is what the Cluster service needs from a member.
type ClusterMember interface {
	memberInfo
	Members() []server.Member
	MemberAdd(ctx context.Context, peerURLs []string, learner bool) (server.Member, []server.Member, error)
	MemberRemove(ctx context.Context, id types.MemberID) ([]server.Member, error)
	MemberUpdate(ctx context.Context, id types.MemberID, peerURLs []string) ([]server.Member, error)
	MemberPromote(ctx context.Context, id types.MemberID) ([]server.Member, error)
	LinearizableBarrier(ctx context.Context) error
}

type clusterServer struct {
	pb.UnimplementedClusterServer
	m ClusterMember
	h headerer
}

func toPBMembers(ms []server.Member) []*pb.Member {
	out := make([]*pb.Member, len(ms))
	for i, m := range ms {
		out[i] = &pb.Member{
			ID:         uint64(m.ID),
			Name:       m.Name,
			PeerURLs:   m.PeerURLs,
			ClientURLs: m.ClientURLs,
			IsLearner:  m.IsLearner,
		}
	}
	return out
}

func (s *clusterServer) MemberList(ctx context.Context, r *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	if r.Linearizable {
		if err := s.m.LinearizableBarrier(ctx); err != nil {
			return nil, toGRPCError(err)
		}
	}
	return &pb.MemberListResponse{Header: s.h.fill(nil), Members: toPBMembers(s.m.Members())}, nil
}

func (s *clusterServer) MemberAdd(ctx context.Context, r *pb.MemberAddRequest) (*pb.MemberAddResponse, error) {
	m, ms, err := s.m.MemberAdd(ctx, r.PeerURLs, r.IsLearner)
	if err != nil {
		return nil, toGRPCError(err)
	}
	return &pb.MemberAddResponse{Header: s.h.fill(nil), Member: toPBMembers([]server.Member{m})[0], Members: toPBMembers(ms)}, nil
}

func (s *clusterServer) MemberRemove(ctx context.Context, r *pb.MemberRemoveRequest) (*pb.MemberRemoveResponse, error) {
	ms, err := s.m.MemberRemove(ctx, types.MemberID(r.ID))
	if err != nil {
		return nil, toGRPCError(err)
	}
	return &pb.MemberRemoveResponse{Header: s.h.fill(nil), Members: toPBMembers(ms)}, nil
}

func (s *clusterServer) MemberUpdate(ctx context.Context, r *pb.MemberUpdateRequest) (*pb.MemberUpdateResponse, error) {
	ms, err := s.m.MemberUpdate(ctx, types.MemberID(r.ID), r.PeerURLs)
	if err != nil {
		return nil, toGRPCError(err)
	}
	return &pb.MemberUpdateResponse{Header: s.h.fill(nil), Members: toPBMembers(ms)}, nil
}

func (s *clusterServer) MemberPromote(ctx context.Context, r *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	ms, err := s.m.MemberPromote(ctx, types.MemberID(r.ID))
	if err != nil {
		return nil, toGRPCError(err)
	}
	return &pb.MemberPromoteResponse{Header: s.h.fill(nil), Members: toPBMembers(ms)}, nil
}
