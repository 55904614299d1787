package wal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ensemble/internal/vfs"

	"go.etcd.io/raft/v3/raftpb"
)

func makeEnts(lo, hi, term uint64, size int) []raftpb.Entry {
	var ents []raftpb.Entry
	for i := lo; i <= hi; i++ {
		data := make([]byte, size)
		for j := range data {
			data[j] = byte('a' + (int(i)+j)%26)
		}
		ents = append(ents, raftpb.Entry{Term: term, Index: i, Type: raftpb.EntryNormal, Data: data})
	}
	return ents
}

func checkEnts(t *testing.T, got, want []raftpb.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Index != w.Index || g.Term != w.Term || g.Type != w.Type || !bytes.Equal(g.Data, w.Data) {
			t.Fatalf("entry %d: got (i=%d t=%d %d bytes), want (i=%d t=%d %d bytes)",
				i, g.Index, g.Term, len(g.Data), w.Index, w.Term, len(w.Data))
		}
	}
}

func mustCreate(t *testing.T, fsys vfs.FS, dir string, segSize int64) *WAL {
	t.Helper()
	w, err := CreateWithOptions(fsys, dir, []byte("meta"), nil, Options{SegmentSize: segSize})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func mustSave(t *testing.T, w *WAL, hs raftpb.HardState, ents []raftpb.Entry) {
	t.Helper()
	if err := w.Save(hs, ents); err != nil {
		t.Fatal(err)
	}
}

func reopen(t *testing.T, fsys vfs.FS, dir string, segSize int64, from Snapshot) (*WAL, []byte, raftpb.HardState, []raftpb.Entry) {
	t.Helper()
	w, err := OpenWithOptions(fsys, dir, nil, Options{SegmentSize: segSize})
	if err != nil {
		t.Fatal(err)
	}
	md, hs, ents, err := w.ReadAll(from)
	if err != nil {
		w.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w, md, hs, ents
}

func segPaths(t *testing.T, fsys vfs.FS, dir string) []string {
	t.Helper()
	segs, err := listSegments(fsys, dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range segs {
		out = append(out, s.path)
	}
	return out
}

func readFile(t *testing.T, fsys vfs.FS, path string) []byte {
	t.Helper()
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, fsys vfs.FS, path string, b []byte) {
	t.Helper()
	f, err := fsys.OpenFile(path, os.O_RDWR|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

// recordOffsets lists the offsets of the records in a segment's bytes.
func recordOffsets(t *testing.T, b []byte) []int {
	t.Helper()
	var offs []int
	for off := 0; off < len(b); {
		_, _, next, _, st := decodeRecord(b, off)
		if st == decZero {
			break
		}
		if st != decOK {
			t.Fatalf("record at %d: %v", off, st)
		}
		offs = append(offs, off)
		off = next
	}
	return offs
}

func fsysCases() map[string]func(t *testing.T) (vfs.FS, string) {
	return map[string]func(t *testing.T) (vfs.FS, string){
		"mem": func(t *testing.T) (vfs.FS, string) { return vfs.NewMem(), "/data/wal" },
		"os":  func(t *testing.T) (vfs.FS, string) { return vfs.OS(), filepath.Join(t.TempDir(), "wal") },
	}
}

func TestRoundTrip(t *testing.T) {
	for name, mk := range fsysCases() {
		t.Run(name, func(t *testing.T) {
			fsys, dir := mk(t)
			if Exist(fsys, dir) {
				t.Fatal("Exist before Create")
			}
			w := mustCreate(t, fsys, dir, 1<<20)
			if !Exist(fsys, dir) {
				t.Fatal("!Exist after Create")
			}
			hs := raftpb.HardState{Term: 3, Vote: 2, Commit: 7}
			ents := makeEnts(1, 10, 3, 100)
			mustSave(t, w, hs, ents[:4])
			mustSave(t, w, raftpb.HardState{}, ents[4:])
			mustSave(t, w, hs, nil)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			_, md, gotHS, got := reopen(t, fsys, dir, 1<<20, Snapshot{})
			if string(md) != "meta" || gotHS != hs {
				t.Fatalf("metadata %q hs %+v", md, gotHS)
			}
			checkEnts(t, got, ents)
		})
	}
}

func TestCreateOpenErrors(t *testing.T) {
	fsys := vfs.NewMem()
	if _, err := Open(fsys, "/nope", nil); err == nil {
		t.Fatal("Open of a missing directory succeeded")
	}
	if err := fsys.MkdirAll("/empty", 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(fsys, "/empty", nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open of an empty directory: %v", err)
	}
	w := mustCreate(t, fsys, "/w", 1<<16)
	w.Close()
	if _, err := Create(fsys, "/w", nil, nil); !errors.Is(err, ErrExist) {
		t.Fatalf("second Create: %v", err)
	}
	w, err := OpenWithOptions(fsys, "/w", nil, Options{SegmentSize: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Save(raftpb.HardState{Term: 1}, nil); !errors.Is(err, ErrNotRead) {
		t.Fatalf("Save before ReadAll: %v", err)
	}
}

func TestGroupCommitOneSyncPerSave(t *testing.T) {
	ffs := vfs.NewFaulty(vfs.NewMem())
	w := mustCreate(t, ffs, "/w", 1<<20)
	defer w.Close()
	for i := uint64(0); i < 20; i++ {
		syncs, writes := ffs.Count(vfs.OpSync), ffs.Count(vfs.OpWrite)
		mustSave(t, w, raftpb.HardState{Term: 1, Commit: i * 8}, makeEnts(i*8+1, i*8+8, 1, 64))
		if d := ffs.Count(vfs.OpSync) - syncs; d != 1 {
			t.Fatalf("save %d: %d syncs, want 1", i, d)
		}
		if d := ffs.Count(vfs.OpWrite) - writes; d != 1 {
			t.Fatalf("save %d: %d writes, want 1", i, d)
		}
	}
	syncs, writes := ffs.Count(vfs.OpSync), ffs.Count(vfs.OpWrite)
	mustSave(t, w, raftpb.HardState{}, nil)
	if ffs.Count(vfs.OpSync) != syncs || ffs.Count(vfs.OpWrite) != writes {
		t.Fatal("an empty Save did I/O")
	}
	if err := w.SaveSnapshot(Snapshot{Index: 10, Term: 1}); err != nil {
		t.Fatal(err)
	}
	if d := ffs.Count(vfs.OpSync) - syncs; d != 1 {
		t.Fatalf("SaveSnapshot: %d syncs, want 1", d)
	}
}

func TestSegmentRollover(t *testing.T) {
	for name, mk := range fsysCases() {
		t.Run(name, func(t *testing.T) {
			fsys, dir := mk(t)
			const segSize = 4096
			w := mustCreate(t, fsys, dir, segSize)
			var want []raftpb.Entry
			next := uint64(1)
			save := func(n, size int) {
				ents := makeEnts(next, next+uint64(n)-1, 2, size)
				next += uint64(n)
				mustSave(t, w, raftpb.HardState{Term: 2, Commit: next - 1}, ents)
				want = append(want, ents...)
			}
			for range 30 {
				save(3, 100)
			}
			save(1, 3*segSize) // one record bigger than a segment
			save(100, 200)     // one Save spanning many segments
			save(2, 10)
			w.Close()
			paths := segPaths(t, fsys, dir)
			if len(paths) < 5 {
				t.Fatalf("only %d segments", len(paths))
			}
			for i, p := range paths[:len(paths)-1] {
				fi, err := fsys.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Size() > segSize && i == 0 {
					t.Fatalf("%s is %d bytes", p, fi.Size())
				}
			}
			w, _, hs, got := reopen(t, fsys, dir, segSize, Snapshot{})
			checkEnts(t, got, want)
			if hs.Commit != next-1 {
				t.Fatalf("hs %+v", hs)
			}
			// Appends after a reopen continue the last segment and roll over.
			save(50, 100)
			w.Close()
			_, _, _, got = reopen(t, fsys, dir, segSize, Snapshot{})
			checkEnts(t, got, want)
		})
	}
}

func TestConflictingSuffixReplaced(t *testing.T) {
	fsys := vfs.NewMem()
	w := mustCreate(t, fsys, "/w", 2048)
	mustSave(t, w, raftpb.HardState{Term: 1}, makeEnts(1, 30, 1, 50))
	mustSave(t, w, raftpb.HardState{Term: 2}, makeEnts(21, 25, 2, 60)) // replaces 21..30
	mustSave(t, w, raftpb.HardState{Term: 3}, makeEnts(24, 26, 3, 70)) // replaces 24..25
	mustSave(t, w, raftpb.HardState{Term: 3}, makeEnts(27, 28, 3, 70))
	w.Close()
	var want []raftpb.Entry
	want = append(want, makeEnts(1, 20, 1, 50)...)
	want = append(want, makeEnts(21, 23, 2, 60)...)
	want = append(want, makeEnts(24, 28, 3, 70)...)
	_, _, hs, got := reopen(t, fsys, "/w", 2048, Snapshot{})
	checkEnts(t, got, want)
	if hs.Term != 3 {
		t.Fatalf("hs %+v", hs)
	}
	if n := len(segPaths(t, fsys, "/w")); n < 2 {
		t.Fatalf("test wants several segments, got %d", n)
	}
	w2, err := OpenWithOptions(fsys, "/w", nil, Options{SegmentSize: 2048})
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	_, _, got, err = w2.ReadAll(Snapshot{Index: 22, Term: 2})
	if err != nil {
		t.Fatal(err)
	}
	checkEnts(t, got, want[22:])
}

func TestReadAllFromSnapshot(t *testing.T) {
	fsys := vfs.NewMem()
	w := mustCreate(t, fsys, "/w", 1<<16)
	mustSave(t, w, raftpb.HardState{Term: 1, Commit: 5}, makeEnts(1, 5, 1, 10))
	if err := w.SaveSnapshot(Snapshot{Index: 100, Term: 2}); err != nil {
		t.Fatal(err)
	}
	mustSave(t, w, raftpb.HardState{Term: 2, Commit: 103}, makeEnts(101, 103, 2, 10))
	w.Close()

	_, _, _, got := reopen(t, fsys, "/w", 1<<16, Snapshot{Index: 100, Term: 2})
	checkEnts(t, got, makeEnts(101, 103, 2, 10))
	_, _, _, got = reopen(t, fsys, "/w", 1<<16, Snapshot{Index: 200, Term: 2})
	if len(got) != 0 {
		t.Fatalf("got %d entries past the end", len(got))
	}
	w, err := OpenWithOptions(fsys, "/w", nil, Options{SegmentSize: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, _, _, err := w.ReadAll(Snapshot{Index: 3, Term: 1}); !errors.Is(err, ErrGap) {
		t.Fatalf("ReadAll across a gap: %v", err)
	}
}

func TestReleaseLockTo(t *testing.T) {
	fsys := vfs.NewMem()
	const segSize = 2048
	w := mustCreate(t, fsys, "/w", segSize)
	for i := uint64(0); i < 30; i++ {
		mustSave(t, w, raftpb.HardState{Term: 1, Vote: 1, Commit: i*10 + 10}, makeEnts(i*10+1, i*10+10, 1, 40))
	}
	before, err := listSegments(fsys, "/w")
	if err != nil {
		t.Fatal(err)
	}
	if len(before) < 4 {
		t.Fatalf("only %d segments", len(before))
	}
	if err := w.SaveSnapshot(Snapshot{Index: 150, Term: 1}); err != nil {
		t.Fatal(err)
	}
	if err := w.ReleaseLockTo(150); err != nil {
		t.Fatal(err)
	}
	after, err := listSegments(fsys, "/w")
	if err != nil {
		t.Fatal(err)
	}
	if len(after) >= len(before) {
		t.Fatalf("nothing released: %d segments", len(after))
	}
	if after[0].index > 150 {
		t.Fatalf("the segment holding 150 was released: first is %s", after[0].path)
	}
	if len(after) > 1 && after[1].index <= 150 {
		t.Fatalf("kept %s although %s starts at or before 150", after[0].path, after[1].path)
	}
	// ReleaseLockTo never removes the last segment.
	if err := w.ReleaseLockTo(1 << 40); err != nil {
		t.Fatal(err)
	}
	if got := segPaths(t, fsys, "/w"); len(got) != 1 {
		t.Fatalf("%d segments after releasing everything", len(got))
	}
	mustSave(t, w, raftpb.HardState{Term: 1, Vote: 1, Commit: 301}, makeEnts(301, 301, 1, 40))
	w.Close()

	_, md, hs, got := reopen(t, fsys, "/w", segSize, Snapshot{Index: 300, Term: 1})
	if string(md) != "meta" || hs.Commit != 301 || hs.Vote != 1 {
		t.Fatalf("md %q hs %+v", md, hs)
	}
	checkEnts(t, got, makeEnts(301, 301, 1, 40))
}

func TestReleaseLockToThenReopen(t *testing.T) {
	fsys := vfs.NewMem()
	const segSize = 2048
	w := mustCreate(t, fsys, "/w", segSize)
	for i := uint64(0); i < 20; i++ {
		mustSave(t, w, raftpb.HardState{Term: 1, Commit: i*10 + 10}, makeEnts(i*10+1, i*10+10, 1, 40))
	}
	if err := w.SaveSnapshot(Snapshot{Index: 120, Term: 1}); err != nil {
		t.Fatal(err)
	}
	if err := w.ReleaseLockTo(120); err != nil {
		t.Fatal(err)
	}
	w.Close()
	w, md, hs, got := reopen(t, fsys, "/w", segSize, Snapshot{Index: 120, Term: 1})
	if string(md) != "meta" || hs.Commit != 200 {
		t.Fatalf("md %q hs %+v", md, hs)
	}
	checkEnts(t, got, makeEnts(121, 200, 1, 40))
	if w.snap != (Snapshot{Index: 120, Term: 1}) {
		t.Fatalf("snapshot marker %+v", w.snap)
	}
}

// lastSegment writes some Saves and returns the path of the last segment and
// the offsets of its records.
func setupTail(t *testing.T, fsys vfs.FS, dir string, dataSize int) (string, []int) {
	t.Helper()
	w := mustCreate(t, fsys, dir, 1<<16)
	mustSave(t, w, raftpb.HardState{Term: 1, Commit: 3}, makeEnts(1, 3, 1, 100))
	mustSave(t, w, raftpb.HardState{}, makeEnts(4, 5, 1, dataSize))
	w.Close()
	paths := segPaths(t, fsys, dir)
	last := paths[len(paths)-1]
	return last, recordOffsets(t, readFile(t, fsys, last))
}

func checkRepaired(t *testing.T, fsys vfs.FS, dir string, tornOff int, want []raftpb.Entry) {
	t.Helper()
	w, _, hs, got := reopen(t, fsys, dir, 1<<16, Snapshot{})
	checkEnts(t, got, want)
	if hs.Commit != 3 {
		t.Fatalf("hs %+v", hs)
	}
	paths := segPaths(t, fsys, dir)
	b := readFile(t, fsys, paths[len(paths)-1])
	if i := lastNonZero(b[tornOff:]); i >= 0 {
		t.Fatalf("byte %d after the torn record is not zero", tornOff+i)
	}
	// Appending after the repair works and survives another reopen.
	more := makeEnts(want[len(want)-1].Index+1, want[len(want)-1].Index+3, 2, 77)
	mustSave(t, w, raftpb.HardState{Term: 2, Commit: 3}, more)
	w.Close()
	_, _, hs, got = reopen(t, fsys, dir, 1<<16, Snapshot{})
	checkEnts(t, got, append(append([]raftpb.Entry(nil), want...), more...))
	if hs.Term != 2 {
		t.Fatalf("hs %+v", hs)
	}
}

func TestTornTailFileCut(t *testing.T) {
	for name, mk := range fsysCases() {
		t.Run(name, func(t *testing.T) {
			fsys, dir := mk(t)
			last, offs := setupTail(t, fsys, dir, 300)
			lastRec := offs[len(offs)-1]
			b := readFile(t, fsys, last)
			writeFile(t, fsys, last, b[:lastRec+100]) // cut inside the last entry
			want := append(makeEnts(1, 3, 1, 100), makeEnts(4, 4, 1, 300)...)
			checkRepaired(t, fsys, dir, lastRec, want)
		})
	}
}

func TestTornTailCutInsideHeader(t *testing.T) {
	fsys, dir := vfs.NewMem(), "/w"
	last, offs := setupTail(t, fsys, dir, 300)
	lastRec := offs[len(offs)-1]
	b := readFile(t, fsys, last)
	writeFile(t, fsys, last, b[:lastRec+5])
	want := append(makeEnts(1, 3, 1, 100), makeEnts(4, 4, 1, 300)...)
	checkRepaired(t, fsys, dir, lastRec, want)
}

func TestTornTailZeroedSector(t *testing.T) {
	fsys, dir := vfs.NewMem(), "/w"
	last, offs := setupTail(t, fsys, dir, 2000)
	// Zero a whole sector inside the second-to-last record: that record and
	// the complete one after it are dropped.
	rec := offs[len(offs)-2]
	b := readFile(t, fsys, last)
	s := (rec + sectorSize) &^ (sectorSize - 1)
	clear(b[s : s+sectorSize])
	writeFile(t, fsys, last, b)
	checkRepaired(t, fsys, dir, rec, makeEnts(1, 3, 1, 100))
}

func TestTornTailPartiallyZeroed(t *testing.T) {
	fsys, dir := vfs.NewMem(), "/w"
	last, offs := setupTail(t, fsys, dir, 2000)
	rec := offs[len(offs)-1]
	b := readFile(t, fsys, last)
	clear(b[rec+700:]) // the end of the last record never reached the disk
	writeFile(t, fsys, last, b)
	want := append(makeEnts(1, 3, 1, 100), makeEnts(4, 4, 1, 2000)...)
	checkRepaired(t, fsys, dir, rec, want)
}

func TestTornTailZeroHeaderThenData(t *testing.T) {
	fsys, dir := vfs.NewMem(), "/w"
	last, offs := setupTail(t, fsys, dir, 100)
	rec := offs[len(offs)-2]
	b := readFile(t, fsys, last)
	clear(b[rec : rec+headerSize])
	writeFile(t, fsys, last, b)
	checkRepaired(t, fsys, dir, rec, makeEnts(1, 3, 1, 100))
}

func checkCorrupt(t *testing.T, fsys vfs.FS, dir, path string, off int) {
	t.Helper()
	before := map[string][]byte{}
	for _, p := range segPaths(t, fsys, dir) {
		before[p] = readFile(t, fsys, p)
	}
	w, err := OpenWithOptions(fsys, dir, nil, Options{SegmentSize: 1 << 16})
	if err == nil {
		_, _, _, err = w.ReadAll(Snapshot{})
		w.Close()
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %v, want ErrCorrupt", err)
	}
	want := fmt.Sprintf("wal: corrupt record in %s at offset %d: ", path, off)
	if !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error %q does not start with %q", err, want)
	}
	for p, b := range before {
		if !bytes.Equal(readFile(t, fsys, p), b) {
			t.Fatalf("%s changed", p)
		}
	}
}

func TestCorruptRecordInLastSegment(t *testing.T) {
	for name, mk := range fsysCases() {
		t.Run(name, func(t *testing.T) {
			fsys, dir := mk(t)
			last, offs := setupTail(t, fsys, dir, 300)
			rec := offs[4] // entry 2, followed by good records
			b := readFile(t, fsys, last)
			b[rec+headerSize+20] ^= 0x40
			writeFile(t, fsys, last, b)
			checkCorrupt(t, fsys, dir, last, rec)
		})
	}
}

func TestCorruptRecordInEarlierSegment(t *testing.T) {
	for _, mode := range []string{"flip", "zero-sector", "cut"} {
		t.Run(mode, func(t *testing.T) {
			fsys, dir := vfs.NewMem(), "/w"
			w := mustCreate(t, fsys, dir, 4096)
			for i := uint64(0); i < 10; i++ {
				mustSave(t, w, raftpb.HardState{Term: 1, Commit: i*4 + 4}, makeEnts(i*4+1, i*4+4, 1, 700))
			}
			w.Close()
			paths := segPaths(t, fsys, dir)
			if len(paths) < 3 {
				t.Fatalf("%d segments", len(paths))
			}
			p := paths[1]
			b := readFile(t, fsys, p)
			offs := recordOffsets(t, b)
			rec := offs[len(offs)-1]
			switch mode {
			case "flip":
				b[rec+headerSize+30] ^= 1
			case "zero-sector":
				s := (rec + sectorSize) &^ (sectorSize - 1)
				clear(b[s : s+sectorSize])
			case "cut":
				b = b[:rec+50]
			}
			writeFile(t, fsys, p, b)
			checkCorrupt(t, fsys, dir, p, rec)
		})
	}
}

func TestMissingSegmentIsCorrupt(t *testing.T) {
	fsys := vfs.NewMem()
	w := mustCreate(t, fsys, "/w", 2048)
	for i := uint64(0); i < 10; i++ {
		mustSave(t, w, raftpb.HardState{}, makeEnts(i*10+1, i*10+10, 1, 40))
	}
	w.Close()
	paths := segPaths(t, fsys, "/w")
	if err := fsys.Remove(paths[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(fsys, "/w", nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %v", err)
	}
}

func TestFailedSyncRefusesSaves(t *testing.T) {
	mem := vfs.NewMem()
	ffs := vfs.NewFaulty(mem)
	w := mustCreate(t, ffs, "/w", 1<<16)
	mustSave(t, w, raftpb.HardState{Term: 1, Commit: 2}, makeEnts(1, 2, 1, 10))
	ffs.Arm(vfs.Fault{Op: vfs.OpSync})
	err := w.Save(raftpb.HardState{Term: 1, Commit: 3}, makeEnts(3, 3, 1, 10))
	if !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("Save with a failing sync: %v", err)
	}
	if err := w.Save(raftpb.HardState{Term: 1}, makeEnts(4, 4, 1, 10)); !errors.Is(err, ErrFailed) {
		t.Fatalf("Save after a failed sync: %v", err)
	}
	if err := w.SaveSnapshot(Snapshot{Index: 1, Term: 1}); !errors.Is(err, ErrFailed) {
		t.Fatalf("SaveSnapshot after a failed sync: %v", err)
	}
	w.Close()
}

func TestShortWriteRefusesSavesAndRecovers(t *testing.T) {
	mem := vfs.NewMem()
	ffs := vfs.NewFaulty(mem)
	w := mustCreate(t, ffs, "/w", 1<<16)
	mustSave(t, w, raftpb.HardState{Term: 1, Commit: 2}, makeEnts(1, 2, 1, 10))
	// The record is longer than a sector, so the part that never reached the
	// file covers a whole zero sector: the signature of a torn write.
	ffs.Arm(vfs.Fault{Op: vfs.OpWrite, Short: 30})
	err := w.Save(raftpb.HardState{Term: 1, Commit: 5}, makeEnts(3, 5, 1, 1500))
	if !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("Save with a short write: %v", err)
	}
	if err := w.Save(raftpb.HardState{Term: 1}, makeEnts(3, 3, 1, 10)); !errors.Is(err, ErrFailed) {
		t.Fatalf("Save after a short write: %v", err)
	}
	w.Close()
	// A restart finds the torn record and continues after the last good one.
	w, _, hs, got := reopen(t, mem, "/w", 1<<16, Snapshot{})
	checkEnts(t, got, makeEnts(1, 2, 1, 10))
	if hs.Commit != 2 {
		t.Fatalf("hs %+v", hs)
	}
	mustSave(t, w, raftpb.HardState{Term: 2, Commit: 3}, makeEnts(3, 3, 2, 10))
}

func TestFailedCutRefusesSaves(t *testing.T) {
	ffs := vfs.NewFaulty(vfs.NewMem())
	w := mustCreate(t, ffs, "/w", 2048)
	defer w.Close()
	ffs.Arm(vfs.Fault{Op: vfs.OpRename})
	var err error
	for i := uint64(0); i < 20 && err == nil; i++ {
		err = w.Save(raftpb.HardState{}, makeEnts(i*4+1, i*4+4, 1, 100))
	}
	if !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("got %v", err)
	}
	if err := w.Save(raftpb.HardState{Term: 1}, nil); !errors.Is(err, ErrFailed) {
		t.Fatalf("got %v", err)
	}
}

func TestLeftoverTempSegmentIgnored(t *testing.T) {
	fsys := vfs.NewMem()
	w := mustCreate(t, fsys, "/w", 1<<16)
	mustSave(t, w, raftpb.HardState{Term: 1}, makeEnts(1, 3, 1, 10))
	w.Close()
	tmp := "/w/" + segmentName(1, 4) + ".tmp"
	f, err := fsys.OpenFile(tmp, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("half a segment"))
	f.Close()
	_, _, _, got := reopen(t, fsys, "/w", 1<<16, Snapshot{})
	checkEnts(t, got, makeEnts(1, 3, 1, 10))
	if _, err := fsys.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary segment left behind: %v", err)
	}
}

func BenchmarkSave(b *testing.B) {
	for _, n := range []int{1, 64} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			w, err := Create(vfs.OS(), filepath.Join(b.TempDir(), "wal"), nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			ents := makeEnts(1, uint64(n), 1, 256)
			b.SetBytes(int64(n * 256))
			b.ReportAllocs()
			b.ResetTimer()
			idx := uint64(0)
			for b.Loop() {
				for i := range ents {
					idx++
					ents[i].Index = idx
				}
				if err := w.Save(raftpb.HardState{Term: 1, Vote: 1, Commit: idx}, ents); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestSaveUnsyncedDoesNotSyncButIsReadBack(t *testing.T) {
	ffs := vfs.NewFaulty(vfs.NewMem())
	w, err := Create(ffs, "/wal", []byte("meta"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Save(raftpb.HardState{Term: 1, Vote: 1, Commit: 0}, []raftpb.Entry{{Term: 1, Index: 1, Data: []byte("a")}}); err != nil {
		t.Fatal(err)
	}
	syncs := ffs.Count(vfs.OpSync)
	if err := w.SaveUnsynced(raftpb.HardState{Term: 1, Vote: 1, Commit: 1}, nil); err != nil {
		t.Fatal(err)
	}
	if got := ffs.Count(vfs.OpSync); got != syncs {
		t.Fatalf("SaveUnsynced synced (%d syncs, want %d)", got, syncs)
	}
	w.Close()
	w, err = Open(ffs, "/wal", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	_, hs, ents, err := w.ReadAll(Snapshot{})
	if err != nil {
		t.Fatal(err)
	}
	if hs.Commit != 1 || len(ents) != 1 {
		t.Fatalf("read back commit %d and %d entries, want 1 and 1", hs.Commit, len(ents))
	}
}

// TestOpenSyncsWhatItRead: entries a crashed process wrote but did not sync
// may still be in the page cache when the WAL is read back; raft then takes
// them as durable, so opening must make them durable, and refuse to go on
// if it cannot.
func TestOpenSyncsWhatItRead(t *testing.T) {
	mem := vfs.NewMem()
	w := mustCreate(t, mem, "/w", 1<<16)
	if err := w.SaveUnsynced(raftpb.HardState{Term: 1, Commit: 1}, makeEnts(1, 3, 1, 10)); err != nil {
		t.Fatal(err)
	}
	// The process dies here: no Close, no sync.
	ffs := vfs.NewFaulty(mem)
	w2, err := Open(ffs, "/w", nil)
	if err != nil {
		t.Fatal(err)
	}
	before := ffs.Count(vfs.OpSync)
	if _, _, ents, err := w2.ReadAll(Snapshot{}); err != nil || len(ents) != 3 {
		t.Fatalf("ReadAll: %d entries, %v", len(ents), err)
	}
	if ffs.Count(vfs.OpSync) == before {
		t.Fatal("ReadAll handed back entries without syncing them")
	}
	w2.Close()

	ffs.Arm(vfs.Fault{Op: vfs.OpSync})
	w3, err := Open(ffs, "/w", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := w3.ReadAll(Snapshot{}); !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("ReadAll with a failing sync: %v", err)
	}
	w3.Close()
}
