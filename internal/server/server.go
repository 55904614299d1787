// Package server is the composition root of a member: it bootstraps storage
// and raft, turns requests into proposals, serves linearizable reads through
// raft's read index, runs the apply loop, and exposes narrow methods that the
// front ends (internal/api/...) consume.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"ensemble/internal/apply"
	"ensemble/internal/backend"
	"ensemble/internal/config"
	"ensemble/internal/mvcc"
	"ensemble/internal/raftnode"
	"ensemble/internal/snap"
	"ensemble/internal/transport"
	"ensemble/internal/types"
	"ensemble/internal/wal"
	"ensemble/internal/watch"

	"go.etcd.io/raft/v3/raftpb"
)

// Errors of the server layer; the front ends map them to their wire errors.
var (
	ErrStopped         = errors.New("server: stopped")
	ErrNoLeader        = errors.New("server: no leader")
	ErrTimeout         = errors.New("server: request timed out")
	ErrRequestTooLarge = errors.New("server: request is too large")
	ErrLeaderChanged   = errors.New("server: leader changed")
)

// Server is one running member.
type Server struct {
	cfg *config.Config
	lg  *slog.Logger

	id        types.MemberID
	clusterID types.ClusterID
	members   *membership

	dirs     dataDirs
	wal      *wal.WAL
	snapshot *snap.Snapshotter
	be       atomic.Pointer[backend.Backend]
	kv       atomic.Pointer[mvcc.Store]
	applier  *apply.Applier
	lease    leaseSide
	watches  *watch.Hub
	// observers feed the watch hub and the ZooKeeper front end.
	observers observers

	node      *raftnode.Node
	transport *transport.Transport
	peerLn    []net.Listener

	reqIDs   idGenerator
	waits    waitRegistry
	applied  appliedWaiter
	reads    readBatcher
	stopping chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup

	// Owned by the apply loop.
	appliedIndex uint64
	appliedTerm  uint64
	snapIndex    uint64
	confState    raftpb.ConfState

	raftErr            atomic.Pointer[error]
	nodeReady          atomic.Bool // node is set; the transport may deliver
	snapshotsInstalled atomic.Uint64
}

// ID is this member's id.
func (s *Server) ID() types.MemberID { return s.id }

// ClusterID is the cluster's id.
func (s *Server) ClusterID() types.ClusterID { return s.clusterID }

// Leader is the current leader's id, or 0.
func (s *Server) Leader() types.MemberID { return types.MemberID(s.node.Leader()) }

// Term is the current raft term.
func (s *Server) Term() uint64 { return s.node.Term() }

// Members lists the cluster's members.
func (s *Server) Members() []Member { return s.members.list() }

// KV is the current key-value store (replaced when a snapshot is installed).
func (s *Server) KV() *mvcc.Store { return s.kv.Load() }

// Status is a point-in-time view of the member for the Maintenance service.
type Status struct {
	Leader       types.MemberID
	Term         uint64
	RaftIndex    uint64
	AppliedIndex uint64
	DBSize       int64
	DBSizeInUse  int64
	Errors       []string
	// SnapshotsInstalled counts databases received from a leader and
	// installed since this process started.
	SnapshotsInstalled uint64
	IsLearner          bool
	// DBSizeQuota is --quota-backend-bytes in effect.
	DBSizeQuota int64
}

// Status reports the member's raft and storage state.
func (s *Server) Status() Status {
	st := s.node.Status()
	out := Status{
		Leader:       types.MemberID(st.Lead),
		Term:         st.Term,
		RaftIndex:    st.Commit,
		AppliedIndex: s.applied.current(),
		DBSize:       s.be.Load().Size(),
		DBSizeInUse:  s.be.Load().SizeInUse(),

		SnapshotsInstalled: s.snapshotsInstalled.Load(),
	}
	if err := s.node.Err(); err != nil {
		out.Errors = append(out.Errors, err.Error())
	}
	s.addMaintenanceStatus(&out)
	return out
}

// RequestTimeout is how long the server lets a request wait for the cluster
// when the client set no deadline, as etcd: 5 s plus two election timeouts.
func (s *Server) RequestTimeout() time.Duration { return 5*time.Second + 2*s.cfg.ElectionTimeout }

// MaxRequestBytes is the largest request the server accepts.
func (s *Server) MaxRequestBytes() int { return s.cfg.MaxRequestBytes }

// MaxTxnOps is the most operations a txn may hold in one branch.
func (s *Server) MaxTxnOps() int { return s.cfg.MaxTxnOps }

// Done is closed once the server has stopped.
func (s *Server) Done() <-chan struct{} { return s.done }

// Stop shuts the member down gracefully: a leader first hands leadership to
// the most up-to-date follower, so that the cluster keeps serving without
// waiting out an election timeout; then raft and storage stop.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		s.transferLeadershipOnStop()
		close(s.stopping)
		s.node.Stop()
		s.wg.Wait()
		s.watches.Close()
		s.transport.Close()
		for _, l := range s.peerLn {
			l.Close()
		}
		s.waits.failAll(ErrStopped)
		if kv := s.kv.Load(); kv != nil {
			kv.Close()
		}
		s.be.Load().Close()
		s.wal.Close()
		close(s.done)
	})
}

// Failed is closed when raft stopped, by Stop or because of a fatal error
// (see Err).
func (s *Server) Failed() <-chan struct{} { return s.node.Done() }

// HandOffLeadership moves leadership to the most up-to-date follower if this
// member leads; it is the first step of a graceful stop, taken while the
// client front ends still serve.
func (s *Server) HandOffLeadership() { s.transferLeadershipOnStop() }

func (s *Server) transferLeadershipOnStop() {
	if !s.node.IsLeader() || len(s.members.list()) < 2 {
		return
	}
	st := s.node.Status()
	var best uint64
	var bestMatch uint64
	for id, pr := range st.Progress {
		if id == uint64(s.id) || pr.IsLearner {
			continue
		}
		if pr.Match >= bestMatch {
			best, bestMatch = id, pr.Match
		}
	}
	if best == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ElectionTimeout*2)
	defer cancel()
	if err := s.node.TransferLeadership(ctx, best); err != nil {
		s.lg.Warn("leadership transfer before stop failed", "transferee", types.MemberID(best), "err", err)
		return
	}
	s.lg.Info("leadership transferred before stop", "to", types.MemberID(best))
}

func (s *Server) fatal(err error) {
	s.raftErr.CompareAndSwap(nil, &err)
	s.lg.Error("member failed", "err", err)
}

// Err is the error that made the member fail, if any.
func (s *Server) Err() error {
	if p := s.raftErr.Load(); p != nil {
		return *p
	}
	return s.node.Err()
}

func wrapf(err error, format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), err)
}
