package snap

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ensemble/internal/vfs"

	"go.etcd.io/raft/v3/raftpb"
)

func testSnap(term, index uint64) raftpb.Snapshot {
	return raftpb.Snapshot{
		Data: bytes.Repeat([]byte{byte(index)}, 100),
		Metadata: raftpb.SnapshotMetadata{
			Term:      term,
			Index:     index,
			ConfState: raftpb.ConfState{Voters: []uint64{1, 2, 3}},
		},
	}
}

func fsysCases() map[string]func(t *testing.T) (vfs.FS, string) {
	return map[string]func(t *testing.T) (vfs.FS, string){
		"mem": func(t *testing.T) (vfs.FS, string) { return vfs.NewMem(), "/data/snap" },
		"os":  func(t *testing.T) (vfs.FS, string) { return vfs.OS(), filepath.Join(t.TempDir(), "snap") },
	}
}

func names(t *testing.T, fsys vfs.FS, dir string) []string {
	t.Helper()
	des, err := fsys.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	return out
}

func checkSnap(t *testing.T, got, want raftpb.Snapshot) {
	t.Helper()
	if got.Metadata.Term != want.Metadata.Term || got.Metadata.Index != want.Metadata.Index ||
		!bytes.Equal(got.Data, want.Data) || len(got.Metadata.ConfState.Voters) != len(want.Metadata.ConfState.Voters) {
		t.Fatalf("got snapshot %d/%d, want %d/%d", got.Metadata.Term, got.Metadata.Index, want.Metadata.Term, want.Metadata.Index)
	}
}

func TestSaveLoad(t *testing.T) {
	for name, mk := range fsysCases() {
		t.Run(name, func(t *testing.T) {
			fsys, dir := mk(t)
			s := New(fsys, dir, nil)
			if _, err := s.Load(); !errors.Is(err, ErrNoSnapshot) {
				t.Fatalf("Load from a missing directory: %v", err)
			}
			if err := s.Save(raftpb.Snapshot{}); err != nil {
				t.Fatal(err)
			}
			for _, sn := range []raftpb.Snapshot{testSnap(1, 10), testSnap(2, 20), testSnap(2, 15)} {
				if err := s.Save(sn); err != nil {
					t.Fatal(err)
				}
			}
			got, err := New(fsys, dir, nil).Load()
			if err != nil {
				t.Fatal(err)
			}
			checkSnap(t, got, testSnap(2, 20))
			want := []string{"0000000000000001-000000000000000a.snap", "0000000000000002-000000000000000f.snap", "0000000000000002-0000000000000014.snap"}
			if got := names(t, fsys, dir); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("files %v", got)
			}
		})
	}
}

func corruptFile(t *testing.T, fsys vfs.FS, path string) {
	t.Helper()
	f, err := fsys.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(20, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte{0xde, 0xad}); err != nil {
		t.Fatal(err)
	}
}

func TestLoadSkipsCorrupt(t *testing.T) {
	fsys, dir := vfs.NewMem(), "/snap"
	s := New(fsys, dir, nil)
	for _, sn := range []raftpb.Snapshot{testSnap(1, 10), testSnap(1, 20), testSnap(1, 30)} {
		if err := s.Save(sn); err != nil {
			t.Fatal(err)
		}
	}
	corruptFile(t, fsys, filepath.Join(dir, snapName(1, 30)))
	// A file whose name disagrees with its contents is broken too.
	if err := fsys.Rename(filepath.Join(dir, snapName(1, 20)), filepath.Join(dir, snapName(1, 25))); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	checkSnap(t, got, testSnap(1, 10))
	want := []string{snapName(1, 10), snapName(1, 25) + ".broken", snapName(1, 30) + ".broken"}
	if got := names(t, fsys, dir); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("files %v", got)
	}
	corruptFile(t, fsys, filepath.Join(dir, snapName(1, 10)))
	if _, err := s.Load(); !errors.Is(err, ErrNoSnapshot) {
		t.Fatalf("Load with only corrupt files: %v", err)
	}
}

func TestPurge(t *testing.T) {
	fsys, dir := vfs.NewMem(), "/snap"
	s := New(fsys, dir, nil)
	if err := s.Purge(2); err != nil {
		t.Fatalf("Purge of a missing directory: %v", err)
	}
	for i := uint64(1); i <= 5; i++ {
		if err := s.Save(testSnap(1, i*10)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.SaveDBFrom(strings.NewReader("db"), 50); err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(2); err != nil {
		t.Fatal(err)
	}
	want := []string{snapName(1, 40), snapName(1, 50), "0000000000000032.snap.db"}
	if got := names(t, fsys, dir); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("files %v", got)
	}
	if err := s.Purge(5); err != nil {
		t.Fatal(err)
	}
	if got := names(t, fsys, dir); len(got) != 3 {
		t.Fatalf("files %v", got)
	}
}

func TestSaveFailureLeavesNoFile(t *testing.T) {
	for _, op := range []vfs.Op{vfs.OpWrite, vfs.OpSync, vfs.OpRename, vfs.OpSyncDir} {
		t.Run(op.String(), func(t *testing.T) {
			ffs := vfs.NewFaulty(vfs.NewMem())
			s := New(ffs, "/snap", nil)
			ffs.Arm(vfs.Fault{Op: op, Short: 10})
			if err := s.Save(testSnap(1, 10)); !errors.Is(err, vfs.ErrInjected) {
				t.Fatalf("Save: %v", err)
			}
			if op == vfs.OpSyncDir {
				return // the rename happened; only its durability is unknown
			}
			if got := names(t, ffs, "/snap"); len(got) != 0 {
				t.Fatalf("files left: %v", got)
			}
		})
	}
}

func TestSaveSyncsFileAndDir(t *testing.T) {
	ffs := vfs.NewFaulty(vfs.NewMem())
	s := New(ffs, "/snap", nil)
	if err := s.Save(testSnap(1, 10)); err != nil {
		t.Fatal(err)
	}
	if ffs.Count(vfs.OpSync) != 1 || ffs.Count(vfs.OpSyncDir) != 1 || ffs.Count(vfs.OpRename) != 1 {
		t.Fatalf("syncs %d, dir syncs %d, renames %d", ffs.Count(vfs.OpSync), ffs.Count(vfs.OpSyncDir), ffs.Count(vfs.OpRename))
	}
}

func TestSaveDBFrom(t *testing.T) {
	for name, mk := range fsysCases() {
		t.Run(name, func(t *testing.T) {
			fsys, dir := mk(t)
			s := New(fsys, dir, nil)
			if got, want := s.DBFilePath(0x2a), filepath.Join(dir, "000000000000002a.snap.db"); got != want {
				t.Fatalf("DBFilePath %q, want %q", got, want)
			}
			data := bytes.Repeat([]byte("0123456789"), 300_000)
			n, err := s.SaveDBFrom(bytes.NewReader(data), 0x2a)
			if err != nil {
				t.Fatal(err)
			}
			if n != int64(len(data)) {
				t.Fatalf("copied %d bytes, want %d", n, len(data))
			}
			f, err := fsys.OpenFile(s.DBFilePath(0x2a), os.O_RDONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(f)
			f.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("read back %d bytes, err %v", len(got), err)
			}
			if got := names(t, fsys, dir); len(got) != 1 {
				t.Fatalf("files %v", got)
			}
		})
	}
}

type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.ErrUnexpectedEOF
	}
	k := min(len(p), r.n)
	clear(p[:k])
	r.n -= k
	return k, nil
}

func TestSaveDBFromFailingReader(t *testing.T) {
	fsys := vfs.NewMem()
	s := New(fsys, "/snap", nil)
	if _, err := s.SaveDBFrom(&failingReader{n: 1000}, 7); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("SaveDBFrom: %v", err)
	}
	if got := names(t, fsys, "/snap"); len(got) != 0 {
		t.Fatalf("files left: %v", got)
	}
}

func FuzzDecode(f *testing.F) {
	sn := testSnap(3, 7)
	b, err := sn.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(append([]byte{0, 0, 0, 0}, b...))
	f.Add([]byte{})
	f.Add([]byte{1, 2, 3, 4, 5, 6})
	f.Fuzz(func(t *testing.T, data []byte) {
		decode(data) // must not panic
	})
}
