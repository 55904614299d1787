package etcd

import (
	"context"
	"errors"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	epb "go.etcd.io/etcd/server/v3/etcdserver/api/v3election/v3electionpb"
	lpb "go.etcd.io/etcd/server/v3/etcdserver/api/v3lock/v3lockpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The Election and Lock services are etcd's recipes served over gRPC, so that
// clients in any language get elections and locks without a client library.
// They are built, as in etcd, from the concurrency package over a client of
// this member itself, so their keys, revisions and leases are exactly those
// that clientv3/concurrency users see.

// errMissingLeaderKey answers a request that names no leader key.
var errMissingLeaderKey = status.Error(codes.InvalidArgument, `"leader" field must be provided`)

// observerLease is the lease of the sessions that only look at an election:
// they never write, so they need no lease of their own, and a non-zero id
// keeps concurrency.NewSession from granting one.
const observerLease clientv3.LeaseID = -1

// RegisterRecipes adds the Election and Lock services to gs; cli must be a
// client of the member that gs serves.
func RegisterRecipes(gs *grpc.Server, cli *clientv3.Client) {
	epb.RegisterElectionServer(gs, &electionServer{cli: cli})
	lpb.RegisterLockServer(gs, &lockServer{cli: cli})
}

// session wraps an existing lease (or, with observerLease, none) in a
// concurrency session that does not keep the lease alive: the caller owns
// the lease and its keepalives.
func session(ctx context.Context, cli *clientv3.Client, lease clientv3.LeaseID) (*concurrency.Session, error) {
	s, err := concurrency.NewSession(cli, concurrency.WithLease(lease), concurrency.WithContext(ctx))
	if err != nil {
		return nil, recipeError(err)
	}
	s.Orphan()
	return s, nil
}

// recipeError keeps gRPC errors as they are and gives the concurrency
// package's sentinels etcd's codes.
func recipeError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, concurrency.ErrElectionNoLeader):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, concurrency.ErrElectionNotLeader):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.Unknown, err.Error())
}

type electionServer struct {
	epb.UnimplementedElectionServer
	cli *clientv3.Client
}

func resume(s *concurrency.Session, k *epb.LeaderKey) *concurrency.Election {
	return concurrency.ResumeElection(s, string(k.Name), string(k.Key), k.Rev)
}

func (es *electionServer) Campaign(ctx context.Context, r *epb.CampaignRequest) (*epb.CampaignResponse, error) {
	s, err := session(ctx, es.cli, clientv3.LeaseID(r.Lease))
	if err != nil {
		return nil, err
	}
	e := concurrency.NewElection(s, string(r.Name))
	if err := e.Campaign(ctx, string(r.Value)); err != nil {
		return nil, recipeError(err)
	}
	return &epb.CampaignResponse{
		Header: e.Header(),
		Leader: &epb.LeaderKey{Name: r.Name, Key: []byte(e.Key()), Rev: e.Rev(), Lease: r.Lease},
	}, nil
}

func (es *electionServer) Proclaim(ctx context.Context, r *epb.ProclaimRequest) (*epb.ProclaimResponse, error) {
	if r.Leader == nil {
		return nil, errMissingLeaderKey
	}
	s, err := session(ctx, es.cli, clientv3.LeaseID(r.Leader.Lease))
	if err != nil {
		return nil, err
	}
	e := resume(s, r.Leader)
	if err := e.Proclaim(ctx, string(r.Value)); err != nil {
		return nil, recipeError(err)
	}
	return &epb.ProclaimResponse{Header: e.Header()}, nil
}

func (es *electionServer) Leader(ctx context.Context, r *epb.LeaderRequest) (*epb.LeaderResponse, error) {
	s, err := session(ctx, es.cli, observerLease)
	if err != nil {
		return nil, err
	}
	resp, err := concurrency.NewElection(s, string(r.Name)).Leader(ctx)
	if err != nil {
		return nil, recipeError(err)
	}
	return &epb.LeaderResponse{Header: resp.Header, Kv: resp.Kvs[0]}, nil
}

func (es *electionServer) Observe(r *epb.LeaderRequest, stream epb.Election_ObserveServer) error {
	ctx := stream.Context()
	s, err := session(ctx, es.cli, observerLease)
	if err != nil {
		return err
	}
	for resp := range concurrency.NewElection(s, string(r.Name)).Observe(ctx) {
		if err := stream.Send(&epb.LeaderResponse{Header: resp.Header, Kv: resp.Kvs[0]}); err != nil {
			return err
		}
	}
	return recipeError(ctx.Err())
}

func (es *electionServer) Resign(ctx context.Context, r *epb.ResignRequest) (*epb.ResignResponse, error) {
	if r.Leader == nil {
		return nil, errMissingLeaderKey
	}
	s, err := session(ctx, es.cli, clientv3.LeaseID(r.Leader.Lease))
	if err != nil {
		return nil, err
	}
	e := resume(s, r.Leader)
	if err := e.Resign(ctx); err != nil {
		return nil, recipeError(err)
	}
	return &epb.ResignResponse{Header: e.Header()}, nil
}

type lockServer struct {
	lpb.UnimplementedLockServer
	cli *clientv3.Client
}

func (ls *lockServer) Lock(ctx context.Context, r *lpb.LockRequest) (*lpb.LockResponse, error) {
	s, err := session(ctx, ls.cli, clientv3.LeaseID(r.Lease))
	if err != nil {
		return nil, err
	}
	m := concurrency.NewMutex(s, string(r.Name))
	if err := m.Lock(ctx); err != nil {
		return nil, recipeError(err)
	}
	return &lpb.LockResponse{Header: m.Header(), Key: []byte(m.Key())}, nil
}

func (ls *lockServer) Unlock(ctx context.Context, r *lpb.UnlockRequest) (*lpb.UnlockResponse, error) {
	resp, err := ls.cli.Delete(ctx, string(r.Key))
	if err != nil {
		return nil, recipeError(err)
	}
	return &lpb.UnlockResponse{Header: resp.Header}, nil
}
