package etcd

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"

	"ensemble/internal/backend"
	"ensemble/internal/config"
	"ensemble/internal/mvcc"
	"ensemble/internal/server"
	"ensemble/internal/types"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// MaintenanceMember is what the Maintenance service needs from a member.
type MaintenanceMember interface {
	memberInfo
	Status() server.Status
	Range(ctx context.Context, req *pb.RangeRequest) (*pb.RangeResponse, error)
	Alarm(ctx context.Context, req *pb.AlarmRequest) (*pb.AlarmResponse, error)
	Defragment(ctx context.Context) error
	Hash(ctx context.Context) (uint32, int64, error)
	HashKV(ctx context.Context, rev int64) (mvcc.KVHash, int64, error)
	Snapshot(ctx context.Context) (backend.Snapshot, error)
	MoveLeader(ctx context.Context, target types.MemberID) error
}

type maintenanceServer struct {
	pb.UnimplementedMaintenanceServer
	m MaintenanceMember
	h headerer
}

// etcdAPIVersion is the etcd server version whose API Ensemble serves; clients
// and tools read it from Status to decide which features they may use.
const etcdAPIVersion = "3.6.0"

// snapshotChunkBytes is how much of the database each Snapshot message
// carries, as etcd sends it.
const snapshotChunkBytes = 32 * 1024

// errTimeoutLeaderTransfer is what etcd answers when leadership did not move
// in time: its error has no gRPC code of its own.
var errTimeoutLeaderTransfer = status.Error(codes.Unknown, "etcdserver: request timed out, leader transfer took too long")

// errNoLeaderStatus is the entry etcd's Status lists while there is no leader.
const errNoLeaderStatus = "etcdserver: no leader"

func (s *maintenanceServer) Status(ctx context.Context, r *pb.StatusRequest) (*pb.StatusResponse, error) {
	st := s.m.Status()
	resp := &pb.StatusResponse{
		Header:           s.h.fill(&pb.ResponseHeader{Revision: s.revision(ctx)}),
		Version:          etcdAPIVersion,
		DbSize:           st.DBSize,
		DbSizeInUse:      st.DBSizeInUse,
		Leader:           uint64(st.Leader),
		RaftIndex:        st.RaftIndex,
		RaftTerm:         st.Term,
		RaftAppliedIndex: st.AppliedIndex,
		IsLearner:        st.IsLearner,
		DbSizeQuota:      st.DBSizeQuota,
		StorageVersion:   "ensemble-" + config.Version,
		DowngradeInfo:    &pb.DowngradeInfo{},
	}
	if st.Leader == 0 {
		resp.Errors = append(resp.Errors, errNoLeaderStatus)
	}
	resp.Errors = append(resp.Errors, st.Errors...)
	return resp, nil
}

func (s *maintenanceServer) revision(ctx context.Context) int64 {
	resp, err := s.m.Range(ctx, &pb.RangeRequest{Key: []byte{0}, Serializable: true, CountOnly: true, Limit: 1})
	if err != nil {
		return 0
	}
	return resp.Header.GetRevision()
}

func (s *maintenanceServer) Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	resp, err := s.m.Alarm(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp.Header = s.h.fill(resp.Header)
	return resp, nil
}

func (s *maintenanceServer) Defragment(ctx context.Context, r *pb.DefragmentRequest) (*pb.DefragmentResponse, error) {
	if err := s.m.Defragment(ctx); err != nil {
		return nil, toGRPCError(err)
	}
	return &pb.DefragmentResponse{Header: s.h.fill(&pb.ResponseHeader{Revision: s.revision(ctx)})}, nil
}

func (s *maintenanceServer) Hash(ctx context.Context, r *pb.HashRequest) (*pb.HashResponse, error) {
	h, rev, err := s.m.Hash(ctx)
	if err != nil {
		return nil, toGRPCError(err)
	}
	return &pb.HashResponse{Header: s.h.fill(&pb.ResponseHeader{Revision: rev}), Hash: h}, nil
}

func (s *maintenanceServer) HashKV(ctx context.Context, r *pb.HashKVRequest) (*pb.HashKVResponse, error) {
	h, rev, err := s.m.HashKV(ctx, r.Revision)
	if err != nil {
		return nil, toGRPCError(err)
	}
	return &pb.HashKVResponse{
		Header:          s.h.fill(&pb.ResponseHeader{Revision: rev}),
		Hash:            h.Hash,
		CompactRevision: h.CompactRevision,
		HashRevision:    h.Revision,
	}, nil
}

// Snapshot streams the database in chunks, each saying how many bytes are
// still to come, and then its SHA-256 in one last message, which is what
// etcd's clients check a saved snapshot against.
func (s *maintenanceServer) Snapshot(r *pb.SnapshotRequest, srv pb.Maintenance_SnapshotServer) error {
	ctx := srv.Context()
	snap, err := s.m.Snapshot(ctx)
	if err != nil {
		return toGRPCError(err)
	}
	defer snap.Close()
	total := snap.Size()
	h := sha256.New()
	// The codec copies each message as it is sent, so one buffer serves
	// every chunk.
	buf := make([]byte, snapshotChunkBytes)
	hdr := s.h.fill(&pb.ResponseHeader{Revision: s.revision(ctx)})
	var sent int64
	for sent < total {
		n, err := io.ReadFull(snap, buf[:min(int64(len(buf)), total-sent)])
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return toGRPCError(err)
		}
		if n == 0 {
			return status.Error(codes.Internal, "etcdserver: snapshot ended early")
		}
		sent += int64(n)
		h.Write(buf[:n])
		resp := &pb.SnapshotResponse{Header: hdr, RemainingBytes: uint64(total - sent), Blob: buf[:n], Version: etcdAPIVersion}
		if err := srv.Send(resp); err != nil {
			return toGRPCError(err)
		}
	}
	if err := srv.Send(&pb.SnapshotResponse{Header: hdr, Blob: h.Sum(nil), Version: etcdAPIVersion}); err != nil {
		return toGRPCError(err)
	}
	return nil
}

func (s *maintenanceServer) MoveLeader(ctx context.Context, r *pb.MoveLeaderRequest) (*pb.MoveLeaderResponse, error) {
	if err := s.m.MoveLeader(ctx, types.MemberID(r.TargetID)); err != nil {
		return nil, toGRPCError(err)
	}
	return &pb.MoveLeaderResponse{Header: s.h.fill(nil)}, nil
}
