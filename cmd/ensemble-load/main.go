// Command ensemble-load drives an etcd v3 endpoint (Ensemble or etcd itself),
// or a ZooKeeper endpoint (Ensemble or ZooKeeper itself), with many
// concurrent clients and reports throughput and latency
// percentiles, so that both can be measured side by side on one machine.
//
//	ensemble-load --endpoints 127.0.0.1:2379 --op put --clients 256 --conns 16 --duration 10s
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("ensemble-load", flag.ContinueOnError)
	endpoints := fs.String("endpoints", "127.0.0.1:2379", "comma-separated client endpoints")
	op := fs.String("op", "put", "put | get (linearizable) | sget (serializable) | keepalive (LeaseKeepAliveOnce, one lease per client) | watch-latency (put -> event fan-out) | zk-create | zk-set | zk-get (ZooKeeper port; --conns sessions)")
	clients := fs.Int("clients", 16, "concurrent clients (goroutines)")
	conns := fs.Int("conns", 1, "gRPC connections the clients share")
	duration := fs.Duration("duration", 10*time.Second, "how long to run")
	keys := fs.Int("keys", 100000, "size of the key space")
	keySize := fs.Int("key-size", 8, "key size in bytes")
	valSize := fs.Int("val-size", 256, "value size in bytes")
	watchers := fs.Int("watchers", 1000, "watch-latency: watchers on the one key")
	streams := fs.Int("streams", 10, "watch-latency: gRPC watch streams the watchers are spread over")
	rate := fs.Int("rate", 100, "watch-latency: puts per second")
	zkServers := fs.String("zk-servers", "127.0.0.1:2181", "zk-*: comma-separated ZooKeeper servers")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *clients < 1 || *conns < 1 || *keys < 1 {
		fmt.Fprintln(os.Stderr, "ensemble-load: --clients, --conns and --keys must be positive")
		return 2
	}
	if strings.HasPrefix(*op, "zk-") {
		return zkLoad(strings.Split(*zkServers, ","), *op, *clients, *conns, *keys, *valSize, *duration)
	}
	var clis []*clientv3.Client
	for range *conns {
		c, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(*endpoints, ","), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			fmt.Fprintln(os.Stderr, "ensemble-load:", err)
			return 1
		}
		defer c.Close()
		clis = append(clis, c)
	}
	if *op == "watch-latency" {
		return watchLatency(clis, *watchers, *streams, *rate, *duration, *valSize)
	}
	keyOf := func(i int) string {
		k := fmt.Sprintf("%0*d", *keySize, i)
		return k[len(k)-*keySize:]
	}
	value := strings.Repeat("v", *valSize)
	var leases []clientv3.LeaseID
	if *op == "keepalive" {
		for c := range *clients {
			g, err := clis[c%len(clis)].Grant(context.Background(), 3600)
			if err != nil {
				fmt.Fprintln(os.Stderr, "ensemble-load: grant:", err)
				return 1
			}
			leases = append(leases, g.ID)
		}
		defer func() {
			for c, id := range leases {
				clis[c%len(clis)].Revoke(context.Background(), id)
			}
		}()
	}
	if *op == "get" || *op == "sget" {
		// Reads need data: fill a slice of the key space first.
		fill := min(*keys, 10000)
		for i := range fill {
			if _, err := clis[0].Put(context.Background(), keyOf(i), value); err != nil {
				fmt.Fprintln(os.Stderr, "ensemble-load: fill:", err)
				return 1
			}
		}
		*keys = fill
	}
	res := drive(*clients, *duration, func(ctx context.Context, c int, r *rand.Rand) error {
		cli := clis[c%len(clis)]
		k := keyOf(r.IntN(*keys))
		var err error
		switch *op {
		case "put":
			_, err = cli.Put(ctx, k, value)
		case "get":
			_, err = cli.Get(ctx, k)
		case "sget":
			_, err = cli.Get(ctx, k, clientv3.WithSerializable())
		case "keepalive":
			_, err = cli.KeepAliveOnce(ctx, leases[c])
		}
		return err
	})
	res.print(fmt.Sprintf("op=%s clients=%d conns=%d", *op, *clients, *conns))
	return 0
}

// driveResult is what drive measured.
type driveResult struct {
	ops, errs int64
	errKinds  map[string]int
	lats      [][]time.Duration
	elapsed   time.Duration
}

// drive runs do from clients goroutines, each with its own random source,
// back to back until duration is up, and measures every call.
func drive(clients int, duration time.Duration, do func(ctx context.Context, c int, r *rand.Rand) error) driveResult {
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var ops, errs atomic.Int64
	var errMu sync.Mutex
	errKinds := map[string]int{}
	lats := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(c), 1))
			for ctx.Err() == nil {
				t0 := time.Now()
				err := do(ctx, c, r)
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					errs.Add(1)
					errMu.Lock()
					errKinds[err.Error()]++
					errMu.Unlock()
					continue
				}
				lats[c] = append(lats[c], time.Since(t0))
				ops.Add(1)
			}
		}(c)
	}
	wg.Wait()
	return driveResult{ops: ops.Load(), errs: errs.Load(), errKinds: errKinds, lats: lats, elapsed: time.Since(start)}
}

// print writes the errors to stderr and one result line, starting with
// what, to stdout.
func (d driveResult) print(what string) {
	pct := percentiles(d.lats)
	for e, n := range d.errKinds {
		fmt.Fprintf(os.Stderr, "ensemble-load: %d x %s\n", n, e)
	}
	fmt.Printf("%s ops=%d errors=%d throughput=%.0f/s p50=%v p90=%v p99=%v p999=%v\n",
		what, d.ops, d.errs, float64(d.ops)/d.elapsed.Seconds(),
		pct(0.50), pct(0.90), pct(0.99), pct(0.999))
}

// percentiles merges per-client latencies and returns a function giving the
// p-th percentile (0..1), rounded to 10 µs; 0 when there are none.
func percentiles(lats [][]time.Duration) func(p float64) time.Duration {
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	slices.Sort(all)
	return func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[min(len(all)-1, int(float64(len(all))*p))].Round(10 * time.Microsecond)
	}
}
