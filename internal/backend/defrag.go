package backend

import (
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// defragTxBytes bounds each write transaction of a defragmentation's copy,
// so that copying a large database does not hold it all in memory.
const defragTxBytes = 64 << 20

// Defrag rebuilds the database into a compact copy and swaps it in: pages
// freed by deletions and compactions go back to the file system. Writes wait
// while the copy is made; reads go on, served by the old file until the swap
// and by the new one after it. The old file is closed once its last reader
// is done.
func (b *Backend) Defrag() error {
	t := b.batch
	t.Lock()
	defer t.Unlock()
	if err := t.usable(); err != nil {
		return err
	}
	t.commit(false)
	if err := t.usable(); err != nil {
		return err
	}
	start, before := time.Now(), b.Size()
	// The copy reads the old file through its own read transaction; the idle
	// batch transaction is begun again on whichever file is in use after.
	_ = t.tx.Rollback()
	t.tx, t.last = nil, nil
	err := b.swapInCopy()
	if t.err != nil {
		return t.err
	}
	tx, berr := b.db.Begin(true)
	if berr != nil {
		t.err = fmt.Errorf("backend: begin batch: %w", berr)
		b.lg.Error("backend cannot begin a write transaction; refusing all further writes", "err", berr)
		return t.err
	}
	t.tx = tx
	b.updateSize(tx)
	if err != nil {
		b.lg.Warn("defragmentation failed; the database is unchanged", "err", err)
		return err
	}
	b.lg.Info("defragmented database", "size-before", before, "size-after", b.Size(), "took", time.Since(start))
	return nil
}

// swapInCopy writes the compact copy next to the database, durably, puts it
// in the database's place and makes it the one in use. The batch lock is
// held and no write transaction is open. An error before the rename leaves
// the database as it was; one after it is fatal to the backend (t.err).
func (b *Backend) swapInCopy() error {
	tmp := b.path + ".defrag"
	if err := os.Remove(tmp); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("backend: defrag: %w", err)
	}
	// The copy's commits are not synced one by one: one sync at the end makes
	// the whole copy durable before it replaces the original.
	copts := *b.bopts
	copts.NoSync = true
	dst, err := bolt.Open(tmp, 0o600, &copts)
	if err != nil {
		return fmt.Errorf("backend: defrag: %w", err)
	}
	if err := bolt.Compact(dst, b.db, defragTxBytes); err != nil {
		dst.Close()
		os.Remove(tmp)
		return fmt.Errorf("backend: defrag: copy: %w", err)
	}
	err = dst.Sync()
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("backend: defrag: sync copy: %w", err)
	}
	if b.defragCopied != nil {
		b.defragCopied()
	}
	if err := os.Rename(tmp, b.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("backend: defrag: %w", err)
	}
	// From here the file at b.path is the copy: writing on to the old,
	// unlinked file would lose every write at the next restart.
	if err := syncDir(filepath.Dir(b.path)); err != nil {
		b.batch.err = fmt.Errorf("%w: defrag: sync directory: %w", ErrCommitFailed, err)
		return b.batch.err
	}
	ndb, err := bolt.Open(b.path, 0o600, b.bopts)
	if err != nil {
		b.batch.err = fmt.Errorf("%w: defrag: reopen: %w", ErrCommitFailed, err)
		b.lg.Error("cannot reopen the defragmented database; refusing all further writes", "err", err)
		return b.batch.err
	}
	b.readMu.Lock()
	old := b.db
	b.db = ndb
	shared := b.shared
	b.shared = nil
	b.readMu.Unlock()
	if shared != nil {
		shared.Close()
	}
	b.retired.Add(1)
	go func() {
		defer b.retired.Done()
		// Close waits for the old file's read transactions to end.
		if err := old.Close(); err != nil {
			b.lg.Warn("closing the database replaced by defragmentation", "err", err)
		}
	}()
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Hash is a CRC-32C of every bucket's name and every key and value in it,
// as of a commit made for the purpose, skipping the keys ignore picks (nil:
// none). Members holding the same state hash alike.
func (b *Backend) Hash(ignore func(bucket, key []byte) bool) (uint32, error) {
	tx, err := b.committedReadTx()
	if err != nil {
		return 0, fmt.Errorf("backend: hash: %w", err)
	}
	defer tx.Rollback()
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	err = tx.ForEach(func(name []byte, bk *bolt.Bucket) error {
		h.Write(name)
		return bk.ForEach(func(k, v []byte) error {
			if ignore == nil || !ignore(name, k) {
				h.Write(k)
				h.Write(v)
			}
			return nil
		})
	})
	if err != nil {
		return 0, fmt.Errorf("backend: hash: %w", err)
	}
	return h.Sum32(), nil
}
