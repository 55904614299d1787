package server

import (
	"encoding/json"
	"log/slog"
	"os"
	"testing"

	"ensemble/internal/snap"
	"ensemble/internal/vfs"
	"ensemble/internal/wal"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// TestRestartWithSnapshotAheadOfCommit is a member that could not restart
// after a power failure: it had caught up through the leader's snapshot,
// whose file and WAL marker are synced, but the hard state naming the
// commit index that goes with it was written without a sync (raft asks for
// none when only the commit index changes) and was lost. raft refuses a
// commit index below its snapshot ("state.commit 7 is out of range [4507,
// 4507]"); the recovered state must be one that raft accepts.
func TestRestartWithSnapshotAheadOfCommit(t *testing.T) {
	fs := vfs.OS()
	s := &Server{lg: slog.New(slog.DiscardHandler), dirs: layout(t.TempDir())}
	for _, d := range []string{s.dirs.wal, s.dirs.snap} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	s.snapshot = snap.New(fs, s.dirs.snap, nil)
	info := clusterInfo{MemberID: 1, ClusterID: 9, Members: []Member{
		{ID: 1, Name: "m1", PeerURLs: []string{"http://127.0.0.1:1"}},
		{ID: 2, Name: "m2", PeerURLs: []string{"http://127.0.0.1:2"}},
		{ID: 3, Name: "m3", PeerURLs: []string{"http://127.0.0.1:3"}},
	}}
	meta, _ := json.Marshal(info)
	w, err := wal.Create(fs, s.dirs.wal, meta, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ents []raftpb.Entry
	for i := uint64(1); i <= 7; i++ {
		ents = append(ents, raftpb.Entry{Index: i, Term: 2})
	}
	if err := w.Save(raftpb.HardState{Term: 2, Vote: 2, Commit: 7}, ents); err != nil {
		t.Fatal(err)
	}
	snapshot := raftpb.Snapshot{Data: meta, Metadata: raftpb.SnapshotMetadata{
		Index: 4507, Term: 2, ConfState: raftpb.ConfState{Voters: []uint64{1, 2, 3}},
	}}
	if err := s.snapshot.Save(snapshot); err != nil {
		t.Fatal(err)
	}
	if err := w.SaveSnapshot(wal.Snapshot{Index: 4507, Term: 2}); err != nil {
		t.Fatal(err)
	}
	w.Close() // the hard state with commit 4507 never reached the disk

	storage := raft.NewMemoryStorage()
	_, got, err := s.recoverLog(fs, storage)
	if err != nil {
		t.Fatal(err)
	}
	defer s.wal.Close()
	if got.Metadata.Index != 4507 {
		t.Fatalf("recovered snapshot %d, want 4507", got.Metadata.Index)
	}
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("raft refused the recovered state: %v", r)
		}
	}()
	if _, err := raft.NewRawNode(&raft.Config{
		ID: 1, ElectionTick: 10, HeartbeatTick: 1, Storage: storage, Applied: got.Metadata.Index,
		MaxSizePerMsg: 1 << 20, MaxInflightMsgs: 16,
	}); err != nil {
		t.Fatal(err)
	}
	hs, _, _ := storage.InitialState()
	if hs.Commit != 4507 || hs.Term != 2 || hs.Vote != 2 {
		t.Fatalf("recovered hard state %+v, want term 2, vote 2, commit 4507", hs)
	}
}
