// Command fencedlock shows why a distributed lock needs a fencing token: a
// worker takes the lock, stalls past its session's TTL, and wakes up to
// write with a lock it no longer holds; the storage it writes to refuses
// the stale token because the next holder has already written with a
// higher one.
//
//	go run ./examples/fencedlock --endpoints 127.0.0.1:2379
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"ensemble/recipes"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// lockName is the lock that guards the storage.
const lockName = "/locks/fencedlock"

// ErrStaleToken is the storage's answer to a writer whose lock has passed
// to someone else.
var ErrStaleToken = errors.New("fencedlock: stale fencing token")

// Storage stands for any resource guarded by the lock (a file server, a
// database, an external API). It knows nothing of the lock service; it
// only remembers the highest fencing token it has seen.
type Storage struct {
	mu      sync.Mutex
	highest int64
	data    []string
}

// Write appends value if token is not older than any token seen before.
func (s *Storage) Write(token int64, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if token < s.highest {
		return fmt.Errorf("%w: %d, already saw %d", ErrStaleToken, token, s.highest)
	}
	s.highest = token
	s.data = append(s.data, value)
	return nil
}

// Data is what was written, in order.
func (s *Storage) Data() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.data...)
}

// Worker takes the lock and writes to the storage under it.
type Worker struct {
	Name string
	s    *concurrency.Session
	m    *recipes.Mutex
}

// NewWorker returns a worker on a session of ttl seconds.
func NewWorker(cli *clientv3.Client, name string, ttl int) (*Worker, error) {
	s, err := concurrency.NewSession(cli, concurrency.WithTTL(ttl))
	if err != nil {
		return nil, err
	}
	return &Worker{Name: name, s: s, m: recipes.NewMutex(s, lockName)}, nil
}

// Lock takes the lock and returns its fencing token.
func (w *Worker) Lock(ctx context.Context) (int64, error) {
	if err := w.m.Lock(ctx); err != nil {
		return 0, err
	}
	return w.m.Token(), nil
}

// Write writes value to st, with the worker's current token.
func (w *Worker) Write(st *Storage, value string) error {
	return st.Write(w.m.Token(), w.Name+": "+value)
}

// Unlock releases the lock.
func (w *Worker) Unlock(ctx context.Context) error { return w.m.Unlock(ctx) }

// Stall stands for a long garbage-collection pause or a frozen VM: the
// worker stops renewing its session, whose lease then expires.
func (w *Worker) Stall() { w.s.Orphan() }

// Close ends the worker's session.
func (w *Worker) Close() { w.s.Close() }

func main() {
	endpoints := flag.String("endpoints", "127.0.0.1:2379", "comma-separated client URLs")
	flag.Parse()
	if err := run(context.Background(), strings.Split(*endpoints, ","), os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "fencedlock:", err)
		os.Exit(1)
	}
}

// run plays the story: A locks and writes, stalls; B gets the lock and
// writes; A wakes and its write is refused.
func run(ctx context.Context, endpoints []string, out io.Writer) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	st := &Storage{}
	a, err := NewWorker(cli, "A", 2)
	if err != nil {
		return err
	}
	defer a.Close()
	b, err := NewWorker(cli, "B", 5)
	if err != nil {
		return err
	}
	defer b.Close()

	ta, err := a.Lock(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "A holds the lock with token %d\n", ta)
	if err := a.Write(st, "first"); err != nil {
		return err
	}
	a.Stall()
	fmt.Fprintln(out, "A stalls; its session will expire")
	tb, err := b.Lock(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "B holds the lock with token %d\n", tb)
	if err := b.Write(st, "second"); err != nil {
		return err
	}
	err = a.Write(st, "late")
	if !errors.Is(err, ErrStaleToken) {
		return fmt.Errorf("the stale write was not refused: %v", err)
	}
	fmt.Fprintf(out, "A wakes up and writes: refused (%v)\n", err)
	if err := b.Unlock(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, "storage holds %q\n", st.Data())
	return nil
}
