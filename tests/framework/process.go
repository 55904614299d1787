package framework

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// BuildEnsemble builds cmd/ensemble into dir and returns the binary's path.
func BuildEnsemble(dir string) (string, error) { return BuildEnsembleTags(dir) }

// BuildEnsembleTags builds cmd/ensemble with the given build tags (such as
// "failpoints") into dir and returns the binary's path.
func BuildEnsembleTags(dir string, tags ...string) (string, error) {
	_, file, _, _ := runtime.Caller(0)
	repo := filepath.Join(filepath.Dir(file), "..", "..")
	bin := filepath.Join(dir, "ensemble")
	args := []string{"build", "-o", bin}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	cmd := exec.Command("go", append(args, "./cmd/ensemble")...)
	cmd.Dir = repo
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out.String())
	}
	return bin, nil
}

// Process is one `ensemble` process of a test cluster.
type Process struct {
	Bin  string
	Args []string
	Log  string // file that collects the process's output

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start launches the process.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("already running")
	}
	logf, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.Bin, p.Args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func(done chan struct{}) {
		err := cmd.Wait()
		logf.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}(p.done)
	return nil
}

// Running reports whether the process was started and has not exited.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Signal sends sig and, for SIGKILL and SIGTERM, waits for the exit (up to
// wait). It returns the process's exit error.
func (p *Process) Signal(sig syscall.Signal, wait time.Duration) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(wait):
		_ = cmd.Process.Kill()
		<-done
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cmd = nil
	return p.err
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill() { _ = p.Signal(syscall.SIGKILL, 10*time.Second) }

// Term sends SIGTERM and waits (up to 20 s) for a graceful exit.
func (p *Process) Term() error { return p.Signal(syscall.SIGTERM, 20*time.Second) }

// Output returns what the process has logged so far.
func (p *Process) Output() string {
	b, _ := os.ReadFile(p.Log)
	return string(b)
}

// ProcessCluster is a cluster of real `ensemble` processes.
type ProcessCluster struct {
	Spec  ClusterSpec
	Procs []*Process
}

// StartProcesses starts every member of spec with bin and waits until each
// answers on its client URL.
func StartProcesses(t testing.TB, bin string, spec ClusterSpec) *ProcessCluster {
	t.Helper()
	c := &ProcessCluster{Spec: spec}
	logDir := t.TempDir()
	for i := range spec.Members {
		p := &Process{Bin: bin, Args: spec.Args(i), Log: filepath.Join(logDir, spec.Members[i].Name+".log")}
		if err := p.Start(); err != nil {
			t.Fatalf("start %s: %v", spec.Members[i].Name, err)
		}
		c.Procs = append(c.Procs, p)
	}
	t.Cleanup(func() {
		for i, p := range c.Procs {
			p.Kill()
			if t.Failed() {
				t.Logf("--- log of %s ---\n%s", spec.Members[i].Name, p.Output())
			}
		}
	})
	for i := range spec.Members {
		c.WaitReady(t, i)
	}
	c.waitPublished(t)
	return c
}

// waitPublished waits until every member's client URLs are in the member
// list: a member publishes them through the log once it has started, as in
// etcd, and tools that discover the cluster from the list need them.
func (c *ProcessCluster) waitPublished(t testing.TB) {
	t.Helper()
	cli := NewClient(t, c.Spec.Endpoints()...)
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := cli.MemberList(ctx)
		cancel()
		if err == nil && len(resp.Members) == len(c.Spec.Members) {
			published := 0
			for _, m := range resp.Members {
				if len(m.ClientURLs) > 0 {
					published++
				}
			}
			if published == len(resp.Members) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("members did not publish their client URLs within 20s: %v %v", resp, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitReady waits until member i serves a linearizable read.
func (c *ProcessCluster) WaitReady(t testing.TB, i int) {
	t.Helper()
	cli := NewClient(t, c.Spec.Members[i].ClientURL)
	deadline := time.Now().Add(20 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err = cli.Get(ctx, "ready-probe")
		cancel()
		if err == nil {
			return
		}
		if !c.Procs[i].Running() {
			t.Fatalf("member %s exited:\n%s", c.Spec.Members[i].Name, c.Procs[i].Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("member %s not ready after 20s: %v", c.Spec.Members[i].Name, err)
}

// Leader returns the index of the member that every running member reports
// as leader, waiting up to 10 s for them to agree.
func (c *ProcessCluster) Leader(t testing.TB) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		leader := c.leaderOnce(t)
		if leader >= 0 {
			return leader
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("members did not agree on a leader within 10s")
	return -1
}

func (c *ProcessCluster) leaderOnce(t testing.TB) int {
	var lead uint64
	idx := -1
	for i, m := range c.Spec.Members {
		if !c.Procs[i].Running() {
			continue
		}
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m.ClientURL}, DialTimeout: time.Second})
		if err != nil {
			return -1
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := cli.Status(ctx, m.ClientURL)
		cancel()
		cli.Close()
		if err != nil || st.Leader == 0 || (lead != 0 && st.Leader != lead) {
			return -1
		}
		lead = st.Leader
		if st.Header.MemberId == st.Leader {
			idx = i
		}
	}
	return idx
}

// Kill SIGKILLs member i.
func (c *ProcessCluster) Kill(i int) { c.Procs[i].Kill() }

// Restart starts member i again with the same flags and waits until it serves.
func (c *ProcessCluster) Restart(t testing.TB, i int) {
	t.Helper()
	if err := c.Procs[i].Start(); err != nil {
		t.Fatalf("restart %s: %v", c.Spec.Members[i].Name, err)
	}
	c.WaitReady(t, i)
}

// RunWithEnsemble is the body of a TestMain for tests of the built binary: it
// builds cmd/ensemble into a fresh temporary directory, sets *bin to it, runs
// the tests, removes the directory and returns the exit code.
func RunWithEnsemble(m *testing.M, bin *string) int { return RunWithEnsembleTags(m, bin) }

// RunWithEnsembleTags is RunWithEnsemble with the binary built with tags.
func RunWithEnsembleTags(m *testing.M, bin *string, tags ...string) int {
	dir, err := os.MkdirTemp("", "ensemble-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if *bin, err = BuildEnsembleTags(dir, tags...); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}
