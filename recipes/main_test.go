package recipes_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ensemble/tests/framework"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// etcdVersion is the etcd release the suite also runs against, to prove the
// recipes need nothing but the public API.
const etcdVersion = "v3.6.16"

// etcdBin is the etcd server built by TestMain.
var etcdBin string

// tmpRoot is the directory, outside the repository, where TestMain builds
// what the tests run; it is removed at the end.
var tmpRoot string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "recipes-etcd-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "recipes: temp dir:", err)
		os.Exit(1)
	}
	tmpRoot = dir
	bin, err := buildEtcd(dir)
	if err != nil {
		os.RemoveAll(dir)
		fmt.Fprintf(os.Stderr, "recipes: FAIL: cannot build etcd %s from the Go module proxy (is the network available?): %v\n", etcdVersion, err)
		os.Exit(1)
	}
	etcdBin = bin
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildEtcd builds the etcd server as the only dependency of a throwaway
// module in dir, outside this repository, so our go.mod is never touched.
func buildEtcd(dir string) (string, error) {
	mod := filepath.Join(dir, "mod")
	if err := os.MkdirAll(mod, 0o755); err != nil {
		return "", err
	}
	main := "package main\n\nimport (\n\t\"os\"\n\n\t\"go.etcd.io/etcd/server/v3/etcdmain\"\n)\n\nfunc main() { etcdmain.Main(os.Args) }\n"
	if err := os.WriteFile(filepath.Join(mod, "main.go"), []byte(main), 0o644); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "etcd")
	env := append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	for _, step := range [][]string{
		{"go", "mod", "init", "etcdbuild"},
		{"go", "get", "go.etcd.io/etcd/server/v3@" + etcdVersion},
		{"go", "build", "-o", bin, "."},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
		cmd := exec.CommandContext(ctx, step[0], step[1:]...)
		cmd.Dir, cmd.Env = mod, env
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			return "", fmt.Errorf("%s: %v\n%s", strings.Join(step, " "), err, out)
		}
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "etcd Version: "+strings.TrimPrefix(etcdVersion, "v")) {
		return "", fmt.Errorf("built etcd reports %q, %v", out, err)
	}
	return bin, nil
}

// backend is one running 3-member cluster the recipes are tested against.
type backend struct {
	name      string
	endpoints []string
}

// client returns a client of the cluster, closed when the test ends.
func (b *backend) client(t testing.TB) *clientv3.Client {
	return framework.NewClient(t, b.endpoints...)
}

// session returns a session with a short TTL on a fresh client.
func (b *backend) session(t testing.TB, ttl int) *concurrency.Session {
	t.Helper()
	s, err := concurrency.NewSession(b.client(t), concurrency.WithTTL(ttl))
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// cutClient returns a client whose only route to the cluster is a proxy
// the test can cut, as a network partition between that client and the
// cluster.
func (b *backend) cutClient(t testing.TB) (*clientv3.Client, *cutProxy) {
	t.Helper()
	p := newCutProxy(t, strings.TrimPrefix(b.endpoints[0], "http://"))
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{"http://" + p.addr()},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("client through proxy: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, p
}

// prefix is a key prefix of the test's own, so that tests can share a
// cluster.
func prefix(t testing.TB) string {
	return "/recipes-test/" + strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func startEnsemble(t *testing.T) *backend {
	c := framework.StartInProcess(t, 3)
	return &backend{name: "ensemble", endpoints: c.Spec.Endpoints()}
}

// startEtcd starts a 3-member etcd cluster on free ports, stopped (by PID,
// through framework.Process) when the test ends. A port found free can be
// taken by someone else before etcd binds it, so a cluster whose member
// exits while starting is started again on other ports.
func startEtcd(t *testing.T) *backend {
	t.Helper()
	var lastErr error
	for range 3 {
		b, err := startEtcdOnce(t)
		if err == nil {
			return b
		}
		lastErr = err
		t.Logf("etcd cluster did not start, trying other ports: %v", err)
	}
	t.Fatalf("etcd cluster did not start: %v", lastErr)
	return nil
}

func startEtcdOnce(t *testing.T) (*backend, error) {
	dir := t.TempDir()
	spec := framework.NewClusterSpec(t, 3, dir)
	procs := make([]*framework.Process, 0, len(spec.Members))
	stop := func() {
		var wg sync.WaitGroup
		for _, p := range procs {
			wg.Add(1)
			go func() { defer wg.Done(); p.Kill() }()
		}
		wg.Wait()
	}
	for _, m := range spec.Members {
		args := []string{
			"--name", m.Name,
			"--data-dir", m.DataDir,
			"--listen-client-urls", m.ClientURL,
			"--advertise-client-urls", m.ClientURL,
			"--listen-peer-urls", m.PeerURL,
			"--initial-advertise-peer-urls", m.PeerURL,
			"--initial-cluster", spec.InitialCluster(),
			"--initial-cluster-token", spec.Token,
			"--initial-cluster-state", "new",
			"--heartbeat-interval", "20",
			"--election-timeout", "200",
			"--log-level", "error",
		}
		p := &framework.Process{Bin: etcdBin, Args: args, Log: filepath.Join(dir, m.Name+".log")}
		if err := p.Start(); err != nil {
			stop()
			return nil, fmt.Errorf("start etcd %s: %w", m.Name, err)
		}
		procs = append(procs, p)
	}
	b := &backend{name: "etcd", endpoints: spec.Endpoints()}
	cli, err := clientv3.New(clientv3.Config{Endpoints: b.endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		stop()
		return nil, err
	}
	defer cli.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, p := range procs {
			if !p.Running() {
				out := p.Output()
				stop()
				return nil, fmt.Errorf("an etcd member exited while starting:\n%s", out)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Put(ctx, "/recipes-test-ready", "")
		cancel()
		if err == nil {
			t.Cleanup(stop)
			return b, nil
		}
		if time.Now().After(deadline) {
			for _, p := range procs {
				t.Logf("etcd output:\n%s", p.Output())
			}
			stop()
			return nil, fmt.Errorf("not ready within 30s: %w", err)
		}
	}
}

// recipeCase is one test of the suite that runs on every backend.
type recipeCase struct {
	name string
	run  func(t *testing.T, b *backend)
}

// TestRecipes runs every recipe test against a 3-member Ensemble cluster
// and a 3-member etcd cluster.
func TestRecipes(t *testing.T) {
	// One after the other: clusters starting at once could pick the same
	// free ports.
	backends := []*backend{startEnsemble(t), startEtcd(t)}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			for _, c := range recipeCases {
				t.Run(c.name, func(t *testing.T) {
					t.Parallel()
					c.run(t, b)
				})
			}
		})
	}
}

// cutProxy forwards TCP connections to one address until cut; once cut it
// keeps every connection open but drops every byte, as a network that
// silently loses packets: the client only notices through its timeouts.
type cutProxy struct {
	ln    net.Listener
	to    string
	cut   atomic.Bool
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newCutProxy(t testing.TB, to string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, to: to}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

// Cut starts dropping everything.
func (p *cutProxy) Cut() { p.cut.Store(true) }

func (p *cutProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.to)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(up, c)
		go p.pipe(c, up)
	}
}

func (p *cutProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !p.cut.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				return
			}
			dst.Close()
			return
		}
	}
}

func (p *cutProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
