//go:build failpoints

package wal

import (
	"os"
	"path/filepath"
	"testing"

	"ensemble/internal/vfs"

	"go.etcd.io/raft/v3/raftpb"
)

// TestSyncedRecordTracksSyncs checks the failpoint's promise: after every
// sync the record names the last segment and a length that, if the log is
// cut there, reads back exactly what the syncs covered and nothing that
// was only written.
func TestSyncedRecordTracksSyncs(t *testing.T) {
	fsys, dir := vfs.OS(), t.TempDir()
	const segSize = 4096
	w := mustCreate(t, fsys, dir, segSize)
	var want []raftpb.Entry
	for i := uint64(1); i <= 40; i += 4 {
		ents := makeEnts(i, i+3, 1, 100) // several segments' worth in all
		mustSave(t, w, raftpb.HardState{Term: 1, Commit: i}, ents)
		want = append(want, ents...)
		seg, n, err := ReadSynced(dir)
		if err != nil {
			t.Fatal(err)
		}
		paths := segPaths(t, fsys, dir)
		if last := filepath.Base(paths[len(paths)-1]); seg != last {
			t.Fatalf("record names %s, last segment is %s", seg, last)
		}
		if n != w.off {
			t.Fatalf("recorded length %d, synced end %d", n, w.off)
		}
	}
	// Written but never synced: a power failure loses it.
	if err := w.SaveUnsynced(raftpb.HardState{Term: 1, Commit: 40}, makeEnts(41, 41, 1, 100)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	seg, n, err := ReadSynced(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(dir, seg), n); err != nil {
		t.Fatal(err)
	}
	_, _, hs, ents := reopen(t, fsys, dir, segSize, Snapshot{})
	checkEnts(t, ents, want)
	if hs.Commit != 37 {
		t.Fatalf("hard state commit %d after losing the unsynced tail, want 37", hs.Commit)
	}
}
