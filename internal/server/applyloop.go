package server

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"ensemble/internal/apply"
	"ensemble/internal/raftnode"
	"ensemble/internal/types"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// catchUpEntries is how many entries stay in the log after a snapshot, so
// that a follower a little behind catches up from the log, not a snapshot.
const catchUpEntries = 5000

func (s *Server) applyLoop() {
	defer s.wg.Done()
	for {
		select {
		case ap := <-s.node.ApplyC():
			select {
			case <-ap.Persisted:
			case <-s.stopping:
				return
			}
			if err := s.node.Err(); err != nil {
				// What raft handed us was not saved: applying it could
				// acknowledge a write that a restart would not find.
				s.fatal(err)
				return
			}
			if err := s.applyBatch(ap); err != nil {
				s.fatal(err)
				return
			}
		case m := <-s.node.SnapshotMessages():
			s.sendSnapshot(m)
		case <-s.node.Done():
			if err := s.node.Err(); err != nil {
				s.fatal(err)
			}
			return
		case <-s.stopping:
			return
		}
	}
}

func (s *Server) applyBatch(ap raftnode.Apply) error {
	defer close(ap.Done)
	if !raft.IsEmptySnap(ap.Snapshot) {
		if err := s.installSnapshot(ap.Snapshot); err != nil {
			return err
		}
	}
	for i := range ap.Entries {
		e := &ap.Entries[i]
		if e.Index <= s.appliedIndex {
			// Already in the store (replay after a restart), but raft and
			// the member list keep their state in memory only.
			s.replayEntry(e)
			continue
		}
		s.applyEntry(e)
		s.appliedIndex, s.appliedTerm = e.Index, e.Term
	}
	s.applied.set(s.appliedIndex, s.appliedTerm)
	if err := s.KV().Err(); err != nil {
		// A failed database commit leaves the store's durable state unknown:
		// stop rather than acknowledge writes that may not be kept.
		return fmt.Errorf("server: store failed: %w", err)
	}
	return s.maybeSnapshot()
}

func (s *Server) applyEntry(e *raftpb.Entry) {
	kv := s.KV()
	switch e.Type {
	case raftpb.EntryNormal:
		ent, err := apply.DecodeEntry(e.Data)
		if err != nil {
			// Every member decodes the same bytes the same way, so skipping
			// keeps them identical; the error says which entry to look at.
			s.lg.Error("skipping undecodable entry", "index", e.Index, "err", err)
			kv.SetConsistentIndex(e.Index, e.Term)
			return
		}
		r := ent.Etcd
		if r == nil && ent.ZK == nil {
			kv.SetConsistentIndex(e.Index, e.Term)
			return
		}
		var res *apply.Result
		switch {
		case apply.Stale(ent.Term, e.Term):
			// Every member skips it alike; its proposer proposes it again.
			kv.SetConsistentIndex(e.Index, e.Term)
			res = &apply.Result{Err: apply.ErrStaleProposal, StaleTerm: ent.Term}
		case ent.ZK != nil:
			res = s.applier.ApplyZK(e.Index, e.Term, ent.ZK)
		case r.ClusterMemberAttrSet != nil:
			s.members.setAttributesFrom(r.ClusterMemberAttrSet)
			kv.SetConsistentIndex(e.Index, e.Term)
			res = &apply.Result{}
		default:
			res = s.applier.Apply(e.Index, e.Term, r)
		}
		if ent.ID != 0 {
			s.waits.trigger(ent.ID, res)
		}
	case raftpb.EntryConfChange:
		var cc raftpb.ConfChange
		if err := cc.Unmarshal(e.Data); err != nil {
			s.lg.Error("undecodable membership change", "index", e.Index, "err", err)
		} else {
			s.confChanged(cc)
		}
		kv.SetConsistentIndex(e.Index, e.Term)
	case raftpb.EntryConfChangeV2:
		var cc raftpb.ConfChangeV2
		if err := cc.Unmarshal(e.Data); err != nil {
			s.lg.Error("undecodable membership change", "index", e.Index, "err", err)
		} else {
			s.confState = *s.node.ApplyConfChange(cc)
		}
		kv.SetConsistentIndex(e.Index, e.Term)
	}
}

// confChanged applies a membership change and answers its proposer. A member
// that applies its own removal stops: it no longer belongs to the cluster.
func (s *Server) confChanged(cc raftpb.ConfChange) {
	removedSelf := s.applyConfChange(cc)
	s.waits.trigger(cc.ID, &apply.Result{})
	if removedSelf {
		s.lg.Warn("this member was removed from the cluster; stopping")
		s.fatal(ErrRemoved)
		go s.node.Stop()
	}
}

// replayEntry re-applies the in-memory effects of an entry whose store
// effects are already durable.
func (s *Server) replayEntry(e *raftpb.Entry) {
	switch e.Type {
	case raftpb.EntryConfChange:
		var cc raftpb.ConfChange
		if cc.Unmarshal(e.Data) == nil {
			s.confChanged(cc)
		}
	case raftpb.EntryConfChangeV2:
		var cc raftpb.ConfChangeV2
		if cc.Unmarshal(e.Data) == nil {
			s.confState = *s.node.ApplyConfChange(cc)
		}
	case raftpb.EntryNormal:
		if r, term, err := apply.Decode(e.Data); err == nil && r != nil && r.ClusterMemberAttrSet != nil && !apply.Stale(term, e.Term) {
			s.members.setAttributesFrom(r.ClusterMemberAttrSet)
		}
	}
}

// maybeSnapshot takes a raft snapshot every --snapshot-count entries and lets
// the log before it go.
func (s *Server) maybeSnapshot() error {
	if s.appliedIndex-s.snapIndex <= s.cfg.SnapshotCount {
		return nil
	}
	// The database must hold everything up to the snapshot on disk before
	// the log that could rebuild it is released.
	s.KV().Commit()
	// Keep some log for followers a little behind, but never more than a
	// snapshot's worth: --snapshot-count bounds the log a member holds.
	keep := min(uint64(catchUpEntries), s.cfg.SnapshotCount)
	var compactTo uint64
	if s.appliedIndex > keep {
		compactTo = s.appliedIndex - keep
	}
	cs := s.confState
	if err := s.node.CreateSnapshot(s.appliedIndex, &cs, s.members.encode(s.id, s.clusterID), compactTo); err != nil {
		return fmt.Errorf("server: snapshot at %d: %w", s.appliedIndex, err)
	}
	s.snapIndex = s.appliedIndex
	if err := s.snapshot.Purge(3); err != nil {
		s.lg.Warn("purging old snapshots", "err", err)
	}
	s.lg.Info("snapshot taken", "index", s.appliedIndex, "compacted-to", compactTo)
	return nil
}

// sendSnapshot ships the whole database to a follower too far behind for the
// log. The snapshot's metadata is rewritten to the applied index, which is
// exactly what the database copy, taken here in the apply loop, contains.
func (s *Server) sendSnapshot(m raftpb.Message) {
	db, err := s.be.Load().Snapshot()
	if err != nil {
		s.lg.Warn("cannot snapshot database for follower", "to", types.MemberID(m.To), "err", err)
		s.node.ReportSnapshot(m.To, true)
		return
	}
	m.Snapshot = &raftpb.Snapshot{
		Data: s.members.encode(s.id, s.clusterID),
		Metadata: raftpb.SnapshotMetadata{
			Index:     s.appliedIndex,
			Term:      s.appliedTerm,
			ConfState: s.confState,
		},
	}
	s.lg.Info("sending snapshot", "to", types.MemberID(m.To), "index", s.appliedIndex, "bytes", db.Size())
	s.transport.SendSnapshot(m, db, db.Size())
}

// installSnapshot replaces the store with the database that came with a
// snapshot from the leader.
func (s *Server) installSnapshot(snap raftpb.Snapshot) error {
	idx := snap.Metadata.Index
	if idx <= s.appliedIndex {
		return nil
	}
	s.lg.Info("installing snapshot", "index", idx, "term", snap.Metadata.Term)
	s.KV().Close()
	s.be.Load().Close()
	if err := s.installDB(idx); err != nil {
		return err
	}
	if err := s.useStore(); err != nil {
		return err
	}
	s.applier.SetStore(s.KV())
	s.resetWatches()
	if err := s.applier.LoadAlarms(s.be.Load()); err != nil {
		return err
	}
	if err := s.recoverLessor(); err != nil {
		return err
	}
	s.appliedIndex, s.appliedTerm = idx, snap.Metadata.Term
	s.snapIndex = idx
	s.confState = snap.Metadata.ConfState
	s.snapshotsInstalled.Add(1)
	var info clusterInfo
	if json.Unmarshal(snap.Data, &info) == nil {
		for _, m := range info.Members {
			s.members.add(m)
		}
		s.members.setRemoved(info.Removed)
	}
	return nil
}

// publishAttributes records this member's name and client URLs in the log,
// so that every member can list them.
func (s *Server) publishAttributes() {
	defer s.wg.Done()
	req := &pb.InternalRaftRequest{ClusterMemberAttrSet: &membershippb.ClusterMemberAttrSetRequest{
		Member_ID: uint64(s.id),
		MemberAttributes: &membershippb.Attributes{
			Name:       s.cfg.Name,
			ClientUrls: urlStrings(s.cfg.AdvertiseClientURLs),
		},
	}}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), s.RequestTimeout())
		_, err := s.propose(ctx, req)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-s.stopping:
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}
