package recipes

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Queue is a durable first-in, first-out queue shared by any number of
// producers and consumers.
//
// Layout: each item is a key PREFIX/<random unique suffix> holding the
// item; items are ordered by create revision, so order is the order in
// which the cluster committed the Enqueue calls.
//
// Guarantee: every enqueued item is handed to exactly one Dequeue that
// returns it without error (the item is deleted by a compare-and-delete on
// its revision, so two consumers never both win it), in commit order.
//
// Failure behaviour: items are not tied to any session, so they survive
// producer and consumer crashes; delivery is at most once: a consumer that
// dies after Dequeue returned loses the item. A Dequeue cut off from the
// cluster keeps waiting until ctx ends and takes nothing meanwhile.
type Queue struct {
	cli *clientv3.Client
	pfx string
}

// NewQueue returns the queue under prefix.
func NewQueue(cli *clientv3.Client, prefix string) *Queue {
	return &Queue{cli: cli, pfx: prefixOf(prefix)}
}

// Enqueue appends val.
func (q *Queue) Enqueue(ctx context.Context, val string) error {
	return putUnique(ctx, q.cli, q.pfx, val)
}

// putUnique creates a fresh key under pfx holding val.
func putUnique(ctx context.Context, cli *clientv3.Client, pfx, val string) error {
	for {
		key := fmt.Sprintf("%s%016x%016x", pfx, time.Now().UnixNano(), rand.Uint64())
		resp, err := cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, val)).
			Commit()
		if err != nil {
			return err
		}
		if resp.Succeeded {
			return nil
		}
	}
}

// Dequeue removes and returns the oldest item, waiting for one if the
// queue is empty.
func (q *Queue) Dequeue(ctx context.Context) (string, error) {
	for {
		g, err := q.cli.Get(ctx, q.pfx, append([]clientv3.OpOption{clientv3.WithPrefix()}, clientv3.WithFirstCreate()...)...)
		if err != nil {
			return "", err
		}
		if len(g.Kvs) == 0 {
			if err := waitForItem(ctx, q.cli, q.pfx, g.Header.Revision); err != nil {
				return "", err
			}
			continue
		}
		if ok, err := claim(ctx, q.cli, g.Kvs[0]); err != nil || ok {
			return string(g.Kvs[0].Value), err
		}
	}
}

// claim deletes kv if nobody else took it first.
func claim(ctx context.Context, cli *clientv3.Client, kv *mvccpb.KeyValue) (bool, error) {
	resp, err := cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision)).
		Then(clientv3.OpDelete(string(kv.Key))).
		Commit()
	if err != nil {
		return false, err
	}
	return resp.Succeeded, nil
}

// waitForItem waits for a put under pfx after rev.
func waitForItem(ctx context.Context, cli *clientv3.Client, pfx string, rev int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for wr := range cli.Watch(wctx, pfx, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithFilterDelete()) {
		if wr.Err() != nil || len(wr.Events) > 0 {
			return nil
		}
	}
	return ctx.Err()
}

// Len is the number of items waiting.
func (q *Queue) Len(ctx context.Context) (int64, error) {
	g, err := q.cli.Get(ctx, q.pfx, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return g.Count, nil
}

// PriorityQueue is a durable queue that hands out the item with the lowest
// priority number first, and items of equal priority in commit order.
//
// Layout: PREFIX/<priority as 4 hex digits>/<unique suffix>.
//
// Guarantee and failure behaviour: as for Queue. While higher-priority
// items keep arriving, lower-priority ones wait.
type PriorityQueue struct {
	cli *clientv3.Client
	pfx string
}

// NewPriorityQueue returns the priority queue under prefix.
func NewPriorityQueue(cli *clientv3.Client, prefix string) *PriorityQueue {
	return &PriorityQueue{cli: cli, pfx: prefixOf(prefix)}
}

// Enqueue adds val with priority pri (0 first).
func (q *PriorityQueue) Enqueue(ctx context.Context, val string, pri uint16) error {
	return putUnique(ctx, q.cli, fmt.Sprintf("%s%04x/", q.pfx, pri), val)
}

// Dequeue removes and returns the most urgent item, waiting for one if the
// queue is empty. It also returns the item's priority.
func (q *PriorityQueue) Dequeue(ctx context.Context) (string, uint16, error) {
	for {
		// The smallest key names the most urgent priority; within it,
		// commit order decides.
		g, err := q.cli.Get(ctx, q.pfx, append([]clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithKeysOnly()}, clientv3.WithFirstKey()...)...)
		if err != nil {
			return "", 0, err
		}
		if len(g.Kvs) == 0 {
			if err := waitForItem(ctx, q.cli, q.pfx, g.Header.Revision); err != nil {
				return "", 0, err
			}
			continue
		}
		k := string(g.Kvs[0].Key)
		if len(k) < len(q.pfx)+5 {
			return "", 0, fmt.Errorf("recipes: priority queue key %q is malformed", k)
		}
		pri, err := strconv.ParseUint(k[len(q.pfx):len(q.pfx)+4], 16, 16)
		if err != nil {
			return "", 0, fmt.Errorf("recipes: priority queue key %q: %w", k, err)
		}
		band := k[:len(q.pfx)+5]
		b, err := q.cli.Get(ctx, band, append([]clientv3.OpOption{clientv3.WithPrefix()}, clientv3.WithFirstCreate()...)...)
		if err != nil {
			return "", 0, err
		}
		if len(b.Kvs) == 0 {
			continue
		}
		if ok, err := claim(ctx, q.cli, b.Kvs[0]); err != nil || ok {
			return string(b.Kvs[0].Value), uint16(pri), err
		}
	}
}

// Counter is a shared 64-bit integer updated by compare-and-swap.
//
// Layout: KEY holds the value in decimal; absent means 0.
//
// Guarantee: every Add is applied exactly once when it returns without
// error, atomically with respect to all other Adds (each one compares the
// key's mod revision and retries on conflict), and returns the value right
// after it.
//
// Failure behaviour: an Add whose ctx ends or that loses contact with the
// cluster returns an error, and then may or may not have been applied (the
// last transaction could have committed without the reply arriving). The
// key is not tied to a lease, so the value outlives every client.
type Counter struct {
	cli *clientv3.Client
	key string
}

// NewCounter returns the counter at key.
func NewCounter(cli *clientv3.Client, key string) *Counter {
	return &Counter{cli: cli, key: key}
}

// Get returns the current value.
func (c *Counter) Get(ctx context.Context) (int64, error) {
	g, err := c.cli.Get(ctx, c.key)
	if err != nil {
		return 0, err
	}
	if len(g.Kvs) == 0 {
		return 0, nil
	}
	return parseCounter(c.key, g.Kvs[0].Value)
}

func parseCounter(key string, v []byte) (int64, error) {
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("recipes: counter %q holds %q: %w", key, v, err)
	}
	return n, nil
}

// Add adds delta and returns the new value.
func (c *Counter) Add(ctx context.Context, delta int64) (int64, error) {
	g, err := c.cli.Get(ctx, c.key)
	if err != nil {
		return 0, err
	}
	var cur, mod int64
	if len(g.Kvs) > 0 {
		if cur, err = parseCounter(c.key, g.Kvs[0].Value); err != nil {
			return 0, err
		}
		mod = g.Kvs[0].ModRevision
	}
	for {
		next := cur + delta
		resp, err := c.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(c.key), "=", mod)).
			Then(clientv3.OpPut(c.key, strconv.FormatInt(next, 10))).
			Else(clientv3.OpGet(c.key)).
			Commit()
		if err != nil {
			return 0, err
		}
		if resp.Succeeded {
			return next, nil
		}
		// Lost the race: the else branch already read the winner's value.
		kvs := resp.Responses[0].GetResponseRange().Kvs
		cur, mod = 0, 0
		if len(kvs) > 0 {
			if cur, err = parseCounter(c.key, kvs[0].Value); err != nil {
				return 0, err
			}
			mod = kvs[0].ModRevision
		}
	}
}
