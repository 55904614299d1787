package recipes

import (
	"context"
	"errors"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// cleanupTimeout bounds the best-effort removal of a waiter's key after its
// caller gave up; the lease removes the key anyway if this fails.
const cleanupTimeout = 5 * time.Second

func prefixOf(name string) string {
	if strings.HasSuffix(name, "/") {
		return name
	}
	return name + "/"
}

// Mutex is a distributed mutual-exclusion lock with a fencing token.
//
// Layout: each contender owns the key NAME/<lease id in hex>, attached to
// its session's lease; the contender whose key has the lowest create
// revision holds the lock, and the others wait, in order of arrival, each
// for the one just before it (no thundering herd).
//
// Guarantee: at any revision of the store at most one session's key is the
// lowest, so at most one caller of Lock is granted the lock at a time, and
// grants happen in increasing order of Token. Token is the create revision
// of the holder's key, the revision at which the lock was granted.
//
// Failure behaviour: if the holder's session ends (its process dies, it
// stalls or is cut off for longer than the TTL, or Session.Orphan/Close is
// called) the cluster deletes its key and the next waiter is granted the
// lock, possibly while the old holder still believes it holds it: a
// paused process cannot notice in time. Done closes when the session's
// keep-alives end, at the latest about one second after the lease would
// have expired, but that is a hint, not a guarantee. Safety therefore rests
// on the protected resource: every request to it carries the holder's
// Token, and the resource remembers the highest token it has accepted and
// refuses any request with a lower one (compare as integers; equal is the
// same holder). A stale holder that wakes up is then refused as soon as the
// new holder has used the resource once. For data kept in the same
// cluster, Guard gives a comparison that makes a transaction succeed only
// while the lock is still held. A waiter whose session ends while waiting
// gets ErrSessionExpired; a waiter whose ctx ends removes its key.
//
// A Mutex is used by one goroutine at a time; create one per session and
// name.
type Mutex struct {
	s     *concurrency.Session
	pfx   string
	key   string
	token int64
}

// NewMutex returns the lock called name for session s.
func NewMutex(s *concurrency.Session, name string) *Mutex {
	return &Mutex{s: s, pfx: prefixOf(name)}
}

// Lock blocks until the lock is held, ctx ends or the session ends.
func (m *Mutex) Lock(ctx context.Context) error {
	return m.lock(ctx, true)
}

// TryLock takes the lock if it is free and returns ErrLocked otherwise.
func (m *Mutex) TryLock(ctx context.Context) error {
	return m.lock(ctx, false)
}

func (m *Mutex) lock(ctx context.Context, wait bool) error {
	key, rev, err := acquireInQueue(ctx, m.s, m.pfx, m.pfx, wait)
	if err != nil {
		return err
	}
	m.key, m.token = key, rev
	return nil
}

// acquireInQueue enqueues the session's key under keyPfx and waits until no
// key under waitPfx is older; without wait it gives up with ErrLocked.
func acquireInQueue(ctx context.Context, s *concurrency.Session, keyPfx, waitPfx string, wait bool) (string, int64, error) {
	select {
	case <-s.Done():
		return "", 0, ErrSessionExpired
	default:
	}
	cli := s.Client()
	key := sessionKey(keyPfx, s.Lease())
	rev, err := createOwn(ctx, cli, key, "", s.Lease())
	if err != nil {
		return "", 0, err
	}
	if !wait {
		// Not CountOnly: etcd counts before it applies the revision filter.
		g, err := cli.Get(ctx, waitPfx, clientv3.WithPrefix(), clientv3.WithMaxCreateRev(rev-1), clientv3.WithKeysOnly(), clientv3.WithLimit(1))
		if err == nil && len(g.Kvs) > 0 {
			err = ErrLocked
		}
		if err != nil {
			abandon(cli, key, rev)
			return "", 0, err
		}
		return key, rev, nil
	}
	if err := waitPredecessors(ctx, cli, waitPfx, rev, s.Done()); err != nil {
		abandon(cli, key, rev)
		return "", 0, err
	}
	if err := stillOwned(ctx, cli, key, rev); err != nil {
		return "", 0, err
	}
	return key, rev, nil
}

// abandon removes a waiter's key after its caller gave up, so that it does
// not hold up the queue until its lease expires.
func abandon(cli *clientv3.Client, key string, rev int64) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	_ = deleteOwn(ctx, cli, key, rev)
}

// Unlock releases the lock. It returns ErrNotHeld if the lock was lost in
// the meantime (the session expired), which callers should treat as a sign
// that their critical section may have overlapped another holder's.
func (m *Mutex) Unlock(ctx context.Context) error {
	if m.key == "" {
		return ErrNotHeld
	}
	err := deleteOwn(ctx, m.s.Client(), m.key, m.token)
	if err == nil || errors.Is(err, ErrNotHeld) {
		m.key, m.token = "", 0
	}
	return err
}

// Token is the fencing token of the current hold (0 when not held).
func (m *Mutex) Token() int64 { return m.token }

// Key is the holder's key while the lock is held.
func (m *Mutex) Key() string { return m.key }

// Done closes when the session ends, after which the lock is not held.
func (m *Mutex) Done() <-chan struct{} { return m.s.Done() }

// Guard is a transaction comparison that holds only while this hold of the
// lock is still current: use it in If(...) of writes that must be fenced.
func (m *Mutex) Guard() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(m.key), "=", m.token)
}

// Held checks with the cluster that the lock is still held: nil if so,
// ErrNotHeld otherwise.
func (m *Mutex) Held(ctx context.Context) error {
	if m.key == "" {
		return ErrNotHeld
	}
	if err := stillOwned(ctx, m.s.Client(), m.key, m.token); err != nil {
		if errors.Is(err, ErrSessionExpired) {
			return ErrNotHeld
		}
		return err
	}
	return nil
}

// RWMutex is a distributed readers-writer lock with fencing tokens.
//
// Layout: readers own NAME/r/<lease>, writers NAME/w/<lease>, attached to
// their session's lease. A writer holds the lock once every older key
// (reader or writer) is gone; a reader holds it once every older writer key
// is gone. Arrival order is kept: a reader that arrives after a waiting
// writer waits for it.
//
// Guarantee: a writer holds alone; readers share; Token is the create
// revision of the caller's key. A resource protected by an RWMutex must
// remember the highest writer token it has accepted and refuse a write
// whose token is lower than the highest token (reader or writer) seen, and
// refuse a read whose token is lower than the highest writer token seen;
// readers' tokens are not ordered among themselves.
//
// Failure behaviour: as for Mutex. A reader or writer whose session ends is
// removed by the cluster and the next waiters proceed; a stale holder is
// stopped only by the resource's token check. A waiter whose session ends
// gets ErrSessionExpired; one whose ctx ends removes its key.
//
// An RWMutex is used by one goroutine at a time, holding either the read or
// the write side.
type RWMutex struct {
	s     *concurrency.Session
	pfx   string
	key   string
	token int64
}

// NewRWMutex returns the readers-writer lock called name for session s.
func NewRWMutex(s *concurrency.Session, name string) *RWMutex {
	return &RWMutex{s: s, pfx: prefixOf(name)}
}

// RLock blocks until the read side is held.
func (rw *RWMutex) RLock(ctx context.Context) error {
	key, rev, err := acquireInQueue(ctx, rw.s, rw.pfx+"r/", rw.pfx+"w/", true)
	if err != nil {
		return err
	}
	rw.key, rw.token = key, rev
	return nil
}

// Lock blocks until the write side is held.
func (rw *RWMutex) Lock(ctx context.Context) error {
	key, rev, err := acquireInQueue(ctx, rw.s, rw.pfx+"w/", rw.pfx, true)
	if err != nil {
		return err
	}
	rw.key, rw.token = key, rev
	return nil
}

// RUnlock releases the read side.
func (rw *RWMutex) RUnlock(ctx context.Context) error { return rw.release(ctx) }

// Unlock releases the write side.
func (rw *RWMutex) Unlock(ctx context.Context) error { return rw.release(ctx) }

func (rw *RWMutex) release(ctx context.Context) error {
	if rw.key == "" {
		return ErrNotHeld
	}
	err := deleteOwn(ctx, rw.s.Client(), rw.key, rw.token)
	if err == nil || errors.Is(err, ErrNotHeld) {
		rw.key, rw.token = "", 0
	}
	return err
}

// Token is the fencing token of the current hold (0 when not held).
func (rw *RWMutex) Token() int64 { return rw.token }

// Done closes when the session ends, after which nothing is held.
func (rw *RWMutex) Done() <-chan struct{} { return rw.s.Done() }

// Guard is a transaction comparison that holds only while this hold is
// still current.
func (rw *RWMutex) Guard() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(rw.key), "=", rw.token)
}
