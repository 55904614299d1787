package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"ensemble/tests/framework"
)

// ensemblectl is built once, on first use, next to the ensemble binary, so
// that TestMain's clean-up removes it with the rest.
var ensemblectl struct {
	once sync.Once
	path string
	err  error
}

func ensemblectlBinary(t *testing.T) string {
	t.Helper()
	ensemblectl.once.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		repo := filepath.Join(filepath.Dir(file), "..", "..")
		bin := filepath.Join(filepath.Dir(binary), "ensemblectl")
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/ensemblectl")
		cmd.Dir = repo
		out, err := cmd.CombinedOutput()
		if err != nil {
			ensemblectl.err = fmt.Errorf("go build ./cmd/ensemblectl: %v\n%s", err, out)
			return
		}
		ensemblectl.path = bin
	})
	if ensemblectl.err != nil {
		t.Fatal(ensemblectl.err)
	}
	return ensemblectl.path
}

// ectl runs the built ensemblectl against one cluster.
type ectl struct {
	t   *testing.T
	bin string
	// flags go before every command's own arguments.
	flags []string
	// env is added to an environment without ENSEMBLE_* variables.
	env []string
}

// newCtl returns an ectl for the cluster: every member's client URL and
// ZooKeeper address.
func newCtl(t *testing.T, c *framework.ProcessCluster) ectl {
	return ectl{t: t, bin: ensemblectlBinary(t), flags: []string{
		"--endpoints", strings.Join(c.Spec.Endpoints(), ","),
		"--zk-servers", strings.Join(c.Spec.ZKAddrs(), ","),
		"--dial-timeout", "5s", "--command-timeout", "10s",
	}}
}

// on returns e reporting to t (a subtest's).
func (e ectl) on(t *testing.T) ectl {
	e.t = t
	return e
}

func (e ectl) command(ctx context.Context, stdin string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, e.bin, append(append([]string{}, e.flags...), args...)...)
	// ENSEMBLE_* variables of whoever runs the suite must not steer it.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ENSEMBLE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, e.env...)
	cmd.Stdin = strings.NewReader(stdin)
	return cmd
}

// run runs ensemblectl to completion and returns stdout, stderr and the
// exit code.
func (e ectl) run(stdin string, args ...string) (string, string, int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := e.command(ctx, stdin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		e.t.Fatalf("ensemblectl %q did not finish:\n%s%s", args, stdout.String(), stderr.String())
	case errors.As(err, &ee):
		return stdout.String(), stderr.String(), ee.ExitCode()
	case err != nil:
		e.t.Fatalf("ensemblectl %q: %v", args, err)
	}
	return stdout.String(), stderr.String(), 0
}

// ok runs ensemblectl, fails the test unless it succeeds quietly, and
// returns its stdout.
func (e ectl) ok(stdin string, args ...string) string {
	e.t.Helper()
	stdout, stderr, code := e.run(stdin, args...)
	if code != 0 || stderr != "" {
		e.t.Fatalf("ensemblectl %q: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, stdout, stderr)
	}
	return stdout
}

// fails runs ensemblectl, fails the test unless it exits with code and
// exactly one "Error: " line that contains want, and returns that line.
func (e ectl) fails(code int, want string, args ...string) string {
	e.t.Helper()
	stdout, stderr, got := e.run("", args...)
	line, ok := strings.CutSuffix(stderr, "\n")
	if got != code || !ok || strings.Contains(line, "\n") || !strings.HasPrefix(line, "Error: ") || !strings.Contains(line, want) {
		e.t.Fatalf("ensemblectl %q: exit %d (want %d), stderr %q (want one Error line with %q)\nstdout:\n%s",
			args, got, code, stderr, want, stdout)
	}
	return line
}

// ctlProc is an ensemblectl that runs until told to stop.
type ctlProc struct {
	t      *testing.T
	args   []string
	cmd    *exec.Cmd
	lines  chan string
	mu     sync.Mutex
	out    []string // every stdout line so far
	stderr bytes.Buffer
	stdin  io.WriteCloser
	done   chan struct{}
}

// start starts ensemblectl with args; it is killed when the test ends if
// still running.
func (e ectl) start(args ...string) *ctlProc {
	e.t.Helper()
	b := &ctlProc{t: e.t, args: args, lines: make(chan string, 1024), done: make(chan struct{})}
	b.cmd = e.command(context.Background(), "", args...)
	b.cmd.Stdin = nil
	stdin, err := b.cmd.StdinPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	b.stdin = stdin
	stdout, err := b.cmd.StdoutPipe()
	if err != nil {
		e.t.Fatal(err)
	}
	b.cmd.Stderr = &ctlLockedWriter{mu: &b.mu, w: &b.stderr}
	if err := b.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	go func() {
		defer close(b.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			b.mu.Lock()
			b.out = append(b.out, sc.Text())
			b.mu.Unlock()
			b.lines <- sc.Text()
		}
	}()
	go func() {
		// Wait only after stdout is drained, as exec requires.
		for range b.lines {
		}
		close(b.done)
	}()
	e.t.Cleanup(func() {
		_ = b.cmd.Process.Kill()
		<-b.done
		_ = b.cmd.Wait()
	})
	return b
}

type ctlLockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *ctlLockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// output is everything the process printed so far.
func (b *ctlProc) output() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.out, "\n") + "\n--- stderr ---\n" + b.stderr.String()
}

// waitLine waits until a stdout line (from the first) contains want and
// returns it.
func (b *ctlProc) waitLine(want string) string {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b.mu.Lock()
		for _, l := range b.out {
			if strings.Contains(l, want) {
				b.mu.Unlock()
				return l
			}
		}
		b.mu.Unlock()
		select {
		case <-b.done:
			// The last lines are in b.out by now.
			b.mu.Lock()
			for _, l := range b.out {
				if strings.Contains(l, want) {
					b.mu.Unlock()
					return l
				}
			}
			b.mu.Unlock()
			b.t.Fatalf("ensemblectl %q exited without printing %q:\n%s", b.args, want, b.output())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("ensemblectl %q did not print %q within 30s:\n%s", b.args, want, b.output())
		}
	}
}

// waitStderr waits until stderr contains want.
func (b *ctlProc) waitStderr(want string) {
	b.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		b.mu.Lock()
		s := b.stderr.String()
		b.mu.Unlock()
		if strings.Contains(s, want) {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("ensemblectl %q did not print %q on stderr within 30s:\n%s", b.args, want, b.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// send writes a line to the process's stdin.
func (b *ctlProc) send(line string) {
	b.t.Helper()
	if _, err := io.WriteString(b.stdin, line+"\n"); err != nil {
		b.t.Fatalf("write to ensemblectl %q: %v", b.args, err)
	}
}

// exited reports whether the process has ended.
func (b *ctlProc) exited() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// stop sends SIGINT and returns the exit code.
func (b *ctlProc) stop() int {
	b.t.Helper()
	_ = b.cmd.Process.Signal(syscall.SIGINT)
	return b.wait()
}

// wait waits for the process to exit by itself and returns its exit code.
func (b *ctlProc) wait() int {
	b.t.Helper()
	select {
	case <-b.done:
	case <-time.After(30 * time.Second):
		b.t.Fatalf("ensemblectl %q did not exit:\n%s", b.args, b.output())
	}
	err := b.cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		b.t.Fatalf("ensemblectl %q: %v", b.args, err)
	}
	return 0
}
