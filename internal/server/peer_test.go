package server

import (
	"context"
	"errors"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

// TestPeerMessagesBeforeRaftStarts is the regression test for a crash the
// robustness suite found (member-replace, 5 members): a joining member's
// transport got the leader's first message before raft existed. Until the
// node is ready, messages are refused and reports ignored, never a panic.
func TestPeerMessagesBeforeRaftStarts(t *testing.T) {
	h := peerHandler{s: &Server{}}
	if err := h.Process(context.Background(), raftpb.Message{Type: raftpb.MsgHeartbeat, From: 2, To: 1}); !errors.Is(err, errNotReady) {
		t.Fatalf("Process before raft: %v, want %v", err, errNotReady)
	}
	m := raftpb.Message{Type: raftpb.MsgSnap, Snapshot: &raftpb.Snapshot{}}
	if err := h.ReceiveSnapshot(context.Background(), m, strings.NewReader(""), 0); !errors.Is(err, errNotReady) {
		t.Fatalf("ReceiveSnapshot before raft: %v, want %v", err, errNotReady)
	}
	h.ReportUnreachable(2)
	h.ReportSnapshot(2, true)
	h.PeerDisconnected(2)
}
