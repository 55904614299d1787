// Package embed starts a whole member, the server and its client front ends,
// in the current process; cmd/ensemble and in-process test clusters use it.
package embed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"sync"
	"time"

	etcdapi "ensemble/internal/api/etcd"
	zkapi "ensemble/internal/api/zk"
	"ensemble/internal/config"
	"ensemble/internal/server"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// Member is a running member with its client listeners.
type Member struct {
	Server *server.Server
	lg     *slog.Logger
	grpc   *grpc.Server
	self   *clientv3.Client
	lns    []net.Listener
	zk     *zkapi.Server
	zkLn   net.Listener
	wg     sync.WaitGroup
	once   sync.Once
}

// Start starts a member as cfg describes and serves clients on its listen
// client URLs.
func Start(cfg *config.Config, lg *slog.Logger) (*Member, error) {
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	for _, u := range cfg.ListenClientURLs {
		if u.Scheme == "https" {
			return nil, fmt.Errorf("embed: listen client URL %s: TLS is not supported yet", u.String())
		}
	}
	var lns []net.Listener
	for _, u := range cfg.ListenClientURLs {
		l, err := net.Listen("tcp", u.Host)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("embed: listen for clients on %s: %w", u.Host, err)
		}
		lns = append(lns, l)
	}
	srv, err := server.New(cfg, lg)
	if err != nil {
		for _, l := range lns {
			l.Close()
		}
		return nil, err
	}
	m := &Member{Server: srv, lg: lg, grpc: etcdapi.NewGRPCServer(srv), lns: lns}
	// The Election and Lock services work through a client of this member.
	self, err := clientv3.New(clientv3.Config{Endpoints: []string{lns[0].Addr().String()}, Logger: zap.NewNop()})
	if err != nil {
		srv.Stop()
		for _, l := range lns {
			l.Close()
		}
		return nil, fmt.Errorf("embed: client of self: %w", err)
	}
	m.self = self
	etcdapi.RegisterRecipes(m.grpc, self)
	for _, l := range lns {
		m.wg.Add(1)
		go func(l net.Listener) {
			defer m.wg.Done()
			if err := m.grpc.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				lg.Warn("client listener stopped", "addr", l.Addr().String(), "err", err)
			}
		}(l)
	}
	lg.Info("serving clients", "urls", urls(cfg.ListenClientURLs))
	if err := m.startZK(cfg); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

func urls(us []url.URL) []string {
	out := make([]string, len(us))
	for i := range us {
		out[i] = us[i].String()
	}
	return out
}

// ClientAddrs are the addresses the member serves clients on.
func (m *Member) ClientAddrs() []string {
	out := make([]string, len(m.lns))
	for i, l := range m.lns {
		out[i] = l.Addr().String()
	}
	return out
}

// Close stops the member gracefully: a leader hands leadership over, requests
// in flight finish (for up to drain), then raft and storage stop.
func (m *Member) Close() { m.CloseWithin(5 * time.Second) }

// CloseWithin is Close with a bound on how long requests in flight may take.
func (m *Member) CloseWithin(drain time.Duration) {
	m.once.Do(func() {
		m.Server.HandOffLeadership()
		m.Server.CloseWatches()
		if m.zk != nil {
			// ZooKeeper clients move to another member and keep their
			// sessions, as they do when a ZooKeeper server goes away.
			m.zk.Close()
		}
		done := make(chan struct{})
		go func() { m.grpc.GracefulStop(); close(done) }()
		ctx, cancel := context.WithTimeout(context.Background(), drain)
		select {
		case <-done:
		case <-ctx.Done():
			m.grpc.Stop()
			<-done
		}
		cancel()
		m.wg.Wait()
		m.self.Close()
		m.Server.Stop()
	})
}
