// Package recipes provides coordination recipes (fenced locks, elections,
// barriers, queues, counters, service discovery, a configuration centre and
// a consistent-hash ring) built only on the public etcd v3 client, so they
// run against Ensemble and etcd alike.
//
// Every recipe that can outlive a crashed process ties its keys to a
// concurrency.Session: the keys are attached to the session's lease, and
// when the process dies or is cut off for longer than the lease's TTL the
// cluster deletes them. A process cannot learn in time that it has stalled,
// so locks hand out fencing tokens: the revision at which the lock was
// granted. A resource guarded by a lock must remember the highest token it
// has accepted and refuse any request that carries a lower one; see Mutex.
//
// Keys are laid out under the name or prefix each constructor is given;
// the layouts are documented per type so that other languages can join in.
package recipes

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

var (
	// ErrSessionExpired means the session's lease ended (expired, was
	// revoked, or stopped being kept alive) while the call was waiting or
	// holding, so whatever it held is no longer held.
	ErrSessionExpired = errors.New("recipes: session expired")
	// ErrNotHeld is returned when releasing something this caller does not
	// hold, or no longer holds because its key is gone.
	ErrNotHeld = errors.New("recipes: not held")
	// ErrLocked is returned by the Try variants when the lock is taken.
	ErrLocked = errors.New("recipes: locked by another session")
	// ErrNoLeader is returned when an election has no leader.
	ErrNoLeader = errors.New("recipes: election has no leader")
	// ErrLeadershipLost is the cause of a Leadership's context once the
	// leader's key is gone or its session ended.
	ErrLeadershipLost = errors.New("recipes: leadership lost")
	// ErrResigned is the cause of a Leadership's context after Resign.
	ErrResigned = errors.New("recipes: resigned")
	// ErrInvalidConfig wraps every reason a configuration is refused:
	// undecodable values or a failed validation.
	ErrInvalidConfig = errors.New("recipes: invalid configuration")
)

// sessionKey is the key a session owns under pfx: one per session, named by
// its lease so that a key left by a dead process is recognisable and goes
// away with the lease.
func sessionKey(pfx string, lease clientv3.LeaseID) string {
	return fmt.Sprintf("%s%x", pfx, int64(lease))
}

// waitDelete blocks until key, seen at revision rev, is deleted, the
// session ends (done closes) or ctx ends.
func waitDelete(ctx context.Context, cli *clientv3.Client, key string, rev int64, done <-chan struct{}) error {
	for {
		deleted, err := watchForDelete(ctx, cli, key, rev, done)
		if deleted || err != nil {
			return err
		}
		// The watch broke (compaction, leader loss, reconnect): look again
		// rather than assume either outcome.
		g, err := cli.Get(ctx, key)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			select {
			case <-done:
				return ErrSessionExpired
			default:
			}
			pause(ctx, retryPause)
			continue
		}
		if len(g.Kvs) == 0 {
			return nil
		}
		rev = g.Header.Revision
	}
}

// watchForDelete watches key from rev+1 and reports whether it saw the
// key deleted; (false, nil) means the watch ended without telling.
func watchForDelete(ctx context.Context, cli *clientv3.Client, key string, rev int64, done <-chan struct{}) (bool, error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := cli.Watch(wctx, key, clientv3.WithRev(rev+1), clientv3.WithFilterPut())
	for {
		select {
		case <-done:
			return false, ErrSessionExpired
		case <-ctx.Done():
			return false, ctx.Err()
		case wr, ok := <-wch:
			if !ok || wr.Err() != nil {
				return false, nil
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete {
					return true, nil
				}
			}
		}
	}
}

// waitPredecessors blocks until no key under pfx was created before
// revision myRev: the keys are the queue of waiters, and the caller is
// first once all older ones are gone.
func waitPredecessors(ctx context.Context, cli *clientv3.Client, pfx string, myRev int64, done <-chan struct{}) error {
	opts := append([]clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithMaxCreateRev(myRev - 1)}, clientv3.WithLastCreate()...)
	for {
		g, err := cli.Get(ctx, pfx, opts...)
		if err != nil {
			return err
		}
		if len(g.Kvs) == 0 {
			return nil
		}
		// Waiting on the youngest older waiter only, not all of them, keeps
		// a release from waking every waiter at once.
		if err := waitDelete(ctx, cli, string(g.Kvs[0].Key), g.Header.Revision, done); err != nil {
			return err
		}
	}
}

// stillOwned checks that key still exists with the given create revision,
// which is how a waiter proves its session did not expire while it waited.
func stillOwned(ctx context.Context, cli *clientv3.Client, key string, createRev int64) error {
	g, err := cli.Get(ctx, key)
	if err != nil {
		return err
	}
	if len(g.Kvs) == 0 || g.Kvs[0].CreateRevision != createRev {
		return ErrSessionExpired
	}
	return nil
}

// createOwn puts key attached to lease unless it exists, and returns its
// create revision either way (a session may come back to a key it made).
func createOwn(ctx context.Context, cli *clientv3.Client, key, val string, lease clientv3.LeaseID) (int64, error) {
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, val, clientv3.WithLease(lease))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return 0, err
	}
	if resp.Succeeded {
		return resp.Header.Revision, nil
	}
	return resp.Responses[0].GetResponseRange().Kvs[0].CreateRevision, nil
}

// deleteOwn deletes key if it still has createRev; it reports ErrNotHeld
// when the key is already gone or belongs to a newer incarnation.
func deleteOwn(ctx context.Context, cli *clientv3.Client, key string, createRev int64) error {
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", createRev)).
		Then(clientv3.OpDelete(key)).
		Commit()
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		return ErrNotHeld
	}
	return nil
}

// retryPause is how long a recipe waits before asking again after the
// cluster failed to answer; a cluster without a leader fails fast, and
// asking in a tight loop would only add load.
const retryPause = 50 * time.Millisecond

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
