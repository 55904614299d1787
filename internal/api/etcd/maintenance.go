package etcd

import (
	"context"

	"ensemble/internal/config"
	"ensemble/internal/server"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// MaintenanceMember is what the Maintenance service needs from a member.
type MaintenanceMember interface {
	memberInfo
	Status() server.Status
	Range(ctx context.Context, req *pb.RangeRequest) (*pb.RangeResponse, error)
}

type maintenanceServer struct {
	pb.UnimplementedMaintenanceServer
	m MaintenanceMember
	h headerer
}

// etcdAPIVersion is the etcd server version whose API Ensemble serves; clients
// and tools read it from Status to decide which features they may use.
const etcdAPIVersion = "3.6.0"

func (s *maintenanceServer) Status(ctx context.Context, r *pb.StatusRequest) (*pb.StatusResponse, error) {
	st := s.m.Status()
	return &pb.StatusResponse{
		Header:           s.h.fill(&pb.ResponseHeader{Revision: s.revision(ctx)}),
		Version:          etcdAPIVersion,
		DbSize:           st.DBSize,
		DbSizeInUse:      st.DBSizeInUse,
		Leader:           uint64(st.Leader),
		RaftIndex:        st.RaftIndex,
		RaftTerm:         st.Term,
		RaftAppliedIndex: st.AppliedIndex,
		Errors:           st.Errors,
		StorageVersion:   "ensemble-" + config.Version,
	}, nil
}

func (s *maintenanceServer) revision(ctx context.Context) int64 {
	resp, err := s.m.Range(ctx, &pb.RangeRequest{Key: []byte{0}, Serializable: true, CountOnly: true, Limit: 1})
	if err != nil {
		return 0
	}
	return resp.Header.GetRevision()
}
