package backend

import (
	"bytes"
	"fmt"
	"io"
	"testing"
	"time"
)

func TestDefragShrinksKeepsDataAndServesReads(t *testing.T) {
	b := openTest(t, Options{BatchInterval: time.Hour})
	path := b.path
	val := bytes.Repeat([]byte("v"), 1024)
	tx := b.BatchTx()
	tx.Lock()
	for i := range 5000 {
		if err := tx.UnsafePut(testBucket, fmt.Appendf(nil, "k%05d", i), val); err != nil {
			t.Fatal(err)
		}
	}
	tx.Unlock()
	b.ForceCommit()
	tx.Lock()
	for i := 10; i < 5000; i++ {
		if err := tx.UnsafeDelete(testBucket, fmt.Appendf(nil, "k%05d", i)); err != nil {
			t.Fatal(err)
		}
	}
	tx.Unlock()
	b.ForceCommit()
	before := b.Size()
	hashBefore, err := b.Hash(nil)
	if err != nil {
		t.Fatal(err)
	}

	// A reader and a snapshot stream begun before the defragmentation keep
	// the old file, and neither holds it up.
	old, err := b.ReadTx()
	if err != nil {
		t.Fatal(err)
	}
	oldClosed := false
	defer func() {
		if !oldClosed {
			old.Close()
		}
	}()
	snap, err := b.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	var readDuring []byte
	b.defragCopied = func() {
		readDuring = readGet(t, b, "k00003")
	}
	if err := b.Defrag(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readDuring, val) {
		t.Fatalf("read while the copy was made got %d bytes", len(readDuring))
	}
	if got := old.Get(testBucket, []byte("k00005")); !bytes.Equal(got, val) {
		t.Fatalf("reader from before the defragmentation lost its view: %d bytes", len(got))
	}
	old.Close()
	oldClosed = true
	n, err := io.Copy(io.Discard, snap)
	if err != nil || n != snap.Size() {
		t.Fatalf("snapshot from before the defragmentation: %d of %d bytes, %v", n, snap.Size(), err)
	}
	snap.Close()

	after := b.Size()
	if after > before/4 {
		t.Fatalf("size %d before defragmentation, %d after", before, after)
	}
	hashAfter, err := b.Hash(nil)
	if err != nil {
		t.Fatal(err)
	}
	if hashAfter != hashBefore {
		t.Fatalf("contents changed: hash %x before, %x after", hashBefore, hashAfter)
	}
	if got := readGet(t, b, "k04000"); got != nil {
		t.Fatalf("deleted key is back: %q", got)
	}
	put(t, b, "new", "value")
	b.ForceCommit()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b2 := openTest(t, Options{Path: path})
	for _, k := range []string{"k00000", "k00009"} {
		if got := readGet(t, b2, k); !bytes.Equal(got, val) {
			t.Fatalf("%s after reopen: %d bytes", k, len(got))
		}
	}
	if got := readGet(t, b2, "new"); string(got) != "value" {
		t.Fatalf("write after defragmentation lost on reopen: %q", got)
	}
}

func TestDefragClosedBackend(t *testing.T) {
	b := openTest(t, Options{})
	b.Close()
	if err := b.Defrag(); err == nil {
		t.Fatal("defragmenting a closed backend succeeded")
	}
}

func TestHashIgnoresAndDiffers(t *testing.T) {
	b := openTest(t, Options{})
	put(t, b, "a", "1")
	put(t, b, "skip", "x")
	h1, err := b.Hash(nil)
	if err != nil {
		t.Fatal(err)
	}
	ignore := func(bucket, key []byte) bool { return string(key) == "skip" }
	i1, _ := b.Hash(ignore)
	put(t, b, "skip", "y")
	h2, _ := b.Hash(nil)
	i2, _ := b.Hash(ignore)
	if h1 == h2 {
		t.Fatal("hash did not change with the contents")
	}
	if i1 != i2 {
		t.Fatal("hash changed with an ignored key")
	}
}
