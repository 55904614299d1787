package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"ensemble/internal/lease"
	"ensemble/internal/types"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const (
	// defaultLeaseCheckpointInterval is etcd's: how often the leader records
	// the remaining TTLs of long leases through the log.
	defaultLeaseCheckpointInterval = 5 * time.Minute
	// leaseTick is how often the leader looks for expired leases; it bounds
	// how late past its TTL a lease is revoked.
	leaseTick = 50 * time.Millisecond
	// leaseRevokeRate caps revocations per second, as etcd, so that a mass
	// expiry does not flood the log.
	leaseRevokeRate = 1000
	// maxCheckpointBatch is the most checkpoints one log entry carries.
	maxCheckpointBatch = 1000
	// forwardedKey marks a request a member forwarded to the leader, so that
	// a member that is no longer leader refuses it instead of forwarding it on.
	forwardedKey = "ensemble-lease-forwarded"
)

// leaseSide is the member's lease state: the lessor (replicated through the
// log) and the connections used to forward renewals to the leader.
type leaseSide struct {
	lessor             *lease.Lessor
	checkpointInterval atomic.Int64

	mu      sync.Mutex
	conns   map[string]*grpc.ClientConn
	streams map[string][]*renewStream
	next    atomic.Uint64
}

// leaderLink is how a follower reaches the leader's Lease service.
type leaderLink struct {
	target string
	cli    pb.LeaseClient
}

// initLessor creates the lessor from the store and hands it to the applier.
// The minimum TTL is etcd's: 1.5 election timeouts rounded up to a second,
// so that a lease outlives the election that follows a leader's loss.
func (s *Server) initLessor() error {
	minTTL := int64(math.Ceil((3 * s.cfg.ElectionTimeout / 2).Seconds()))
	s.lease.lessor = lease.New(lease.Config{MinTTL: minTTL, Logger: s.lg})
	s.lease.checkpointInterval.Store(int64(defaultLeaseCheckpointInterval))
	if err := s.lease.lessor.Recover(s.be.Load(), s.KV()); err != nil {
		return err
	}
	s.applier.SetLessor(s.lease.lessor)
	return nil
}

// recoverLessor reloads the leases from a store installed from a snapshot.
func (s *Server) recoverLessor() error {
	if s.lease.lessor == nil {
		return nil
	}
	return s.lease.lessor.Recover(s.be.Load(), s.KV())
}

// SetLeaseCheckpointInterval changes how often the leader checkpoints
// remaining TTLs (etcd's default is 5 minutes); tests shorten it.
func (s *Server) SetLeaseCheckpointInterval(d time.Duration) {
	s.lease.checkpointInterval.Store(int64(d))
}

// Lessor exposes the member's leases (for the ZooKeeper front end and tests).
func (s *Server) Lessor() *lease.Lessor { return s.lease.lessor }

func (s *Server) startLeaseLoop() {
	s.wg.Add(1)
	go s.leaseLoop()
}

// leaseLoop keeps the lessor's role in step with raft leadership and, on the
// leader, revokes expired leases and checkpoints remaining TTLs through the
// log. Followers never expire a lease themselves.
func (s *Server) leaseLoop() {
	defer s.wg.Done()
	defer s.lease.closeConns()
	le := s.lease.lessor
	tick := time.NewTicker(leaseTick)
	defer tick.Stop()
	var lastCheckpoint time.Time
	inflight := make(chan struct{}, 64)
	for {
		changed := s.node.LeaderChanged()
		if s.node.IsLeader() {
			if !le.IsPrimary() {
				// Leases are not expired for the time it took to elect us.
				le.Promote(s.cfg.ElectionTimeout)
				lastCheckpoint = time.Now()
			}
		} else {
			le.Demote()
		}
		select {
		case <-changed:
		case <-tick.C:
			if !le.IsPrimary() {
				continue
			}
			for _, id := range le.Expired(leaseRevokeRate * int(leaseTick) / int(time.Second)) {
				select {
				case inflight <- struct{}{}:
				default:
					// Revocations are backed up; the lease is handed
					// out again later.
					continue
				}
				s.wg.Add(1)
				go func(id types.LeaseID) {
					defer s.wg.Done()
					defer func() { <-inflight }()
					s.revokeExpired(id)
				}(id)
			}
			interval := time.Duration(s.lease.checkpointInterval.Load())
			due := time.Since(lastCheckpoint) >= interval
			if due || le.PendingClears() {
				if due {
					lastCheckpoint = time.Now()
				}
				if cps := le.Checkpoints(interval, due); len(cps) > 0 {
					s.wg.Add(1)
					go func() {
						defer s.wg.Done()
						s.proposeCheckpoints(cps)
					}()
				}
			}
		case <-s.stopping:
			return
		}
	}
}

func (s *Server) revokeExpired(id types.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), s.RequestTimeout())
	defer cancel()
	res, err := s.propose(ctx, &pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: int64(id)}})
	if err == nil && res.Err != nil && !errors.Is(res.Err, lease.ErrLeaseNotFound) {
		err = res.Err
	}
	if err != nil && !errors.Is(err, ErrStopped) {
		s.lg.Warn("revoking expired lease failed; will retry", "lease", fmt.Sprintf("%016x", int64(id)), "err", err)
	}
}

func (s *Server) proposeCheckpoints(cps []lease.CheckpointItem) {
	for len(cps) > 0 {
		n := min(len(cps), maxCheckpointBatch)
		req := &pb.LeaseCheckpointRequest{Checkpoints: make([]*pb.LeaseCheckpoint, n)}
		for i, cp := range cps[:n] {
			req.Checkpoints[i] = &pb.LeaseCheckpoint{ID: int64(cp.ID), Remaining_TTL: cp.Remaining}
		}
		cps = cps[n:]
		ctx, cancel := context.WithTimeout(context.Background(), s.RequestTimeout())
		_, err := s.propose(ctx, &pb.InternalRaftRequest{LeaseCheckpoint: req})
		cancel()
		if err != nil {
			// The next interval checkpoints again.
			s.lg.Debug("lease checkpoint failed", "err", err)
			return
		}
	}
}

// LeaseGrant creates a lease through the log. A request without an id gets
// one from the member's id generator, as etcd does.
func (s *Server) LeaseGrant(ctx context.Context, req *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	if req.TTL > lease.MaxLeaseTTL {
		return nil, lease.ErrLeaseTTLTooLarge
	}
	r := &pb.LeaseGrantRequest{ID: req.ID, TTL: req.TTL}
	for r.ID == 0 {
		r.ID = int64(s.reqIDs.id() & (1<<63 - 1))
	}
	resp, err := s.write(ctx, &pb.InternalRaftRequest{LeaseGrant: r})
	if err != nil {
		return nil, err
	}
	return resp.(*pb.LeaseGrantResponse), nil
}

// LeaseRevoke revokes a lease through the log, deleting its keys.
func (s *Server) LeaseRevoke(ctx context.Context, req *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	resp, err := s.write(ctx, &pb.InternalRaftRequest{LeaseRevoke: req})
	if err != nil {
		return nil, err
	}
	return resp.(*pb.LeaseRevokeResponse), nil
}

// LeaseLeases lists every lease, as of a linearizable point.
func (s *Server) LeaseLeases(ctx context.Context, _ *pb.LeaseLeasesRequest) (*pb.LeaseLeasesResponse, error) {
	if err := s.linearizableRead(ctx); err != nil {
		return nil, err
	}
	ids := s.lease.lessor.Leases()
	resp := &pb.LeaseLeasesResponse{Header: &pb.ResponseHeader{Revision: s.KV().Rev()}, Leases: make([]*pb.LeaseStatus, len(ids))}
	for i, id := range ids {
		resp.Leases[i] = &pb.LeaseStatus{ID: int64(id)}
	}
	return resp, nil
}

// LeaseKeepAlive renews a lease on the leader, forwarding to it from a
// follower. A lease that does not exist gets TTL 0, as etcd answers.
func (s *Server) LeaseKeepAlive(ctx context.Context, id int64) (*pb.LeaseKeepAliveResponse, error) {
	// The revision is read before the renewal, so that a client never sees
	// a renewal at a revision after the lease's revocation.
	resp := &pb.LeaseKeepAliveResponse{Header: &pb.ResponseHeader{Revision: s.KV().Rev()}, ID: id}
	ttl, err := s.onLeader(ctx, func(ctx context.Context) (int64, error) {
		return s.renewLocal(ctx, types.LeaseID(id))
	}, func(ctx context.Context, l leaderLink) (int64, error) {
		return s.lease.forwardRenew(ctx, l, id)
	})
	if errors.Is(err, lease.ErrLeaseNotFound) {
		ttl, err = 0, nil
	}
	if err != nil {
		return nil, err
	}
	resp.TTL = ttl
	return resp, nil
}

// LeaseTimeToLive describes a lease as the leader knows it (the remaining TTL
// is the leader's), forwarding from a follower.
func (s *Server) LeaseTimeToLive(ctx context.Context, req *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	var resp *pb.LeaseTimeToLiveResponse
	_, err := s.onLeader(ctx, func(ctx context.Context) (int64, error) {
		r, err := s.timeToLiveLocal(ctx, req)
		resp = r
		return 0, err
	}, func(ctx context.Context, l leaderLink) (int64, error) {
		r, err := l.cli.LeaseTimeToLive(ctx, req)
		if err != nil {
			return 0, err
		}
		if r.TTL == -1 {
			return 0, lease.ErrLeaseNotFound
		}
		resp = r
		return 0, nil
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

func (s *Server) timeToLiveLocal(ctx context.Context, req *pb.LeaseTimeToLiveRequest) (*pb.LeaseTimeToLiveResponse, error) {
	// Attached keys change through the log: read them as of a linearizable
	// point, so that a client sees its own puts even through a follower.
	if err := s.linearizableRead(ctx); err != nil {
		return nil, err
	}
	rev := s.KV().Rev()
	in, err := s.lease.lessor.Lookup(types.LeaseID(req.ID), req.Keys)
	if err != nil {
		return nil, err
	}
	if !in.Primary {
		return nil, lease.ErrNotPrimary
	}
	resp := &pb.LeaseTimeToLiveResponse{
		Header:     &pb.ResponseHeader{Revision: rev},
		ID:         req.ID,
		TTL:        int64(in.Remaining.Seconds()),
		GrantedTTL: in.TTL,
	}
	if req.Keys {
		resp.Keys = make([][]byte, len(in.Keys))
		for i, k := range in.Keys {
			resp.Keys[i] = []byte(k)
		}
	}
	return resp, nil
}

func (s *Server) renewLocal(ctx context.Context, id types.LeaseID) (int64, error) {
	le := s.lease.lessor
	rctx := ctx
	if isForwarded(ctx) {
		// Forwarded renewals share a stream that the leader answers in
		// order: one must not hold up the others by waiting for an expired
		// lease's revocation. Such a lease is as good as gone.
		c, cancel := context.WithCancel(ctx)
		cancel()
		rctx = c
	}
	ttl, err := le.Renew(rctx, id)
	if errors.Is(err, context.Canceled) && ctx.Err() == nil {
		return 0, lease.ErrLeaseNotFound
	}
	if errors.Is(err, lease.ErrLeaseNotFound) {
		// The grant may be committed but not yet applied here. A new leader
		// does not even know yet that the entries of its predecessor are
		// committed: only an entry of its own term tells it. A read-index
		// barrier waits for that and for their application.
		if s.linearizableRead(ctx) != nil {
			return 0, err
		}
		ttl, err = le.Renew(rctx, id)
		if errors.Is(err, context.Canceled) && ctx.Err() == nil {
			return 0, lease.ErrLeaseNotFound
		}
	}
	return ttl, err
}

// onLeader runs local on the leader, or remote against the leader from a
// follower, retrying across leader changes until ctx (or the server's
// request timeout) ends.
func (s *Server) onLeader(ctx context.Context, local func(context.Context) (int64, error), remote func(context.Context, leaderLink) (int64, error)) (int64, error) {
	if types.MemberID(s.node.Leader()) == s.id {
		// The common case on the leader, without the retry machinery.
		if v, err := local(ctx); !errors.Is(err, lease.ErrNotPrimary) {
			return v, err
		}
	}
	forwarded := isForwarded(ctx)
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	for {
		changed := s.node.LeaderChanged()
		var err error
		var v int64
		lead := types.MemberID(s.node.Leader())
		switch {
		case lead == s.id:
			v, err = local(ctx)
			if !errors.Is(err, lease.ErrNotPrimary) {
				return v, err
			}
			// Leadership is changing hands, or our lessor is about to be
			// promoted: try again shortly.
		case forwarded:
			// Whoever forwarded this thought we lead; let them find out
			// who does rather than pass it on.
			return 0, ErrNotLeader
		case lead == 0:
			if err := s.waitLeader(ctx); err != nil {
				return 0, err
			}
			continue
		default:
			var link leaderLink
			link, err = s.leaderLink(lead)
			if err == nil {
				v, err = remote(forwardContext(ctx), link)
				if err == nil || !retryableForward(err) {
					return v, err
				}
			}
			s.lg.Debug("forwarding a lease request to the leader failed; retrying", "leader", lead, "err", err)
		}
		select {
		case <-changed:
		case <-time.After(s.cfg.HeartbeatInterval):
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return 0, ctx.Err()
			}
			if s.node.Leader() == 0 {
				return 0, ErrNoLeader
			}
			return 0, ErrTimeout
		case <-s.stopping:
			return 0, ErrStopped
		}
	}
}

func forwardContext(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, forwardedKey, "1")
}

func isForwarded(ctx context.Context) bool {
	md, ok := metadata.FromIncomingContext(ctx)
	return ok && len(md.Get(forwardedKey)) > 0
}

// retryableForward reports whether a forwarded request failed because the
// member asked was not (or no longer) the leader or could not be reached:
// the request did not take effect and may be sent to the next leader.
func retryableForward(err error) bool {
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	return st.Code() == codes.Unavailable || st.Message() == status.Convert(rpctypes.ErrGRPCNotLeader).Message()
}

var errNoLeaderURL = status.Error(codes.Unavailable, "server: the leader's client URL is not known yet")

// leaderLink returns the way to member id's Lease service, over a
// connection kept for later requests.
func (s *Server) leaderLink(id types.MemberID) (leaderLink, error) {
	m, ok := s.members.get(id)
	if !ok || len(m.ClientURLs) == 0 {
		// The leader has not published its client URLs yet.
		return leaderLink{}, errNoLeaderURL
	}
	target := m.ClientURLs[0]
	if u, err := url.Parse(target); err == nil && u.Host != "" {
		target = u.Host
	}
	conn, err := s.lease.conn(target)
	if err != nil {
		return leaderLink{}, err
	}
	return leaderLink{target: target, cli: pb.NewLeaseClient(conn)}, nil
}

func (ls *leaseSide) conn(target string) (*grpc.ClientConn, error) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if c, ok := ls.conns[target]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(gogoCodec{})))
	if err != nil {
		return nil, fmt.Errorf("server: connect to leader at %s: %w", target, err)
	}
	if ls.conns == nil {
		ls.conns = make(map[string]*grpc.ClientConn)
	}
	ls.conns[target] = c
	return c, nil
}

// renewStreamsPerLeader is how many keepalive streams a follower keeps open
// to the leader for the renewals of all its clients: the leader answers
// each stream in order, so a few let it use more than one core.
const renewStreamsPerLeader = 4

// renewStream carries renewals forwarded to the leader on one long-lived
// keepalive stream instead of a stream per request. The leader answers a
// stream's requests in order, so responses are matched to waiters first in,
// first out.
type renewStream struct {
	ls     *leaseSide
	target string
	stream pb.Lease_LeaseKeepAliveClient
	cancel context.CancelFunc

	mu      sync.Mutex
	pending []chan renewResult
	err     error
}

type renewResult struct {
	ttl int64
	err error
}

// forwardRenew renews lease id on the leader through one of the shared
// streams.
func (ls *leaseSide) forwardRenew(ctx context.Context, l leaderLink, id int64) (int64, error) {
	rs, err := ls.renewStream(ctx, l)
	if err != nil {
		return 0, err
	}
	ch := make(chan renewResult, 1)
	rs.mu.Lock()
	if rs.err != nil {
		err = rs.err
	} else {
		rs.pending = append(rs.pending, ch)
		if err = rs.stream.Send(&pb.LeaseKeepAliveRequest{ID: id}); err != nil {
			rs.pending = rs.pending[:len(rs.pending)-1]
		}
	}
	rs.mu.Unlock()
	if err != nil {
		rs.fail(err)
		return 0, asUnavailable(err)
	}
	select {
	case r := <-ch:
		if r.err == nil && r.ttl <= 0 {
			return 0, lease.ErrLeaseNotFound
		}
		return r.ttl, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (ls *leaseSide) renewStream(ctx context.Context, l leaderLink) (*renewStream, error) {
	i := int(ls.next.Add(1) % renewStreamsPerLeader)
	ls.mu.Lock()
	if rs := ls.streams[l.target]; rs != nil && rs[i] != nil {
		ls.mu.Unlock()
		return rs[i], nil
	}
	ls.mu.Unlock()

	// The stream outlives this request, but opening it must not: give up
	// when the request does.
	sctx, cancel := context.WithCancel(forwardContext(context.Background()))
	opened := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			cancel()
		case <-opened:
		}
	}()
	stream, err := l.cli.LeaseKeepAlive(sctx)
	close(opened)
	if err != nil {
		cancel()
		return nil, asUnavailable(err)
	}
	rs := &renewStream{ls: ls, target: l.target, stream: stream, cancel: cancel}

	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.streams == nil {
		ls.streams = make(map[string][]*renewStream)
	}
	set := ls.streams[l.target]
	if set == nil {
		set = make([]*renewStream, renewStreamsPerLeader)
		ls.streams[l.target] = set
	}
	if set[i] != nil {
		// Another request opened one first.
		cancel()
		return set[i], nil
	}
	set[i] = rs
	go rs.recvLoop()
	return rs, nil
}

func (rs *renewStream) recvLoop() {
	for {
		resp, err := rs.stream.Recv()
		if err != nil {
			rs.fail(err)
			return
		}
		rs.mu.Lock()
		if len(rs.pending) == 0 {
			rs.mu.Unlock()
			rs.fail(errors.New("server: unexpected keepalive response from the leader"))
			return
		}
		ch := rs.pending[0]
		rs.pending[0] = nil
		rs.pending = rs.pending[1:]
		rs.mu.Unlock()
		ch <- renewResult{ttl: resp.TTL}
	}
}

// fail ends the stream: waiters get a retryable error (their renewals may
// be sent again, to whoever leads), and the next request opens a new stream.
func (rs *renewStream) fail(err error) {
	err = asUnavailable(err)
	rs.mu.Lock()
	if rs.err == nil {
		rs.err = err
	}
	pending := rs.pending
	rs.pending = nil
	rs.mu.Unlock()
	for _, ch := range pending {
		ch <- renewResult{err: err}
	}
	rs.cancel()
	ls := rs.ls
	ls.mu.Lock()
	for i, x := range ls.streams[rs.target] {
		if x == rs {
			ls.streams[rs.target][i] = nil
		}
	}
	ls.mu.Unlock()
}

// asUnavailable keeps gRPC errors and turns others into Unavailable, which
// the forwarding loop retries.
func asUnavailable(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.Unavailable, err.Error())
}

func (ls *leaseSide) closeConns() {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for t, set := range ls.streams {
		for _, rs := range set {
			if rs != nil {
				rs.cancel()
			}
		}
		delete(ls.streams, t)
	}
	for t, c := range ls.conns {
		c.Close()
		delete(ls.conns, t)
	}
}

// gogoCodec marshals etcd's gogo-generated messages with their generated
// methods, for the requests this member forwards to the leader.
type gogoCodec struct{}

type gogoMessage interface {
	Size() int
	MarshalTo([]byte) (int, error)
	Unmarshal([]byte) error
}

func (gogoCodec) Marshal(v any) ([]byte, error) {
	m, ok := v.(gogoMessage)
	if !ok {
		return nil, fmt.Errorf("server: cannot marshal %T", v)
	}
	buf := make([]byte, m.Size())
	n, err := m.MarshalTo(buf)
	return buf[:n], err
}

func (gogoCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(gogoMessage)
	if !ok {
		return fmt.Errorf("server: cannot unmarshal into %T", v)
	}
	return m.Unmarshal(data)
}

func (gogoCodec) Name() string { return "proto" }
