package robustness

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// errWatchUnimplemented says the server has no Watch service yet.
var errWatchUnimplemented = errors.New("robustness: watch not implemented by the server")

// WatchResp is one recorded watch response.
type WatchResp struct {
	At       int64 // clock time of receipt
	Rev      int64 // header revision
	Progress bool
	Events   []Event
	Err      string
}

// WatchSegment is one watch stream, from its start revision until it broke
// or was stopped; a watcher resumes with a new segment after the last
// revision it saw.
type WatchSegment struct {
	From  int64
	Resps []WatchResp
}

// WatchRecord is everything one watcher saw.
type WatchRecord struct {
	Client   int
	Prefix   string
	Segments []WatchSegment
}

// watcher follows a prefix from a chosen revision, resuming after every
// break, and asks for progress notifications as it goes.
type watcher struct {
	id     int
	cli    *clientv3.Client
	clock  *Clock
	prefix string
	from   int64
	rec    WatchRecord
	err    error
	next   atomic.Int64 // the next revision the watcher waits for
	// unimplemented is set (with err) when the server has no watch.
	unimplemented atomic.Bool
}

// waitPast waits until the watcher has seen every revision up to rev.
func (w *watcher) waitPast(ctx context.Context, rev int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for w.next.Load() <= rev {
		if w.unimplemented.Load() {
			return nil
		}
		if time.Now().After(deadline) || !sleepCtx(ctx, 20*time.Millisecond) {
			return fmt.Errorf("watcher c%d on %q did not reach revision %d within %v (at %d)", w.id, w.prefix, rev, timeout, w.next.Load()-1)
		}
	}
	return nil
}

func (w *watcher) run(ctx context.Context) {
	w.rec = WatchRecord{Client: w.id, Prefix: w.prefix}
	next := w.from
	w.next.Store(next)
	for ctx.Err() == nil {
		seg := WatchSegment{From: next}
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		ch := w.cli.Watch(wctx, w.prefix, clientv3.WithPrefix(), clientv3.WithRev(next), clientv3.WithProgressNotify())
		tick := time.NewTicker(200 * time.Millisecond)
	stream:
		for {
			select {
			case resp, ok := <-ch:
				if !ok {
					break stream
				}
				r := WatchResp{At: w.clock.Now(), Rev: resp.Header.Revision, Progress: resp.IsProgressNotify()}
				if err := resp.Err(); err != nil {
					if status.Code(err) == codes.Unimplemented || status.Code(errors.Unwrap(err)) == codes.Unimplemented {
						w.err = errWatchUnimplemented
						w.unimplemented.Store(true)
						tick.Stop()
						cancel()
						return
					}
					r.Err = shortErr(err)
					seg.Resps = append(seg.Resps, r)
					break stream
				}
				if resp.Created {
					continue
				}
				for _, ev := range resp.Events {
					e := Event{Rev: ev.Kv.ModRevision, Key: string(ev.Kv.Key), Value: string(ev.Kv.Value),
						CreateRev: ev.Kv.CreateRevision, Version: ev.Kv.Version, Lease: ev.Kv.Lease}
					if ev.Type == mvccpb.DELETE {
						e = Event{Rev: ev.Kv.ModRevision, Key: string(ev.Kv.Key), Delete: true}
					}
					r.Events = append(r.Events, e)
				}
				seg.Resps = append(seg.Resps, r)
				if n := len(r.Events); n > 0 {
					next = r.Events[n-1].Rev + 1
				} else if r.Progress && r.Rev >= next {
					next = r.Rev + 1
				}
				w.next.Store(next)
			case <-tick.C:
				_ = w.cli.RequestProgress(wctx)
			}
		}
		tick.Stop()
		cancel()
		w.rec.Segments = append(w.rec.Segments, seg)
		sleepCtx(ctx, 50*time.Millisecond)
	}
}

// CheckWatch checks one watcher's record against the final history: events
// in revision order without duplicates, every revision's events in one
// response, progress notifications never ahead of events, and the events
// seen equal to the history of the prefix from the first requested revision
// up to the last one the watcher knows of, across resumptions.
func CheckWatch(rec WatchRecord, store *StoreHistory) []Violation {
	var vs []Violation
	name := fmt.Sprintf("watcher c%d on %q", rec.Client, rec.Prefix)
	fail := func(format string, args ...any) {
		vs = append(vs, Violation{Checker: "watch", Detail: name + ": " + fmt.Sprintf(format, args...)})
	}
	if len(rec.Segments) == 0 {
		return nil
	}
	var seen []Event
	var lastRev, known int64 // the last event revision; the last revision known complete
	for _, seg := range rec.Segments {
		if seg.From <= lastRev {
			fail("resumed from revision %d after seeing revision %d", seg.From, lastRev)
		}
		for _, r := range seg.Resps {
			if r.Err != "" {
				continue
			}
			if r.Progress {
				if r.Rev < lastRev {
					fail("progress notification at revision %d after an event at revision %d", r.Rev, lastRev)
				}
				known = max(known, r.Rev)
				continue
			}
			for i, e := range r.Events {
				if e.Rev < seg.From {
					fail("event %v before the requested revision %d", e, seg.From)
				}
				if i == 0 && e.Rev <= lastRev {
					fail("response starting with %v after revision %d was delivered (duplicate, reordered or split revision)", e, lastRev)
				}
				if i > 0 && e.Rev < r.Events[i-1].Rev {
					fail("events out of order in one response: %v after %v", e, r.Events[i-1])
				}
				if e.Rev <= known {
					fail("event %v after a progress notification at revision %d", e, known)
				}
				if e.Rev > r.Rev {
					fail("event %v in a response whose header revision is %d", e, r.Rev)
				}
				lastRev = max(lastRev, e.Rev)
				seen = append(seen, e)
			}
		}
	}
	known = max(known, lastRev)
	from := rec.Segments[0].From
	var want []Event
	for _, e := range store.Events {
		if e.Rev >= from && e.Rev <= known && len(e.Key) >= len(rec.Prefix) && e.Key[:len(rec.Prefix)] == rec.Prefix {
			want = append(want, e)
		}
	}
	if known > store.Last {
		fail("saw revision %d, beyond the final revision %d", known, store.Last)
	}
	// Within one revision the order of keys is free; compare as sets per revision.
	type ek struct {
		rev    int64
		key    string
		del    bool
		value  string
		create int64
	}
	keyOf := func(e Event) ek { return ek{e.Rev, e.Key, e.Delete, e.Value, e.CreateRev} }
	got := map[ek]int{}
	for _, e := range seen {
		got[keyOf(e)]++
	}
	var missing []string
	for _, e := range want {
		k := keyOf(e)
		if got[k] == 0 {
			missing = append(missing, e.String())
			continue
		}
		got[k]--
	}
	var extra []string
	for k, n := range got {
		for range n {
			extra = append(extra, fmt.Sprintf("%+v", k))
		}
	}
	if len(missing) > 0 {
		v := Violation{Checker: "watch", Detail: fmt.Sprintf("%s: %d events of the history in [%d, %d] never delivered", name, len(missing), from, known)}
		v.Context = append(v.Context, missing[:min(len(missing), 20)]...)
		vs = append(vs, v)
	}
	if len(extra) > 0 {
		v := Violation{Checker: "watch", Detail: fmt.Sprintf("%s: %d delivered events not in the history (or delivered twice)", name, len(extra))}
		v.Context = append(v.Context, extra[:min(len(extra), 20)]...)
		vs = append(vs, v)
	}
	return vs
}
