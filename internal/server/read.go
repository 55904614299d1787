package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"sync"
	"time"
)

// readBatcher gathers linearizable reads so that all the reads waiting at one
// moment share a single ReadIndex round trip to the leader.
type readBatcher struct {
	mu   sync.Mutex
	cur  *readNotice
	wake chan struct{}
}

type readNotice struct {
	done chan struct{}
	err  error
}

func newReadNotice() *readNotice { return &readNotice{done: make(chan struct{})} }

func (r *readBatcher) init() {
	r.cur = newReadNotice()
	r.wake = make(chan struct{}, 1)
}

// linearizableRead returns once the local store reflects every write that
// was committed before it was called.
func (s *Server) linearizableRead(ctx context.Context) error {
	s.reads.mu.Lock()
	n := s.reads.cur
	s.reads.mu.Unlock()
	select {
	case s.reads.wake <- struct{}{}:
	default:
	}
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	select {
	case <-n.done:
		return n.err
	case <-ctx.Done():
		return s.proposeErr(ctx.Err())
	case <-s.stopping:
		return ErrStopped
	}
}

func (s *Server) readLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.reads.wake:
		case <-s.stopping:
			return
		}
		s.reads.mu.Lock()
		n := s.reads.cur
		s.reads.cur = newReadNotice()
		s.reads.mu.Unlock()

		index, err := s.readIndex()
		if err == nil {
			select {
			case <-s.applied.wait(index):
			case <-s.stopping:
				err = ErrStopped
			}
		}
		n.err = err
		close(n.done)
	}
}

// readIndex asks raft for the commit index as confirmed by a quorum.
func (s *Server) readIndex() (uint64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.RequestTimeout())
	defer cancel()
	if err := s.waitLeader(ctx); err != nil {
		return 0, err
	}
	var rctx [8]byte
	binary.BigEndian.PutUint64(rctx[:], s.reqIDs.id())
	leaderChanged := s.node.LeaderChanged()
	if err := s.node.ReadIndex(ctx, rctx[:]); err != nil {
		return 0, s.proposeErr(err)
	}
	// A ReadIndex request can be dropped (a leader that just took over, a lost
	// message); ask again rather than wait out the whole timeout.
	retry := time.NewTicker(s.cfg.HeartbeatInterval * 5)
	defer retry.Stop()
	for {
		select {
		case rs := <-s.node.ReadStates():
			if bytes.Equal(rs.RequestCtx, rctx[:]) {
				return rs.Index, nil
			}
		case <-leaderChanged:
			// The new leader must confirm the index again.
			leaderChanged = s.node.LeaderChanged()
			if err := s.waitLeader(ctx); err != nil {
				return 0, err
			}
			if err := s.node.ReadIndex(ctx, rctx[:]); err != nil {
				return 0, s.proposeErr(err)
			}
		case <-retry.C:
			if err := s.node.ReadIndex(ctx, rctx[:]); err != nil {
				return 0, s.proposeErr(err)
			}
		case <-ctx.Done():
			return 0, s.proposeErr(ctx.Err())
		case <-s.stopping:
			return 0, ErrStopped
		}
	}
}
