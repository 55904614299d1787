package wal

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"ensemble/internal/vfs"

	"go.etcd.io/raft/v3/raftpb"
)

// validSegment returns the bytes of a real, small segment.
func validSegment(f *testing.F) []byte {
	fsys := vfs.NewMem()
	w, err := CreateWithOptions(fsys, "/w", []byte("m"), nil, Options{SegmentSize: 1024})
	if err != nil {
		f.Fatal(err)
	}
	w.Save(raftpb.HardState{Term: 1, Vote: 1, Commit: 2}, makeEnts(1, 3, 1, 40))
	w.SaveSnapshot(Snapshot{Index: 2, Term: 1})
	w.Close()
	b, err := readFileFS(fsys, "/w/"+segmentName(0, 0))
	if err != nil {
		f.Fatal(err)
	}
	return b
}

func readFileFS(fsys vfs.FS, path string) ([]byte, error) {
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	b := make([]byte, fi.Size())
	_, err = f.ReadAt(b, 0)
	return b, err
}

func FuzzDecodeRecord(f *testing.F) {
	seg := validSegment(f)
	f.Add(seg)
	f.Add(seg[:len(seg)/2])
	f.Add(seg[:200])
	f.Add([]byte{})
	f.Add(make([]byte, 8))
	f.Add(make([]byte, 1100))
	f.Add([]byte{1, 2, 3, 4, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3})
	f.Fuzz(fuzzSegment)
}

// fuzzSegment decodes data record by record and then as a whole segment.
func fuzzSegment(t *testing.T, data []byte) {
	for off := 0; off < len(data); {
		_, payload, next, _, st := decodeRecord(data, off)
		if st != decOK {
			break
		}
		if len(payload) > len(data) || next <= off {
			t.Fatalf("record at %d: payload %d next %d", off, len(payload), next)
		}
		off = next
	}

	fsys := vfs.NewMem()
	if err := fsys.MkdirAll("/w", 0o700); err != nil {
		t.Fatal(err)
	}
	path := "/w/" + segmentName(0, 0)
	file, err := fsys.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	file.Write(data)
	file.Close()

	opts := Options{SegmentSize: 1024}
	w, err := OpenWithOptions(fsys, "/w", nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, err = w.ReadAll(Snapshot{})
	w.Close()
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			after, rerr := readFileFS(fsys, path)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if !bytes.Equal(after, data) {
				t.Fatal("ReadAll changed a corrupt segment")
			}
		}
		return
	}
	// Whatever was accepted (and repaired) must take appends that read back.
	w, err = OpenWithOptions(fsys, "/w", nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := w.ReadAll(Snapshot{}); err != nil {
		t.Fatalf("second ReadAll: %v", err)
	}
	hs := raftpb.HardState{Term: 99, Vote: 7, Commit: 0}
	if err := w.Save(hs, nil); err != nil {
		t.Fatal(err)
	}
	w.Close()
	w, err = OpenWithOptions(fsys, "/w", nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	_, got, _, err := w.ReadAll(Snapshot{})
	if err != nil {
		t.Fatalf("ReadAll after append: %v", err)
	}
	if got != hs {
		t.Fatalf("hard state %+v, want %+v", got, hs)
	}
}
