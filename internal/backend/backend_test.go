package backend

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

var testBucket = []byte("test")

func openTest(t *testing.T, o Options) *Backend {
	t.Helper()
	if o.Path == "" {
		o.Path = filepath.Join(t.TempDir(), "db")
	}
	if o.MmapSize == 0 {
		o.MmapSize = 1 << 20
	}
	b, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	tx := b.BatchTx()
	tx.Lock()
	if err := tx.UnsafeCreateBucket(testBucket); err != nil {
		t.Fatal(err)
	}
	tx.Unlock()
	return b
}

func put(t *testing.T, b *Backend, k, v string) {
	t.Helper()
	tx := b.BatchTx()
	tx.Lock()
	defer tx.Unlock()
	if err := tx.UnsafePut(testBucket, []byte(k), []byte(v)); err != nil {
		t.Fatal(err)
	}
}

func readGet(t *testing.T, b *Backend, k string) []byte {
	t.Helper()
	r, err := b.ReadTx()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	v := r.Get(testBucket, []byte(k))
	return append([]byte(nil), v...)
}

func TestReadTxSeesOnlyCommitted(t *testing.T) {
	b := openTest(t, Options{BatchInterval: time.Hour})
	b.ForceCommit()
	put(t, b, "a", "1")

	tx := b.BatchTx()
	tx.Lock()
	if got := tx.UnsafeGet(testBucket, []byte("a")); string(got) != "1" {
		t.Fatalf("batch does not see its own write: %q", got)
	}
	tx.Unlock()
	if got := readGet(t, b, "a"); got != nil {
		t.Fatalf("read tx saw uncommitted write %q", got)
	}
	b.ForceCommit()
	if got := readGet(t, b, "a"); string(got) != "1" {
		t.Fatalf("after commit got %q", got)
	}
}

func TestCommitByLimit(t *testing.T) {
	b := openTest(t, Options{BatchInterval: time.Hour, BatchLimit: 3})
	b.ForceCommit()
	start := b.Commits()
	put(t, b, "a", "1")
	put(t, b, "b", "2")
	if b.Commits() != start {
		t.Fatalf("committed before the limit")
	}
	put(t, b, "c", "3")
	if b.Commits() != start+1 {
		t.Fatalf("commits = %d, want %d", b.Commits(), start+1)
	}
	if got := readGet(t, b, "c"); string(got) != "3" {
		t.Fatalf("got %q", got)
	}
}

func TestCommitByIntervalRunsHook(t *testing.T) {
	b := openTest(t, Options{BatchInterval: 5 * time.Millisecond})
	committed := make(chan struct{}, 1)
	b.SetCommitHook(func() {
		select {
		case committed <- struct{}{}:
		default:
		}
	})
	put(t, b, "a", "1")
	select {
	case <-committed:
	case <-time.After(10 * time.Second):
		t.Fatal("no commit by interval")
	}
	if got := readGet(t, b, "a"); string(got) != "1" {
		t.Fatalf("got %q", got)
	}
}

func TestReopenAndRange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	b, err := Open(Options{Path: path, MmapSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	tx := b.BatchTx()
	tx.Lock()
	if err := tx.UnsafeCreateBucket(testBucket); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if err := tx.UnsafePut(testBucket, []byte{byte(i)}, []byte{byte(i * 2)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.UnsafeDelete(testBucket, []byte{5}); err != nil {
		t.Fatal(err)
	}
	tx.Unlock()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b, err = Open(Options{Path: path, MmapSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	r, err := b.ReadTx()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var keys []byte
	r.Range(testBucket, []byte{2}, []byte{8}, func(k, v []byte) bool {
		if v[0] != k[0]*2 {
			t.Errorf("key %d value %d", k[0], v[0])
		}
		keys = append(keys, k[0])
		return true
	})
	if !bytes.Equal(keys, []byte{2, 3, 4, 6, 7}) {
		t.Fatalf("keys %v", keys)
	}
	if b.Size() <= 0 || b.SizeInUse() <= 0 || b.SizeInUse() > b.Size() {
		t.Fatalf("size %d in use %d", b.Size(), b.SizeInUse())
	}
}

func TestSnapshotIsConsistentCopy(t *testing.T) {
	b := openTest(t, Options{BatchInterval: time.Hour})
	for i := range 100 {
		put(t, b, fmt.Sprintf("k%03d", i), "v")
	}
	s, err := b.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Writes after the snapshot must not be in it.
	put(t, b, "late", "x")
	b.ForceCommit()
	data, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if int64(len(data)) != s.Size() {
		t.Fatalf("read %d bytes, Size says %d", len(data), s.Size())
	}
	path := filepath.Join(t.TempDir(), "copy")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket(testBucket)
		if n := bk.Stats().KeyN; n != 100 {
			return fmt.Errorf("copy has %d keys", n)
		}
		if bk.Get([]byte("late")) != nil {
			return errors.New("copy has a later write")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotCloseEarlyReleasesReadTx(t *testing.T) {
	b := openTest(t, Options{BatchInterval: time.Hour})
	put(t, b, "a", "1")
	s, err := b.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Close waits for every read transaction; it would hang if the
	// snapshot's were leaked.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestFailedCommitIsSticky(t *testing.T) {
	b := openTest(t, Options{BatchInterval: time.Hour})
	put(t, b, "a", "1")
	tx := b.BatchTx()
	tx.Lock()
	// Make the commit fail by closing the transaction beneath the batch.
	_ = tx.tx.Rollback()
	tx.Unlock()
	b.ForceCommit()
	if err := b.Err(); !errors.Is(err, ErrCommitFailed) {
		t.Fatalf("Err() = %v", err)
	}
	tx.Lock()
	err := tx.UnsafePut(testBucket, []byte("b"), []byte("2"))
	tx.Unlock()
	if !errors.Is(err, ErrCommitFailed) {
		t.Fatalf("put after failure: %v", err)
	}
	if _, err := b.Snapshot(); !errors.Is(err, ErrCommitFailed) {
		t.Fatalf("snapshot after failure: %v", err)
	}
	if err := b.Close(); !errors.Is(err, ErrCommitFailed) {
		t.Fatalf("close after failure: %v", err)
	}
}

func TestConcurrentReadersAndWriter(t *testing.T) {
	b := openTest(t, Options{BatchInterval: time.Millisecond, BatchLimit: 50})
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, err := b.ReadTx()
				if err != nil {
					t.Error(err)
					return
				}
				prev := -1
				r.Range(testBucket, nil, nil, func(k, _ []byte) bool {
					var n int
					fmt.Sscanf(string(k), "%d", &n)
					if n != prev+1 {
						t.Errorf("gap: %d after %d", n, prev)
						return false
					}
					prev = n
					return true
				})
				r.Close()
			}
		}()
	}
	for i := range 2000 {
		put(t, b, fmt.Sprintf("%08d", i), "v")
	}
	close(stop)
	wg.Wait()
}
