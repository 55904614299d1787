package server

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"ensemble/internal/apply"
	"ensemble/internal/lease"
	"ensemble/internal/mvcc"
	"ensemble/internal/zktree"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// ZKObserver receives every revision the member applies, like the watch hub,
// and is told when a snapshot from the leader replaces the store. The
// ZooKeeper front end fires its watches from it.
type ZKObserver interface {
	mvcc.Observer
	Reset(rev int64)
}

// observers hands each applied revision to the watch hub and to the
// ZooKeeper front end, if one is attached.
type observers struct {
	hub mvcc.Observer
	zk  atomic.Pointer[zkObserverSlot]
}

type zkObserverSlot struct{ o ZKObserver }

func (o *observers) Notify(rev int64, changes []mvccpb.KeyValue) {
	o.hub.Notify(rev, changes)
	if z := o.zk.Load(); z != nil {
		z.o.Notify(rev, changes)
	}
}

// ObserveZK makes o the ZooKeeper front end's observer (nil: none).
func (s *Server) ObserveZK(o ZKObserver) {
	if o == nil {
		s.observers.zk.Store(nil)
		return
	}
	s.observers.zk.Store(&zkObserverSlot{o: o})
}

// resetZK tells the ZooKeeper front end that a snapshot replaced the store.
func (s *Server) resetZK(rev int64) {
	if z := s.observers.zk.Load(); z != nil {
		z.o.Reset(rev)
	}
}

// ProposeZK replicates a ZooKeeper command and returns its result once it is
// applied on this member. Like every proposal it is applied exactly once.
func (s *Server) ProposeZK(ctx context.Context, c *zktree.Command) (zktree.Result, error) {
	ctx, cancel := s.withTimeout(ctx)
	defer cancel()
	id := s.reqIDs.id()
	encode := func(term uint64) ([]byte, error) { return apply.EncodeZK(id, c, term) }
	data, err := encode(0)
	if err != nil {
		return zktree.Result{}, err
	}
	if len(data) > s.cfg.MaxRequestBytes {
		return zktree.Result{}, ErrRequestTooLarge
	}
	if err := s.waitLeader(ctx); err != nil {
		return zktree.Result{}, err
	}
	res, err := s.proposeOnce(ctx, id, encode)
	if err != nil {
		return zktree.Result{}, err
	}
	zr, ok := res.Resp.(zktree.Result)
	if !ok {
		return zktree.Result{}, errors.New("server: ZooKeeper command without a ZooKeeper result")
	}
	return zr, nil
}

// Sync returns once this member has applied everything committed before the
// call: ZooKeeper's sync, as a read-index barrier.
func (s *Server) Sync(ctx context.Context) error { return s.linearizableRead(ctx) }

// RenewSession renews the lease of ZooKeeper session id through the leader;
// lease.ErrLeaseNotFound if the session is gone.
func (s *Server) RenewSession(ctx context.Context, id int64) error {
	resp, err := s.LeaseKeepAlive(ctx, id)
	if err != nil {
		return err
	}
	if resp.TTL <= 0 {
		return lease.ErrLeaseNotFound
	}
	return nil
}

// zkReapInterval is how often the leader looks for TTL nodes to delete.
// ZooKeeper looks once a minute by default; TTLs are usually seconds to
// minutes, so a second keeps expiry close to the TTL at little cost (the
// look is a range over the TTL index only).
const zkReapInterval = time.Second

// zkReaper deletes, on the leader, TTL nodes whose TTL ran out, through the
// log like any other ZooKeeper write.
func (s *Server) zkReaper() {
	defer s.wg.Done()
	tick := time.NewTicker(zkReapInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-s.stopping:
			return
		}
		if !s.node.IsLeader() {
			continue
		}
		expired, err := zktree.ExpiredTTLs(s.KV(), time.Now().UnixMilli(), 100)
		if err != nil {
			s.lg.Warn("looking for expired TTL nodes", "err", err)
			continue
		}
		for i := range expired {
			c := &zktree.Command{Time: time.Now().UnixMilli(), Op: zktree.OpExpireTTL, Req: &expired[i]}
			ctx, cancel := context.WithTimeout(context.Background(), s.RequestTimeout())
			_, err := s.ProposeZK(ctx, c)
			cancel()
			if err != nil {
				s.lg.Debug("expiring a TTL node", "path", expired[i].Path, "err", err)
				break
			}
		}
	}
}
