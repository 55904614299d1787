package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"

	"ensemble/internal/apply"
	"ensemble/internal/backend"
	"ensemble/internal/config"
	"ensemble/internal/mvcc"
	"ensemble/internal/raftnode"
	"ensemble/internal/snap"
	"ensemble/internal/transport"
	"ensemble/internal/vfs"
	"ensemble/internal/wal"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// dataDirs is the layout of a member's data directory.
type dataDirs struct {
	root, wal, snap, db string
}

func layout(root string) dataDirs {
	member := filepath.Join(root, "member")
	return dataDirs{
		root: root,
		wal:  filepath.Join(member, "wal"),
		snap: filepath.Join(member, "snap"),
		db:   filepath.Join(member, "db"),
	}
}

// New starts a member: it creates or recovers its storage, starts raft and
// the peer transport, and begins applying. Client front ends are attached by
// the caller.
func New(cfg *config.Config, lg *slog.Logger) (*Server, error) {
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	fs := vfs.OS()
	s := &Server{
		cfg:      cfg,
		lg:       lg,
		dirs:     layout(cfg.DataDir),
		stopping: make(chan struct{}),
		done:     make(chan struct{}),
	}
	for _, d := range []string{s.dirs.wal, s.dirs.snap} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("server: create data dir: %w", err)
		}
	}
	s.snapshot = snap.New(fs, s.dirs.snap, lg)

	var (
		info     clusterInfo
		storage  = raft.NewMemoryStorage()
		restart  = wal.Exist(fs, s.dirs.wal)
		snapshot raftpb.Snapshot
		err      error
	)
	if restart {
		if cfg.InitialClusterState == "new" {
			lg.Info("data directory holds a member already; --initial-cluster flags are ignored", "data-dir", cfg.DataDir)
		}
		info, snapshot, err = s.recoverLog(fs, storage)
		if err != nil {
			return nil, err
		}
	} else {
		if cfg.InitialClusterState == "existing" {
			info, err = joinInfo(cfg, lg)
			if err != nil {
				return nil, err
			}
		} else {
			info = initialCluster(cfg)
		}
		meta, _ := json.Marshal(info)
		if s.wal, err = wal.Create(fs, s.dirs.wal, meta, lg); err != nil {
			return nil, fmt.Errorf("server: create wal: %w", err)
		}
	}
	s.id, s.clusterID = info.MemberID, info.ClusterID
	s.members = newMembership(info.Members)
	s.members.setRemoved(info.Removed)
	s.reqIDs.init(s.id)
	s.lg = lg.With("member", s.id.String())

	if err := s.openBackend(snapshot); err != nil {
		s.wal.Close()
		return nil, err
	}
	kv := s.kv.Load()
	applied, _ := kv.ConsistentIndex()
	s.appliedIndex = applied
	s.snapIndex = snapshot.Metadata.Index
	s.confState = snapshot.Metadata.ConfState
	s.applied.set(applied, 0)
	s.applier = apply.New(kv, s.lg)
	s.startWatches()
	if err := s.applier.LoadAlarms(s.be.Load()); err != nil {
		s.closeStorage()
		return nil, err
	}
	if err := s.initLessor(); err != nil {
		s.closeStorage()
		return nil, err
	}

	if err := s.startTransport(); err != nil {
		s.closeStorage()
		return nil, err
	}

	ticks := int(cfg.ElectionTimeout / cfg.HeartbeatInterval)
	rc := raftnode.Config{
		ID:             uint64(s.id),
		ElectionTicks:  ticks,
		HeartbeatTicks: 1,
		TickInterval:   cfg.HeartbeatInterval,
		// Raft re-delivers every committed entry after the snapshot: the
		// store skips what it already holds, but membership changes in them
		// must reach raft again, since raft keeps its configuration in memory.
		Applied:   snapshot.Metadata.Index,
		Storage:   storage,
		Log:       s.wal,
		Snapshots: s.snapshot,
		Transport: s.transport,
		Logger:    s.lg,
	}
	if restart || cfg.InitialClusterState == "existing" {
		// A joining member starts empty: the leader sends it the log, or a
		// snapshot, membership included.
		s.node = raftnode.Restart(rc)
	} else {
		peers := make([]raft.Peer, 0, len(info.Members))
		for _, m := range info.Members {
			ctx, _ := json.Marshal(m)
			peers = append(peers, raft.Peer{ID: uint64(m.ID), Context: ctx})
		}
		s.node = raftnode.Start(rc, peers)
	}
	// Peers are served only now that raft exists to take their messages.
	s.nodeReady.Store(true)
	for _, l := range s.peerLn {
		go s.transport.Serve(l)
	}
	if len(info.Members) == 1 {
		// A single member needs no one's vote: lead at once instead of
		// waiting out an election timeout.
		go s.node.Campaign(context.Background())
	}
	s.reads.init()
	s.wg.Add(5)
	go s.zkReaper()
	go s.watchRemoval()
	go s.applyLoop()
	go s.readLoop()
	go s.publishAttributes()
	s.startLeaseLoop()
	s.lg.Info("member started", "name", cfg.Name, "cluster", s.clusterID.String(), "restart", restart, "applied", applied)
	return s, nil
}

// recoverLog loads the newest snapshot and the WAL after it into storage.
func (s *Server) recoverLog(fs vfs.FS, storage *raft.MemoryStorage) (clusterInfo, raftpb.Snapshot, error) {
	var info clusterInfo
	snapshot, err := s.snapshot.Load()
	if err != nil && !errors.Is(err, snap.ErrNoSnapshot) {
		return info, snapshot, fmt.Errorf("server: load snapshot: %w", err)
	}
	if s.wal, err = wal.Open(fs, s.dirs.wal, s.lg); err != nil {
		return info, snapshot, fmt.Errorf("server: open wal: %w", err)
	}
	meta, hs, ents, err := s.wal.ReadAll(wal.Snapshot{Index: snapshot.Metadata.Index, Term: snapshot.Metadata.Term})
	if err != nil {
		s.wal.Close()
		return info, snapshot, fmt.Errorf("server: read wal: %w", err)
	}
	if err := json.Unmarshal(meta, &info); err != nil {
		s.wal.Close()
		return info, snapshot, fmt.Errorf("server: wal metadata: %w", err)
	}
	if len(snapshot.Data) > 0 {
		// The snapshot knows the members as they were when it was taken.
		var snapInfo clusterInfo
		if err := json.Unmarshal(snapshot.Data, &snapInfo); err == nil && len(snapInfo.Members) > 0 {
			info.Members, info.Removed = snapInfo.Members, snapInfo.Removed
		}
	}
	if !raft.IsEmptySnap(snapshot) {
		if err := storage.ApplySnapshot(snapshot); err != nil {
			s.wal.Close()
			return info, snapshot, err
		}
		// A snapshot is of committed state, but the hard state that says
		// so may not have reached the disk: after a leader's snapshot raft
		// asks for no sync of a change of the commit index alone, and a
		// crash can fall between saving the snapshot and the hard state.
		// raft refuses to start with a commit index below its snapshot.
		if hs.Commit < snapshot.Metadata.Index {
			s.lg.Info("commit index raised to the snapshot's", "commit", hs.Commit, "snapshot", snapshot.Metadata.Index)
			hs.Commit = snapshot.Metadata.Index
		}
	}
	if err := storage.SetHardState(hs); err != nil {
		s.wal.Close()
		return info, snapshot, err
	}
	if err := storage.Append(ents); err != nil {
		s.wal.Close()
		return info, snapshot, err
	}
	return info, snapshot, nil
}

// openBackend opens the key-value store, first installing a database that
// arrived with a snapshot if a crash came between saving and installing it.
func (s *Server) openBackend(snapshot raftpb.Snapshot) error {
	if idx := snapshot.Metadata.Index; idx > 0 {
		if _, err := os.Stat(s.snapshot.DBFilePath(idx)); err == nil {
			be, kv, err := openStore(s.dirs.db, s.lg)
			if err != nil {
				return err
			}
			ci, _ := kv.ConsistentIndex()
			kv.Close()
			be.Close()
			if ci < idx {
				if err := s.installDB(idx); err != nil {
					return err
				}
			} else {
				os.Remove(s.snapshot.DBFilePath(idx)) // installed before the crash
			}
		}
	}
	return s.useStore()
}

// installDB moves the database that came with snapshot idx into place,
// durably: the rename is synced before anything relies on it.
func (s *Server) installDB(idx uint64) error {
	if err := os.Rename(s.snapshot.DBFilePath(idx), s.dirs.db); err != nil {
		return fmt.Errorf("server: install snapshot database: %w", err)
	}
	if err := vfs.OS().SyncDir(filepath.Dir(s.dirs.db)); err != nil {
		return fmt.Errorf("server: install snapshot database: %w", err)
	}
	return nil
}

// useStore opens the database at its place and makes it the member's store.
func (s *Server) useStore() error {
	be, kv, err := openStore(s.dirs.db, s.lg)
	if err != nil {
		return err
	}
	s.be.Store(be)
	s.kv.Store(kv)
	return nil
}

func openStore(path string, lg *slog.Logger) (*backend.Backend, *mvcc.Store, error) {
	be, err := backend.Open(backend.Options{Path: path, Logger: lg})
	if err != nil {
		return nil, nil, fmt.Errorf("server: open backend: %w", err)
	}
	kv, err := mvcc.Open(be, lg)
	if err != nil {
		be.Close()
		return nil, nil, fmt.Errorf("server: open mvcc: %w", err)
	}
	return be, kv, nil
}

func (s *Server) closeStorage() {
	if kv := s.kv.Load(); kv != nil {
		kv.Close()
	}
	if be := s.be.Load(); be != nil {
		be.Close()
	}
	if s.wal != nil {
		s.wal.Close()
	}
}

func (s *Server) startTransport() error {
	s.transport = transport.New(transport.Config{
		LocalID:   s.id,
		ClusterID: s.clusterID,
		Handler:   peerHandler{s},
		Logger:    s.lg,
		Info:      func() []byte { return s.members.encode(s.id, s.clusterID) },
		LocalAddr: peerSourceAddr(s.cfg.ListenPeerURLs),
	})
	for _, u := range s.cfg.ListenPeerURLs {
		l, err := net.Listen("tcp", u.Host)
		if err != nil {
			for _, l := range s.peerLn {
				l.Close()
			}
			s.transport.Close()
			return fmt.Errorf("server: listen for peers on %s: %w", u.Host, err)
		}
		s.peerLn = append(s.peerLn, l)
	}
	for _, m := range s.members.list() {
		if m.ID != s.id {
			s.transport.AddPeer(m.ID, m.PeerURLs)
		}
	}
	return nil
}

// joinInfo asks the existing members named in --initial-cluster who the
// cluster is and which id it gave this member when it was added.
func joinInfo(cfg *config.Config, lg *slog.Logger) (clusterInfo, error) {
	self := urlStrings(cfg.InitialAdvertisePeerURLs)
	var lastErr error
	for _, m := range cfg.InitialCluster {
		if m.Name == cfg.Name {
			continue
		}
		for _, u := range m.PeerURLs {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			b, err := transport.FetchInfo(ctx, u.String())
			cancel()
			if err != nil {
				lastErr = err
				lg.Warn("cannot reach an existing member", "member", m.Name, "url", u.String(), "err", err)
				continue
			}
			var info clusterInfo
			if err := json.Unmarshal(b, &info); err != nil {
				lastErr = err
				continue
			}
			for _, mem := range info.Members {
				if sameStrings(mem.PeerURLs, self) {
					info.MemberID = mem.ID
					return info, nil
				}
			}
			return clusterInfo{}, fmt.Errorf("server: the cluster has no member with peer URLs %v; add it with MemberAdd (etcdctl member add) before starting it with --initial-cluster-state existing", self)
		}
	}
	return clusterInfo{}, fmt.Errorf("server: cannot join: no existing member of --initial-cluster answered: %v", lastErr)
}

func sameStrings(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// peerSourceAddr is the address outgoing peer connections are made from:
// the IP this member listens on for peers, when that is one specific address,
// so that its peer traffic comes from the interface it was told to use.
func peerSourceAddr(listen []url.URL) string {
	if len(listen) == 0 {
		return ""
	}
	ip := net.ParseIP(listen[0].Hostname())
	if ip == nil || ip.IsUnspecified() {
		return ""
	}
	return net.JoinHostPort(ip.String(), "0")
}
