package recipes_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"ensemble/recipes"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// nextEvent returns the next event or fails after d.
func nextEvent(t *testing.T, ch <-chan recipes.Event, d time.Duration) recipes.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("event channel closed")
		}
		return ev
	case <-time.After(d):
		t.Fatalf("no event within %v", d)
	}
	return recipes.Event{}
}

func testRegistryDiscover(t *testing.T, b *backend) {
	ctx := ctxFor(t, 30*time.Second)
	reg := recipes.NewRegistry(b.client(t), prefix(t), nil)
	r1, err := reg.Register(ctx, "api", recipes.Instance{ID: "i1", Addr: "10.0.0.1:80", Metadata: map[string]string{"zone": "a"}}, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	set, err := recipes.NewRegistry(b.client(t), prefix(t), nil).Discover(ctx, "api")
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	if got := set.Instances(); len(got) != 1 || got[0].Addr != "10.0.0.1:80" || got[0].Metadata["zone"] != "a" {
		t.Fatalf("instances %+v", got)
	}
	events := set.Subscribe(ctx)
	r2, err := reg.Register(ctx, "api", recipes.Instance{ID: "i2", Addr: "10.0.0.2:80"}, 5)
	if err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, events, 5*time.Second); ev.Type != recipes.Added || ev.Instance.ID != "i2" {
		t.Fatalf("event %+v", ev)
	}
	// Another service under the same registry does not show up.
	other, err := reg.Register(ctx, "db", recipes.Instance{ID: "d1", Addr: "10.0.0.9:5432"}, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := r2.Close(); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, events, 5*time.Second); ev.Type != recipes.Removed || ev.Instance.ID != "i2" {
		t.Fatalf("event %+v", ev)
	}
	if ids := set.IDs(); !slices.Equal(ids, []string{"i1"}) {
		t.Fatalf("ids %v", ids)
	}
	if inst, ok := set.Lookup("i1"); !ok || inst.Addr != "10.0.0.1:80" {
		t.Fatalf("Lookup(i1) = %+v %v", inst, ok)
	}
}

// testRegistryKilled is the failure case: an instance's process dies (its
// client goes away without revoking the lease) and it disappears from
// discovery within its TTL + 1 s.
func testRegistryKilled(t *testing.T, b *backend) {
	ctx := ctxFor(t, 30*time.Second)
	const ttl = 2
	set, err := recipes.NewRegistry(b.client(t), prefix(t), nil).Discover(ctx, "api")
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	events := set.Subscribe(ctx)
	doomed, err := clientv3.New(clientv3.Config{Endpoints: b.endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := recipes.NewRegistry(doomed, prefix(t), nil).Register(ctx, "api", recipes.Instance{ID: "doomed", Addr: "x:1"}, ttl); err != nil {
		t.Fatal(err)
	}
	if ev := nextEvent(t, events, 5*time.Second); ev.Type != recipes.Added {
		t.Fatalf("event %+v", ev)
	}
	doomed.Close() // the process dies: no revoke, no more keep-alives
	killed := time.Now()
	ev := nextEvent(t, events, ttl*time.Second+5*time.Second)
	gone := time.Since(killed)
	if ev.Type != recipes.Removed || ev.Instance.ID != "doomed" {
		t.Fatalf("event %+v", ev)
	}
	t.Logf("killed instance gone after %v", gone)
	if gone > ttl*time.Second+time.Second {
		t.Fatalf("killed instance disappeared after %v, later than TTL + 1 s", gone)
	}
}

func testRingFollowsRegistry(t *testing.T, b *backend) {
	ctx := ctxFor(t, 30*time.Second)
	reg := recipes.NewRegistry(b.client(t), prefix(t), nil)
	regs := map[string]*recipes.Registration{}
	for i := range 5 {
		id := "node-" + strconv.Itoa(i)
		r, err := reg.Register(ctx, "shard", recipes.Instance{ID: id, Addr: id + ":1"}, 5)
		if err != nil {
			t.Fatal(err)
		}
		regs[id] = r
		defer r.Close()
	}
	set, err := reg.Discover(ctx, "shard")
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	ring := recipes.NewRing(recipes.RingConfig{})
	fctx, stop := context.WithCancel(ctx)
	followed := make(chan error, 1)
	go func() { followed <- ring.Follow(fctx, set) }()
	waitRing := func(want int) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			changed := ring.Changed()
			if len(ring.Members()) == want {
				return
			}
			select {
			case <-changed:
			case <-timeout:
				t.Fatalf("ring has %v, want %d members", ring.Members(), want)
			}
		}
	}
	waitRing(5)
	keys := make([]string, 10000)
	before := make([]string, len(keys))
	for i := range keys {
		keys[i] = fmt.Sprintf("user-%d", i)
		before[i], _ = ring.LocateString(keys[i])
	}
	regs["node-2"].Close()
	waitRing(4)
	moved := 0
	for i, k := range keys {
		now, _ := ring.LocateString(k)
		if now == "node-2" {
			t.Fatalf("key %s still routed to the departed member", k)
		}
		if now != before[i] {
			moved++
		}
	}
	if frac := float64(moved) / float64(len(keys)); frac > 1.3/5 {
		t.Fatalf("%.1f%% of keys moved when one of 5 members left", 100*frac)
	}
	stop()
	if err := <-followed; err != context.Canceled {
		t.Fatalf("Follow returned %v", err)
	}
}
