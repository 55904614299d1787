package restore

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"ensemble/internal/apply"
	"ensemble/internal/backend"
	"ensemble/internal/mvcc"
	"ensemble/internal/types"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// saveSnapshot builds a store with 100 keys, an applied index and an alarm,
// and saves it as Maintenance.Snapshot streams it: the database and then its
// SHA-256. It returns the file and the store's revision.
func saveSnapshot(t *testing.T) (string, int64) {
	t.Helper()
	dir := t.TempDir()
	be, err := backend.Open(backend.Options{Path: filepath.Join(dir, "db"), MmapSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	kv, err := mvcc.Open(be, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer kv.Close()
	a := apply.New(kv, nil)
	if err := a.LoadAlarms(be); err != nil {
		t.Fatal(err)
	}
	index := uint64(40)
	for i := range 100 {
		index++
		w := kv.Write(index, 2)
		w.Put(fmt.Appendf(nil, "k%03d", i), []byte("v"), types.NoLease)
		w.End()
	}
	index++
	a.Apply(index, 2, &pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: 9, Alarm: pb.AlarmType_NOSPACE}})
	snap, err := be.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	path := filepath.Join(dir, "snapshot.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), snap); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(h.Sum(nil)); err != nil {
		t.Fatal(err)
	}
	return path, kv.Rev()
}

func openRestored(t *testing.T, dataDir string) (*backend.Backend, *mvcc.Store) {
	t.Helper()
	be, err := backend.Open(backend.Options{Path: filepath.Join(dataDir, "member", "db"), MmapSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := mvcc.Open(be, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kv.Close(); be.Close() })
	return be, kv
}

func TestRestoreKeepsKeysResetsIndexAndAlarms(t *testing.T) {
	snap, rev := saveSnapshot(t)
	dataDir := filepath.Join(t.TempDir(), "m1.ensemble")
	res, err := Restore(Options{Snapshot: snap, DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	if res.Keys != 100 || res.Revision != rev {
		t.Fatalf("restored %+v, want 100 keys at revision %d", res, rev)
	}
	be, kv := openRestored(t, dataDir)
	if ci, term := kv.ConsistentIndex(); ci != 0 || term != 0 {
		t.Fatalf("applied index %d/%d after restore, want 0", ci, term)
	}
	rr, err := kv.Range([]byte("k050"), nil, mvcc.RangeOptions{})
	if err != nil || len(rr.KVs) != 1 || kv.Rev() != rev || rr.KVs[0].ModRevision != 52 {
		t.Fatalf("k050 after restore: %+v %v, revision %d", rr, err, kv.Rev())
	}
	a := apply.New(kv, nil)
	if err := a.LoadAlarms(be); err != nil {
		t.Fatal(err)
	}
	if got := a.Alarms(pb.AlarmType_NONE); len(got) != 0 {
		t.Fatalf("alarms after restore: %v", got)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "member", "db.restore")); !os.IsNotExist(err) {
		t.Fatalf("temporary file left behind: %v", err)
	}
}

func TestRestoreRefusesCorruptSnapshot(t *testing.T) {
	snap, _ := saveSnapshot(t)
	data, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x40
	if err := os.WriteFile(snap, data, 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(t.TempDir(), "m1.ensemble")
	if _, err := Restore(Options{Snapshot: snap, DataDir: dataDir}); !errors.Is(err, ErrChecksum) {
		t.Fatalf("restore of a corrupt snapshot: %v, want %v", err, ErrChecksum)
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Fatalf("data dir created for a corrupt snapshot: %v", err)
	}
}

func TestRestoreWithoutChecksum(t *testing.T) {
	snap, _ := saveSnapshot(t)
	data, err := os.ReadFile(snap)
	if err != nil {
		t.Fatal(err)
	}
	bare := filepath.Join(t.TempDir(), "db")
	if err := os.WriteFile(bare, data[:len(data)-sha256.Size], 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(t.TempDir(), "m1.ensemble")
	if _, err := Restore(Options{Snapshot: bare, DataDir: dataDir}); !errors.Is(err, ErrNoChecksum) {
		t.Fatalf("restore of a bare database: %v, want %v", err, ErrNoChecksum)
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Fatalf("data dir created: %v", err)
	}
	if res, err := Restore(Options{Snapshot: bare, DataDir: dataDir, SkipHashCheck: true}); err != nil || res.Keys != 100 {
		t.Fatalf("restore with --skip-hash-check: %+v %v", res, err)
	}
}

func TestRestoreRefusesUsedDataDirAndBadDatabase(t *testing.T) {
	snap, _ := saveSnapshot(t)
	used := t.TempDir()
	if err := os.WriteFile(filepath.Join(used, "keep"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(Options{Snapshot: snap, DataDir: used}); !errors.Is(err, ErrDataDirExists) {
		t.Fatalf("restore into a used data dir: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(used, "keep")); err != nil || string(b) != "x" {
		t.Fatalf("used data dir touched: %q %v", b, err)
	}

	// A file with a valid checksum over bytes that are not a database.
	junk := make([]byte, 4096)
	for i := range junk {
		junk[i] = byte(i)
	}
	sum := sha256.Sum256(junk)
	bad := filepath.Join(t.TempDir(), "junk.db")
	if err := os.WriteFile(bad, append(junk, sum[:]...), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(t.TempDir(), "m1.ensemble")
	if _, err := Restore(Options{Snapshot: bad, DataDir: dataDir}); err == nil {
		t.Fatal("restored a file that is not a database")
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Fatalf("data dir left behind after a failed restore: %v", err)
	}
}
