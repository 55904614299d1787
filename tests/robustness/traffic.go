package robustness

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// opTimeout bounds one operation; past it the outcome is unknown.
const opTimeout = 2 * time.Second

// recorder is one client's history, owned by its goroutine.
type recorder struct {
	id    int
	clock *Clock
	ops   []Op
}

// do runs f as operation o, timing it, and records it. f fills in the
// result fields; an error makes the outcome unknown.
func (r *recorder) do(o Op, f func(ctx context.Context, o *Op) error) Op {
	o.Client = r.id
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	o.Call = r.clock.Now()
	err := f(ctx, &o)
	ret := r.clock.Now()
	cancel()
	if err != nil {
		o.Err, o.Return = shortErr(err), Infinity
	} else {
		o.Return = ret
	}
	r.ops = append(r.ops, o)
	return o
}

func shortErr(err error) string {
	s := err.Error()
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

// pace waits between operations so that histories stay checkable; it is
// not a stand-in for a condition.
func pace(ctx context.Context, rnd *rand.Rand, mean time.Duration) bool {
	return sleepCtx(ctx, time.Duration(rnd.Int64N(int64(2*mean))))
}

// sleepCtx waits d or until ctx ends, whichever is first: a back-off
// between retries, not a stand-in for a condition.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// kvWorker runs put, get, serializable get, delete and compare-and-swap on
// a small key set, every written value unique.
type kvWorker struct {
	recorder
	cli  *clientv3.Client
	rnd  *rand.Rand
	keys int
	seen map[string]string // the last value this client saw per key, for CAS
	seq  int
}

func (w *kvWorker) run(ctx context.Context) {
	for pace(ctx, w.rnd, 4*time.Millisecond) {
		key := fmt.Sprintf("%s%d", kvPrefix, w.rnd.IntN(w.keys))
		w.seq++
		val := fmt.Sprintf("c%d-%d", w.id, w.seq)
		switch p := w.rnd.IntN(100); {
		case p < 30:
			o := w.do(Op{Kind: OpGet, Key: key}, func(ctx context.Context, o *Op) error { return get(ctx, w.cli, o) })
			w.saw(o)
		case p < 40:
			o := w.do(Op{Kind: OpGetSerial, Key: key}, func(ctx context.Context, o *Op) error {
				return get(ctx, w.cli, o, clientv3.WithSerializable())
			})
			w.saw(o)
		case p < 70:
			w.do(Op{Kind: OpPut, Key: key, Value: val}, func(ctx context.Context, o *Op) error {
				r, err := w.cli.Put(ctx, o.Key, o.Value)
				if err == nil {
					o.Rev, o.Member = r.Header.Revision, r.Header.MemberId
				}
				return err
			})
			w.seen[key] = val
		case p < 75:
			w.do(Op{Kind: OpDelete, Key: key}, func(ctx context.Context, o *Op) error {
				r, err := w.cli.Delete(ctx, o.Key)
				if err == nil {
					o.Rev, o.Member, o.Deleted = r.Header.Revision, r.Header.MemberId, r.Deleted
				}
				return err
			})
			w.seen[key] = ""
		default:
			o := w.do(Op{Kind: OpCAS, Key: key, Value: val, Expect: w.seen[key]}, func(ctx context.Context, o *Op) error {
				return cas(ctx, w.cli, o)
			})
			if o.Succeeded || o.Unknown() {
				w.seen[key] = val
			} else {
				w.saw(o)
			}
		}
	}
}

func (w *kvWorker) saw(o Op) {
	if o.Unknown() {
		return
	}
	if o.Found {
		w.seen[o.Key] = o.Got
	} else {
		w.seen[o.Key] = ""
	}
}

func get(ctx context.Context, cli *clientv3.Client, o *Op, opts ...clientv3.OpOption) error {
	r, err := cli.Get(ctx, o.Key, opts...)
	if err != nil {
		return err
	}
	o.Rev, o.Member = r.Header.Revision, r.Header.MemberId
	if len(r.Kvs) > 0 {
		o.Found, o.Got, o.ModRev = true, string(r.Kvs[0].Value), r.Kvs[0].ModRevision
	}
	return nil
}

// cas writes o.Value if the key holds o.Expect ("" meaning absent, since a
// value comparison on a missing key always fails), else reads the key.
func cas(ctx context.Context, cli *clientv3.Client, o *Op) error {
	cmp := clientv3.Compare(clientv3.Value(o.Key), "=", o.Expect)
	if o.Expect == "" {
		cmp = clientv3.Compare(clientv3.Version(o.Key), "=", 0)
	}
	r, err := cli.Txn(ctx).If(cmp).Then(clientv3.OpPut(o.Key, o.Value)).Else(clientv3.OpGet(o.Key)).Commit()
	if err != nil {
		return err
	}
	o.Rev, o.Member, o.Succeeded = r.Header.Revision, r.Header.MemberId, r.Succeeded
	if !r.Succeeded && len(r.Responses) == 1 {
		if kvs := r.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
			o.Found, o.Got, o.ModRev = true, string(kvs[0].Value), kvs[0].ModRevision
		}
	}
	return nil
}

// leaseWorker grants short leases, attaches a key to each, reads it back,
// keeps some alive once, and revokes or abandons them.
type leaseWorker struct {
	recorder
	cli *clientv3.Client
	rnd *rand.Rand
	seq int
}

func (w *leaseWorker) run(ctx context.Context) {
	for pace(ctx, w.rnd, 20*time.Millisecond) {
		w.seq++
		ttl := 2 + w.rnd.Int64N(2)
		g := w.do(Op{Kind: OpLeaseGrant}, func(ctx context.Context, o *Op) error {
			r, err := w.cli.Grant(ctx, ttl)
			if err == nil {
				o.Lease, o.Rev, o.Member = int64(r.ID), r.Revision, r.ResponseHeader.MemberId
			}
			return err
		})
		if g.Unknown() {
			continue
		}
		key := fmt.Sprintf("%sc%d-%d", leasePrefix, w.id, w.seq)
		w.do(Op{Kind: OpLeasePut, Key: key, Value: fmt.Sprintf("lv%d-%d", w.id, w.seq), Lease: g.Lease}, func(ctx context.Context, o *Op) error {
			r, err := w.cli.Put(ctx, o.Key, o.Value, clientv3.WithLease(clientv3.LeaseID(o.Lease)))
			if err == nil {
				o.Rev, o.Member = r.Header.Revision, r.Header.MemberId
			}
			return err
		})
		w.do(Op{Kind: OpGet, Key: key}, func(ctx context.Context, o *Op) error { return get(ctx, w.cli, o) })
		if w.rnd.IntN(2) == 0 {
			w.do(Op{Kind: OpLeaseKeep, Lease: g.Lease}, func(ctx context.Context, o *Op) error {
				r, err := w.cli.KeepAliveOnce(ctx, clientv3.LeaseID(o.Lease))
				if err == nil {
					o.Rev, o.Member = r.Revision, r.ResponseHeader.MemberId
				}
				return err
			})
		}
		if w.rnd.IntN(3) > 0 {
			w.do(Op{Kind: OpLeaseRevoke, Lease: g.Lease}, func(ctx context.Context, o *Op) error {
				r, err := w.cli.Revoke(ctx, clientv3.LeaseID(o.Lease))
				if err == nil {
					o.Rev, o.Member = r.Header.Revision, r.Header.MemberId
				}
				return err
			})
			// A put attached to a revoked lease must fail; the lease
			// checker catches it in the history if it does not.
			w.do(Op{Kind: OpLeasePut, Key: key + "-late", Value: fmt.Sprintf("late%d-%d", w.id, w.seq), Lease: g.Lease}, func(ctx context.Context, o *Op) error {
				r, err := w.cli.Put(ctx, o.Key, o.Value, clientv3.WithLease(clientv3.LeaseID(o.Lease)))
				if err == nil {
					o.Rev, o.Member = r.Header.Revision, r.Header.MemberId
				}
				return err
			})
		}
	}
}

// lockWorker takes a concurrency.Mutex and, while holding it, writes its
// own lock key's name under the mutex's ownership condition.
type lockWorker struct {
	recorder
	cli *clientv3.Client
	rnd *rand.Rand
}

func (w *lockWorker) run(ctx context.Context) {
	for ctx.Err() == nil {
		sess, err := concurrency.NewSession(w.cli, concurrency.WithTTL(2), concurrency.WithContext(ctx))
		if err != nil {
			if !pace(ctx, w.rnd, 50*time.Millisecond) {
				return
			}
			continue
		}
		w.hold(ctx, sess)
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, _ = w.cli.Revoke(cctx, sess.Lease())
		cancel()
		sess.Close()
	}
}

func (w *lockWorker) hold(ctx context.Context, sess *concurrency.Session) {
	for pace(ctx, w.rnd, 10*time.Millisecond) {
		select {
		case <-sess.Done():
			return
		default:
		}
		m := concurrency.NewMutex(sess, lockPrefix[:len(lockPrefix)-1])
		lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := m.Lock(lctx)
		cancel()
		if err != nil {
			if errors.Is(err, concurrency.ErrSessionExpired) {
				return
			}
			continue
		}
		w.do(Op{Kind: OpLockWrite, Key: lockData, Value: m.Key()}, func(ctx context.Context, o *Op) error {
			r, err := w.cli.Txn(ctx).If(m.IsOwner()).Then(clientv3.OpPut(lockData, m.Key())).Commit()
			if err == nil {
				o.Rev, o.Member, o.Succeeded = r.Header.Revision, r.Header.MemberId, r.Succeeded
			}
			return err
		})
		uctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		_ = m.Unlock(uctx)
		cancel()
	}
}
