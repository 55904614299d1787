package robustness

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Event is one change of the store, as the final history records it.
type Event struct {
	Rev       int64
	Delete    bool
	Key       string
	Value     string
	CreateRev int64
	Version   int64
	Lease     int64
}

func (e Event) String() string {
	if e.Delete {
		return fmt.Sprintf("rev %d delete %s", e.Rev, e.Key)
	}
	s := fmt.Sprintf("rev %d put %s=%s (create %d, version %d)", e.Rev, e.Key, e.Value, e.CreateRev, e.Version)
	if e.Lease != 0 {
		s += fmt.Sprintf(" lease=%x", e.Lease)
	}
	return s
}

// StoreHistory is every change the store made from revision 1 to Last, in
// revision order, with per-key timelines for point-in-time lookups.
type StoreHistory struct {
	Events []Event
	Last   int64
	byKey  map[string][]int // indexes into Events, in revision order
}

// NewStoreHistory indexes events (which must be in revision order).
func NewStoreHistory(events []Event, last int64) *StoreHistory {
	h := &StoreHistory{Events: events, Last: last, byKey: map[string][]int{}}
	for i, e := range events {
		h.byKey[e.Key] = append(h.byKey[e.Key], i)
	}
	return h
}

// At returns the key's last change at or before rev (ok false if the key
// was never written by then).
func (h *StoreHistory) At(key string, rev int64) (Event, bool) {
	idx := h.byKey[key]
	n := sort.Search(len(idx), func(i int) bool { return h.Events[idx[i]].Rev > rev })
	if n == 0 {
		return Event{}, false
	}
	return h.Events[idx[n-1]], true
}

// Live returns the keys with prefix that exist at rev, with their last put.
func (h *StoreHistory) Live(prefix string, rev int64) []Event {
	var out []Event
	for key := range h.byKey {
		if len(key) < len(prefix) || key[:len(prefix)] != prefix {
			continue
		}
		if e, ok := h.At(key, rev); ok && !e.Delete {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// ReadStoreHistory rebuilds the store's full history from one member by
// reading the whole key space at every revision up to the current one: a
// key whose mod revision is r was put at r, and a key present at r-1 but
// not at r was deleted at r. This needs no watch and no compaction.
func ReadStoreHistory(ctx context.Context, cli *clientv3.Client) (*StoreHistory, error) {
	resp, err := cli.Get(ctx, "ready-probe", clientv3.WithSerializable())
	if err != nil {
		return nil, err
	}
	last := resp.Header.Revision
	states := make([][]*mvccpb.KeyValue, last+1)
	const workers = 4
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan int64)
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range next {
				var kvs []*mvccpb.KeyValue
				var err error
				for attempt := 0; attempt < 5; attempt++ {
					rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					var resp *clientv3.GetResponse
					resp, err = cli.Get(rctx, "\x00", clientv3.WithFromKey(), clientv3.WithRev(r), clientv3.WithSerializable())
					cancel()
					if err == nil {
						kvs = resp.Kvs
						break
					}
				}
				mu.Lock()
				if err != nil && first == nil {
					first = fmt.Errorf("robustness: range at revision %d: %w", r, err)
				}
				states[r] = kvs
				mu.Unlock()
			}
		}()
	}
	for r := int64(1); r <= last; r++ {
		next <- r
	}
	close(next)
	wg.Wait()
	if first != nil {
		return nil, first
	}
	var events []Event
	prev := map[string]bool{}
	for r := int64(1); r <= last; r++ {
		cur := make(map[string]bool, len(states[r]))
		for _, kv := range states[r] {
			cur[string(kv.Key)] = true
			if kv.ModRevision == r {
				events = append(events, Event{Rev: r, Key: string(kv.Key), Value: string(kv.Value),
					CreateRev: kv.CreateRevision, Version: kv.Version, Lease: kv.Lease})
			}
		}
		var gone []string
		for k := range prev {
			if !cur[k] {
				gone = append(gone, k)
			}
		}
		sort.Strings(gone)
		for _, k := range gone {
			events = append(events, Event{Rev: r, Delete: true, Key: k})
		}
		prev = cur
		states[r] = nil
	}
	sort.SliceStable(events, func(i, j int) bool { return events[i].Rev < events[j].Rev })
	return NewStoreHistory(events, last), nil
}
