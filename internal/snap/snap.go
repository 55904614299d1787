// Package snap stores raft snapshots, and the state-machine databases that come with them, as durable files.
//
// A snapshot file is named %016x-%016x.snap after the snapshot's term and
// index, so that names sort oldest first. It holds a CRC32C (Castagnoli) of
// the rest, uint32 little-endian, followed by the marshaled raftpb.Snapshot.
// Files are written under a temporary name, synced, renamed into place and
// the directory synced, so a crash leaves either the whole file or none.
package snap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"ensemble/internal/vfs"

	"go.etcd.io/raft/v3/raftpb"
)

var (
	// ErrNoSnapshot is returned by Load when no valid snapshot file exists.
	ErrNoSnapshot = errors.New("snap: no snapshot")
	// ErrCorrupt marks a snapshot file that does not read back as written.
	ErrCorrupt = errors.New("snap: corrupt snapshot file")
)

const (
	snapSuffix   = ".snap"
	brokenSuffix = ".broken"
	tmpSuffix    = ".tmp"
	crcSize      = 4
)

// castagnoli is read-only after package initialization.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Snapshotter keeps snapshot files in one directory. It is safe for
// concurrent use.
type Snapshotter struct {
	fs  vfs.FS
	dir string
	lg  *slog.Logger
	mu  sync.Mutex // serializes Save, Load and Purge
}

// New returns a Snapshotter for dir; the directory is made on the first Save.
func New(fsys vfs.FS, dir string, lg *slog.Logger) *Snapshotter {
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	return &Snapshotter{fs: fsys, dir: dir, lg: lg}
}

func snapName(term, index uint64) string {
	return fmt.Sprintf("%016x-%016x%s", term, index, snapSuffix)
}

func parseSnapName(name string) (term, index uint64, ok bool) {
	if len(name) != 33+len(snapSuffix) || name[16] != '-' || !strings.HasSuffix(name, snapSuffix) {
		return 0, 0, false
	}
	term, err1 := strconv.ParseUint(name[:16], 16, 64)
	index, err2 := strconv.ParseUint(name[17:33], 16, 64)
	return term, index, err1 == nil && err2 == nil
}

// Save writes snap durably. An empty snapshot (index 0) is not written.
func (s *Snapshotter) Save(snap raftpb.Snapshot) error {
	if snap.Metadata.Index == 0 {
		return nil
	}
	n := snap.Size()
	buf := make([]byte, crcSize+n)
	if _, err := snap.MarshalToSizedBuffer(buf[crcSize:]); err != nil {
		return fmt.Errorf("snap: marshal: %w", err)
	}
	binary.LittleEndian.PutUint32(buf, crc32.Checksum(buf[crcSize:], castagnoli))

	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fs.MkdirAll(s.dir, 0o700); err != nil {
		return fmt.Errorf("snap: save: %w", err)
	}
	path := filepath.Join(s.dir, snapName(snap.Metadata.Term, snap.Metadata.Index))
	_, err := s.writeAtomic(path, func(f vfs.File) (int64, error) {
		n, err := f.Write(buf)
		return int64(n), err
	})
	if err != nil {
		return fmt.Errorf("snap: save: %w", err)
	}
	return nil
}

// writeAtomic creates path through a synced temporary file and a rename,
// then syncs the directory.
func (s *Snapshotter) writeAtomic(path string, write func(vfs.File) (int64, error)) (n int64, err error) {
	tmp := path + tmpSuffix
	f, err := s.fs.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			// Best effort: a leftover temporary file is ignored by Load.
			s.fs.Remove(tmp)
		}
	}()
	n, err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, err
	}
	if err := s.fs.Rename(tmp, path); err != nil {
		return n, err
	}
	return n, s.fs.SyncDir(s.dir)
}

// snapNames lists the snapshot files, oldest first.
func (s *Snapshotter) snapNames() ([]string, error) {
	des, err := s.fs.ReadDir(s.dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, de := range des {
		if _, _, ok := parseSnapName(de.Name()); ok && !de.IsDir() {
			names = append(names, de.Name())
		}
	}
	return names, nil
}

// Load returns the newest valid snapshot. A corrupt file is renamed to
// *.broken, with a warning, and the next newest is tried.
func (s *Snapshotter) Load() (raftpb.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	names, err := s.snapNames()
	if errors.Is(err, os.ErrNotExist) {
		return raftpb.Snapshot{}, ErrNoSnapshot
	}
	if err != nil {
		return raftpb.Snapshot{}, fmt.Errorf("snap: load: %w", err)
	}
	for _, name := range slices.Backward(names) {
		path := filepath.Join(s.dir, name)
		snap, err := s.read(path, name)
		if err == nil {
			return snap, nil
		}
		if !errors.Is(err, ErrCorrupt) {
			return raftpb.Snapshot{}, err
		}
		s.lg.Warn("snap: corrupt snapshot file; setting it aside", "file", path, "error", err)
		if rerr := s.fs.Rename(path, path+brokenSuffix); rerr != nil {
			return raftpb.Snapshot{}, fmt.Errorf("snap: set aside %s: %w", path, rerr)
		}
	}
	return raftpb.Snapshot{}, ErrNoSnapshot
}

func (s *Snapshotter) read(path, name string) (raftpb.Snapshot, error) {
	f, err := s.fs.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return raftpb.Snapshot{}, fmt.Errorf("snap: load: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return raftpb.Snapshot{}, fmt.Errorf("snap: load %s: %w", path, err)
	}
	snap, err := decode(b)
	if err != nil {
		return raftpb.Snapshot{}, fmt.Errorf("%w %s: %v", ErrCorrupt, path, err)
	}
	if term, index, _ := parseSnapName(name); snap.Metadata.Term != term || snap.Metadata.Index != index {
		return raftpb.Snapshot{}, fmt.Errorf("%w %s: holds term %d index %d", ErrCorrupt, path, snap.Metadata.Term, snap.Metadata.Index)
	}
	return snap, nil
}

// decode checks and unmarshals the contents of a snapshot file.
func decode(b []byte) (raftpb.Snapshot, error) {
	var snap raftpb.Snapshot
	if len(b) < crcSize {
		return snap, errors.New("file too short")
	}
	if crc32.Checksum(b[crcSize:], castagnoli) != binary.LittleEndian.Uint32(b) {
		return snap, errors.New("crc mismatch")
	}
	if err := snap.Unmarshal(b[crcSize:]); err != nil {
		return raftpb.Snapshot{}, err
	}
	return snap, nil
}

// Purge removes all but the newest keep snapshot files.
func (s *Snapshotter) Purge(keep int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	names, err := s.snapNames()
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("snap: purge: %w", err)
	}
	keep = max(keep, 0)
	if len(names) <= keep {
		return nil
	}
	for _, name := range names[:len(names)-keep] {
		if err := s.fs.Remove(filepath.Join(s.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("snap: purge: %w", err)
		}
	}
	if err := s.fs.SyncDir(s.dir); err != nil {
		return fmt.Errorf("snap: purge: %w", err)
	}
	return nil
}

// DBFilePath is where the state-machine database that goes with the
// snapshot at index is stored.
func (s *Snapshotter) DBFilePath(index uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%016x.snap.db", index))
}

// SaveDBFrom copies a state-machine database from r to DBFilePath(index),
// durably: through a synced temporary file, a rename and a directory sync.
// It returns the number of bytes copied.
func (s *Snapshotter) SaveDBFrom(r io.Reader, index uint64) (int64, error) {
	if err := s.fs.MkdirAll(s.dir, 0o700); err != nil {
		return 0, fmt.Errorf("snap: save db: %w", err)
	}
	path := s.DBFilePath(index)
	n, err := s.writeAtomic(path, func(f vfs.File) (int64, error) {
		return io.Copy(f, r)
	})
	if err != nil {
		return n, fmt.Errorf("snap: save db %s: %w", path, err)
	}
	s.lg.Info("snap: saved database", "file", path, "bytes", n)
	return n, nil
}
