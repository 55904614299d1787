package recipes

import (
	"context"
	"errors"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Barrier holds back any number of waiters until someone releases it.
//
// Layout: the barrier is up while KEY exists.
//
// Guarantee: Wait returns only after KEY has been seen absent, at a
// revision at or after Wait was called.
//
// Failure behaviour: the key is not tied to a lease, so a holder that
// crashes leaves the barrier up until someone calls Release (any process
// may). Waiters cut off from the cluster keep waiting until ctx ends.
type Barrier struct {
	cli *clientv3.Client
	key string
}

// NewBarrier returns the barrier at key.
func NewBarrier(cli *clientv3.Client, key string) *Barrier {
	return &Barrier{cli: cli, key: key}
}

// Hold raises the barrier (a no-op if it is already up).
func (b *Barrier) Hold(ctx context.Context) error {
	_, err := b.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(b.key), "=", 0)).
		Then(clientv3.OpPut(b.key, "")).
		Commit()
	return err
}

// Release lowers the barrier and lets every waiter through.
func (b *Barrier) Release(ctx context.Context) error {
	_, err := b.cli.Delete(ctx, b.key)
	return err
}

// Wait blocks until the barrier is down or ctx ends.
func (b *Barrier) Wait(ctx context.Context) error {
	g, err := b.cli.Get(ctx, b.key)
	if err != nil {
		return err
	}
	if len(g.Kvs) == 0 {
		return nil
	}
	return waitDelete(ctx, b.cli, b.key, g.Header.Revision, nil)
}

// DoubleBarrier lets n participants start a computation together and finish
// it together.
//
// Layout: participants own NAME/waiters/<lease>, attached to their
// session's lease; NAME/ready exists from the moment the n-th participant
// entered until the last one left.
//
// Guarantee: Enter returns only once n participants have entered (later
// ones pass straight through while the round lasts); Leave returns only
// once every participant of the round has left. A name may be used for a
// new round once every participant has returned from Leave.
//
// Failure behaviour: a participant whose session ends (crash, or stall or
// partition longer than the TTL) loses its key. Before the round starts it
// no longer counts towards n, so the others keep waiting for a
// replacement; during the round it counts as having left, so the others'
// Leave is not blocked forever. Callers whose own session ends get
// ErrSessionExpired.
type DoubleBarrier struct {
	s     *concurrency.Session
	pfx   string
	n     int
	key   string
	token int64
}

// NewDoubleBarrier returns the double barrier called name for n
// participants, for session s.
func NewDoubleBarrier(s *concurrency.Session, name string, n int) *DoubleBarrier {
	return &DoubleBarrier{s: s, pfx: prefixOf(name), n: max(n, 1)}
}

// Enter registers the caller and blocks until n participants have entered.
func (d *DoubleBarrier) Enter(ctx context.Context) error {
	cli := d.s.Client()
	wpfx := d.pfx + "waiters/"
	ready := d.pfx + "ready"
	key := sessionKey(wpfx, d.s.Lease())
	rev, err := createOwn(ctx, cli, key, "", d.s.Lease())
	if err != nil {
		return err
	}
	d.key, d.token = key, rev
	// Counting and raising ready in one transaction would need a count
	// comparison etcd does not have; count first, and let every
	// participant that sees n raise ready (idempotently).
	g, err := cli.Get(ctx, wpfx, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return err
	}
	if g.Count >= int64(d.n) {
		_, err := cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(ready), "=", 0)).
			Then(clientv3.OpPut(ready, "")).
			Commit()
		return err
	}
	r, err := cli.Get(ctx, ready)
	if err != nil {
		return err
	}
	if len(r.Kvs) > 0 {
		return nil
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := cli.Watch(wctx, ready, clientv3.WithRev(r.Header.Revision+1), clientv3.WithFilterDelete())
	for {
		select {
		case <-d.s.Done():
			return ErrSessionExpired
		case <-ctx.Done():
			return ctx.Err()
		case wr, ok := <-wch:
			if !ok || wr.Err() != nil {
				// Look again on a broken watch rather than guess.
				cancel()
				return d.Enter(ctx)
			}
			if len(wr.Events) > 0 {
				return nil
			}
		}
	}
}

// Leave deregisters the caller and blocks until every participant has left.
func (d *DoubleBarrier) Leave(ctx context.Context) error {
	cli := d.s.Client()
	wpfx := d.pfx + "waiters/"
	if d.key != "" {
		if err := deleteOwn(ctx, cli, d.key, d.token); err != nil && !errors.Is(err, ErrNotHeld) {
			return err
		}
		d.key, d.token = "", 0
	}
	for {
		g, err := cli.Get(ctx, wpfx, append([]clientv3.OpOption{clientv3.WithPrefix()}, clientv3.WithLastCreate()...)...)
		if err != nil {
			return err
		}
		if len(g.Kvs) == 0 {
			// The last one out lowers ready for the next round; several
			// doing so is harmless.
			_, err := cli.Delete(ctx, d.pfx+"ready")
			return err
		}
		// The caller no longer takes part, so its own session ending does
		// not matter here.
		if err := waitDelete(ctx, cli, string(g.Kvs[0].Key), g.Header.Revision, nil); err != nil {
			return err
		}
	}
}
