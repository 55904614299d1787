// Package framework starts Ensemble clusters for tests, either inside the
// test process (through internal/embed) or as real `ensemble` processes, from
// the same command-line flags, so that one suite can run on both.
package framework

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// FreePorts asks the kernel for n unused loopback ports.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	var lns []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("free port: %v", err)
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range lns {
		l.Close()
	}
	return ports
}

// MemberSpec is how one member of a test cluster is started.
type MemberSpec struct {
	Name       string
	DataDir    string
	ClientURL  string
	PeerURL    string
	ZKAddr     string // host:port of the ZooKeeper port
	ExtraFlags []string
}

// ClusterSpec describes a static cluster on loopback, as the README's
// three-member recipe starts one.
type ClusterSpec struct {
	Members []MemberSpec
	Token   string
	// Raw means each member's ExtraFlags are its whole command line (a
	// recipe read from the README), not additions to the generated flags.
	Raw bool
}

// NewClusterSpec lays out size members with fresh ports and data directories
// under dir.
func NewClusterSpec(t testing.TB, size int, dir string, extra ...string) ClusterSpec {
	ports := FreePorts(t, 3*size)
	spec := ClusterSpec{Token: fmt.Sprintf("test-%d", time.Now().UnixNano())}
	for i := range size {
		spec.Members = append(spec.Members, MemberSpec{
			Name:       fmt.Sprintf("m%d", i+1),
			DataDir:    fmt.Sprintf("%s/m%d.ensemble", dir, i+1),
			ClientURL:  fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]),
			PeerURL:    fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
			ZKAddr:     fmt.Sprintf("127.0.0.1:%d", ports[2*size+i]),
			ExtraFlags: extra,
		})
	}
	return spec
}

// InitialCluster is the --initial-cluster value of the spec.
func (c ClusterSpec) InitialCluster() string {
	parts := make([]string, len(c.Members))
	for i, m := range c.Members {
		parts[i] = m.Name + "=" + m.PeerURL
	}
	return strings.Join(parts, ",")
}

// Args are the flags member i is started with.
func (c ClusterSpec) Args(i int) []string {
	m := c.Members[i]
	if c.Raw {
		return m.ExtraFlags
	}
	args := []string{
		"--name", m.Name,
		"--data-dir", m.DataDir,
		"--listen-client-urls", m.ClientURL,
		"--advertise-client-urls", m.ClientURL,
		"--listen-peer-urls", m.PeerURL,
		"--initial-advertise-peer-urls", m.PeerURL,
		"--listen-zk-addr", m.ZKAddr,
		"--initial-cluster", c.InitialCluster(),
		"--initial-cluster-token", c.Token,
		"--initial-cluster-state", "new",
		"--heartbeat-interval", "20",
		"--election-timeout", "200",
	}
	return append(args, m.ExtraFlags...)
}

// ZKAddrs are the ZooKeeper addresses of every member.
func (c ClusterSpec) ZKAddrs() []string {
	out := make([]string, len(c.Members))
	for i, m := range c.Members {
		out[i] = m.ZKAddr
	}
	return out
}

// Endpoints are the client URLs of every member.
func (c ClusterSpec) Endpoints() []string {
	out := make([]string, len(c.Members))
	for i, m := range c.Members {
		out[i] = m.ClientURL
	}
	return out
}

// NewClient returns a clientv3 client for the given endpoints, closed when
// the test ends.
func NewClient(t testing.TB, endpoints ...string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("client for %v: %v", endpoints, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
