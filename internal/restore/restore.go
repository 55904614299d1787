// Package restore turns a snapshot saved from a running cluster into the data
// directory of a member of a new cluster.
//
// The member's database is the snapshot's, with every key and revision, but
// with its applied raft index reset to zero and its alarms cleared: the new
// cluster's log starts from the first entry, and started with
// --initial-cluster-state new the member bootstraps the new cluster's
// membership on top of the restored keys.
package restore

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"ensemble/internal/apply"
	"ensemble/internal/backend"
	"ensemble/internal/mvcc"
	"ensemble/internal/vfs"
)

// Errors of Restore.
var (
	// ErrChecksum means the snapshot's trailing SHA-256 does not match its
	// contents: the file was damaged after it was saved.
	ErrChecksum = errors.New("restore: snapshot file integrity check failed: sha256 mismatch")
	// ErrNoChecksum means the file carries no SHA-256 (a database copied
	// from a data directory, or a truncated snapshot).
	ErrNoChecksum = errors.New("restore: snapshot file has no sha256 checksum")
	// ErrDataDirExists refuses to overwrite a member's data.
	ErrDataDirExists = errors.New("restore: data directory exists and is not empty")
)

// Options say what to restore where.
type Options struct {
	// Snapshot is the file saved with Maintenance.Snapshot (etcdctl
	// snapshot save): a database followed by its SHA-256.
	Snapshot string
	// DataDir is the new member's data directory; it must not exist or be
	// empty.
	DataDir string
	// SkipHashCheck accepts a file without a checksum, such as a database
	// copied from a data directory, and does not verify one that has it.
	SkipHashCheck bool
	Logger        *slog.Logger
}

// Result describes a restored database.
type Result struct {
	Revision int64 // the store's revision, as in the snapshot
	Keys     int   // live keys at that revision
	DBBytes  int64
}

// Restore verifies the snapshot first, and only then creates the data
// directory and its database. On failure nothing it created is left behind.
func Restore(o Options) (Result, error) {
	lg := o.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	f, err := os.Open(o.Snapshot)
	if err != nil {
		return Result{}, fmt.Errorf("restore: %w", err)
	}
	defer f.Close()
	dbBytes, err := verify(f, o.Snapshot, o.SkipHashCheck)
	if err != nil {
		return Result{}, err
	}
	created, err := makeDataDir(o.DataDir)
	if err != nil {
		return Result{}, err
	}
	res, err := writeDB(f, dbBytes, filepath.Join(o.DataDir, "member"), lg)
	if err != nil {
		for i := len(created) - 1; i >= 0; i-- {
			os.RemoveAll(created[i])
		}
		return Result{}, err
	}
	lg.Info("restored snapshot", "snapshot", o.Snapshot, "data-dir", o.DataDir, "revision", res.Revision, "keys", res.Keys)
	return res, nil
}

// verify checks the trailing SHA-256 and returns how many bytes of f are
// the database. A snapshot is whole 512-byte sectors plus the 32-byte sum,
// which is how etcd's tools tell one from a bare database.
func verify(f *os.File, name string, skip bool) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("restore: %w", err)
	}
	size := st.Size()
	hasSum := size%512 == sha256.Size
	if !hasSum {
		if skip {
			return size, nil
		}
		return 0, fmt.Errorf("%w: %s (%d bytes is not a database followed by its sha256; use --skip-hash-check for a database copied from a data directory)", ErrNoChecksum, name, size)
	}
	dbBytes := size - sha256.Size
	if skip {
		return dbBytes, nil
	}
	h := sha256.New()
	if _, err := io.CopyN(h, f, dbBytes); err != nil {
		return 0, fmt.Errorf("restore: read %s: %w", name, err)
	}
	var want [sha256.Size]byte
	if _, err := io.ReadFull(f, want[:]); err != nil {
		return 0, fmt.Errorf("restore: read %s: %w", name, err)
	}
	if got := h.Sum(nil); string(got) != string(want[:]) {
		return 0, fmt.Errorf("%w: %s: expected %x, computed %x", ErrChecksum, name, want, got)
	}
	return dbBytes, nil
}

// makeDataDir creates dir/member and returns the directories it created,
// outermost first, for removal on failure.
func makeDataDir(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	switch {
	case err == nil && len(entries) > 0:
		return nil, fmt.Errorf("%w: %s", ErrDataDirExists, dir)
	case err != nil && !os.IsNotExist(err):
		return nil, fmt.Errorf("restore: %w", err)
	}
	var created []string
	if os.IsNotExist(err) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("restore: create data dir: %w", err)
		}
		created = append(created, dir)
	}
	member := filepath.Join(dir, "member")
	if err := os.Mkdir(member, 0o700); err != nil {
		for _, d := range created {
			os.RemoveAll(d)
		}
		return nil, fmt.Errorf("restore: create data dir: %w", err)
	}
	return append(created, member), nil
}

// writeDB copies the database into memberDir, resets its applied index and
// alarms, and moves it into place durably.
func writeDB(f *os.File, dbBytes int64, memberDir string, lg *slog.Logger) (Result, error) {
	tmp := filepath.Join(memberDir, "db.restore")
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return Result{}, fmt.Errorf("restore: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		out.Close()
		return Result{}, fmt.Errorf("restore: %w", err)
	}
	_, err = io.CopyN(out, f, dbBytes)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Result{}, fmt.Errorf("restore: copy database: %w", err)
	}

	be, err := backend.Open(backend.Options{Path: tmp, Logger: lg})
	if err != nil {
		return Result{}, fmt.Errorf("restore: the snapshot is not a usable database: %w", err)
	}
	kv, err := mvcc.Open(be, lg)
	if err != nil {
		be.Close()
		return Result{}, fmt.Errorf("restore: the snapshot is not a usable database: %w", err)
	}
	res := Result{Revision: kv.Rev(), DBBytes: dbBytes}
	if rr, err := kv.Range([]byte{0}, []byte{0}, mvcc.RangeOptions{CountOnly: true}); err == nil {
		res.Keys = rr.Count
	}
	// The new cluster's log starts at 1: an applied index carried over from
	// the old cluster would make the member skip the new cluster's entries.
	kv.SetConsistentIndex(0, 0)
	aerr := apply.ClearAlarms(be)
	kv.Close()
	if err := be.Close(); err != nil {
		return Result{}, fmt.Errorf("restore: write database: %w", err)
	}
	if aerr != nil {
		return Result{}, aerr
	}
	if err := os.Rename(tmp, filepath.Join(memberDir, "db")); err != nil {
		return Result{}, fmt.Errorf("restore: %w", err)
	}
	for _, d := range []string{memberDir, filepath.Dir(memberDir), filepath.Dir(filepath.Dir(memberDir))} {
		if err := vfs.OS().SyncDir(d); err != nil {
			return Result{}, fmt.Errorf("restore: sync %s: %w", d, err)
		}
	}
	return res, nil
}
