package etcd

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// KVMember is what the KV service needs from a member.
type KVMember interface {
	memberInfo
	Range(ctx context.Context, req *pb.RangeRequest) (*pb.RangeResponse, error)
	Put(ctx context.Context, req *pb.PutRequest) (*pb.PutResponse, error)
	DeleteRange(ctx context.Context, req *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error)
	Txn(ctx context.Context, req *pb.TxnRequest) (*pb.TxnResponse, error)
	Compact(ctx context.Context, req *pb.CompactionRequest) (*pb.CompactionResponse, error)
	MaxRequestBytes() int
	MaxTxnOps() int
}

type kvServer struct {
	pb.UnimplementedKVServer
	m KVMember
	h headerer
}

func (s *kvServer) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := checkRange(r); err != nil {
		return nil, err
	}
	resp, err := s.m.Range(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = s.h.fill(resp.Header)
	return resp, nil
}

func (s *kvServer) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	if err := checkPut(r); err != nil {
		return nil, err
	}
	resp, err := s.m.Put(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = s.h.fill(resp.Header)
	return resp, nil
}

func (s *kvServer) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	if err := checkDeleteRange(r); err != nil {
		return nil, err
	}
	resp, err := s.m.DeleteRange(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = s.h.fill(resp.Header)
	return resp, nil
}

func (s *kvServer) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	if err := checkTxn(r, s.m.MaxTxnOps()); err != nil {
		return nil, err
	}
	resp, err := s.m.Txn(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = s.h.fill(resp.Header)
	return resp, nil
}

func (s *kvServer) Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	resp, err := s.m.Compact(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = s.h.fill(resp.Header)
	return resp, nil
}
