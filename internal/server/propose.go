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

// waitRegistry matches applied results to the requests waiting for them. A
// request may get several results (skipped stale attempts, then the applied
// one), so a registration lasts until it is cancelled.
type waitRegistry struct {
	mu sync.Mutex
	m  map[uint64]chan *apply.Result
}

// resultsPerRequest bounds the results buffered for one request: one per
// attempt, and attempts are few (one per term in which one is lost).
const resultsPerRequest = 16

func (w *waitRegistry) register(id uint64) <-chan *apply.Result {
	ch := make(chan *apply.Result, resultsPerRequest)
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
	w.mu.Unlock()
	if ok {
		select {
		case ch <- r:
		default: // the waiter has stopped reading; it cancels soon
		}
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

// appliedWaiter lets requests wait until the apply loop reaches an index, or
// applies an entry of a given term.
type appliedWaiter struct {
	mu      sync.Mutex
	index   uint64
	term    uint64
	waiters []appliedWait
}

type appliedWait struct {
	index, term uint64 // one of them is set
	ch          chan struct{}
}

func (a *appliedWaiter) current() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.index
}

func (a *appliedWaiter) set(index, term uint64) {
	a.mu.Lock()
	a.index, a.term = index, max(a.term, term)
	kept := a.waiters[:0]
	for _, w := range a.waiters {
		if (w.index != 0 && w.index <= index) || (w.term != 0 && w.term <= a.term) {
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
	return a.add(appliedWait{index: index, ch: make(chan struct{})})
}

// waitTerm returns a channel closed once an entry of term (or later) is applied.
func (a *appliedWaiter) waitTerm(term uint64) <-chan struct{} {
	return a.add(appliedWait{term: max(term, 1), ch: make(chan struct{})})
}

func (a *appliedWaiter) add(w appliedWait) <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	if (w.index != 0 && w.index <= a.index) || (w.term != 0 && w.term <= a.term) {
		close(w.ch)
	} else {
		a.waiters = append(a.waiters, w)
	}
	return w.ch
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
	if err := s.checkQuota(ctx, r); err != nil {
		return nil, err
	}
	r.Header = &pb.RequestHeader{ID: s.reqIDs.id()}
	if r.Size()+9 > s.cfg.MaxRequestBytes {
		return nil, ErrRequestTooLarge
	}
	if err := s.waitLeader(ctx); err != nil {
		return nil, err
	}
	return s.proposeOnce(ctx, r.Header.ID, etcdEncoder(r))
}

// etcdEncoder encodes r for the log, stamped with an attempt's term.
func etcdEncoder(r *pb.InternalRaftRequest) func(term uint64) ([]byte, error) {
	return func(term uint64) ([]byte, error) { return apply.EncodeEtcd(r, term) }
}

// proposeOnce gets r applied exactly once and returns its result.
//
// Each attempt is stamped with the term this member sees when it makes it,
// and the apply loop skips, on every member alike, an entry that reached the
// log in another term (apply.EncodeEtcd). So an attempt can only be applied
// within its own term: once an entry of a later term has been applied here,
// an earlier attempt that has not been applied never will be, wherever it is
// (lost with a leader, dropped during a hand-off, or still travelling through
// a paused member). A new attempt is made only then, and only in a later
// term than the last one, so no two attempts can both be applied.
//
// id is the request id the apply loop answers; encode encodes the request
// for the log, stamped with the attempt's term.
func (s *Server) proposeOnce(ctx context.Context, id uint64, encode func(term uint64) ([]byte, error)) (*apply.Result, error) {
	ch := s.waits.register(id)
	defer s.waits.cancel(id)
	var attemptTerm uint64
	for {
		// Watch for a leader change from before the attempt is handed over,
		// so that none can slip between the two unnoticed.
		leaderChanged := s.node.LeaderChanged()
		attemptTerm = s.node.Term()
		data, err := encode(attemptTerm)
		if err != nil {
			return nil, err
		}
		if err := s.proposeUntilAccepted(ctx, data); err != nil {
			return nil, s.proposeErr(err)
		}
	wait:
		for {
			select {
			case res := <-ch:
				if !errors.Is(res.Err, apply.ErrStaleProposal) {
					return res, nil
				}
				if res.StaleTerm != attemptTerm {
					// An older attempt, already known dead, surfacing late;
					// the current one is still on its way.
					continue
				}
				// The current attempt reached the log in another term and
				// was skipped everywhere: it is dead, make another.
				break wait
			case <-leaderChanged:
				leaderChanged = s.node.LeaderChanged()
				if err := s.waitLeader(ctx); err != nil {
					return nil, err
				}
				if s.node.Term() <= attemptTerm {
					// Same term: the attempt is still either on its way into
					// this term's log or refused by its leader; a refusal
					// ends the term (a hand-off), which brings us back here.
					continue
				}
				// Once an entry of the new term is applied here, the attempt
				// can never be applied any more.
				if err := s.barrier(ctx); err != nil {
					return nil, s.proposeErr(err)
				}
				// Results that arrived meanwhile: an applied one ends the
				// request; skipped ones only confirm what the barrier proved.
				for drained := false; !drained; {
					select {
					case res := <-ch:
						if !errors.Is(res.Err, apply.ErrStaleProposal) {
							return res, nil
						}
					default:
						drained = true
					}
				}
				break wait
			case <-ctx.Done():
				return nil, s.proposeErr(ctx.Err())
			case <-s.stopping:
				return nil, ErrStopped
			}
		}
	}
}

// barrier gets an empty request applied here in the current term or later,
// which proves to proposeOnce that older attempts are beyond applying.
func (s *Server) barrier(ctx context.Context) error {
	r := &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: s.reqIDs.id()}}
	_, err := s.proposeOnce(ctx, r.Header.ID, etcdEncoder(r))
	return err
}

// proposeUntilAccepted hands data to raft, waiting out the moments when raft
// refuses proposals outright (no leader yet, a leadership transfer): a
// refused proposal is in no log, so offering it again is safe.
func (s *Server) proposeUntilAccepted(ctx context.Context, data []byte) error {
	for {
		err := s.node.Propose(ctx, data)
		if !errors.Is(err, raft.ErrProposalDropped) {
			return err
		}
		if err := s.waitLeader(ctx); err != nil {
			return err
		}
		select {
		case <-s.node.LeaderChanged():
		case <-time.After(s.cfg.HeartbeatInterval):
		case <-ctx.Done():
			return ctx.Err()
		case <-s.stopping:
			return ErrStopped
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
