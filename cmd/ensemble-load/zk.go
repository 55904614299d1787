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
	counters := make([]int, clients)
	res := drive(clients, duration, func(ctx context.Context, c int, r *rand.Rand) error {
		conn := sessions[c%len(sessions)]
		var err error
		switch op {
		case "zk-create":
			counters[c]++
			_, err = conn.Create(fmt.Sprintf("%s/c%d-%d", root, c, counters[c]), value, 0, zk.WorldACL(zk.PermAll))
		case "zk-set":
			_, err = conn.Set(fmt.Sprintf("%s/k%d", root, r.IntN(keys)), value, -1)
		case "zk-get":
			_, _, err = conn.Get(fmt.Sprintf("%s/k%d", root, r.IntN(keys)))
		}
		return err
	})
	res.print(fmt.Sprintf("op=%s clients=%d sessions=%d", op, clients, conns))
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
