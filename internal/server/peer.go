package server

import (
	"context"
	"io"

	"go.etcd.io/raft/v3/raftpb"
)

// peerHandler receives what the transport brings from other members.
type peerHandler struct{ s *Server }

func (h peerHandler) Process(ctx context.Context, m raftpb.Message) error {
	return h.s.node.Step(ctx, m)
}

func (h peerHandler) ReceiveSnapshot(ctx context.Context, m raftpb.Message, db io.Reader, size int64) error {
	if _, err := h.s.snapshot.SaveDBFrom(db, m.Snapshot.Metadata.Index); err != nil {
		return err
	}
	return h.s.node.Step(ctx, m)
}

func (h peerHandler) ReportUnreachable(id uint64) { h.s.node.ReportUnreachable(id) }

func (h peerHandler) ReportSnapshot(id uint64, failed bool) { h.s.node.ReportSnapshot(id, failed) }

func (h peerHandler) PeerDisconnected(id uint64) {}
