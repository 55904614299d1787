package etcd

import (
	"context"
	"errors"
	"io"

	"ensemble/internal/lease"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// LeaseMember is what the Lease service needs from a member.
type LeaseMember interface {
	memberInfo
	LeaseGrant(ctx context.Context, req *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error)
	LeaseRevoke(ctx context.Context, req *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error)
	LeaseKeepAlive(ctx context.Context, id int64) (*pb.LeaseKeepAliveResponse, error)
	LeaseTimeToLive(ctx context.Context, req *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error)
	LeaseLeases(ctx context.Context, req *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error)
}

type leaseServer struct {
	pb.UnimplementedLeaseServer
	m LeaseMember
	h headerer
}

// leaseError maps the lessor's errors, then everything else as the other
// services do.
func leaseError(err error) error {
	switch {
	case errors.Is(err, lease.ErrLeaseNotFound):
		return rpctypes.ErrGRPCLeaseNotFound
	case errors.Is(err, lease.ErrLeaseExists):
		return rpctypes.ErrGRPCLeaseExist
	case errors.Is(err, lease.ErrLeaseTTLTooLarge):
		return rpctypes.ErrGRPCLeaseTTLTooLarge
	case errors.Is(err, lease.ErrNotPrimary):
		return rpctypes.ErrGRPCNotLeader
	}
	return toGRPCError(err)
}

func (s *leaseServer) LeaseGrant(ctx context.Context, r *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	resp, err := s.m.LeaseGrant(ctx, r)
	if err != nil {
		return nil, leaseError(err)
	}
	resp.Header = s.h.fill(resp.Header)
	return resp, nil
}

func (s *leaseServer) LeaseRevoke(ctx context.Context, r *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	resp, err := s.m.LeaseRevoke(ctx, r)
	if err != nil {
		return nil, leaseError(err)
	}
	resp.Header = s.h.fill(resp.Header)
	return resp, nil
}

// LeaseTimeToLive answers TTL -1 for a lease that does not exist, as etcd,
// rather than an error.
func (s *leaseServer) LeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	resp, err := s.m.LeaseTimeToLive(ctx, r)
	if errors.Is(err, lease.ErrLeaseNotFound) {
		resp, err = &pb.LeaseTimeToLiveResponse{ID: r.ID, TTL: -1}, nil
	}
	if err != nil {
		return nil, leaseError(err)
	}
	resp.Header = s.h.fill(resp.Header)
	return resp, nil
}

func (s *leaseServer) LeaseLeases(ctx context.Context, r *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error) {
	resp, err := s.m.LeaseLeases(ctx, r)
	if err != nil {
		return nil, leaseError(err)
	}
	resp.Header = s.h.fill(resp.Header)
	return resp, nil
}

// LeaseKeepAlive answers each renewal on the stream in order; a lease that
// does not exist gets TTL 0, which clients read as "not found".
func (s *leaseServer) LeaseKeepAlive(stream pb.Lease_LeaseKeepAliveServer) error {
	ctx := stream.Context()
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		resp, err := s.m.LeaseKeepAlive(ctx, req.ID)
		if err != nil {
			return leaseError(err)
		}
		resp.Header = s.h.fill(resp.Header)
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}
