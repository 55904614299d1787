package server

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"ensemble/internal/transport"
)

// watchRemoval stops a member that the cluster removed while it was not
// listening: the leader stops talking to a member once it has applied the
// removal, so the member may never see that entry committed. After two
// election timeouts without a leader it asks its peers, and stops if they
// name it among the removed.
func (s *Server) watchRemoval() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.ElectionTimeout)
	defer t.Stop()
	leaderless := 0
	for {
		select {
		case <-t.C:
		case <-s.stopping:
			return
		}
		if s.node.Leader() != 0 {
			leaderless = 0
			continue
		}
		if leaderless++; leaderless < 2 {
			continue
		}
		if s.removedByCluster() {
			s.lg.Warn("this member was removed from the cluster; stopping")
			s.fatal(ErrRemoved)
			go s.node.Stop()
			return
		}
	}
}

func (s *Server) removedByCluster() bool {
	for _, m := range s.members.list() {
		if m.ID == s.id {
			continue
		}
		for _, u := range m.PeerURLs {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			b, err := transport.FetchInfo(ctx, u)
			cancel()
			if err != nil {
				continue
			}
			var info clusterInfo
			if json.Unmarshal(b, &info) == nil && info.ClusterID == s.clusterID && slices.Contains(info.Removed, s.id) {
				return true
			}
		}
	}
	return false
}
