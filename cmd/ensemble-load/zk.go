package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-zookeeper/zk"
)

// zkLoad drives a ZooKeeper endpoint (Ensemble's ZooKeeper port or a real
// ZooKeeper) with one session per connection, shared by the clients: create
// makes new persistent nodes, set and get work on a prefilled key space.
func zkLoad(servers []string, op string, clients, conns, keys, valSize int, duration time.Duration) int {
	quiet := zk.WithLogger(log.New(io.Discard, "", 0))
	var sessions []*zk.Conn
	for range conns {
		c, ev, err := zk.Connect(servers, 10*time.Second, quiet)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ensemble-load:", err)
			return 1
		}
		defer c.Close()
		if err := waitConnected(ev, 10*time.Second); err != nil {
			fmt.Fprintln(os.Stderr, "ensemble-load:", err)
			return 1
		}
		sessions = append(sessions, c)
	}
	value := []byte(strings.Repeat("v", valSize))
	root := fmt.Sprintf("/ensemble-load-%d", time.Now().UnixNano())
	if _, err := sessions[0].Create(root, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		fmt.Fprintln(os.Stderr, "ensemble-load: create root:", err)
		return 1
	}
	if op == "zk-set" || op == "zk-get" {
		keys = min(keys, 10000)
		if err := zkFill(sessions, root, keys, value); err != nil {
			fmt.Fprintln(os.Stderr, "ensemble-load: fill:", err)
			return 1
		}
	}
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
			conn := sessions[c%len(sessions)]
			r := rand.New(rand.NewPCG(uint64(c), 2))
			for n := 0; ctx.Err() == nil; n++ {
				t0 := time.Now()
				var err error
				switch op {
				case "zk-create":
					_, err = conn.Create(fmt.Sprintf("%s/c%d-%d", root, c, n), value, 0, zk.WorldACL(zk.PermAll))
				case "zk-set":
					_, err = conn.Set(fmt.Sprintf("%s/k%d", root, r.IntN(keys)), value, -1)
				case "zk-get":
					_, _, err = conn.Get(fmt.Sprintf("%s/k%d", root, r.IntN(keys)))
				}
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
	elapsed := time.Since(start)
	pct := percentiles(lats)
	for e, n := range errKinds {
		fmt.Fprintf(os.Stderr, "ensemble-load: %d x %s\n", n, e)
	}
	fmt.Printf("op=%s clients=%d sessions=%d ops=%d errors=%d throughput=%.0f/s p50=%v p90=%v p99=%v p999=%v\n",
		op, clients, conns, ops.Load(), errs.Load(), float64(ops.Load())/elapsed.Seconds(),
		pct(0.50), pct(0.90), pct(0.99), pct(0.999))
	return 0
}

// zkFill creates the key space of set and get, spread over the sessions.
func zkFill(sessions []*zk.Conn, root string, keys int, value []byte) error {
	var wg sync.WaitGroup
	errc := make(chan error, len(sessions))
	for s, conn := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := s; i < keys; i += len(sessions) {
				if _, err := conn.Create(fmt.Sprintf("%s/k%d", root, i), value, 0, zk.WorldACL(zk.PermAll)); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc
}

func waitConnected(ev <-chan zk.Event, timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		select {
		case e := <-ev:
			if e.State == zk.StateHasSession {
				return nil
			}
		case <-deadline:
			return errors.New("no ZooKeeper session within " + timeout.String())
		}
	}
}
