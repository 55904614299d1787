package server

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"ensemble/internal/apply"
	"ensemble/internal/types"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/raft/v3"
)

// idGenerator makes request ids unique across the cluster: the low bits of the
// member id, then the start time, then a counter. Every member's apply loop
// sees every id, so two members must never hand out the same one.
type idGenerator struct {
	prefix uint64
	next   atomic.Uint64
}

func (g *idGenerator) init(id types.MemberID) {
	g.prefix = uint64(id) << 48
	g.next.Store(uint64(time.Now().UnixMilli()&(1<<40-1)) << 8)
}

func (g *idGenerator) id() uint64 { return g.prefix | (g.next.Add(1) & (1<<48 - 1)) }

// waitRegistry matches applied results to the requests waiting for them.
type waitRegistry struct {
	mu sync.Mutex
	m  map[uint64]chan *apply.Result
}

func (w *waitRegistry) register(id uint64) <-chan *apply.Result {
	ch := make(chan *apply.Result, 1)
	w.mu.Lock()
	if w.m == nil {
		w.m = make(map[uint64]chan *apply.Result)
	}
	w.m[id] = ch
	w.mu.Unlock()
	return ch
}

func (w *waitRegistry) trigger(id uint64, r *apply.Result) {
	w.mu.Lock()
	ch, ok := w.m[id]
	delete(w.m, id)
	w.mu.Unlock()
	if ok {
		ch <- r
	}
}

func (w *waitRegistry) cancel(id uint64) {
	w.mu.Lock()
	delete(w.m, id)
	w.mu.Unlock()
}

func (w *waitRegistry) failAll(err error) {
	w.mu.Lock()
	for id, ch := range w.m {
		ch <- &apply.Result{Err: err}
		delete(w.m, id)
	}
	w.mu.Unlock()
}

// appliedWaiter lets requests wait until the apply loop reaches an index.
type appliedWaiter struct {
	mu      sync.Mutex
	index   uint64
	waiters []appliedWait
}

type appliedWait struct {
	index uint64
	ch    chan struct{}
}

func (a *appliedWaiter) current() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.index
}

func (a *appliedWaiter) set(index uint64) {
	a.mu.Lock()
	a.index = index
	kept := a.waiters[:0]
	for _, w := range a.waiters {
		if w.index <= index {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	a.waiters = kept
	a.mu.Unlock()
}

// wait returns a channel closed once index is applied.
func (a *appliedWaiter) wait(index uint64) <-chan struct{} {
	ch := make(chan struct{})
	a.mu.Lock()
	if index <= a.index {
		close(ch)
	} else {
		a.waiters = append(a.waiters, appliedWait{index: index, ch: ch})
	}
	a.mu.Unlock()
	return ch
}

// withTimeout bounds a request by the server's own timeout when the client
// gave no deadline, so that nothing waits forever on a cluster without quorum.
func (s *Server) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, s.RequestTimeout())
}

// waitLeader waits, up to one election timeout, for the cluster to have a
// leader, so that a request sent during an election does not fail needlessly
// while one sent to a member cut off from quorum fails fast.
func (s *Server) waitLeader(ctx context.Context) error {
	if s.node.Leader() != 0 {
		return nil
	}
	t := time.NewTimer(s.cfg.ElectionTimeout)
	defer t.Stop()
	for s.node.Leader() == 0 {
		select {
		case <-s.node.LeaderChanged():
		case <-t.C:
			return ErrNoLeader
		case <-ctx.Done():
			return ErrNoLeader
		case <-s.stopping:
			return ErrStopped
		}
	}
	return nil
}

// propose replicates r through raft and waits until it is applied here.
func (s *Server) propose(ctx context.Context, r *pb.InternalRaftRequest) (*apply.Result, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	r.Header = &pb.RequestHeader{ID: s.reqIDs.id()}
	data, err := apply.EncodeEtcd(r)
	if err != nil {
		return nil, err
	}
	if len(data) > s.cfg.MaxRequestBytes {
		return nil, ErrRequestTooLarge
	}
	if err := s.waitLeader(ctx); err != nil {
		return nil, err
	}
	id := r.Header.ID
	ch := s.waits.register(id)
	for {
		err = s.node.Propose(ctx, data)
		if !errors.Is(err, raft.ErrProposalDropped) {
			break
		}
		// The leader went away between our check and the proposal: wait for
		// the next one rather than fail a request the cluster could serve.
		if err = s.waitLeader(ctx); err != nil {
			break
		}
		select {
		case <-s.node.LeaderChanged():
		case <-time.After(s.cfg.HeartbeatInterval):
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			break
		}
	}
	if err != nil {
		s.waits.cancel(id)
		return nil, s.proposeErr(err)
	}
	for {
		leaderChanged := s.node.LeaderChanged()
		select {
		case res := <-ch:
			return res, nil
		case <-leaderChanged:
			// Losing the leader leaves the outcome unknown; if no new leader
			// appears within an election timeout, say so now rather than at
			// the deadline.
			if err := s.waitLeader(ctx); err != nil {
				s.waits.cancel(id)
				return nil, err
			}
		case <-ctx.Done():
			s.waits.cancel(id)
			return nil, s.proposeErr(ctx.Err())
		case <-s.stopping:
			s.waits.cancel(id)
			return nil, ErrStopped
		}
	}
}

func (s *Server) proposeErr(err error) error {
	switch {
	case errors.Is(err, ErrNoLeader), errors.Is(err, ErrStopped):
		return err
	case errors.Is(err, context.Canceled):
		return err
	case s.node.Leader() == 0:
		return ErrNoLeader
	}
	return ErrTimeout
}
