package zktree

import (
	"strconv"
	"testing"

	"ensemble/internal/api/zk/jute"
)

// BenchmarkCreate measures applying one create (a node under a parent with
// many siblings) into a real store, as the apply loop does: read the
// parent, check the target, write both.
func BenchmarkCreate(b *testing.B) {
	e := newEnv(b)
	e.create("/bench", nil, jute.ModePersistent)
	data := []byte("some value of a typical size...")
	reqs := make([]Command, b.N)
	for i := range reqs {
		reqs[i] = Command{Time: int64(i), Op: jute.OpCreate, Req: &jute.CreateRequest{
			Path: "/bench/n" + strconv.Itoa(i), Data: data, ACL: openACLs,
		}}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		e.index++
		w := e.kv.Write(e.index, 1)
		res := e.tree.Apply(w, &reqs[i])
		w.End()
		if res.Code != jute.CodeOK {
			b.Fatal(res.Code)
		}
	}
}

// BenchmarkCreateSequential is the lock and queue recipe's create: a
// sequential ephemeral under a shared parent.
func BenchmarkCreateSequential(b *testing.B) {
	e := newEnv(b)
	e.openSession(1, 10000)
	e.create("/lock", nil, jute.ModePersistent)
	c := Command{Session: 1, Op: jute.OpCreate, Req: &jute.CreateRequest{
		Path: "/lock/n-", ACL: openACLs, Flags: jute.ModeEphemeralSequential,
	}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		e.index++
		c.Time = int64(i)
		w := e.kv.Write(e.index, 1)
		res := e.tree.Apply(w, &c)
		w.End()
		e.le.ApplyChanges(w.Changes())
		if res.Code != jute.CodeOK {
			b.Fatal(res.Code)
		}
	}
}
