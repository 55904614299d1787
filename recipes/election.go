package recipes

import (
	"context"
	"errors"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Leader describes the holder of an election at some revision.
type Leader struct {
	Key   string // the leader's key
	Value string // what the leader proclaimed
	// Token is the create revision of the leader's key: it grows with every
	// new term and serves as a fencing token for the leader's requests.
	Token int64
	// Revision is the store revision at which this was observed.
	Revision int64
}

// Election chooses one leader among the sessions that campaign under a
// name, and tells everyone who it is.
//
// Layout: each candidate owns NAME/<lease>, attached to its session's
// lease, with its proclaimed value; the key with the lowest create revision
// is the leader. Candidates queue in arrival order, each waiting on the one
// before it.
//
// Guarantee: at every revision of the store there is at most one leader;
// every term's Token is greater than the previous term's. Observe reports
// every change of leader (and of its proclaimed value) in order.
//
// Failure behaviour: a leader whose session ends (crash, stall or partition
// longer than the TTL) loses its key and the next candidate becomes leader.
// The old leader is told, never left to assume: its Leadership's Lost
// channel closes and its Context is cancelled with ErrLeadershipLost as
// soon as it sees its key deleted, its session ends, or a whole TTL passes
// without a keep-alive reply (so a leader cut off from the cluster steps
// down about when its lease expires there, before anyone else can be
// elected, give or take clock drift and one network delay). A leader that
// is paused (not cut off) cannot notice anything until it runs again, so
// the old and the new leader can still overlap; work that must not overlap
// carries Token as a fencing token, and resources refuse tokens lower than
// the highest they have seen.
type Election struct {
	s   *concurrency.Session
	pfx string
}

// NewElection returns the election called name for session s.
func NewElection(s *concurrency.Session, name string) *Election {
	return &Election{s: s, pfx: prefixOf(name)}
}

// Campaign blocks until this session leads, ctx ends (the candidacy is then
// withdrawn) or the session ends. value is proclaimed to observers.
func (e *Election) Campaign(ctx context.Context, value string) (*Leadership, error) {
	select {
	case <-e.s.Done():
		return nil, ErrSessionExpired
	default:
	}
	cli := e.s.Client()
	key := sessionKey(e.pfx, e.s.Lease())
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, value, clientv3.WithLease(e.s.Lease()))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return nil, err
	}
	rev := resp.Header.Revision
	if !resp.Succeeded {
		kv := resp.Responses[0].GetResponseRange().Kvs[0]
		rev = kv.CreateRevision
		if string(kv.Value) != value {
			if _, err := cli.Put(ctx, key, value, clientv3.WithIgnoreLease()); err != nil {
				return nil, err
			}
		}
	}
	if err := waitPredecessors(ctx, cli, e.pfx, rev, e.s.Done()); err != nil {
		abandon(cli, key, rev)
		return nil, err
	}
	g, err := cli.Get(ctx, key)
	if err != nil {
		abandon(cli, key, rev)
		return nil, err
	}
	if len(g.Kvs) == 0 || g.Kvs[0].CreateRevision != rev {
		return nil, ErrSessionExpired
	}
	l := &Leadership{
		e: e, key: key, token: rev,
		lost: make(chan struct{}),
	}
	l.value.Store(value)
	l.ctx, l.cancel = context.WithCancelCause(context.Background())
	var mctx context.Context
	mctx, l.stop = context.WithCancel(context.Background())
	go l.monitor(mctx, g.Header.Revision)
	go l.watchDeadline(mctx)
	return l, nil
}

// Leader returns the current leader, or ErrNoLeader.
func (e *Election) Leader(ctx context.Context) (Leader, error) {
	g, err := e.s.Client().Get(ctx, e.pfx, append([]clientv3.OpOption{clientv3.WithPrefix()}, clientv3.WithFirstCreate()...)...)
	if err != nil {
		return Leader{}, err
	}
	if len(g.Kvs) == 0 {
		return Leader{}, ErrNoLeader
	}
	kv := g.Kvs[0]
	return Leader{Key: string(kv.Key), Value: string(kv.Value), Token: kv.CreateRevision, Revision: g.Header.Revision}, nil
}

// Observe reports the leader now (if any) and every later change of leader
// or of its proclaimed value, until ctx ends; then the channel closes.
// A slow reader delays later reports but misses none of the leaders that
// were current when it was ready to receive.
func (e *Election) Observe(ctx context.Context) <-chan Leader {
	ch := make(chan Leader)
	go e.observe(ctx, ch)
	return ch
}

func (e *Election) observe(ctx context.Context, ch chan<- Leader) {
	defer close(ch)
	cli := e.s.Client()
	var last Leader
	send := func(l Leader) bool {
		if l.Key == last.Key && l.Value == last.Value && l.Token == last.Token {
			return true
		}
		select {
		case ch <- l:
			last = l
			return true
		case <-ctx.Done():
			return false
		}
	}
	for ctx.Err() == nil {
		l, err := e.Leader(ctx)
		switch {
		case errors.Is(err, ErrNoLeader):
			// Wait for anyone to campaign, then look again.
			if !waitForPut(ctx, cli, e.pfx) {
				pause(ctx, retryPause)
			}
			continue
		case err != nil:
			pause(ctx, retryPause)
			continue
		}
		if !send(l) {
			return
		}
		// Follow the leader's key until it goes away.
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		wch := cli.Watch(wctx, l.Key, clientv3.WithRev(l.Revision+1))
	follow:
		for {
			select {
			case <-ctx.Done():
				cancel()
				return
			case wr, ok := <-wch:
				if !ok || wr.Err() != nil {
					break follow
				}
				for _, ev := range wr.Events {
					if ev.Type == clientv3.EventTypeDelete {
						break follow
					}
					l.Value, l.Revision = string(ev.Kv.Value), ev.Kv.ModRevision
					if !send(l) {
						cancel()
						return
					}
				}
			}
		}
		cancel()
	}
}

// waitForPut waits until something exists under pfx; false if it gave up.
func waitForPut(ctx context.Context, cli *clientv3.Client, pfx string) bool {
	g, err := cli.Get(ctx, pfx, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return false
	}
	if g.Count > 0 {
		return true
	}
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for wr := range cli.Watch(wctx, pfx, clientv3.WithPrefix(), clientv3.WithRev(g.Header.Revision+1), clientv3.WithFilterDelete()) {
		if wr.Err() != nil {
			return false
		}
		if len(wr.Events) > 0 {
			return true
		}
	}
	return false
}

// Leadership is one term of office, from a successful Campaign until it is
// lost or resigned.
//
// Guarantee: while Err is nil, no other candidate of the election has been
// told it leads by this cluster, except after this leader's lease expired
// without this process noticing yet (see Election). Token is the term's
// fencing token.
//
// Failure behaviour: the term ends, closing Lost and cancelling Context
// with ErrLeadershipLost, when the leader's key is deleted (lease expired or
// revoked, key removed by hand), when the session ends, or when a whole TTL
// passes without a keep-alive reply (cut off from the cluster). Resign ends
// it with ErrResigned. Proclaim after the end fails with ErrLeadershipLost.
// A Leadership is safe for concurrent use.
type Leadership struct {
	e      *Election
	key    string
	token  int64
	value  syncString
	ctx    context.Context
	cancel context.CancelCauseFunc
	lost   chan struct{}
	once   sync.Once
	stop   context.CancelFunc // ends the monitor on Resign
}

// syncString is a string read by observers of a Leadership while Proclaim
// writes it.
type syncString struct {
	mu sync.Mutex
	s  string
}

func (v *syncString) Store(s string) { v.mu.Lock(); v.s = s; v.mu.Unlock() }
func (v *syncString) Load() string   { v.mu.Lock(); defer v.mu.Unlock(); return v.s }

// Token is the term's fencing token: the create revision of the leader's key.
func (l *Leadership) Token() int64 { return l.token }

// Key is the leader's key.
func (l *Leadership) Key() string { return l.key }

// Value is what the leader last proclaimed.
func (l *Leadership) Value() string { return l.value.Load() }

// Lost closes when the term ends: the key was deleted, the session ended,
// or Resign was called. Err says which.
func (l *Leadership) Lost() <-chan struct{} { return l.lost }

// Context is cancelled when the term ends; run leader-only work under it.
func (l *Leadership) Context() context.Context { return l.ctx }

// Err is nil during the term, then ErrLeadershipLost or ErrResigned.
func (l *Leadership) Err() error {
	select {
	case <-l.lost:
		return context.Cause(l.ctx)
	default:
		return nil
	}
}

func (l *Leadership) end(cause error) {
	l.once.Do(func() {
		l.cancel(cause)
		close(l.lost)
		l.stop()
	})
}

// watchDeadline ends the term when the lease may have expired: when no
// keep-alive reply has come for a whole TTL. The client library closes the
// session on the same condition, but only checks once a second; a leader
// should stop no later than the cluster lets someone else start.
func (l *Leadership) watchDeadline(mctx context.Context) {
	// A second keep-alive channel on the session's lease shares its stream:
	// it adds no traffic, only lets us see each reply.
	kach, err := l.e.s.Client().KeepAlive(mctx, l.e.s.Lease())
	if err != nil {
		return // the key watch and the session still tell
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case resp, ok := <-kach:
			if !ok || resp.TTL <= 0 {
				if mctx.Err() == nil {
					l.end(ErrLeadershipLost)
				}
				return
			}
			timer.Reset(time.Duration(resp.TTL) * time.Second)
		case <-timer.C:
			l.end(ErrLeadershipLost)
			return
		case <-mctx.Done():
			return
		}
	}
}

// monitor watches the leader's own key and session and ends the term when
// either goes.
func (l *Leadership) monitor(mctx context.Context, rev int64) {
	cli := l.e.s.Client()
	done := l.e.s.Done()
	for {
		deleted, err := watchForDelete(mctx, cli, l.key, rev, done)
		switch {
		case deleted || errors.Is(err, ErrSessionExpired):
			l.end(ErrLeadershipLost)
			return
		case mctx.Err() != nil:
			return
		}
		// The watch broke without a verdict: ask. If the cluster cannot
		// answer, keep asking; the session's keep-alive deadline bounds
		// how long that can go on.
		g, err := cli.Get(mctx, l.key)
		if err != nil {
			select {
			case <-done:
				l.end(ErrLeadershipLost)
				return
			default:
			}
			pause(mctx, retryPause)
			continue
		}
		if len(g.Kvs) == 0 || g.Kvs[0].CreateRevision != l.token {
			l.end(ErrLeadershipLost)
			return
		}
		rev = g.Header.Revision
	}
}

// Proclaim changes the value observers see, without a new election. It
// fails with ErrLeadershipLost if the term is over.
func (l *Leadership) Proclaim(ctx context.Context, value string) error {
	if l.Err() != nil {
		return ErrLeadershipLost
	}
	resp, err := l.e.s.Client().Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(l.key), "=", l.token)).
		Then(clientv3.OpPut(l.key, value, clientv3.WithIgnoreLease())).
		Commit()
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		l.end(ErrLeadershipLost)
		return ErrLeadershipLost
	}
	l.value.Store(value)
	return nil
}

// Resign ends the term and lets the next candidate lead.
func (l *Leadership) Resign(ctx context.Context) error {
	l.end(ErrResigned)
	err := deleteOwn(ctx, l.e.s.Client(), l.key, l.token)
	if errors.Is(err, ErrNotHeld) {
		return nil
	}
	return err
}

// Guard is a transaction comparison that holds only during this term.
func (l *Leadership) Guard() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(l.key), "=", l.token)
}
