package wal

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestSyncedRecordRoundTrip(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := ReadSynced(dir); !errors.Is(err, errNoSyncedRecord) {
		t.Fatalf("ReadSynced of an empty dir = %v, want errNoSyncedRecord", err)
	}
	name := segmentName(3, 0x1f)
	if err := os.WriteFile(filepath.Join(dir, SyncedFile), encodeSynced(nil, name, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	seg, n, err := ReadSynced(dir)
	if err != nil || seg != name || n != 4096 {
		t.Fatalf("ReadSynced = %q %d %v, want %q 4096", seg, n, err, name)
	}
	if err := os.WriteFile(filepath.Join(dir, SyncedFile), []byte("nonsense 12\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadSynced(dir); err == nil {
		t.Fatal("ReadSynced accepted a malformed record")
	}
}
