package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"ensemble/internal/vfs"

	"go.etcd.io/raft/v3/raftpb"
)

var (
	// ErrCorrupt marks a log that cannot be read back as written. Errors
	// wrapping it name the file and the offset of the bad record.
	ErrCorrupt = errors.New("wal: corrupt record")
	// ErrExist is returned by Create when the directory already holds a log.
	ErrExist = errors.New("wal: log already exists")
	// ErrNotFound is returned by Open when the directory holds no segment.
	ErrNotFound = errors.New("wal: no log found")
	// ErrGap is returned by ReadAll when the entries after the snapshot do
	// not start right after it or skip an index.
	ErrGap = errors.New("wal: gap in entries")
	// ErrMetadataConflict is returned by ReadAll when segments disagree on
	// the metadata.
	ErrMetadataConflict = errors.New("wal: segments hold different metadata")
	// ErrFailed is returned by every append after one failed: the file is
	// in an unknown state and the process must restart and replay.
	ErrFailed = errors.New("wal: an earlier write failed")
	// ErrNotRead is returned by appends to an opened log before ReadAll.
	ErrNotRead = errors.New("wal: ReadAll must be called before appending")
	// ErrClosed is returned by operations on a closed WAL.
	ErrClosed = errors.New("wal: closed")
)

// DefaultSegmentSize is the size segments are preallocated to.
const DefaultSegmentSize = 64 << 20

// flushThreshold bounds the encode buffer: a larger Save is written in
// several calls (still with one sync) rather than held whole in memory.
const flushThreshold = 4 << 20

// Snapshot is a marker: the raft snapshot the log continues from.
type Snapshot struct{ Index, Term uint64 }

// Options tunes a WAL. The zero value means the defaults.
type Options struct {
	// SegmentSize is the preallocated size of a segment; records are added
	// to a segment until the next one would cross it.
	SegmentSize int64
}

func (o Options) segmentSize() int64 {
	if o.SegmentSize <= 0 {
		return DefaultSegmentSize
	}
	return o.SegmentSize
}

type segment struct {
	seq, index uint64
	path       string
}

func segmentName(seq, index uint64) string { return fmt.Sprintf("%016x-%016x.wal", seq, index) }

func parseSegmentName(name string) (seq, index uint64, ok bool) {
	if len(name) != 37 || name[16] != '-' || !strings.HasSuffix(name, ".wal") {
		return 0, 0, false
	}
	seq, err1 := strconv.ParseUint(name[:16], 16, 64)
	index, err2 := strconv.ParseUint(name[17:33], 16, 64)
	return seq, index, err1 == nil && err2 == nil
}

func listSegments(fsys vfs.FS, dir string) ([]segment, error) {
	des, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []segment
	for _, de := range des {
		if seq, index, ok := parseSegmentName(de.Name()); ok && !de.IsDir() {
			segs = append(segs, segment{seq: seq, index: index, path: filepath.Join(dir, de.Name())})
		}
	}
	return segs, nil // sorted by name, hence by sequence
}

// Exist reports whether dir holds at least one segment.
func Exist(fsys vfs.FS, dir string) bool {
	segs, err := listSegments(fsys, dir)
	return err == nil && len(segs) > 0
}

// WAL is an open write-ahead log. Its methods are safe for concurrent use.
type WAL struct {
	fs      vfs.FS
	dir     string
	lg      *slog.Logger
	segSize int64

	// mu guards every field below. Unexported methods that append or touch
	// these fields (usable, fail, commit, flush, reserve, cut, makeSegment,
	// repair, prepareAppend) expect it held.
	mu        sync.Mutex
	segs      []segment
	f         vfs.File       // the last segment, positioned at off
	off       int64          // end of the records in the last segment
	headerEnd int64          // end of the last segment's header records
	buf       []byte         // encode buffer, reused by every append
	synced    syncedRecorder // failpoints builds only: see SyncedFile

	metadata  []byte
	hs        raftpb.HardState
	snap      Snapshot
	lastIndex uint64 // index of the last entry appended (or snapshot marker)

	ready  bool  // appends allowed: after Create, or after ReadAll
	err    error // sticky: the first failed write or sync
	closed bool
}

func orDiscard(lg *slog.Logger) *slog.Logger {
	if lg == nil {
		return slog.New(slog.DiscardHandler)
	}
	return lg
}

// Create makes a new log in dir with the given metadata. It fails with
// ErrExist if dir already holds one.
func Create(fsys vfs.FS, dir string, metadata []byte, lg *slog.Logger) (*WAL, error) {
	return CreateWithOptions(fsys, dir, metadata, lg, Options{})
}

// CreateWithOptions is Create with tuning options.
func CreateWithOptions(fsys vfs.FS, dir string, metadata []byte, lg *slog.Logger, opts Options) (*WAL, error) {
	if Exist(fsys, dir) {
		return nil, fmt.Errorf("%w in %s", ErrExist, dir)
	}
	if err := fsys.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("wal: create: %w", err)
	}
	w := &WAL{
		fs:       fsys,
		dir:      dir,
		lg:       orDiscard(lg),
		segSize:  opts.segmentSize(),
		metadata: bytes.Clone(metadata),
		ready:    true,
	}
	seg := segment{seq: 0, index: 0, path: filepath.Join(dir, segmentName(0, 0))}
	f, err := w.makeSegment(seg)
	if err != nil {
		return nil, fmt.Errorf("wal: create: %w", err)
	}
	// The directory itself may be new: make its entry in the parent durable.
	if err := fsys.SyncDir(filepath.Dir(filepath.Clean(dir))); err != nil {
		f.Close()
		return nil, fmt.Errorf("wal: create: %w", err)
	}
	w.f, w.segs = f, []segment{seg}
	w.off, w.headerEnd = int64(len(w.buf)), int64(len(w.buf))
	w.buf = w.buf[:0]
	w.recordSynced(w.off)
	return w, nil
}

// makeSegment writes seg under a temporary name, preallocated and holding
// the header records, syncs it, renames it into place and syncs the
// directory. It leaves the header in w.buf and returns the file positioned
// after it.
func (w *WAL) makeSegment(seg segment) (_ vfs.File, err error) {
	tmp := seg.path + ".tmp"
	f, err := w.fs.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			f.Close()
			w.fs.Remove(tmp)
		}
	}()
	if err := f.Preallocate(w.segSize); err != nil {
		return nil, err
	}
	w.buf = w.appendHeader(w.buf[:0])
	if _, err := f.Write(w.buf); err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	if err := w.fs.Rename(tmp, seg.path); err != nil {
		return nil, err
	}
	if err := w.fs.SyncDir(w.dir); err != nil {
		return nil, err
	}
	return f, nil
}

// appendHeader encodes the records every segment starts with.
func (w *WAL) appendHeader(buf []byte) []byte {
	buf, off := appendRecord(buf, recMetadata, len(w.metadata))
	copy(buf[off+headerSize+1:], w.metadata)
	sealRecord(buf, off)
	buf = appendState(buf, &w.hs)
	return appendSnapshot(buf, w.snap)
}

func appendState(buf []byte, hs *raftpb.HardState) []byte {
	n := hs.Size()
	buf, off := appendRecord(buf, recState, n)
	p := off + headerSize + 1
	hs.MarshalToSizedBuffer(buf[p : p+n]) // cannot fail: the buffer has the exact size
	sealRecord(buf, off)
	return buf
}

func appendSnapshot(buf []byte, s Snapshot) []byte {
	buf, off := appendRecord(buf, recSnapshot, snapSize)
	p := off + headerSize + 1
	binary.LittleEndian.PutUint64(buf[p:], s.Index)
	binary.LittleEndian.PutUint64(buf[p+8:], s.Term)
	sealRecord(buf, off)
	return buf
}

// Open opens the log in dir. ReadAll must be called before appending.
func Open(fsys vfs.FS, dir string, lg *slog.Logger) (*WAL, error) {
	return OpenWithOptions(fsys, dir, lg, Options{})
}

// OpenWithOptions is Open with tuning options.
func OpenWithOptions(fsys vfs.FS, dir string, lg *slog.Logger, opts Options) (*WAL, error) {
	segs, err := listSegments(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("wal: open: %w", err)
	}
	if len(segs) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNotFound, dir)
	}
	for i := 1; i < len(segs); i++ {
		if segs[i].seq != segs[i-1].seq+1 {
			return nil, fmt.Errorf("%w: segment missing between %s and %s", ErrCorrupt, segs[i-1].path, segs[i].path)
		}
	}
	f, err := fsys.OpenFile(segs[len(segs)-1].path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("wal: open: %w", err)
	}
	return &WAL{fs: fsys, dir: dir, lg: orDiscard(lg), segSize: opts.segmentSize(), segs: segs, f: f}, nil
}

func corrupt(path string, off int, reason string) error {
	return fmt.Errorf("%w in %s at offset %d: %s", ErrCorrupt, path, off, reason)
}

// ReadAll returns the metadata, the newest HardState, and the entries with
// Index > from.Index in log order, where a later entry with index i replaces
// every earlier entry with index >= i. It repairs a torn tail in the last
// segment and leaves the WAL ready for appending. It must be called once,
// right after Open; on error nothing on disk has been changed unless the
// error comes from the repair itself.
func (w *WAL) ReadAll(from Snapshot) (metadata []byte, hs raftpb.HardState, ents []raftpb.Entry, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, hs, nil, ErrClosed
	}
	if w.ready {
		return nil, hs, nil, errors.New("wal: ReadAll called twice or after Create")
	}
	var (
		data      []byte
		torn      = -1 // offset of a torn record in the last segment
		tornWhy   string
		dirtyEnd  int // end of the non-zero bytes at or after the torn record
		end       int // end of the records in the last segment
		headerEnd int
		haveMeta  bool
	)
	for si, seg := range w.segs {
		last := si == len(w.segs)-1
		data, err = w.readSegment(seg, last, data[:0])
		if err != nil {
			return nil, hs, nil, err
		}
		off, nrec := 0, 0
		headerEnd = 0
		for off < len(data) {
			t, payload, next, recEnd, status := decodeRecord(data, off)
			if status == decZero {
				lnz := lastNonZero(data[off:])
				if lnz < 0 {
					break // the unused, zeroed rest of the segment
				}
				if !last {
					return nil, hs, nil, corrupt(seg.path, off, "data after the end of the records")
				}
				torn, tornWhy, dirtyEnd = off, "zero record header", off+lnz+1
				break
			}
			if status != decOK {
				if last && (status == decShort || spansZeroSector(data, off, recEnd)) {
					torn, tornWhy = off, status.String()
					if status != decShort {
						tornWhy += " over a zero sector"
					}
					dirtyEnd = off + lastNonZero(data[off:]) + 1
					break
				}
				return nil, hs, nil, corrupt(seg.path, off, status.String())
			}
			switch t {
			case recMetadata:
				if haveMeta && !bytes.Equal(w.metadata, payload) {
					return nil, hs, nil, fmt.Errorf("%w: %s at offset %d", ErrMetadataConflict, seg.path, off)
				}
				w.metadata, haveMeta = bytes.Clone(payload), true
			case recState:
				var st raftpb.HardState
				if err := st.Unmarshal(payload); err != nil {
					return nil, hs, nil, corrupt(seg.path, off, "bad hard state: "+err.Error())
				}
				w.hs = st
			case recSnapshot:
				if len(payload) != snapSize {
					return nil, hs, nil, corrupt(seg.path, off, "bad snapshot marker")
				}
				w.snap = Snapshot{Index: binary.LittleEndian.Uint64(payload), Term: binary.LittleEndian.Uint64(payload[8:])}
				w.lastIndex = max(w.lastIndex, w.snap.Index)
			case recEntry:
				var e raftpb.Entry
				if err := e.Unmarshal(payload); err != nil {
					return nil, hs, nil, corrupt(seg.path, off, "bad entry: "+err.Error())
				}
				w.lastIndex = e.Index
				if ents, err = addEntry(ents, e, from); err != nil {
					return nil, hs, nil, fmt.Errorf("%w (in %s at offset %d)", err, seg.path, off)
				}
			default:
				return nil, hs, nil, corrupt(seg.path, off, fmt.Sprintf("unknown record type %d", t))
			}
			nrec++
			if nrec <= 3 {
				headerEnd = next
			}
			off = next
		}
		if last {
			end = off
			if torn >= 0 {
				end = torn
			}
		}
	}
	if torn >= 0 {
		if err := w.repair(torn, dirtyEnd, tornWhy); err != nil {
			w.err = err
			return nil, hs, nil, err
		}
	}
	if err := w.prepareAppend(int64(end), int64(min(headerEnd, end))); err != nil {
		w.err = err
		return nil, hs, nil, err
	}
	w.ready = true
	return bytes.Clone(w.metadata), w.hs, ents, nil
}

// addEntry applies raft's rule that an entry replaces every earlier entry at
// or after its index.
func addEntry(ents []raftpb.Entry, e raftpb.Entry, from Snapshot) ([]raftpb.Entry, error) {
	if e.Index <= from.Index {
		// Everything kept so far is above from, hence at or after e.
		return ents[:0], nil
	}
	if len(ents) == 0 {
		if e.Index != from.Index+1 {
			return ents, fmt.Errorf("%w: entry %d follows snapshot %d", ErrGap, e.Index, from.Index)
		}
		return append(ents, e), nil
	}
	first, last := ents[0].Index, ents[len(ents)-1].Index
	switch {
	case e.Index > last+1:
		return ents, fmt.Errorf("%w: entry %d follows entry %d", ErrGap, e.Index, last)
	case e.Index <= last:
		// Drop the superseded entries' payloads along with them.
		clear(ents[e.Index-first:])
		ents = ents[:e.Index-first]
	}
	return append(ents, e), nil
}

func (w *WAL) readSegment(seg segment, last bool, buf []byte) ([]byte, error) {
	f := w.f
	if !last {
		var err error
		if f, err = w.fs.OpenFile(seg.path, os.O_RDONLY, 0); err != nil {
			return nil, fmt.Errorf("wal: read: %w", err)
		}
		defer f.Close()
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("wal: read: %w", err)
	}
	size := int(fi.Size())
	if cap(buf) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	n, err := f.ReadAt(buf, 0)
	if err != nil && !(errors.Is(err, io.EOF) && n == size) {
		return nil, fmt.Errorf("wal: read %s: %w", seg.path, err)
	}
	return buf, nil
}

// repair zeroes the last segment from the torn record at off up to the end
// of its non-zero bytes (the rest is zero already) and syncs it.
func (w *WAL) repair(off, dirtyEnd int, why string) error {
	path := w.segs[len(w.segs)-1].path
	w.lg.Warn("wal: torn write at the tail of the log; dropping it and every record after it",
		"file", path, "offset", off, "reason", why, "zeroed_bytes", dirtyEnd-off)
	if dirtyEnd > off {
		if _, err := w.f.Seek(int64(off), io.SeekStart); err != nil {
			return fmt.Errorf("wal: repair %s: %w", path, err)
		}
		zeros := make([]byte, min(dirtyEnd-off, 1<<20))
		for rem := dirtyEnd - off; rem > 0; {
			n, err := w.f.Write(zeros[:min(rem, len(zeros))])
			if err != nil {
				return fmt.Errorf("wal: repair %s: %w", path, err)
			}
			rem -= n
		}
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("wal: repair %s: %w", path, err)
	}
	w.recordSynced(int64(off))
	return nil
}

// prepareAppend positions the last segment for appending, tops up its
// preallocation and removes temporary files left by an interrupted cut.
func (w *WAL) prepareAppend(end, headerEnd int64) error {
	if err := w.f.Preallocate(w.segSize); err != nil {
		return fmt.Errorf("wal: preallocate: %w", err)
	}
	if _, err := w.f.Seek(end, io.SeekStart); err != nil {
		return fmt.Errorf("wal: seek: %w", err)
	}
	// What was just read may have come from the page cache of a process
	// that died before its fsync. raft takes everything read as durable
	// (it votes and acknowledges on it), so make it so before it is used.
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("wal: sync what was read: %w", err)
	}
	w.recordSynced(end)
	w.off, w.headerEnd = end, headerEnd
	des, err := w.fs.ReadDir(w.dir)
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	for _, de := range des {
		if strings.HasSuffix(de.Name(), ".wal.tmp") {
			// Nothing depends on the removal being durable.
			if err := w.fs.Remove(filepath.Join(w.dir, de.Name())); err != nil {
				w.lg.Warn("wal: cannot remove temporary segment", "file", de.Name(), "error", err)
			}
		}
	}
	return nil
}

// usable needs w.mu held.
func (w *WAL) usable() error {
	switch {
	case w.closed:
		return ErrClosed
	case w.err != nil:
		return fmt.Errorf("%w: %w", ErrFailed, w.err)
	case !w.ready:
		return ErrNotRead
	}
	return nil
}

// fail records the first write failure; it needs w.mu held.
func (w *WAL) fail(err error) error {
	w.err = err
	w.lg.Error("wal: write failed; refusing further appends", "dir", w.dir, "error", err)
	return err
}

// Save appends hs (unless empty) and ents, and makes them durable with one
// sync. Nothing is written if both are empty. After an error the WAL refuses
// every later append.
func (w *WAL) Save(hs raftpb.HardState, ents []raftpb.Entry) error {
	return w.save(hs, ents, true)
}

// SaveUnsynced appends like Save but leaves the data to the next sync. Raft
// allows it when a Ready changes only the commit index (Ready.MustSync is
// false): a lost commit index is learnt again from the leader, and a torn
// record at the tail is repaired on open like any other.
func (w *WAL) SaveUnsynced(hs raftpb.HardState, ents []raftpb.Entry) error {
	return w.save(hs, ents, false)
}

func (w *WAL) save(hs raftpb.HardState, ents []raftpb.Entry, sync bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	hasState := hs != (raftpb.HardState{})
	if !hasState && len(ents) == 0 {
		return nil
	}
	w.buf = w.buf[:0]
	for i := range ents {
		e := &ents[i]
		n := e.Size()
		if err := w.reserve(recordSize(n)); err != nil {
			return w.fail(err)
		}
		var off int
		w.buf, off = appendRecord(w.buf, recEntry, n)
		p := off + headerSize + 1
		if _, err := e.MarshalToSizedBuffer(w.buf[p : p+n]); err != nil {
			return w.fail(fmt.Errorf("wal: marshal entry %d: %w", e.Index, err))
		}
		sealRecord(w.buf, off)
		w.lastIndex = e.Index
	}
	if hasState {
		if err := w.reserve(recordSize(hs.Size())); err != nil {
			return w.fail(err)
		}
		w.buf = appendState(w.buf, &hs)
		w.hs = hs
	}
	if !sync {
		if err := w.flush(); err != nil {
			return w.fail(err)
		}
		return nil
	}
	return w.commit()
}

// SaveSnapshot appends a snapshot marker and syncs it.
func (w *WAL) SaveSnapshot(s Snapshot) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.usable(); err != nil {
		return err
	}
	w.buf = w.buf[:0]
	if err := w.reserve(recordSize(snapSize)); err != nil {
		return w.fail(err)
	}
	w.buf = appendSnapshot(w.buf, s)
	w.snap = s
	w.lastIndex = max(w.lastIndex, s.Index)
	return w.commit()
}

// commit writes the buffer and syncs the segment.
func (w *WAL) commit() error {
	if err := w.flush(); err != nil {
		return w.fail(err)
	}
	if err := w.f.Sync(); err != nil {
		return w.fail(fmt.Errorf("wal: sync %s: %w", w.segs[len(w.segs)-1].path, err))
	}
	w.recordSynced(w.off)
	return nil
}

// flush writes the encoded records to the last segment without syncing.
func (w *WAL) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	n, err := w.f.Write(w.buf)
	if err == nil && n < len(w.buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fmt.Errorf("wal: write %s at offset %d: %w", w.segs[len(w.segs)-1].path, w.off, err)
	}
	w.off += int64(n)
	w.buf = w.buf[:0]
	return nil
}

// reserve makes room for a record of size bytes: it cuts a new segment when
// the record would cross the segment size (unless the segment holds nothing
// but its header, so a huge record still goes somewhere), and writes out a
// large buffer early.
func (w *WAL) reserve(size int) error {
	pending := w.off + int64(len(w.buf))
	if pending+int64(size) > w.segSize && pending > w.headerEnd {
		if err := w.flush(); err != nil {
			return err
		}
		return w.cut()
	}
	if len(w.buf) >= flushThreshold {
		return w.flush()
	}
	return nil
}

// cut seals the last segment and starts the next one.
func (w *WAL) cut() error {
	cur := w.segs[len(w.segs)-1]
	// Drop the unused preallocation so the sealed segment ends at its last
	// record; the sync also makes every record in it durable.
	if err := w.f.Truncate(w.off); err != nil {
		return fmt.Errorf("wal: truncate %s: %w", cur.path, err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("wal: sync %s: %w", cur.path, err)
	}
	next := segment{seq: cur.seq + 1, index: w.lastIndex + 1}
	next.path = filepath.Join(w.dir, segmentName(next.seq, next.index))
	f, err := w.makeSegment(next)
	if err != nil {
		return fmt.Errorf("wal: cut %s: %w", next.path, err)
	}
	if err := w.f.Close(); err != nil {
		w.lg.Warn("wal: close sealed segment", "file", cur.path, "error", err)
	}
	w.f = f
	w.segs = append(w.segs, next)
	w.off, w.headerEnd = int64(len(w.buf)), int64(len(w.buf))
	w.buf = w.buf[:0]
	// The sealed segment and the new one's header are durable.
	w.recordSynced(w.off)
	w.lg.Info("wal: started segment", "file", next.path)
	return nil
}

// ReleaseLockTo removes the oldest segments whose entries all have indexes
// below index. It never removes the segment that may hold index, nor the
// last segment.
func (w *WAL) ReleaseLockTo(index uint64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	// A segment's live entries are below the first index of every later
	// segment, since each name records the last index written before it.
	keep := 0
	for i := len(w.segs) - 1; i > 0; i-- {
		if w.segs[i].index <= index {
			keep = i
			break
		}
	}
	if keep == 0 {
		return nil
	}
	removed := 0
	var err error
	for ; removed < keep; removed++ {
		if err = w.fs.Remove(w.segs[removed].path); err != nil {
			err = fmt.Errorf("wal: release: %w", err)
			break
		}
	}
	w.segs = w.segs[removed:]
	if serr := w.fs.SyncDir(w.dir); serr != nil && err == nil {
		err = fmt.Errorf("wal: release: %w", serr)
	}
	return err
}

// Close closes the log. Everything Save returned for is already durable.
func (w *WAL) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	w.closed = true
	w.closeSynced()
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("wal: close: %w", err)
	}
	return nil
}
