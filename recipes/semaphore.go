package recipes

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// errNoSlot means every slot was taken although this caller was among the
// n oldest waiters, which only happens if callers disagree about n.
var errNoSlot = errors.New("recipes: semaphore has no free slot (do all users agree on its size?)")

// Semaphore lets at most n sessions hold it at once, each in one of n
// numbered slots, with a fencing token per slot.
//
// Layout: waiters own NAME/q/<lease>; the n oldest of them (by create
// revision) hold the semaphore, and each holder then claims a free slot
// key NAME/slot/<k>, k in [0, n). Both keys are attached to the session's
// lease and are deleted together. Every user of a name must use the same n.
//
// Guarantee: at most n holders at once; arrival order is kept. Token is the
// create revision of the holder's slot key, and Slot its number. A
// protected resource remembers, per slot, the highest token it accepted and
// refuses a request whose token is lower than that of its slot: then at
// most one holder per slot, and so at most n holders in all, get through,
// even when some of them are stale.
//
// Failure behaviour: a holder whose session ends (crash, stall or partition
// longer than the TTL) loses both keys at once; the next waiter is admitted
// and may be given the same slot with a higher token, which is what makes
// the stale holder's requests fail the resource's check. Waiters whose
// session ends get ErrSessionExpired; those whose ctx ends remove their key.
//
// A Semaphore is used by one goroutine at a time.
type Semaphore struct {
	s     *concurrency.Session
	pfx   string
	n     int
	queue string
	slot  int
	key   string // slot key while held
	token int64
	qrev  int64
}

// NewSemaphore returns the semaphore called name of size n for session s.
func NewSemaphore(s *concurrency.Session, name string, n int) *Semaphore {
	return &Semaphore{s: s, pfx: prefixOf(name), n: max(n, 1), slot: -1}
}

// Acquire blocks until the session holds one of the n places.
func (sm *Semaphore) Acquire(ctx context.Context) error {
	select {
	case <-sm.s.Done():
		return ErrSessionExpired
	default:
	}
	cli := sm.s.Client()
	qpfx := sm.pfx + "q/"
	key := sessionKey(qpfx, sm.s.Lease())
	rev, err := createOwn(ctx, cli, key, "", sm.s.Lease())
	if err != nil {
		return err
	}
	if err := sm.waitTurn(ctx, cli, qpfx, rev); err != nil {
		abandon(cli, key, rev)
		return err
	}
	if err := stillOwned(ctx, cli, key, rev); err != nil {
		return err
	}
	sm.queue, sm.qrev = key, rev
	if err := sm.claimSlot(ctx, cli); err != nil {
		sm.releaseKeys(cli)
		return err
	}
	return nil
}

// waitTurn waits until fewer than n waiters are older than rev.
func (sm *Semaphore) waitTurn(ctx context.Context, cli *clientv3.Client, qpfx string, rev int64) error {
	done := sm.s.Done()
	for {
		// Not CountOnly: etcd counts before it applies the revision filter.
		g, err := cli.Get(ctx, qpfx, clientv3.WithPrefix(), clientv3.WithMaxCreateRev(rev-1), clientv3.WithKeysOnly())
		if err != nil {
			return err
		}
		if len(g.Kvs) < sm.n {
			return nil
		}
		// Any departure among the older waiters may be the one that lets
		// this caller in; deletions of younger ones wake it needlessly but
		// harmlessly.
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		wch := cli.Watch(wctx, qpfx, clientv3.WithPrefix(), clientv3.WithRev(g.Header.Revision+1), clientv3.WithFilterPut())
		woke := false
		for !woke {
			select {
			case <-done:
				cancel()
				return ErrSessionExpired
			case <-ctx.Done():
				cancel()
				return ctx.Err()
			case wr, ok := <-wch:
				woke = !ok || wr.Err() != nil || len(wr.Events) > 0
			}
		}
		cancel()
	}
}

// claimSlot takes the lowest free slot.
func (sm *Semaphore) claimSlot(ctx context.Context, cli *clientv3.Client) error {
	me := fmt.Sprintf("%x", int64(sm.s.Lease()))
	for k := range sm.n {
		key := sm.pfx + "slot/" + strconv.Itoa(k)
		resp, err := cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, me, clientv3.WithLease(sm.s.Lease()))).
			Else(clientv3.OpGet(key)).
			Commit()
		if err != nil {
			return err
		}
		if resp.Succeeded {
			sm.slot, sm.key, sm.token = k, key, resp.Header.Revision
			return nil
		}
		if kv := resp.Responses[0].GetResponseRange().Kvs[0]; string(kv.Value) == me {
			sm.slot, sm.key, sm.token = k, key, kv.CreateRevision
			return nil
		}
	}
	return errNoSlot
}

// Release gives the place back. It returns ErrNotHeld if it was lost in
// the meantime.
func (sm *Semaphore) Release(ctx context.Context) error {
	if sm.queue == "" {
		return ErrNotHeld
	}
	resp, err := sm.s.Client().Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(sm.key), "=", sm.token)).
		Then(clientv3.OpDelete(sm.key), clientv3.OpDelete(sm.queue)).
		Commit()
	if err != nil {
		return err
	}
	sm.queue, sm.key, sm.token, sm.slot = "", "", 0, -1
	if !resp.Succeeded {
		return ErrNotHeld
	}
	return nil
}

func (sm *Semaphore) releaseKeys(cli *clientv3.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	_, _ = cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(sm.queue), "=", sm.qrev)).
		Then(clientv3.OpDelete(sm.queue)).
		Commit()
	sm.queue, sm.qrev = "", 0
}

// Token is the fencing token of the current hold (0 when not held).
func (sm *Semaphore) Token() int64 { return sm.token }

// Slot is the slot of the current hold (-1 when not held).
func (sm *Semaphore) Slot() int { return sm.slot }

// Done closes when the session ends, after which nothing is held.
func (sm *Semaphore) Done() <-chan struct{} { return sm.s.Done() }
