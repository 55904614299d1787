package robustness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Scenario is a cluster size, the faults to draw from, and how long to run.
type Scenario struct {
	Name     string
	Size     int
	Nemeses  []string
	Duration time.Duration // of traffic under faults
}

// Result is what one run of a scenario did and found.
type Result struct {
	Scenario  string
	Seed      uint64
	Ops       int
	Unknown   int
	Revisions int64
	Faults    []string
	Watchers  int
	// WatchSegments, WatchEvents and Progress count watch streams (one
	// more per resumption), events and progress notifications checked.
	WatchSegments, WatchEvents, Progress int
	Watch                                string // "" when checked; else why not
	Converged                            string // how convergence was judged
	Violations                           []Violation
	Notes                                []string // checks that could not conclude
	Dir                                  string   // where the failure report was written
	// ZKOps, ZKUnknown, ZKWatches and ZKEvents count the ZooKeeper
	// operations, those of unknown outcome, data watches and events checked.
	ZKOps, ZKUnknown, ZKWatches, ZKEvents int
}

// Summary is a one-line account of the result.
func (r *Result) Summary() string {
	return fmt.Sprintf("scenario=%s seed=%d ops=%d unknown=%d revisions=%d faults=%d watchers=%d (streams=%d events=%d progress=%d) zk=(ops=%d unknown=%d watches=%d events=%d) violations=%d",
		r.Scenario, r.Seed, r.Ops, r.Unknown, r.Revisions, len(r.Faults), r.Watchers, r.WatchSegments, r.WatchEvents, r.Progress,
		r.ZKOps, r.ZKUnknown, r.ZKWatches, r.ZKEvents, len(r.Violations))
}

// RunConfig is what a scenario run needs from its caller.
type RunConfig struct {
	Bin     string
	WorkDir string // member data and logs (may be removed afterwards)
	Seed    uint64
	Logf    func(format string, args ...any)
	// ReportRoot is where failure reports go; ensemble-robustness-<seed>
	// under it. Default os.TempDir().
	ReportRoot string
}

// Run starts a cluster, drives traffic and faults for sc.Duration, heals
// everything, waits for convergence and checks the histories. An error is a
// failure of the harness or of the cluster to recover (itself a finding);
// violations are in the result.
func Run(ctx context.Context, sc Scenario, rc RunConfig) (res *Result, err error) {
	res = &Result{Scenario: sc.Name, Seed: rc.Seed}
	logf := rc.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	nemeses, err := nemesesByName(sc.Nemeses...)
	if err != nil {
		return res, err
	}
	rnd := rand.New(rand.NewPCG(rc.Seed, 0x5eed))
	clock := NewClock()
	var faultMu sync.Mutex
	flog := func(format string, args ...any) {
		line := fmt.Sprintf("%.3fs ", float64(clock.Now())/1e9) + fmt.Sprintf(format, args...)
		faultMu.Lock()
		res.Faults = append(res.Faults, line)
		faultMu.Unlock()
		logf("%s: %s", sc.Name, line)
	}
	c, err := StartCluster(rc.Bin, rc.WorkDir, sc.Size, clock, logf)
	if err != nil {
		return res, err
	}
	defer c.Close()
	defer func() {
		if err != nil || len(res.Violations) > 0 {
			res.Dir = writeReport(rc, sc, res, c, nil, nil)
		}
	}()

	// Traffic.
	tctx, stopTraffic := context.WithCancel(ctx)
	defer stopTraffic()
	// Watchers outlive the traffic until they have caught up with the
	// final revision, so that their union covers the whole history.
	wctx, stopWatchers := context.WithCancel(ctx)
	var wwg sync.WaitGroup
	defer func() { stopWatchers(); wwg.Wait() }()
	var (
		wg       sync.WaitGroup
		recs     []*recorder
		clients  []*clientv3.Client
		watchers []*watcher
	)
	newCli := func() (*clientv3.Client, error) {
		cli, err := newClient(c.Endpoints()...)
		if err == nil {
			clients = append(clients, cli)
		}
		return cli, err
	}
	defer func() {
		for _, cli := range clients {
			cli.Close()
		}
	}()
	id := 0
	next := func() int { id++; return id - 1 }
	for range 4 {
		cli, err := newCli()
		if err != nil {
			return res, err
		}
		w := &kvWorker{recorder: recorder{id: next(), clock: clock}, cli: cli, keys: 6,
			rnd: rand.New(rand.NewPCG(rnd.Uint64(), 1)), seen: map[string]string{}}
		recs = append(recs, &w.recorder)
		wg.Add(1)
		go func() { defer wg.Done(); w.run(tctx) }()
	}
	{
		cli, err := newCli()
		if err != nil {
			return res, err
		}
		w := &leaseWorker{recorder: recorder{id: next(), clock: clock}, cli: cli, rnd: rand.New(rand.NewPCG(rnd.Uint64(), 2))}
		recs = append(recs, &w.recorder)
		wg.Add(1)
		go func() { defer wg.Done(); w.run(tctx) }()
	}
	for range 2 {
		cli, err := newCli()
		if err != nil {
			return res, err
		}
		w := &lockWorker{recorder: recorder{id: next(), clock: clock}, cli: cli, rnd: rand.New(rand.NewPCG(rnd.Uint64(), 3))}
		recs = append(recs, &w.recorder)
		wg.Add(1)
		go func() { defer wg.Done(); w.run(tctx) }()
	}
	zk, err := startZKTraffic(tctx, c, clock, rc.Seed, newCli, next, &wg)
	if err != nil {
		return res, err
	}
	startWatcher := func(from int64) error {
		cli, err := newCli()
		if err != nil {
			return err
		}
		w := &watcher{id: next(), cli: cli, clock: clock, prefix: kvPrefix, from: from}
		watchers = append(watchers, w)
		wwg.Add(1)
		go func() { defer wwg.Done(); w.run(wctx) }()
		return nil
	}
	if err := startWatcher(1); err != nil {
		return res, err
	}

	// Faults: calm, inject, hold, heal, recover; until the time is up.
	env := &faultEnv{c: c, rnd: rnd, logf: flog, clients: func() []*clientv3.Client { return clients }}
	deadline := time.Now().Add(sc.Duration)
	midWatcher := false
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if !sleepCtx(ctx, time.Duration(300+rnd.IntN(700))*time.Millisecond) {
			break
		}
		if !midWatcher && time.Until(deadline) < sc.Duration/2 {
			// A watcher started mid-run from a past revision.
			midWatcher = true
			if r, err := clients[0].Get(ctx, "ready-probe", clientv3.WithSerializable()); err == nil && r.Header.Revision > 1 {
				if err := startWatcher(1 + rnd.Int64N(r.Header.Revision)); err != nil {
					return res, err
				}
			}
		}
		n := nemeses[rnd.IntN(len(nemeses))]
		heal, err := n.Inject(ctx, env)
		if err != nil {
			return res, fmt.Errorf("robustness: nemesis %s: %w", n.Name, err)
		}
		sleepCtx(ctx, time.Duration(800+rnd.IntN(1500))*time.Millisecond)
		if err := heal(); err != nil {
			return res, fmt.Errorf("robustness: healing %s: %w", n.Name, err)
		}
		flog("healed %s", n.Name)
		for _, i := range c.Active() {
			if err := c.WaitReady(i, 30*time.Second); err != nil {
				return res, fmt.Errorf("robustness: after %s: %w", n.Name, err)
			}
		}
	}
	stopTraffic()
	wg.Wait()
	var h History
	for _, r := range recs {
		h = append(h, r.ops...)
	}
	sort.SliceStable(h, func(i, j int) bool { return h[i].Call < h[j].Call })
	res.Ops = len(h)
	errs := map[string]int{}
	for i := range h {
		if h[i].Unknown() {
			res.Unknown++
			e := h[i].Err
			if j := strings.Index(e, "desc = "); j >= 0 {
				e = e[j+len("desc = "):]
			}
			errs[h[i].Kind.String()+": "+e[:min(len(e), 60)]]++
		}
	}
	logf("%s: errors seen by clients: %v", sc.Name, errs)
	logf("%s: latency: %s", sc.Name, latencies(h))

	// Wait for every lease the traffic abandoned to expire: a lease key
	// still live long after its TTL is a lease that never expires.
	admin, err := newClient(c.Endpoints()...)
	if err != nil {
		return res, err
	}
	defer admin.Close()
	if err := waitEmpty(ctx, admin, leasePrefix, 20*time.Second); err != nil {
		res.Violations = append(res.Violations, Violation{Checker: "lease", Detail: err.Error()})
	}
	res.Violations = append(res.Violations, zk.waitGone(ctx, admin)...)

	// Convergence, then the final history from one member.
	rev, how, err := converge(ctx, c, admin)
	res.Converged = how
	if err != nil {
		var v *convergenceError
		if !errors.As(err, &v) {
			return res, err
		}
		res.Violations = append(res.Violations, Violation{Checker: "convergence", Detail: err.Error()})
	}
	for _, w := range watchers {
		if err := w.waitPast(ctx, rev, 20*time.Second); err != nil {
			res.Violations = append(res.Violations, Violation{Checker: "watch", Detail: err.Error()})
		}
	}
	stopWatchers()
	wwg.Wait()
	one, err := newClient(c.ClientURL(c.Active()[0]))
	if err != nil {
		return res, err
	}
	defer one.Close()
	hctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	store, err := ReadStoreHistory(hctx, one)
	cancel()
	if err != nil {
		return res, err
	}
	res.Revisions = store.Last
	logf("%s: %d operations (%d unknown), %d revisions, %d faults; checking (converged at %d by %s)",
		sc.Name, res.Ops, res.Unknown, store.Last, len(res.Faults), rev, how)

	// Checkers.
	html := filepath.Join(reportDir(rc), sc.Name+"-linearizability.html")
	for _, v := range CheckLinearizable(h, store, isModelKey, 2*time.Minute, html) {
		if strings.Contains(v.Detail, "timed out") {
			res.Notes = append(res.Notes, v.String())
			continue
		}
		res.Violations = append(res.Violations, v)
	}
	res.Violations = append(res.Violations, CheckAckedWrites(h, store)...)
	res.Violations = append(res.Violations, CheckReads(h, store)...)
	res.Violations = append(res.Violations, CheckRevisionOrder(h, c.Starts())...)
	res.Violations = append(res.Violations, CheckLeases(h, store)...)
	res.Violations = append(res.Violations, CheckMutex(store)...)
	for _, w := range watchers {
		if w.err != nil {
			res.Watch = w.err.Error()
			continue
		}
		res.Watchers++
		for _, seg := range w.rec.Segments {
			res.WatchSegments++
			for _, r := range seg.Resps {
				res.WatchEvents += len(r.Events)
				if r.Progress {
					res.Progress++
				}
			}
		}
		res.Violations = append(res.Violations, CheckWatch(w.rec, store)...)
	}
	zk.Finish(res, store, reportDir(rc), sc.Name, logf)
	if len(res.Violations) > 0 {
		res.Dir = writeReport(rc, sc, res, c, h, store)
	}
	return res, nil
}

// waitEmpty waits until no key has prefix.
func waitEmpty(ctx context.Context, cli *clientv3.Client, prefix string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		gctx, cancel := context.WithTimeout(ctx, time.Second)
		r, err := cli.Get(gctx, prefix, clientv3.WithPrefix())
		cancel()
		if err == nil && len(r.Kvs) == 0 {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			var keys []string
			if r != nil {
				for _, kv := range r.Kvs {
					keys = append(keys, fmt.Sprintf("%s(lease %x)", kv.Key, kv.Lease))
				}
			}
			return fmt.Errorf("keys of expired or revoked leases still live %v after the traffic stopped: %v %v", timeout, keys, err)
		}
		sleepCtx(ctx, 100*time.Millisecond)
	}
}

type convergenceError struct{ msg string }

func (e *convergenceError) Error() string { return e.msg }

// converge waits until every active member has applied the leader's
// current revision, then compares HashKV at that revision on every member
// (a full range when the server has no HashKV).
func converge(ctx context.Context, c *Cluster, admin *clientv3.Client) (int64, string, error) {
	gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	r, err := admin.Get(gctx, "ready-probe")
	cancel()
	if err != nil {
		return 0, "", fmt.Errorf("robustness: final read: %w", err)
	}
	rev := r.Header.Revision
	type answer struct {
		member string
		hash   uint32
		dump   string
	}
	var answers []answer
	how := "HashKV"
	for _, i := range c.Active() {
		cli, err := newClient(c.ClientURL(i))
		if err != nil {
			return rev, how, err
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			gctx, cancel := context.WithTimeout(ctx, time.Second)
			r, err := cli.Get(gctx, "ready-probe", clientv3.WithSerializable())
			cancel()
			if err == nil && r.Header.Revision >= rev {
				break
			}
			if time.Now().After(deadline) {
				cli.Close()
				return rev, how, &convergenceError{fmt.Sprintf("m%d did not reach revision %d within 20s (%v, %v)", i+1, rev, r, err)}
			}
			sleepCtx(ctx, 50*time.Millisecond)
		}
		a := answer{member: fmt.Sprintf("m%d", i+1)}
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		hr, err := cli.HashKV(hctx, c.ClientURL(i), rev)
		cancel()
		if status.Code(err) == codes.Unimplemented || how == "range" {
			how = "range"
			gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			rr, rerr := cli.Get(gctx, "\x00", clientv3.WithFromKey(), clientv3.WithRev(rev), clientv3.WithSerializable())
			cancel()
			if rerr != nil {
				cli.Close()
				return rev, how, rerr
			}
			var b bytes.Buffer
			for _, kv := range rr.Kvs {
				fmt.Fprintf(&b, "%s=%s c%d m%d v%d l%x\n", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease)
			}
			a.dump = b.String()
		} else if err != nil {
			cli.Close()
			return rev, how, fmt.Errorf("robustness: HashKV on m%d: %w", i+1, err)
		} else {
			a.hash = hr.Hash
		}
		cli.Close()
		answers = append(answers, a)
	}
	for _, a := range answers[1:] {
		if a.hash != answers[0].hash || a.dump != answers[0].dump {
			var parts []string
			for _, a := range answers {
				parts = append(parts, fmt.Sprintf("%s hash=%d range=%d bytes", a.member, a.hash, len(a.dump)))
			}
			return rev, how, &convergenceError{fmt.Sprintf("members differ at revision %d (%s): %s", rev, how, strings.Join(parts, ", "))}
		}
	}
	return rev, how, nil
}

// replayCommand is the command that runs sc again with seed: the same
// faults and operations, drawn from the seed, for the same time.
func replayCommand(seed uint64, sc Scenario) string {
	return fmt.Sprintf("go test ./tests/robustness -run TestRobustness -args -seed=%d -scenario=%s -scenario-duration=%v", seed, sc.Name, sc.Duration)
}

func reportDir(rc RunConfig) string {
	root := rc.ReportRoot
	if root == "" {
		root = os.TempDir()
	}
	return filepath.Join(root, fmt.Sprintf("ensemble-robustness-%d", rc.Seed))
}

// writeReport writes what is needed to understand a failure: the
// violations, the faults, the whole client history, the final store
// history and every member's log.
func writeReport(rc RunConfig, sc Scenario, res *Result, c *Cluster, h History, store *StoreHistory) string {
	dir := reportDir(rc)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\nreplay: %s\n\nfaults:\n", res.Summary(), replayCommand(res.Seed, sc))
	for _, f := range res.Faults {
		fmt.Fprintf(&b, "  %s\n", f)
	}
	b.WriteString("\nviolations:\n")
	for _, v := range res.Violations {
		fmt.Fprintf(&b, "%s\n", v.String())
	}
	_ = os.WriteFile(filepath.Join(dir, sc.Name+"-violations.txt"), []byte(b.String()), 0o644)
	if h != nil {
		var hb strings.Builder
		for i := range h {
			hb.WriteString(h[i].String())
			hb.WriteByte('\n')
		}
		_ = os.WriteFile(filepath.Join(dir, sc.Name+"-history.txt"), []byte(hb.String()), 0o644)
	}
	if store != nil {
		var sb strings.Builder
		for _, e := range store.Events {
			sb.WriteString(e.String())
			sb.WriteByte('\n')
		}
		_ = os.WriteFile(filepath.Join(dir, sc.Name+"-store.txt"), []byte(sb.String()), 0o644)
	}
	logs := filepath.Join(dir, sc.Name+"-logs")
	if os.MkdirAll(logs, 0o755) == nil {
		c.CopyLogs(logs)
	}
	return dir
}

// latencies summarises acknowledged operations' latency per kind.
func latencies(h History) string {
	type agg struct {
		n        int
		sum, max int64
	}
	by := map[OpKind]*agg{}
	for i := range h {
		o := &h[i]
		if o.Unknown() {
			continue
		}
		a := by[o.Kind]
		if a == nil {
			a = &agg{}
			by[o.Kind] = a
		}
		d := o.Return - o.Call
		a.n++
		a.sum += d
		a.max = max(a.max, d)
	}
	var parts []string
	for k := OpGet; k <= OpLockWrite; k++ {
		if a := by[k]; a != nil {
			parts = append(parts, fmt.Sprintf("%v n=%d mean=%v max=%v", k, a.n, time.Duration(a.sum/int64(a.n)).Round(time.Microsecond), time.Duration(a.max).Round(time.Millisecond)))
		}
	}
	return strings.Join(parts, "; ")
}
