package zktree

import (
	"fmt"
	"slices"
	"testing"

	"ensemble/internal/api/zk/jute"
)

func mop(op jute.OpCode, req jute.Request) jute.MultiOp { return jute.MultiOp{Type: op, Op: req} }

func TestMultiSuccess(t *testing.T) {
	e := newEnv(t)
	e.create("/m", []byte("x"), jute.ModePersistent)
	e.create("/m/old", nil, jute.ModePersistent)
	r := e.mustOK(jute.OpMulti, &jute.MultiRequest{Ops: []jute.MultiOp{
		mop(jute.OpCheck, &jute.CheckVersionRequest{Path: "/m", Version: 0}),
		mop(jute.OpCreate, &jute.CreateRequest{Path: "/m/a", ACL: openACLs}),
		// Later ops see earlier ones: /m/a exists now.
		mop(jute.OpCreate2, &jute.CreateRequest{Path: "/m/a/s-", ACL: openACLs, Flags: jute.ModePersistentSequential}),
		mop(jute.OpCreate, &jute.CreateRequest{Path: "/m/a/s-", ACL: openACLs, Flags: jute.ModePersistentSequential}),
		mop(jute.OpSetData, &jute.SetDataRequest{Path: "/m", Data: []byte("y"), Version: 0}),
		mop(jute.OpSetData, &jute.SetDataRequest{Path: "/m", Data: []byte("zz"), Version: 1}),
		mop(jute.OpDelete, &jute.DeleteRequest{Path: "/m/old", Version: 0}),
		mop(jute.OpCreateTTL, &jute.CreateTTLRequest{Path: "/m/t", ACL: openACLs, Flags: jute.ModePersistentWithTTL, TTL: 100}),
		mop(jute.OpCreateContainer, &jute.CreateRequest{Path: "/m/c", ACL: openACLs, Flags: jute.ModeContainer}),
	}})
	rev := e.kv.Rev()
	res := r.Resp.(*jute.MultiResponse).Results
	types := make([]jute.OpCode, len(res))
	for i := range res {
		types[i] = res[i].Type
	}
	wantTypes := []jute.OpCode{jute.OpCheck, jute.OpCreate, jute.OpCreate2, jute.OpCreate, jute.OpSetData, jute.OpSetData, jute.OpDelete, jute.OpCreate2, jute.OpCreate2}
	if !slices.Equal(types, wantTypes) {
		t.Fatalf("result types %v", types)
	}
	if res[1].Path != "/m/a" || res[2].Path != "/m/a/s-0000000000" || res[3].Path != "/m/a/s-0000000001" {
		t.Fatalf("paths %q %q %q", res[1].Path, res[2].Path, res[3].Path)
	}
	if res[2].Stat.Czxid != rev || res[7].Stat.Czxid != rev || res[7].Stat.EphemeralOwner != 0 {
		t.Fatalf("create2 stats %+v %+v", res[2].Stat, res[7].Stat)
	}
	// Each op's result shows the node as that op left it.
	if res[4].Stat.Version != 1 || res[4].Stat.DataLength != 1 || res[5].Stat.Version != 2 || res[5].Stat.DataLength != 2 {
		t.Fatalf("setData stats %+v %+v", res[4].Stat, res[5].Stat)
	}
	st := e.stat("/m")
	// children: old deleted; a, t, c created: 4 creates, 1 delete.
	if st.Version != 2 || st.NumChildren != 3 || st.Cversion != 5 || st.Pzxid != rev || st.Mzxid != rev {
		t.Fatalf("/m after multi: %+v", st)
	}
	if e.stat("/m/a").Cversion != 2 {
		t.Fatalf("/m/a: %+v", e.stat("/m/a"))
	}
	// Everything in one revision, each key once (env.apply checks that).
	if len(e.changes) == 0 || e.changes[0].ModRevision != rev {
		t.Fatal("no changes")
	}
	e.check()

	// An empty multi succeeds and writes nothing.
	r = e.mustOK(jute.OpMulti, &jute.MultiRequest{})
	if len(r.Resp.(*jute.MultiResponse).Results) != 0 || e.kv.Rev() != rev {
		t.Fatal("empty multi")
	}
}

func TestMultiFailureWritesNothing(t *testing.T) {
	e := newEnv(t)
	e.create("/m", nil, jute.ModePersistent)
	before := e.kv.Rev()
	r := e.expect(jute.CodeOK, jute.OpMulti, &jute.MultiRequest{Ops: []jute.MultiOp{
		mop(jute.OpCreate, &jute.CreateRequest{Path: "/m/s-", ACL: openACLs, Flags: jute.ModePersistentSequential}),
		mop(jute.OpSetData, &jute.SetDataRequest{Path: "/m", Version: -1}),
		mop(jute.OpCheck, &jute.CheckVersionRequest{Path: "/m", Version: 0}), // version is 1 by now
		mop(jute.OpDelete, &jute.DeleteRequest{Path: "/m", Version: -1}),
		mop(jute.OpCreate, &jute.CreateRequest{Path: "/x", ACL: openACLs}),
	}})
	if e.kv.Rev() != before {
		t.Fatal("failed multi wrote")
	}
	want := []jute.MultiResult{
		{Type: jute.OpError, Err: jute.CodeOK},
		{Type: jute.OpError, Err: jute.CodeOK},
		{Type: jute.OpError, Err: jute.CodeBadVersion},
		{Type: jute.OpError, Err: jute.CodeRuntimeInconsistency},
		{Type: jute.OpError, Err: jute.CodeRuntimeInconsistency},
	}
	if got := r.Resp.(*jute.MultiResponse).Results; !slices.EqualFunc(got, want, func(a, b jute.MultiResult) bool {
		return a.Type == b.Type && a.Err == b.Err
	}) {
		t.Fatalf("results %+v", got)
	}
	// The sequence number the failed multi took is free again.
	if p := e.create("/m/s-", nil, jute.ModePersistentSequential); p != "/m/s-0000000000" {
		t.Fatalf("after failed multi: %s", p)
	}
	if st := e.stat("/m"); st.Version != 0 {
		t.Fatalf("setData of the failed multi survived: %+v", st)
	}
	// A multi with an op that cannot be in one is not even decoded.
	e.expect(jute.CodeMarshallingError, jute.OpMulti, &jute.MultiRequest{Ops: []jute.MultiOp{
		mop(jute.OpGetData, &jute.GetDataRequest{Path: "/m"}),
	}})
	e.check()
}

func TestMultiDeleteAndCreateSameNode(t *testing.T) {
	e := newEnv(t)
	e.create("/n", []byte("old"), jute.ModePersistent)
	e.setData("/n", []byte("older"))
	e.mustOK(jute.OpMulti, &jute.MultiRequest{Ops: []jute.MultiOp{
		mop(jute.OpDelete, &jute.DeleteRequest{Path: "/n", Version: -1}),
		mop(jute.OpCreate, &jute.CreateRequest{Path: "/n", Data: []byte("new"), ACL: openACLs}),
		// Created and deleted within the multi: never written.
		mop(jute.OpCreate, &jute.CreateRequest{Path: "/tmp", ACL: openACLs}),
		mop(jute.OpDelete, &jute.DeleteRequest{Path: "/tmp", Version: -1}),
	}})
	rev := e.kv.Rev()
	st := e.stat("/n")
	if st.Czxid != rev || st.Version != 0 || string(e.get("/n").Data) != "new" {
		t.Fatalf("recreated node: %+v", st)
	}
	if e.exists("/tmp") {
		t.Fatal("/tmp exists")
	}
	for _, c := range e.changes {
		if string(c.Key) == nodePrefix+"001/tmp" {
			t.Fatal("/tmp was written")
		}
	}
	evs := Events(nil, e.changes)
	want := []Event{{jute.EventNodeCreated, "/n"}, {jute.EventNodeChildrenChanged, "/"}}
	if !slices.Equal(evs, want) {
		t.Fatalf("events %+v", evs)
	}
	e.check()
}

func TestSessions(t *testing.T) {
	e := newEnv(t)
	e.openSession(0x1234, 2500)
	rec, ok, err := Session(e.kv, 0x1234)
	if err != nil || !ok || rec.Timeout != 2500 || len(rec.Passwd) != 16 {
		t.Fatalf("session record %+v %v %v", rec, ok, err)
	}
	if info, err := e.le.Lookup(0x1234, false); err != nil || info.TTL != 3 {
		t.Fatalf("lease %+v %v", info, err)
	}
	// Id 0 is no session; a timeout under a second gets the lessor's least
	// TTL.
	if r := e.apply(&Command{Op: jute.OpCreateSession, Req: &SessionRequest{}}); r.Code != jute.CodeBadArguments {
		t.Fatalf("session 0: %v", r.Code)
	}
	e.openSession(0x55, 0)
	if info, err := e.le.Lookup(0x55, false); err != nil || info.TTL != e.le.MinTTL() {
		t.Fatalf("lease of a zero timeout %+v %v", info, err)
	}
	// An id that is taken is refused, and nothing changes.
	r := e.apply(&Command{Session: 0x1234, Op: jute.OpCreateSession, Req: &SessionRequest{Timeout: 1}})
	if r.Code != jute.CodeRuntimeInconsistency {
		t.Fatalf("duplicate session: %v", r.Code)
	}
	if rec, _, _ := Session(e.kv, 0x1234); rec.Timeout != 2500 {
		t.Fatal("duplicate overwrote the record")
	}
	if _, ok, _ := Session(e.kv, 0x99); ok {
		t.Fatal("unknown session found")
	}

	e.create("/p", nil, jute.ModePersistent)
	e.create("/p/q", nil, jute.ModePersistent)
	e.session = 0x1234
	e.create("/e1", nil, jute.ModeEphemeral)
	e.create("/p/e2", nil, jute.ModeEphemeral)
	e.create("/p/q/e3", nil, jute.ModeEphemeral)
	e.create("/p/q/e3x", nil, jute.ModePersistent)
	e.session = 0
	if got := Ephemerals(e.le, 0x1234, ""); !slices.Equal(got, []string{"/e1", "/p/e2", "/p/q/e3"}) {
		t.Fatalf("ephemerals %q", got)
	}
	if got := Ephemerals(e.le, 0x1234, "/p/"); !slices.Equal(got, []string{"/p/e2", "/p/q/e3"}) {
		t.Fatalf("ephemerals under /p/: %q", got)
	}
	pq := e.stat("/p/q")

	r = e.closeSession(0x1234)
	if r.Code != jute.CodeOK {
		t.Fatalf("close: %v", r.Code)
	}
	rev := e.kv.Rev()
	for _, p := range []string{"/e1", "/p/e2", "/p/q/e3"} {
		if e.exists(p) {
			t.Errorf("%s survived its session", p)
		}
	}
	if !e.exists("/p/q/e3x") {
		t.Fatal("persistent node went with the session")
	}
	if st := e.stat("/p/q"); st.NumChildren != 1 || st.Pzxid != rev || st.Cversion != pq.Cversion+1 {
		t.Fatalf("/p/q after close: %+v", st)
	}
	if _, ok, _ := Session(e.kv, 0x1234); ok {
		t.Fatal("session record survived")
	}
	if e.le.LeaseExists(0x1234) {
		t.Fatal("lease survived")
	}
	for _, c := range e.changes {
		if c.ModRevision != rev {
			t.Fatal("close spans revisions")
		}
	}
	// Closing twice is harmless, and an ephemeral of a closed session fails.
	if r := e.closeSession(0x1234); r.Code != jute.CodeOK {
		t.Fatalf("second close: %v", r.Code)
	}
	e.session = 0x1234
	e.expect(jute.CodeSessionExpired, jute.OpCreate, &jute.CreateRequest{Path: "/e4", ACL: openACLs, Flags: jute.ModeEphemeral})
	e.check()
}

// TestRemoveSessionThenRevoke is the lease-expiry path of the apply loop:
// RemoveSession and the lessor's Revoke in one transaction.
func TestRemoveSessionThenRevoke(t *testing.T) {
	e := newEnv(t)
	e.openSession(5, 1000)
	e.openSession(6, 1000)
	e.create("/d", nil, jute.ModePersistent)
	e.session = 5
	e.create("/d/a", nil, jute.ModeEphemeral)
	e.create("/d/b", nil, jute.ModeEphemeral)
	e.session = 6
	e.create("/d/c", nil, jute.ModeEphemeral)

	e.index++
	w := e.kv.Write(e.index, 1)
	e.tree.RemoveSession(w, 5)
	if err := e.le.Revoke(w, 5); err != nil {
		t.Fatal(err)
	}
	w.End()
	e.le.ApplyChanges(w.Changes())
	seen := map[string]bool{}
	for _, c := range w.Changes() {
		if seen[string(c.Key)] {
			t.Fatalf("%q changed twice", c.Key)
		}
		seen[string(c.Key)] = true
	}
	if got := e.children("/d"); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("children %q", got)
	}
	if st := e.stat("/d"); st.NumChildren != 1 || st.Pzxid != e.kv.Rev() {
		t.Fatalf("/d: %+v", st)
	}
	// RemoveSession of an unknown or node-less lease changes nothing.
	rev := e.kv.Rev()
	e.index++
	w = e.kv.Write(e.index, 1)
	e.tree.RemoveSession(w, 77)
	w.End()
	if e.kv.Rev() != rev {
		t.Fatal("RemoveSession of an unknown session wrote")
	}
	e.check()
}

func TestContainerCascade(t *testing.T) {
	e := newEnv(t)
	e.createContainer("/c")
	e.createContainer("/c/d")
	e.create("/c/d/x", nil, jute.ModePersistent)
	e.createContainer("/c/unused")
	e.createContainer("/lone")
	// Deleting the last child of /c/d removes /c/d; /c still has /c/unused.
	e.delete("/c/d/x")
	if e.exists("/c/d") || !e.exists("/c") {
		t.Fatal("cascade went wrong")
	}
	// A container that never had a child is left alone.
	if !e.exists("/c/unused") || !e.exists("/lone") {
		t.Fatal("unused container removed")
	}
	// Now emptying /c removes it, in the same revision.
	e.delete("/c/unused")
	if e.exists("/c") {
		t.Fatal("empty used container survived")
	}
	// A multi that empties a container and refills it keeps it.
	e.createContainer("/k")
	e.create("/k/1", nil, jute.ModePersistent)
	e.mustOK(jute.OpMulti, &jute.MultiRequest{Ops: []jute.MultiOp{
		mop(jute.OpDelete, &jute.DeleteRequest{Path: "/k/1", Version: -1}),
		mop(jute.OpCreate, &jute.CreateRequest{Path: "/k/2", ACL: openACLs}),
	}})
	if !e.exists("/k/2") {
		t.Fatal("refilled container lost")
	}
	// Several containers emptied by one multi all go, deepest first.
	e.createContainer("/r")
	e.createContainer("/r/a")
	e.createContainer("/r/b")
	e.create("/r/a/1", nil, jute.ModePersistent)
	e.create("/r/b/1", nil, jute.ModePersistent)
	e.mustOK(jute.OpMulti, &jute.MultiRequest{Ops: []jute.MultiOp{
		mop(jute.OpDelete, &jute.DeleteRequest{Path: "/r/b/1", Version: -1}),
		mop(jute.OpDelete, &jute.DeleteRequest{Path: "/r/a/1", Version: -1}),
	}})
	if e.exists("/r") {
		t.Fatal("/r survived")
	}
	// A session's ephemerals empty containers too.
	e.openSession(3, 1000)
	e.createContainer("/lock")
	e.session = 3
	e.create("/lock/owner", nil, jute.ModeEphemeral)
	e.session = 0
	e.closeSession(3)
	if e.exists("/lock") {
		t.Fatal("container emptied by a session close survived")
	}
	evs := Events(nil, e.changes)
	want := []Event{
		{jute.EventNodeDeleted, "/lock"},
		{jute.EventNodeDeleted, "/lock/owner"},
		{jute.EventNodeChildrenChanged, "/"},
	}
	if !slices.Equal(evs, want) {
		t.Fatalf("events %+v", evs)
	}
	e.check()
}

func TestTTLNodes(t *testing.T) {
	e := newEnv(t)
	st := e.createTTL("/t1", 1000)
	e.createTTL("/t2", 1000)
	e.createTTL("/t3", 1000)
	e.createTTL("/t4", 5000)
	e.create("/t3/child", nil, jute.ModePersistent)
	created := st.Mtime

	got, err := ExpiredTTLs(e.kv, created+1000, 10)
	if err != nil || len(got) != 0 {
		t.Fatalf("expired at TTL: %+v %v", got, err)
	}
	// t2 is touched before its TTL runs out.
	e.setData("/t2", []byte("touch"))
	later := created + 1002
	got, err = ExpiredTTLs(e.kv, later, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []ExpireTTL{{Path: "/t1", Mzxid: st.Mzxid}}
	if len(got) != 1 || got[0] != want[0] {
		t.Fatalf("expired %+v, want %+v", got, want)
	}
	// An expiry for a node touched since the reaper looked is a no-op.
	stale := ExpireTTL{Path: "/t2", Mzxid: e.stat("/t2").Mzxid - 1}
	rev := e.kv.Rev()
	e.apply(&Command{Time: later + 5000, Op: OpExpireTTL, Req: &stale})
	if !e.exists("/t2") || e.kv.Rev() != rev {
		t.Fatal("touched TTL node expired")
	}
	// An expiry before the TTL ran out (by the command's time) is a no-op.
	e.apply(&Command{Time: created + 10, Op: OpExpireTTL, Req: &got[0]})
	if !e.exists("/t1") {
		t.Fatal("expired early")
	}
	if r := e.apply(&Command{Time: later, Op: OpExpireTTL, Req: &got[0]}); r.Code != jute.CodeOK {
		t.Fatalf("expire: %v", r.Code)
	}
	if e.exists("/t1") {
		t.Fatal("expired TTL node survived")
	}
	// The TTL index forgets deleted TTL nodes; a node with children is
	// never listed; limit caps the list.
	e.delete("/t2")
	got, _ = ExpiredTTLs(e.kv, later+10_000, 10)
	if len(got) != 1 || got[0].Path != "/t4" {
		t.Fatalf("later: %+v", got)
	}
	e.createTTL("/t5", 1)
	if got, _ = ExpiredTTLs(e.kv, later+10_000, 1); len(got) != 1 {
		t.Fatalf("limit: %+v", got)
	}
	// The TTL index is read in pages.
	var ops []jute.MultiOp
	for i := range ttlPage + 100 {
		ops = append(ops, mop(jute.OpCreateTTL, &jute.CreateTTLRequest{
			Path: fmt.Sprintf("/many%04d", i), ACL: openACLs, Flags: jute.ModePersistentWithTTL, TTL: 1,
		}))
	}
	e.mustOK(jute.OpMulti, &jute.MultiRequest{Ops: ops})
	if got, _ = ExpiredTTLs(e.kv, e.now+10, 2*ttlPage); len(got) != ttlPage+100+1 { // and /t5
		t.Fatalf("paged: %d", len(got))
	}
	// Expiry of a node that is gone, or not a TTL node, is a no-op.
	for _, x := range []ExpireTTL{{Path: "/t1"}, {Path: "/t3/child"}, {Path: "/"}, {Path: "bad"}} {
		if r := e.apply(&Command{Time: later + 1e6, Op: OpExpireTTL, Req: &x}); r.Code != jute.CodeOK {
			t.Fatalf("expire %s: %v", x.Path, r.Code)
		}
	}
	if !e.exists("/t3/child") {
		t.Fatal("non-TTL node expired")
	}
	e.check()
}
