package server

import (
	"context"

	"ensemble/internal/apply"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Range reads keys: linearizably (after a read-index barrier) unless the
// request asks for a serializable read of the local store.
func (s *Server) Range(ctx context.Context, req *pb.RangeRequest) (*pb.RangeResponse, error) {
	if !req.Serializable {
		if s.isLearner() {
			return nil, ErrNotSupportedForLearner
		}
		if err := s.linearizableRead(ctx); err != nil {
			return nil, err
		}
	}
	return apply.Range(s.KV(), req)
}

// Put writes a key through the log.
func (s *Server) Put(ctx context.Context, req *pb.PutRequest) (*pb.PutResponse, error) {
	resp, err := s.write(ctx, &pb.InternalRaftRequest{Put: req})
	if err != nil {
		return nil, err
	}
	return resp.(*pb.PutResponse), nil
}

// DeleteRange deletes keys through the log.
func (s *Server) DeleteRange(ctx context.Context, req *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	resp, err := s.write(ctx, &pb.InternalRaftRequest{DeleteRange: req})
	if err != nil {
		return nil, err
	}
	return resp.(*pb.DeleteRangeResponse), nil
}

// Txn runs a transaction. One that only reads is served like a read (no log
// entry); one that writes goes through the log and becomes one revision.
func (s *Server) Txn(ctx context.Context, req *pb.TxnRequest) (*pb.TxnResponse, error) {
	if apply.IsReadOnlyTxn(req) {
		if !allSerializable(req) {
			if s.isLearner() {
				return nil, ErrNotSupportedForLearner
			}
			if err := s.linearizableRead(ctx); err != nil {
				return nil, err
			}
		}
		return apply.ReadTxn(s.KV(), req)
	}
	resp, err := s.write(ctx, &pb.InternalRaftRequest{Txn: req})
	if err != nil {
		return nil, err
	}
	return resp.(*pb.TxnResponse), nil
}

// Compact discards history below a revision; with Physical it returns only
// once the history is gone from disk.
func (s *Server) Compact(ctx context.Context, req *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	if s.isLearner() {
		return nil, ErrNotSupportedForLearner
	}
	res, err := s.propose(ctx, &pb.InternalRaftRequest{Compaction: req})
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, res.Err
	}
	if req.Physical && res.Physical != nil {
		select {
		case <-res.Physical:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.stopping:
			return nil, ErrStopped
		}
	}
	return res.Resp.(*pb.CompactionResponse), nil
}

func (s *Server) write(ctx context.Context, r *pb.InternalRaftRequest) (any, error) {
	if s.isLearner() {
		return nil, ErrNotSupportedForLearner
	}
	res, err := s.propose(ctx, r)
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, res.Err
	}
	return res.Resp, nil
}

// allSerializable reports whether a read-only txn has ranges and all of them
// ask for a serializable read. Unlike etcd, a txn of compares alone is read
// linearizably: its outcome must not depend on which member answers.
func allSerializable(req *pb.TxnRequest) bool {
	return hasRange(req) && rangesSerializable(req)
}

func hasRange(req *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{req.Success, req.Failure} {
		for _, op := range ops {
			switch r := op.Request.(type) {
			case *pb.RequestOp_RequestRange:
				return true
			case *pb.RequestOp_RequestTxn:
				if hasRange(r.RequestTxn) {
					return true
				}
			}
		}
	}
	return false
}

func rangesSerializable(req *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{req.Success, req.Failure} {
		for _, op := range ops {
			switch r := op.Request.(type) {
			case *pb.RequestOp_RequestRange:
				if !r.RequestRange.Serializable {
					return false
				}
			case *pb.RequestOp_RequestTxn:
				if !rangesSerializable(r.RequestTxn) {
					return false
				}
			}
		}
	}
	return true
}

// LinearizableBarrier returns once this member has applied everything
// committed before the call.
func (s *Server) LinearizableBarrier(ctx context.Context) error { return s.linearizableRead(ctx) }
