package robustness

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"ensemble/tests/framework"
)

var (
	flagDuration = flag.Duration("duration", 0, "long mode: run every scenario in turn, with fresh seeds, for this long (e.g. 30m)")
	flagSeed     = flag.Uint64("seed", 0, "seed of the first run (default: fixed in the short mode, the time in the long mode)")
	flagScenario = flag.String("scenario", "", "run only this scenario")
	flagFaultFor = flag.Duration("scenario-duration", 0, "traffic under faults per scenario run (default 8s short, 60s long)")
)

// binary is the ensemble binary built once for this test process.
var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	// The failpoints build records how much of each WAL is synced, for the
	// lose-unsynced nemesis; it behaves as the normal build otherwise.
	os.Exit(framework.RunWithEnsembleTags(m, &binary, "failpoints"))
}

// shortScenarios run on every `go test ./...`: each fault family once.
func shortScenarios(d time.Duration) []Scenario {
	return []Scenario{
		{Name: "kill-3", Size: 3, Nemeses: []string{"kill-random", "kill-leader", "lose-unsynced"}, Duration: d},
		{Name: "partition-3", Size: 3, Nemeses: []string{"isolate-one", "isolate-leader", "pause-random"}, Duration: d},
		{Name: "split-5", Size: 5, Nemeses: []string{"split", "isolate-leader", "kill-leader", "pause-leader"}, Duration: d},
		{Name: "churn-3", Size: 3, Nemeses: []string{"leader-churn", "member-replace"}, Duration: d},
	}
}

// longScenarios run in turn in the long mode: every fault on 3 and 5
// members.
func longScenarios(d time.Duration) []Scenario {
	var all []string
	for _, n := range AllNemeses() {
		all = append(all, n.Name)
	}
	return append(shortScenarios(d),
		Scenario{Name: "all-3", Size: 3, Nemeses: all, Duration: d},
		Scenario{Name: "all-5", Size: 5, Nemeses: all, Duration: d},
	)
}

func TestRobustness(t *testing.T) {
	long := *flagDuration > 0
	per := *flagFaultFor
	if per == 0 {
		per = 8 * time.Second
		if long {
			per = time.Minute
		}
	}
	scenarios := shortScenarios(per)
	if long {
		scenarios = longScenarios(per)
	}
	if *flagScenario != "" {
		// Any scenario can be replayed alone, the long mode's too.
		var only []Scenario
		for _, sc := range longScenarios(per) {
			if sc.Name == *flagScenario {
				only = append(only, sc)
			}
		}
		if len(only) == 0 {
			t.Fatalf("no scenario %q", *flagScenario)
		}
		scenarios = only
	}
	seed := *flagSeed
	if seed == 0 {
		seed = 1
		if long {
			seed = uint64(time.Now().UnixNano())
		}
	}
	var totalOps, totalFaults, runs int
	run := func(sc Scenario, seed uint64) bool {
		runs++
		ok := t.Run(fmt.Sprintf("%s/seed=%d", sc.Name, seed), func(t *testing.T) {
			res, err := Run(context.Background(), sc, RunConfig{Bin: binary, WorkDir: t.TempDir(), Seed: seed, Logf: t.Logf})
			totalOps += res.Ops
			totalFaults += len(res.Faults)
			t.Log(res.Summary())
			for _, n := range res.Notes {
				t.Logf("inconclusive: %s", n)
			}
			if res.Watch != "" {
				t.Logf("watch not checked: %s", res.Watch)
			}
			if err != nil {
				t.Errorf("seed=%d scenario=%s: %v\nfaults:\n  %s\nreport: %s\nreplay: %s", seed, sc.Name, err, strings.Join(res.Faults, "\n  "), res.Dir, replayCommand(seed, sc))
			}
			for _, v := range res.Violations {
				t.Errorf("seed=%d scenario=%s: %s", seed, sc.Name, v.String())
			}
			if len(res.Violations) > 0 {
				t.Logf("faults:\n  %s\nreport (history, store, logs, porcupine visualisation): %s\nreplay: %s",
					strings.Join(res.Faults, "\n  "), res.Dir, replayCommand(seed, sc))
			}
		})
		return ok
	}
	if !long {
		for i, sc := range scenarios {
			run(sc, seed+uint64(i))
		}
		return
	}
	deadline := time.Now().Add(*flagDuration)
	for i := 0; time.Now().Before(deadline); i++ {
		run(scenarios[i%len(scenarios)], seed+uint64(i))
	}
	t.Logf("long mode: %d runs, %d operations checked, %d faults injected", runs, totalOps, totalFaults)
}
