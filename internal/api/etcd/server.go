// Package etcd serves the etcd v3 gRPC API (KV, Cluster, Maintenance) on top
// of a member, byte-for-byte compatible with etcd's clients: the services and
// messages are etcd's published ones, and errors are mapped once, here, to the
// gRPC errors those clients match on.
package etcd

import (
	"math"
	"time"

	"ensemble/internal/types"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// Member is what the API needs from a running member; *server.Server is one.
// Each service states its own part in the file that serves it.
type Member interface {
	KVMember
	ClusterMember
	MaintenanceMember
	LeaseMember
	WatchMember
}

// memberInfo is what every service needs to fill response headers.
type memberInfo interface {
	ID() types.MemberID
	ClusterID() types.ClusterID
	Term() uint64
}

// grpcOverheadBytes leaves room above --max-request-bytes for the gRPC frame,
// so that a request just over the limit gets etcd's "request is too large"
// rather than a transport error, as with etcd.
const grpcOverheadBytes = 512 * 1024

// NewGRPCServer returns a gRPC server with the etcd services registered.
func NewGRPCServer(m Member, opts ...grpc.ServerOption) *grpc.Server {
	base := []grpc.ServerOption{
		grpc.ForceServerCodec(codec{}),
		grpc.MaxRecvMsgSize(m.MaxRequestBytes() + grpcOverheadBytes),
		grpc.MaxSendMsgSize(math.MaxInt32),
		grpc.MaxConcurrentStreams(math.MaxUint32),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	}
	gs := grpc.NewServer(append(base, opts...)...)
	Register(gs, m)
	return gs
}

// Register adds the etcd services to gs.
func Register(gs *grpc.Server, m Member) {
	h := headerer{m}
	pb.RegisterKVServer(gs, &kvServer{m: m, h: h})
	pb.RegisterClusterServer(gs, &clusterServer{m: m, h: h})
	pb.RegisterMaintenanceServer(gs, &maintenanceServer{m: m, h: h})
	pb.RegisterLeaseServer(gs, &leaseServer{m: m, h: h})
	pb.RegisterWatchServer(gs, &watchServer{m: m, h: h})
}

// headerer fills the parts of a response header that describe the member.
type headerer struct{ m memberInfo }

func (h headerer) fill(hd *pb.ResponseHeader) *pb.ResponseHeader {
	if hd == nil {
		hd = &pb.ResponseHeader{}
	}
	hd.ClusterId = uint64(h.m.ClusterID())
	hd.MemberId = uint64(h.m.ID())
	hd.RaftTerm = h.m.Term()
	return hd
}
