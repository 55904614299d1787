package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"
)

// watchLatency measures watch fan-out: watchers watchers on one key, spread
// over streams gRPC streams on the given connections, and one writer putting
// the key rate times a second for duration. Each event's latency is from the
// start of its put to its arrival at a watcher; the report gives percentiles
// over every (put, watcher) pair.
func watchLatency(clis []*clientv3.Client, watchers, streams, rate int, duration time.Duration, valSize int) int {
	if watchers < 1 || streams < 1 || rate < 1 {
		fmt.Fprintln(os.Stderr, "ensemble-load: --watchers, --streams and --rate must be positive")
		return 2
	}
	const key = "ensemble-load/watch-latency"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Watches whose contexts carry different metadata get different streams.
	sctx := make([]context.Context, streams)
	for i := range sctx {
		sctx[i] = metadata.AppendToOutgoingContext(ctx, "ensemble-load-stream", strconv.Itoa(i))
	}
	chans := make([]clientv3.WatchChan, watchers)
	began := time.Now()
	var cw sync.WaitGroup
	var createErr atomic.Value
	for s := range streams {
		cw.Add(1)
		go func() {
			defer cw.Done()
			for i := s; i < watchers; i += streams {
				chans[i] = clis[s%len(clis)].Watch(sctx[s], key, clientv3.WithCreatedNotify())
				if r := <-chans[i]; !r.Created {
					createErr.Store(fmt.Errorf("watcher %d not created: %v", i, r.Err()))
					return
				}
			}
		}()
	}
	cw.Wait()
	if err, _ := createErr.Load().(error); err != nil {
		fmt.Fprintln(os.Stderr, "ensemble-load:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "ensemble-load: %d watchers on %d streams created in %v\n", watchers, streams, time.Since(began).Round(time.Millisecond))

	total := max(1, int(duration.Seconds()*float64(rate)))
	sent := make([]atomic.Int64, total) // put start, ns since began
	lats := make([][]time.Duration, watchers)
	var recv sync.WaitGroup
	var missing atomic.Int64
	for i, wch := range chans {
		recv.Add(1)
		go func() {
			defer recv.Done()
			l := make([]time.Duration, 0, total)
			timeout := time.NewTimer(duration + 30*time.Second)
			defer timeout.Stop()
			for len(l) < total {
				select {
				case r, ok := <-wch:
					if !ok || r.Err() != nil {
						missing.Add(int64(total - len(l)))
						lats[i] = l
						return
					}
					now := time.Since(began)
					for _, ev := range r.Events {
						seq, err := strconv.Atoi(string(ev.Kv.Value[:min(len(ev.Kv.Value), 12)]))
						if err != nil || seq >= total {
							continue
						}
						l = append(l, now-time.Duration(sent[seq].Load()))
					}
				case <-timeout.C:
					missing.Add(int64(total - len(l)))
					lats[i] = l
					return
				}
			}
			lats[i] = l
		}()
	}

	pad := ""
	if valSize > 12 {
		pad = fmt.Sprintf("%*s", valSize-12, "")
	}
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	var putErrs int
	for seq := range total {
		<-tick.C
		sent[seq].Store(int64(time.Since(began)))
		if _, err := clis[0].Put(ctx, key, fmt.Sprintf("%012d", seq)+pad); err != nil {
			putErrs++
		}
	}
	recv.Wait()

	pct := percentiles(lats)
	delivered := 0
	for _, l := range lats {
		delivered += len(l)
	}
	fmt.Printf("op=watch-latency watchers=%d streams=%d puts=%d put-errors=%d delivered=%d missing=%d p50=%v p90=%v p99=%v max=%v\n",
		watchers, streams, total, putErrs, delivered, missing.Load(), pct(0.50), pct(0.90), pct(0.99), pct(1))
	if missing.Load() > 0 {
		return 1
	}
	return 0
}
