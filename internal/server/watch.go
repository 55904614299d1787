package server

import (
	"time"

	"ensemble/internal/watch"
)

// startWatches creates the member's watch hub over the store; it must run
// before anything is applied, so that the hub sees every revision.
func (s *Server) startWatches() {
	kv := s.KV()
	s.watches = watch.New(kv, watch.Options{Logger: s.lg, MaxResponseBytes: s.cfg.MaxRequestBytes})
	s.observers.hub = s.watches
	kv.SetObserver(&s.observers)
}

// resetWatches moves the watchers onto a store that a leader's snapshot
// replaced: they catch up from its history, or are canceled if it is
// compacted past them. Called from the apply loop, before anything is
// applied to the new store.
func (s *Server) resetWatches() {
	kv := s.KV()
	s.watches.Reset(kv)
	s.resetZK(kv.Rev())
	kv.SetObserver(&s.observers)
}

// NewWatchStream opens a watch stream on this member. Watches are served
// from the local store, by followers and learners as well as by the leader,
// and keep working across leader changes.
func (s *Server) NewWatchStream() *watch.Stream { return s.watches.NewStream() }

// SetWatchProgressInterval changes how often watches that asked for progress
// notifications get one (etcd's --watch-progress-notify-interval), for
// streams opened from now on.
func (s *Server) SetWatchProgressInterval(d time.Duration) { s.watches.SetProgressInterval(d) }

// CloseWatches ends every watch stream on this member, so that a graceful
// stop need not wait for long-lived streams to end by themselves; clients
// resume their watches on another member.
func (s *Server) CloseWatches() { s.watches.Close() }
