package embed

import (
	"fmt"
	"net"

	zkapi "ensemble/internal/api/zk"
	"ensemble/internal/config"
	"ensemble/internal/server"
)

// zkBackend adapts the server to what the ZooKeeper front end needs; the
// server cannot name the front end's types, which sit above it.
type zkBackend struct {
	*server.Server
	cfg *config.Config
}

func (b zkBackend) Observe(o zkapi.Observer) { b.ObserveZK(o) }

func (b zkBackend) Info() zkapi.MemberInfo {
	st := b.Status()
	members := b.Members()
	info := zkapi.MemberInfo{
		ID:         uint64(b.ID()),
		ClientURLs: urls(b.cfg.AdvertiseClientURLs),
		PeerURLs:   urls(b.cfg.InitialAdvertisePeerURLs),
		Members:    len(members),
		Version:    config.Version,
	}
	voters := 0
	for _, m := range members {
		if !m.IsLearner {
			voters++
		}
	}
	switch {
	case st.IsLearner:
		info.Mode = "observer"
	case voters == 1:
		info.Mode = "standalone"
	case st.Leader == b.ID():
		info.Mode = "leader"
	default:
		info.Mode = "follower"
	}
	return info
}

// startZK serves ZooKeeper clients on cfg.ListenZKAddr, if set.
func (m *Member) startZK(cfg *config.Config) error {
	if cfg.ListenZKAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", cfg.ListenZKAddr)
	if err != nil {
		return fmt.Errorf("embed: listen for ZooKeeper clients on %s: %w", cfg.ListenZKAddr, err)
	}
	m.zkLn = ln
	m.zk = zkapi.New(zkBackend{Server: m.Server, cfg: cfg}, zkapi.Config{
		TickTime:        cfg.ZKTickTime,
		MaxBuffer:       cfg.ZKMaxBuffer,
		FourLetterWords: cfg.ZK4LWWhitelist,
		Logger:          m.lg,
	})
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := m.zk.Serve(ln); err != nil {
			m.lg.Debug("ZooKeeper listener stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	m.lg.Info("serving ZooKeeper clients", "addr", ln.Addr().String())
	return nil
}

// ZKAddr is the address the member serves ZooKeeper clients on, or "".
func (m *Member) ZKAddr() string {
	if m.zkLn == nil {
		return ""
	}
	return m.zkLn.Addr().String()
}
