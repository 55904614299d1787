package robustness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"ensemble/internal/wal"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Clock gives every recorded event a time in nanoseconds since the run
// began, from the monotonic clock.
type Clock struct{ start time.Time }

// NewClock starts a clock at zero.
func NewClock() *Clock { return &Clock{start: time.Now()} }

// Now is the time since the clock started, in nanoseconds.
func (c *Clock) Now() int64 { return int64(time.Since(c.start)) }

// member is one `ensemble` process of a cluster and everything needed to
// start it again.
type member struct {
	idx                   int
	name, dir, log        string
	clientURL             string
	zkAddr                string
	peerListen, peerProxy string // its own 127.0.0.x listener, and the proxy in front of it
	state                 string // --initial-cluster-state
	initialCluster        string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	paused  bool
	removed bool
	id      uint64
	starts  []int64 // clock times of every start, for checkers that must not span a restart
}

// Cluster is a set of real processes whose peer traffic crosses a Network.
type Cluster struct {
	bin     string
	dir     string
	token   string
	clock   *Clock
	Net     *Network
	logf    func(format string, args ...any)
	mu      sync.Mutex
	members []*member
}

// clusterFlags are the timing flags every member gets: short enough that
// elections settle within a second, long enough for a loaded 2-core machine.
// The small snapshot count makes restarted and new members catch up through
// snapshots, and the leader compact its log, during every scenario.
func clusterFlags() []string {
	return []string{"--heartbeat-interval", "50", "--election-timeout", "500", "--snapshot-count", "2000"}
}

// StartCluster starts size members in dir and waits until each serves a
// linearizable read. Everything it starts is stopped by Close.
func StartCluster(bin, dir string, size int, clock *Clock, logf func(string, ...any)) (*Cluster, error) {
	c := &Cluster{bin: bin, dir: dir, clock: clock, Net: NewNetwork(), logf: logf,
		token: fmt.Sprintf("robustness-%d", time.Now().UnixNano())}
	for range size {
		if _, err := c.newMember(); err != nil {
			c.Close()
			return nil, err
		}
	}
	ic := c.initialCluster()
	for _, m := range c.members {
		m.state, m.initialCluster = "new", ic
		if err := c.start(m); err != nil {
			c.Close()
			return nil, err
		}
	}
	for i := range c.members {
		if err := c.WaitReady(i, 30*time.Second); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// newMember lays out the next member: its ports, its proxy, its data dir.
func (c *Cluster) newMember() (*member, error) {
	c.mu.Lock()
	idx := len(c.members)
	c.mu.Unlock()
	ip := memberIP(idx)
	peerPort, err := freePort(ip)
	if err != nil {
		return nil, fmt.Errorf("robustness: peer port on %s (is 127.0.0.0/8 routed to lo?): %w", ip, err)
	}
	clientPort, err := freePort("127.0.0.1")
	if err != nil {
		return nil, err
	}
	zkPort, err := freePort("127.0.0.1")
	if err != nil {
		return nil, err
	}
	peerListen := fmt.Sprintf("%s:%d", ip, peerPort)
	proxyAddr, err := c.Net.AddProxy(idx, peerListen)
	if err != nil {
		return nil, err
	}
	m := &member{
		idx:        idx,
		name:       fmt.Sprintf("m%d", idx+1),
		dir:        filepath.Join(c.dir, fmt.Sprintf("m%d.ensemble", idx+1)),
		log:        filepath.Join(c.dir, fmt.Sprintf("m%d.log", idx+1)),
		clientURL:  fmt.Sprintf("http://127.0.0.1:%d", clientPort),
		zkAddr:     fmt.Sprintf("127.0.0.1:%d", zkPort),
		peerListen: "http://" + peerListen,
		peerProxy:  "http://" + proxyAddr,
	}
	c.mu.Lock()
	c.members = append(c.members, m)
	c.mu.Unlock()
	return m, nil
}

func freePort(ip string) (int, error) {
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// initialCluster names every member not removed, by its proxy URL.
func (c *Cluster) initialCluster() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var parts []string
	for _, m := range c.members {
		if !m.isRemoved() {
			parts = append(parts, m.name+"="+m.peerProxy)
		}
	}
	return strings.Join(parts, ",")
}

func (m *member) args(token string) []string {
	args := []string{
		"--name", m.name, "--data-dir", m.dir,
		"--listen-client-urls", m.clientURL, "--advertise-client-urls", m.clientURL,
		"--listen-peer-urls", m.peerListen, "--initial-advertise-peer-urls", m.peerProxy,
		"--initial-cluster", m.initialCluster, "--initial-cluster-state", m.state,
		"--initial-cluster-token", token,
		"--listen-zk-addr", m.zkAddr,
	}
	return append(args, clusterFlags()...)
}

func (c *Cluster) start(m *member) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		return fmt.Errorf("robustness: %s already running", m.name)
	}
	logf, err := os.OpenFile(m.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "=== start at %v\n", time.Duration(c.clock.Now()))
	cmd := exec.Command(c.bin, m.args(c.token)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	m.cmd, m.done, m.paused = cmd, done, false
	m.starts = append(m.starts, c.clock.Now())
	go func() {
		cmd.Wait()
		logf.Close()
		close(done)
	}()
	return nil
}

// signal sends sig to member i's process, if it runs.
func (c *Cluster) signal(i int, sig syscall.Signal) {
	m := c.member(i)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		_ = m.cmd.Process.Signal(sig)
		switch sig {
		case syscall.SIGSTOP:
			m.paused = true
		case syscall.SIGCONT:
			m.paused = false
		}
	}
}

// Kill SIGKILLs member i and waits until it is gone.
func (c *Cluster) Kill(i int) {
	m := c.member(i)
	m.mu.Lock()
	cmd, done := m.cmd, m.done
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
	m.mu.Lock()
	m.cmd, m.paused = nil, false
	m.mu.Unlock()
}

// sectorSize is the unit a disk writes atomically: after a power failure
// each sector holds either what it held at the last sync or what was
// written over it since, never a mix.
const sectorSize = 512

// LoseUnsynced does to the stopped member i's log what a power failure
// would have done: the bytes of its last segment after the length that its
// last fdatasync covered (as recorded by a binary built with -tags
// failpoints; see wal.SyncedFile) are lost. Either all of them (when keep
// is 0) or all but a prefix of whole sectors that the kernel happened to
// have written back (keep picks which: 1 + the number of sectors kept,
// wrapped around what there is). The file keeps its size, as a
// preallocated file does, with zeros where the bytes were lost. It
// describes what it did.
func (c *Cluster) LoseUnsynced(i int, keep uint64) (string, error) {
	m := c.member(i)
	if c.Running(i) {
		return "", fmt.Errorf("robustness: %s is running", m.name)
	}
	dir := filepath.Join(m.dir, "member", "wal")
	synced, length, err := wal.ReadSynced(dir)
	if err != nil {
		return "", err
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	var last string
	for _, de := range des {
		if strings.HasSuffix(de.Name(), ".wal") {
			last = de.Name()
		}
	}
	if last != synced {
		// The process died between making the next segment (header
		// synced) and recording it: the recorded segment was synced
		// whole when it was sealed, and nothing follows the new header.
		return fmt.Sprintf("nothing unsynced (segment %s just started)", last), nil
	}
	path := filepath.Join(dir, last)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	end, err := dataEnd(f, fi.Size())
	if err != nil {
		return "", err
	}
	if end <= length {
		return fmt.Sprintf("nothing unsynced (%s synced to %d)", last, length), nil
	}
	cut := length
	if keep > 0 {
		// Sector boundaries strictly inside the unsynced bytes.
		first := (length/sectorSize + 1) * sectorSize
		if first < end {
			n := uint64((end-1-first)/sectorSize + 1)
			cut = first + int64((keep-1)%n)*sectorSize
		}
	}
	if err := f.Truncate(cut); err != nil {
		return "", err
	}
	if err := f.Truncate(fi.Size()); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s: synced to %d, written to %d, cut at %d (%d unsynced bytes lost)", last, length, end, cut, end-cut), nil
}

// dataEnd is the offset after the last non-zero byte of f.
func dataEnd(f *os.File, size int64) (int64, error) {
	buf := make([]byte, 1<<20)
	for hi := size; hi > 0; {
		lo := max(hi-int64(len(buf)), 0)
		b := buf[:hi-lo]
		if _, err := f.ReadAt(b, lo); err != nil {
			return 0, err
		}
		for j := len(b) - 1; j >= 0; j-- {
			if b[j] != 0 {
				return lo + int64(j) + 1, nil
			}
		}
		hi = lo
	}
	return 0, nil
}

// Pause SIGSTOPs member i; Resume SIGCONTs it.
func (c *Cluster) Pause(i int)  { c.signal(i, syscall.SIGSTOP) }
func (c *Cluster) Resume(i int) { c.signal(i, syscall.SIGCONT) }

// Restart starts a killed member again with the same flags and data.
func (c *Cluster) Restart(i int) error {
	m := c.member(i)
	if err := c.start(m); err != nil {
		return err
	}
	return c.WaitReady(i, 30*time.Second)
}

// Running reports whether member i's process is alive.
func (c *Cluster) Running(i int) bool {
	m := c.member(i)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return false
	}
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

func (c *Cluster) member(i int) *member {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.members[i]
}

func (m *member) isRemoved() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.removed
}

// Active lists the members that belong to the cluster (not removed).
func (c *Cluster) Active() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int
	for i, m := range c.members {
		if !m.isRemoved() {
			out = append(out, i)
		}
	}
	return out
}

// Endpoints are the client URLs of the active members.
func (c *Cluster) Endpoints() []string {
	var out []string
	for _, i := range c.Active() {
		out = append(out, c.member(i).clientURL)
	}
	return out
}

// ClientURL is member i's client URL.
func (c *Cluster) ClientURL(i int) string { return c.member(i).clientURL }

// Starts maps each member's raft id to the clock times it was started at.
func (c *Cluster) Starts() map[uint64][]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[uint64][]int64{}
	for _, m := range c.members {
		m.mu.Lock()
		if m.id != 0 {
			out[m.id] = append([]int64(nil), m.starts...)
		}
		m.mu.Unlock()
	}
	return out
}

// newClient returns a client for endpoints that logs nothing.
func newClient(endpoints ...string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:            endpoints,
		DialTimeout:          2 * time.Second,
		DialKeepAliveTime:    time.Second,
		DialKeepAliveTimeout: time.Second,
		Logger:               zap.NewNop(),
	})
}

// status asks member i directly for its status, and remembers its id.
func (c *Cluster) status(ctx context.Context, i int) (*clientv3.StatusResponse, error) {
	m := c.member(i)
	cli, err := newClient(m.clientURL)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := cli.Status(ctx, m.clientURL)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.id = st.Header.MemberId
	m.mu.Unlock()
	return st, nil
}

// WaitReady waits until member i serves a linearizable read.
func (c *Cluster) WaitReady(i int, timeout time.Duration) error {
	m := c.member(i)
	cli, err := newClient(m.clientURL)
	if err != nil {
		return err
	}
	defer cli.Close()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err = cli.Get(ctx, "ready-probe")
		cancel()
		if err == nil {
			_, err = c.status(context.Background(), i)
		}
		if err == nil {
			return nil
		}
		if !c.Running(i) {
			return fmt.Errorf("robustness: %s exited: %w\n%s", m.name, err, tail(m.log, 40))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("robustness: %s not ready after %v: %w", m.name, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Leader returns the index of a running, unpaused member that reports itself
// leader, waiting up to timeout for one.
func (c *Cluster) Leader(timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		for _, i := range c.Active() {
			m := c.member(i)
			m.mu.Lock()
			paused := m.paused
			m.mu.Unlock()
			if paused || !c.Running(i) {
				continue
			}
			st, err := c.status(context.Background(), i)
			if err == nil && st.Leader != 0 && st.Leader == st.Header.MemberId {
				return i, nil
			}
		}
		if time.Now().After(deadline) {
			return -1, errors.New("robustness: no leader")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// MemberID is member i's raft id (known once it has answered a status).
func (c *Cluster) MemberID(i int) uint64 {
	m := c.member(i)
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.id
}

// Remove takes member i out of the cluster through cli and waits until its
// process has stopped by itself.
func (c *Cluster) Remove(ctx context.Context, cli *clientv3.Client, i int) error {
	id := c.MemberID(i)
	if id == 0 {
		return fmt.Errorf("robustness: id of m%d unknown", i+1)
	}
	// The answer may be lost (the member that serves it may be the one
	// removed, or a leader change may cut it short): retry until the member
	// list no longer has it.
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := cli.MemberRemove(rctx, id)
		cancel()
		if err == nil || errors.Is(err, rpctypes.ErrMemberNotFound) {
			break
		}
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ml, lerr := cli.MemberList(lctx)
		cancel()
		if lerr == nil && !hasMember(ml, id) {
			break
		}
		if ctx.Err() != nil {
			return fmt.Errorf("robustness: remove m%d: %w", i+1, err)
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
	m := c.member(i)
	m.mu.Lock()
	m.removed = true
	m.mu.Unlock()
	// A removed member learns of its removal from the log and exits; one
	// cut off at that moment may not, so it is killed after a while.
	deadline := time.Now().Add(10 * time.Second)
	for c.Running(i) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	c.Kill(i)
	return nil
}

func hasMember(ml *clientv3.MemberListResponse, id uint64) bool {
	for _, m := range ml.Members {
		if m.ID == id {
			return true
		}
	}
	return false
}

// Add adds a new member through cli, starts it with state existing and a
// fresh data directory, and waits until it serves.
func (c *Cluster) Add(ctx context.Context, cli *clientv3.Client) (int, error) {
	m, err := c.newMember()
	if err != nil {
		return -1, err
	}
	if _, err := cli.MemberAdd(ctx, []string{m.peerProxy}); err != nil {
		m.mu.Lock()
		m.removed = true
		m.mu.Unlock()
		return -1, fmt.Errorf("robustness: add %s: %w", m.name, err)
	}
	m.state, m.initialCluster = "existing", c.initialCluster()
	if err := c.start(m); err != nil {
		return -1, err
	}
	return m.idx, c.WaitReady(m.idx, 30*time.Second)
}

// Close kills every process and closes the proxies.
func (c *Cluster) Close() {
	c.mu.Lock()
	n := len(c.members)
	c.mu.Unlock()
	for i := range n {
		c.Kill(i)
	}
	c.Net.Close()
}

// Logs returns the last lines of every member's log.
func (c *Cluster) Logs(lines int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, m := range c.members {
		fmt.Fprintf(&b, "--- %s (%s) ---\n%s\n", m.name, m.log, tail(m.log, lines))
	}
	return b.String()
}

// CopyLogs copies every member's log into dir.
func (c *Cluster) CopyLogs(dir string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.members {
		if b, err := os.ReadFile(m.log); err == nil {
			_ = os.WriteFile(filepath.Join(dir, filepath.Base(m.log)), b, 0o644)
		}
	}
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}
