package robustness

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// faultEnv is what a nemesis acts on.
type faultEnv struct {
	c       *Cluster
	rnd     *rand.Rand
	logf    func(format string, args ...any)
	clients func() []*clientv3.Client // every traffic client, re-pointed after membership changes
}

// Nemesis injects one fault and returns how to heal it.
type Nemesis struct {
	Name   string
	Inject func(ctx context.Context, env *faultEnv) (heal func() error, err error)
}

func (env *faultEnv) randomMember() int {
	a := env.c.Active()
	return a[env.rnd.IntN(len(a))]
}

func (env *faultEnv) leader() (int, error) { return env.c.Leader(10 * time.Second) }

func (env *faultEnv) others(i int) []int {
	var out []int
	for _, j := range env.c.Active() {
		if j != i {
			out = append(out, j)
		}
	}
	return out
}

func (env *faultEnv) cutMode() CutMode {
	if env.rnd.IntN(2) == 0 {
		return Drop
	}
	return Blackhole
}

// kill SIGKILLs member i; healing restarts it with its data.
func kill(env *faultEnv, i int) func() error {
	env.c.Kill(i)
	env.logf("SIGKILL m%d", i+1)
	return func() error { return env.c.Restart(i) }
}

// powerFail SIGKILLs member i and throws away the bytes of its WAL that no
// fdatasync covered, as a power failure would (SIGKILL alone leaves them in
// the page cache); healing restarts it. Half the time every unsynced byte
// is lost, half the time a prefix of whole sectors survives, as if the
// kernel had written some back.
func powerFail(env *faultEnv, i int) (func() error, error) {
	env.c.Kill(i)
	var keep uint64
	if env.rnd.IntN(2) == 1 {
		keep = 1 + env.rnd.Uint64()
	}
	what, err := env.c.LoseUnsynced(i, keep)
	if err != nil {
		return nil, fmt.Errorf("lose unsynced WAL tail of m%d: %w", i+1, err)
	}
	env.logf("SIGKILL m%d, unsynced WAL tail lost: %s", i+1, what)
	return func() error { return env.c.Restart(i) }, nil
}

// pause SIGSTOPs member i; healing SIGCONTs it.
func pause(env *faultEnv, i int) func() error {
	env.c.Pause(i)
	env.logf("SIGSTOP m%d", i+1)
	return func() error { env.c.Resume(i); return nil }
}

// isolate cuts member i from every other member, both ways.
func isolate(env *faultEnv, i int) func() error {
	mode := env.cutMode()
	env.c.Net.Partition(mode, []int{i}, env.others(i))
	env.logf("isolate m%d (%v)", i+1, mode)
	return func() error { env.c.Net.Heal(); return nil }
}

// AllNemeses are every fault the suite injects.
func AllNemeses() []Nemesis {
	return []Nemesis{
		{"kill-random", func(ctx context.Context, env *faultEnv) (func() error, error) {
			return kill(env, env.randomMember()), nil
		}},
		{"kill-leader", func(ctx context.Context, env *faultEnv) (func() error, error) {
			l, err := env.leader()
			if err != nil {
				return nil, err
			}
			return kill(env, l), nil
		}},
		{"lose-unsynced", func(ctx context.Context, env *faultEnv) (func() error, error) {
			// The leader half the time: it writes its log in parallel with
			// sending it, so its unsynced tail may hold entries that the
			// followers already acknowledged.
			i := env.randomMember()
			if env.rnd.IntN(2) == 0 {
				l, err := env.leader()
				if err != nil {
					return nil, err
				}
				i = l
			}
			return powerFail(env, i)
		}},
		{"pause-random", func(ctx context.Context, env *faultEnv) (func() error, error) {
			return pause(env, env.randomMember()), nil
		}},
		{"pause-leader", func(ctx context.Context, env *faultEnv) (func() error, error) {
			l, err := env.leader()
			if err != nil {
				return nil, err
			}
			return pause(env, l), nil
		}},
		{"isolate-one", func(ctx context.Context, env *faultEnv) (func() error, error) {
			return isolate(env, env.randomMember()), nil
		}},
		{"isolate-leader", func(ctx context.Context, env *faultEnv) (func() error, error) {
			l, err := env.leader()
			if err != nil {
				return nil, err
			}
			return isolate(env, l), nil
		}},
		{"split", func(ctx context.Context, env *faultEnv) (func() error, error) {
			a := env.c.Active()
			env.rnd.Shuffle(len(a), func(i, j int) { a[i], a[j] = a[j], a[i] })
			minority := a[:(len(a)-1)/2]
			mode := env.cutMode()
			env.c.Net.Partition(mode, minority, a[len(minority):])
			env.logf("split %v | %v (%v)", names(minority), names(a[len(minority):]), mode)
			return func() error { env.c.Net.Heal(); return nil }, nil
		}},
		{"leader-churn", leaderChurn},
		{"member-replace", memberReplace},
	}
}

func names(idx []int) []string {
	out := make([]string, len(idx))
	for i, j := range idx {
		out[i] = fmt.Sprintf("m%d", j+1)
	}
	return out
}

// leaderChurn moves leadership three times, with MoveLeader when the server
// has it and by killing the leader when not.
func leaderChurn(ctx context.Context, env *faultEnv) (func() error, error) {
	for range 3 {
		l, err := env.leader()
		if err != nil {
			return nil, err
		}
		targets := env.others(l)
		to := targets[env.rnd.IntN(len(targets))]
		cli, err := newClient(env.c.ClientURL(l))
		if err != nil {
			return nil, err
		}
		mctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err = cli.MoveLeader(mctx, env.c.MemberID(to))
		cancel()
		cli.Close()
		if status.Code(err) == codes.Unimplemented {
			env.logf("MoveLeader unimplemented; SIGKILL leader m%d instead", l+1)
			if err := kill(env, l)(); err != nil {
				return nil, err
			}
			continue
		}
		env.logf("MoveLeader m%d -> m%d: %v", l+1, to+1, err)
		if !sleepCtx(ctx, 300*time.Millisecond) {
			break
		}
	}
	return func() error { return nil }, nil
}

// memberReplace removes a random member (the leader too, sometimes) and
// adds a new one with a fresh data directory, under load.
func memberReplace(ctx context.Context, env *faultEnv) (func() error, error) {
	victim := env.randomMember()
	var eps []string
	for _, i := range env.others(victim) {
		eps = append(eps, env.c.ClientURL(i))
	}
	admin, err := newClient(eps...)
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	mctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := env.c.Remove(mctx, admin, victim); err != nil {
		return nil, err
	}
	env.logf("removed m%d", victim+1)
	var added int
	for attempt := 0; ; attempt++ {
		added, err = env.c.Add(mctx, admin)
		if err == nil || attempt == 5 || mctx.Err() != nil {
			break
		}
		// A member add is refused while the cluster is not yet healthy
		// after the removal; that is expected, not a failure.
		env.logf("add after removing m%d: %v (retrying)", victim+1, err)
		if !sleepCtx(mctx, 500*time.Millisecond) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	env.logf("added m%d", added+1)
	for _, cli := range env.clients() {
		cli.SetEndpoints(env.c.Endpoints()...)
	}
	return func() error { return nil }, nil
}

// errNoNemesis is returned for an unknown nemesis name.
var errNoNemesis = errors.New("robustness: unknown nemesis")

func nemesesByName(names ...string) ([]Nemesis, error) {
	all := map[string]Nemesis{}
	for _, n := range AllNemeses() {
		all[n.Name] = n
	}
	var out []Nemesis
	for _, name := range names {
		n, ok := all[name]
		if !ok {
			return nil, fmt.Errorf("%w: %s", errNoNemesis, name)
		}
		out = append(out, n)
	}
	return out, nil
}
