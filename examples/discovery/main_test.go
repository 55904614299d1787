package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"ensemble/tests/framework"
)

func TestRouterRebalancesWhenAnInstanceIsKilled(t *testing.T) {
	c := framework.StartInProcess(t, 3)
	eps := c.Spec.Endpoints()
	ctx := framework.Ctx(t)
	const ttl = 2
	instances := map[string]*Instance{}
	for i := range 4 {
		in, err := StartInstance(ctx, eps, fmt.Sprintf("instance-%d", i), ttl)
		if err != nil {
			t.Fatal(err)
		}
		instances[in.ID] = in
	}
	r, err := NewRouter(ctx, framework.NewClient(t, eps...))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if len(r.Members()) != 4 {
		t.Fatalf("router sees %v", r.Members())
	}

	keys := make([]string, 200)
	before := map[string]string{}
	for i := range keys {
		keys[i] = fmt.Sprintf("user-%d", i)
		ans, err := r.Route(ctx, keys[i])
		if err != nil {
			t.Fatal(err)
		}
		owner, _ := r.Owner(keys[i])
		if want := owner.ID + " served " + keys[i]; ans != want {
			t.Fatalf("answer %q, want %q", ans, want)
		}
		before[keys[i]] = owner.ID
	}

	victim := instances["instance-1"]
	victim.Kill()
	killed := time.Now()
	wctx, cancel := context.WithTimeout(ctx, ttl*time.Second+2*time.Second)
	defer cancel()
	if err := r.WaitGone(wctx, victim.ID); err != nil {
		t.Fatalf("router still routes to the killed instance: %v", err)
	}
	t.Logf("killed instance dropped after %v", time.Since(killed))
	moved := 0
	for _, k := range keys {
		ans, err := r.Route(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		owner := strings.SplitN(ans, " ", 2)[0]
		if owner == victim.ID {
			t.Fatalf("key %s still served by the killed instance", k)
		}
		if owner != before[k] {
			moved++
			if before[k] != victim.ID {
				t.Fatalf("key %s moved from %s, which is alive, to %s", k, before[k], owner)
			}
		}
	}
	t.Logf("%d of %d keys moved", moved, len(keys))
	for id, in := range instances {
		if id != victim.ID {
			in.Stop()
		}
	}
}

func TestRunProgram(t *testing.T) {
	c := framework.StartInProcess(t, 3)
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, c.Spec.Endpoints(), 3, []string{"a", "b", "c"}, &out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	if strings.Count(text, " served ") != 6 || !strings.Contains(text, "killed instance-0") {
		t.Fatalf("output:\n%s", text)
	}
	after := text[strings.Index(text, "killed"):]
	if strings.Contains(after, "instance-0 served") {
		t.Fatalf("killed instance still served after it was dropped:\n%s", text)
	}
}
