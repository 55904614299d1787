package recipes

import (
	"context"
	"math"
	"math/bits"
	"slices"
	"sort"
	"strconv"
	"sync/atomic"
)

// RingConfig tunes a Ring. The zero value is usable.
type RingConfig struct {
	// VirtualNodes is the number of points each member owns on the hash
	// circle; more points spread the first choices of partitions more
	// evenly. Default 256.
	VirtualNodes int
	// Partitions is how many slices the key space is cut into; it is
	// rounded up to a power of two. Loads are bounded in partitions, so it
	// should be well above the number of members. Default 4096.
	Partitions int
	// LoadFactor is ε: no member owns more than ceil((1+ε) × average)
	// partitions. Smaller values balance tighter but move more keys when
	// membership changes. Default 0.25.
	LoadFactor float64
}

func (c RingConfig) withDefaults() RingConfig {
	if c.VirtualNodes <= 0 {
		c.VirtualNodes = 256
	}
	if c.Partitions <= 0 {
		c.Partitions = 4096
	}
	c.Partitions = 1 << bits.Len(uint(c.Partitions-1))
	if c.LoadFactor <= 0 {
		c.LoadFactor = 0.25
	}
	return c
}

// Ring maps keys to members by consistent hashing with bounded loads
// (Mirrokni, Thorup and Zadimoghaddam, "Consistent Hashing with Bounded
// Loads"): the key space is cut into a fixed number of partitions, each
// partition goes to the first member clockwise from it on a circle of
// virtual nodes that still has room, and room is ceil((1+ε) × average)
// partitions.
//
// Guarantees: every member owns at most ceil((1+ε)·P/n) of the P
// partitions, so its share of keys is at most about (1+ε)/n (keys hash
// uniformly into partitions); when one of n members leaves or joins, only
// about 1/n of the keys change owner; every process that sees the same
// member set and configuration maps every key to the same member. Locate
// does not allocate and may be called from any number of goroutines while
// Set or Follow replaces the member set: each lookup sees one complete ring,
// old or new, never a mixture.
//
// Failure behaviour: the ring is only as fresh as its member set. Fed by
// Follow from a Registry, a member that dies stays in the ring until its
// registration's lease expires (its TTL) and the watch delivers the
// deletion; a process cut off from the cluster keeps routing with the last
// set it saw, so two processes on opposite sides of a partition can disagree
// about owners for that long. Callers that need exclusive ownership must
// combine the ring with a lock or lease per shard.
type Ring struct {
	cfg RingConfig
	cur atomic.Pointer[ringState]
}

// ringState is one immutable ring; a new member set builds a new one.
type ringState struct {
	changed chan struct{} // closed when this ring is replaced
	members []string      // sorted
	owner   []uint32      // partition → index into members
	shift   uint          // 64 - log2(partitions)
}

// NewRing returns an empty ring.
func NewRing(cfg RingConfig) *Ring {
	r := &Ring{cfg: cfg.withDefaults()}
	r.cur.Store(&ringState{changed: make(chan struct{}), shift: uint(64 - bits.Len(uint(r.cfg.Partitions-1)))})
	return r
}

// Set replaces the member set. Duplicates and empty names are ignored.
func (r *Ring) Set(members []string) {
	close(r.cur.Swap(buildRing(r.cfg, members)).changed)
}

// Changed returns a channel that closes when the ring is next replaced.
// Take it before looking at the ring, so that no change is missed.
func (r *Ring) Changed() <-chan struct{} {
	return r.cur.Load().changed
}

// Members returns the current members, sorted.
func (r *Ring) Members() []string {
	return slices.Clone(r.cur.Load().members)
}

// Locate returns the member that owns key, and false when the ring is empty.
func (r *Ring) Locate(key []byte) (string, bool) {
	st := r.cur.Load()
	if len(st.members) == 0 {
		return "", false
	}
	h := uint64(fnvOffset)
	for _, c := range key {
		h = (h ^ uint64(c)) * fnvPrime
	}
	return st.members[st.owner[mix64(h)>>st.shift]], true
}

// LocateString is Locate for a string key, without converting it.
func (r *Ring) LocateString(key string) (string, bool) {
	st := r.cur.Load()
	if len(st.members) == 0 {
		return "", false
	}
	return st.members[st.owner[hashString(key)>>st.shift]], true
}

// PartitionLoads returns how many partitions each member owns.
func (r *Ring) PartitionLoads() map[string]int {
	st := r.cur.Load()
	out := make(map[string]int, len(st.members))
	for _, o := range st.owner {
		out[st.members[o]]++
	}
	return out
}

// MaxLoad is the most partitions any member may own with n members.
func (r *Ring) MaxLoad(n int) int {
	if n == 0 {
		return 0
	}
	return int(math.Ceil((1 + r.cfg.LoadFactor) * float64(r.cfg.Partitions) / float64(n)))
}

// Follow keeps the ring equal to the instance IDs of set until ctx ends or
// the set is closed; it returns ctx's error, or nil when the set closed.
func (r *Ring) Follow(ctx context.Context, set *ServiceSet) error {
	events := set.Subscribe(ctx)
	r.Set(set.IDs())
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case _, ok := <-events:
			if !ok {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return nil
			}
			// Drain what is queued so a burst of changes rebuilds once.
			for drained := false; !drained; {
				select {
				case _, ok := <-events:
					if !ok {
						drained = true
					}
				default:
					drained = true
				}
			}
			r.Set(set.IDs())
		}
	}
}

type vnode struct {
	pos    uint64
	member uint32
}

func buildRing(cfg RingConfig, in []string) *ringState {
	members := slices.Clone(in)
	members = slices.DeleteFunc(members, func(s string) bool { return s == "" })
	slices.Sort(members)
	members = slices.Compact(members)
	st := &ringState{changed: make(chan struct{}), members: members, shift: uint(64 - bits.Len(uint(cfg.Partitions-1)))}
	if len(members) == 0 {
		return st
	}
	vnodes := make([]vnode, 0, len(members)*cfg.VirtualNodes)
	buf := make([]byte, 0, 64)
	for i, m := range members {
		for v := range cfg.VirtualNodes {
			buf = append(buf[:0], m...)
			buf = append(buf, 0)
			buf = strconv.AppendInt(buf, int64(v), 10)
			vnodes = append(vnodes, vnode{pos: hashBytes(buf), member: uint32(i)})
		}
	}
	sort.Slice(vnodes, func(a, b int) bool {
		if vnodes[a].pos != vnodes[b].pos {
			return vnodes[a].pos < vnodes[b].pos
		}
		return vnodes[a].member < vnodes[b].member
	})
	limit := int(math.Ceil((1 + cfg.LoadFactor) * float64(cfg.Partitions) / float64(len(members))))
	load := make([]int, len(members))
	st.owner = make([]uint32, cfg.Partitions)
	// Partitions are placed in a fixed order (by index) so that the same
	// member set always yields the same owners, in every process.
	for p := range cfg.Partitions {
		start := uint64(p) << st.shift
		i := sort.Search(len(vnodes), func(i int) bool { return vnodes[i].pos >= start })
		for {
			if i == len(vnodes) {
				i = 0
			}
			m := vnodes[i].member
			if load[m] < limit {
				load[m]++
				st.owner[p] = m
				break
			}
			i++
		}
	}
	return st
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// FNV-1a spreads poorly over keys that differ only in their last bytes, so
// its result goes through a 64-bit finaliser (murmur3's) before use.
func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

func hashString(s string) uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * fnvPrime
	}
	return mix64(h)
}

func hashBytes(b []byte) uint64 {
	h := uint64(fnvOffset)
	for _, c := range b {
		h = (h ^ uint64(c)) * fnvPrime
	}
	return mix64(h)
}
