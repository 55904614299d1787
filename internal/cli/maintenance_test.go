package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"google.golang.org/grpc"
)

// fakeMaintenance serves Snapshot from a list of messages.
type fakeMaintenance struct {
	pb.MaintenanceClient
	msgs []*pb.SnapshotResponse
}

func (f *fakeMaintenance) Snapshot(context.Context, *pb.SnapshotRequest, ...grpc.CallOption) (pb.Maintenance_SnapshotClient, error) {
	return &fakeSnapshotStream{msgs: f.msgs}, nil
}

type fakeSnapshotStream struct {
	grpc.ClientStream
	msgs []*pb.SnapshotResponse
}

func (s *fakeSnapshotStream) Recv() (*pb.SnapshotResponse, error) {
	if len(s.msgs) == 0 {
		return nil, io.EOF
	}
	m := s.msgs[0]
	s.msgs = s.msgs[1:]
	return m, nil
}

// snapshotMessages cuts db into chunks as a server sends it, followed by
// trailer.
func snapshotMessages(db []byte, chunk int, trailer []byte) []*pb.SnapshotResponse {
	var msgs []*pb.SnapshotResponse
	hdr := &pb.ResponseHeader{Revision: 42}
	for off := 0; off < len(db); off += chunk {
		end := min(off+chunk, len(db))
		msgs = append(msgs, &pb.SnapshotResponse{Header: hdr, Blob: db[off:end], RemainingBytes: uint64(len(db) - end)})
	}
	return append(msgs, &pb.SnapshotResponse{Header: hdr, Blob: trailer})
}

func TestSaveSnapshot(t *testing.T) {
	db := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	sum := sha256.Sum256(db)
	path := filepath.Join(t.TempDir(), "snap.db")
	var bar bytes.Buffer
	res, err := saveSnapshot(context.Background(), &fakeMaintenance{msgs: snapshotMessages(db, 10000, sum[:])}, path, &bar)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, append(append([]byte{}, db...), sum[:]...)) {
		t.Fatalf("saved %d bytes, want the database and its checksum", len(data))
	}
	fileSum := sha256.Sum256(data)
	if res.Size != int64(len(data)) || res.Revision != 42 || res.SHA256 != hex.EncodeToString(fileSum[:]) || res.Path != path {
		t.Fatalf("result %+v", res)
	}
	if !strings.HasSuffix(bar.String(), "\r["+strings.Repeat("#", 30)+"] 100%  66 kB / 66 kB\n") {
		t.Fatalf("progress bar: %q", bar.String())
	}
	if strings.Count(bar.String(), "\r") < 2 {
		t.Fatalf("progress bar was drawn %d times: %q", strings.Count(bar.String(), "\r"), bar.String())
	}
}

// A snapshot that fails its check leaves nothing behind, not even an old
// file's replacement.
func TestSaveSnapshotRefusesABadOne(t *testing.T) {
	db := bytes.Repeat([]byte{7}, 5000)
	sum := sha256.Sum256(db)
	bad := append([]byte{}, sum[:]...)
	bad[0] ^= 1
	cases := map[string][]*pb.SnapshotResponse{
		"checksum mismatch": snapshotMessages(db, 1024, bad),
		"no checksum":       snapshotMessages(db, 1024, nil)[:5],
		"cut short":         snapshotMessages(db, 1024, sum[:])[:2],
		"nothing":           nil,
	}
	for name, msgs := range cases {
		dir := t.TempDir()
		path := filepath.Join(dir, "snap.db")
		if err := os.WriteFile(path, []byte("previous"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := saveSnapshot(context.Background(), &fakeMaintenance{msgs: msgs}, path, nil); err == nil {
			t.Errorf("%s: saved", name)
		}
		if b, _ := os.ReadFile(path); string(b) != "previous" {
			t.Errorf("%s: the existing file was replaced", name)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Errorf("%s: left %d files behind", name, len(entries))
		}
	}
}
