package recipes_test

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"testing"

	"ensemble/recipes"
)

func members(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "member-" + strconv.Itoa(i)
	}
	return out
}

func ringKeys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "key-" + strconv.Itoa(i)
	}
	return out
}

// TestRingBoundedLoadsAndMovement: over 100,000 keys no member owns more
// than (1+ε) × the average, and when one of n members leaves only its own
// keys move, about 1/n of them.
func TestRingBoundedLoadsAndMovement(t *testing.T) {
	keys := ringKeys(100_000)
	for _, n := range []int{3, 5, 10, 20} {
		t.Run(fmt.Sprintf("n=%d", n), func(t *testing.T) {
			const eps = 0.25
			ring := recipes.NewRing(recipes.RingConfig{LoadFactor: eps})
			ms := members(n)
			ring.Set(ms)
			limit := ring.MaxLoad(n)
			for m, l := range ring.PartitionLoads() {
				if l > limit {
					t.Fatalf("%s owns %d partitions, bound %d", m, l, limit)
				}
			}
			before := make([]string, len(keys))
			load := map[string]int{}
			for i, k := range keys {
				before[i], _ = ring.LocateString(k)
				load[before[i]]++
			}
			avg := float64(len(keys)) / float64(n)
			for m, l := range load {
				if float64(l) > (1+eps)*avg {
					t.Fatalf("%s owns %d keys, above (1+ε)×%.0f", m, l, avg)
				}
			}
			worst := 0.0
			for leave := range n {
				ring.Set(slices.Delete(slices.Clone(ms), leave, leave+1))
				moved, others := 0, 0
				for i, k := range keys {
					now, _ := ring.LocateString(k)
					if now == ms[leave] {
						t.Fatalf("key %s still on departed %s", k, ms[leave])
					}
					if now != before[i] {
						moved++
						if before[i] != ms[leave] {
							others++
						}
					}
				}
				frac := float64(moved) / float64(len(keys))
				worst = math.Max(worst, frac*float64(n))
				// At most the leaver's share (itself at most (1+ε)/n)
				// plus a little reshuffling forced by the new bound.
				if frac > (1+eps)/float64(n) {
					t.Fatalf("member %d of %d left: %.2f%% of keys moved, more than (1+ε)/n", leave, n, 100*frac)
				}
				if float64(others)/float64(len(keys)) > 0.1/float64(n) {
					t.Fatalf("member %d of %d left: %d keys of staying members moved", leave, n, others)
				}
			}
			ring.Set(ms)
			t.Logf("n=%d: worst movement %.3f/n", n, worst)
		})
	}
}

func TestRingDeterministicAndEmpty(t *testing.T) {
	r := recipes.NewRing(recipes.RingConfig{})
	if _, ok := r.LocateString("x"); ok {
		t.Fatal("empty ring located a key")
	}
	a, b := recipes.NewRing(recipes.RingConfig{}), recipes.NewRing(recipes.RingConfig{})
	a.Set([]string{"x", "y", "z"})
	b.Set([]string{"z", "x", "y", "y", ""})
	for _, k := range ringKeys(1000) {
		ma, _ := a.LocateString(k)
		mb, _ := b.Locate([]byte(k))
		if ma != mb {
			t.Fatalf("key %s: %s vs %s", k, ma, mb)
		}
	}
}

func TestRingConcurrentLookupsDuringChanges(t *testing.T) {
	r := recipes.NewRing(recipes.RingConfig{Partitions: 1024, VirtualNodes: 32})
	r.Set(members(4))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			keys := ringKeys(100)
			for {
				select {
				case <-stop:
					return
				default:
				}
				for _, k := range keys {
					if m, ok := r.LocateString(k); !ok || m == "" {
						t.Error("lookup found no member")
						return
					}
				}
			}
		}()
	}
	for i := range 50 {
		r.Set(members(3 + i%4))
	}
	close(stop)
	wg.Wait()
}

func TestRingLookupDoesNotAllocate(t *testing.T) {
	r := recipes.NewRing(recipes.RingConfig{})
	r.Set(members(10))
	key := []byte("some-key")
	if n := testing.AllocsPerRun(1000, func() {
		r.Locate(key)
		r.LocateString("another-key")
	}); n != 0 {
		t.Fatalf("lookup allocates %.1f times", n)
	}
}

func BenchmarkRingLookup(b *testing.B) {
	r := recipes.NewRing(recipes.RingConfig{})
	r.Set(members(50))
	keys := make([][]byte, 1024)
	for i := range keys {
		keys[i] = []byte("user-" + strconv.Itoa(i))
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		r.Locate(keys[i&1023])
		i++
	}
}
