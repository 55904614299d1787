package compat

import (
	"testing"
	"time"

	"ensemble/internal/api/zk/jute"
	"ensemble/tests/framework"

	"github.com/go-zookeeper/zk"
)

// TestZKErrors provokes every error code a client can get, with
// go-zookeeper where it can send the request and the raw client where
// go-zookeeper refuses to (it checks paths itself) or lacks the op.
func TestZKErrors(t *testing.T) {
	zkClusters(t, func(t *testing.T, c *framework.InProcessCluster, addrs []string) {
		t.Run("NoNode", func(t *testing.T) { testZKNoNode(t, addrs) })
		t.Run("NodeExists", func(t *testing.T) { testZKNodeExists(t, addrs) })
		t.Run("BadVersion", func(t *testing.T) { testZKBadVersion(t, addrs) })
		t.Run("NotEmpty", func(t *testing.T) { testZKNotEmpty(t, addrs) })
		t.Run("NoChildrenForEphemerals", func(t *testing.T) { testZKNoChildrenForEphemerals(t, addrs) })
		t.Run("InvalidACL", func(t *testing.T) { testZKInvalidACL(t, addrs) })
		t.Run("BadArguments", func(t *testing.T) { testZKBadArguments(t, addrs) })
		t.Run("NoWatcher", func(t *testing.T) { testZKNoWatcher(t, addrs) })
		t.Run("Unimplemented", func(t *testing.T) { testZKUnimplemented(t, addrs) })
		t.Run("AuthFailed", func(t *testing.T) { testZKAuthFailed(t, addrs) })
		// NOAUTH is in TestZKACL, SESSIONEXPIRED in TestZKOps/Sessions.
	})
}

func testZKNoNode(t *testing.T, addrs []string) {
	cl := framework.ZKConnect(t, addrs[0])
	zkMustCreate(t, cl, "/nonode", nil, zk.FlagPersistent)
	_, _, err := cl.Get("/nonode/x")
	zkWantErr(t, "getData", err, zk.ErrNoNode)
	_, err = cl.Set("/nonode/x", nil, -1)
	zkWantErr(t, "setData", err, zk.ErrNoNode)
	zkWantErr(t, "delete", cl.Delete("/nonode/x", -1), zk.ErrNoNode)
	_, _, err = cl.Children("/nonode/x")
	zkWantErr(t, "getChildren2", err, zk.ErrNoNode)
	_, _, err = cl.GetACL("/nonode/x")
	zkWantErr(t, "getACL", err, zk.ErrNoNode)
	_, err = cl.SetACL("/nonode/x", zkWorld, -1)
	zkWantErr(t, "setACL", err, zk.ErrNoNode)
	_, err = cl.Create("/nonode/x/y", nil, zk.FlagPersistent, zkWorld)
	zkWantErr(t, "create under a missing parent", err, zk.ErrNoNode)
	_, err = cl.Create("/nonode/x/y-", nil, zk.FlagSequence, zkWorld)
	zkWantErr(t, "sequential create under a missing parent", err, zk.ErrNoNode)
	_, err = cl.CreateContainer("/nonode/x/c", nil, zk.FlagContainer, zkWorld)
	zkWantErr(t, "createContainer under a missing parent", err, zk.ErrNoNode)
	_, err = cl.CreateTTL("/nonode/x/t", nil, zk.FlagTTL, zkWorld, time.Minute)
	zkWantErr(t, "createTTL under a missing parent", err, zk.ErrNoNode)
	if ok, _, err := cl.Exists("/nonode/x"); ok || err != nil {
		t.Errorf("exists of a missing node: %v %v, want false and no error", ok, err)
	}
	_, err = cl.Multi(&zk.CheckVersionRequest{Path: "/nonode/x", Version: -1})
	zkWantErr(t, "check of a missing node", err, zk.ErrNoNode)
	r := framework.NewZKRawSession(t, addrs[len(addrs)-1], 30000)
	r.WantCode("getChildren", jute.OpGetChildren, &jute.GetChildrenRequest{Path: "/nonode/x"}, jute.CodeNoNode)
	r.WantCode("create2 under a missing parent", jute.OpCreate2, &jute.CreateRequest{Path: "/nonode/x/y", ACL: rawWorld}, jute.CodeNoNode)
	r.WantCode("addWatch with a missing parent is fine", jute.OpAddWatch, &jute.AddWatchRequest{Path: "/nonode/x/y"}, jute.CodeOK)
}

func testZKNodeExists(t *testing.T, addrs []string) {
	cl := framework.ZKConnect(t, addrs[0])
	other := framework.ZKConnect(t, addrs[len(addrs)-1])
	zkMustCreate(t, cl, "/exists", nil, zk.FlagPersistent)
	_, err := other.Create("/exists", nil, zk.FlagPersistent, zkWorld)
	zkWantErr(t, "create twice", err, zk.ErrNodeExists)
	_, err = other.Create("/exists", nil, zk.FlagEphemeral, zkWorld)
	zkWantErr(t, "ephemeral over a persistent node", err, zk.ErrNodeExists)
	_, err = other.CreateContainer("/exists", nil, zk.FlagContainer, zkWorld)
	zkWantErr(t, "container over a persistent node", err, zk.ErrNodeExists)
	_, err = other.CreateTTL("/exists", nil, zk.FlagTTL, zkWorld, time.Minute)
	zkWantErr(t, "TTL node over a persistent node", err, zk.ErrNodeExists)
	_, err = other.Create("/", nil, zk.FlagPersistent, zkWorld)
	zkWantErr(t, "create /", err, zk.ErrNodeExists)
	_, err = other.Multi(
		&zk.CreateRequest{Path: "/exists-new", Acl: zkWorld},
		&zk.CreateRequest{Path: "/exists-new", Acl: zkWorld},
	)
	zkWantErr(t, "the same node twice in a multi", err, zk.ErrNodeExists)
	if ok, _, _ := other.Exists("/exists-new"); ok {
		t.Errorf("/exists-new created by a failed multi")
	}
}

func testZKBadVersion(t *testing.T, addrs []string) {
	cl := framework.ZKConnect(t, addrs[0])
	zkMustCreate(t, cl, "/bv", []byte("0"), zk.FlagPersistent)
	if _, err := cl.Set("/bv", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	_, err := cl.Set("/bv", []byte("x"), 0)
	zkWantErr(t, "setData with an old version", err, zk.ErrBadVersion)
	_, err = cl.Set("/bv", []byte("x"), 5)
	zkWantErr(t, "setData with a future version", err, zk.ErrBadVersion)
	zkWantErr(t, "delete with an old version", cl.Delete("/bv", 0), zk.ErrBadVersion)
	_, err = cl.SetACL("/bv", zkWorld, 3)
	zkWantErr(t, "setACL with a wrong aversion", err, zk.ErrBadVersion)
	_, err = cl.Multi(&zk.CheckVersionRequest{Path: "/bv", Version: 0})
	zkWantErr(t, "check with an old version", err, zk.ErrBadVersion)
	if _, err := cl.Multi(&zk.CheckVersionRequest{Path: "/bv", Version: 1}); err != nil {
		t.Errorf("check with the right version: %v", err)
	}
	if data, st := zkMustGet(t, cl, "/bv"); string(data) != "1" || st.Version != 1 || st.Aversion != 0 {
		t.Errorf("after refused writes: %q %+v", data, st)
	}
	r := framework.NewZKRawSession(t, addrs[len(addrs)-1], 30000)
	r.WantCode("stand-alone check with a wrong version", jute.OpCheck, &jute.CheckVersionRequest{Path: "/bv", Version: 9}, jute.CodeBadVersion)
	r.MustDo(jute.OpSync, &jute.SyncRequest{Path: "/bv"}, &jute.SyncResponse{})
	r.WantCode("stand-alone check with the right version", jute.OpCheck, &jute.CheckVersionRequest{Path: "/bv", Version: 1}, jute.CodeOK)
	if err := cl.Delete("/bv", 1); err != nil {
		t.Errorf("delete with the right version: %v", err)
	}
}

func testZKNotEmpty(t *testing.T, addrs []string) {
	cl := framework.ZKConnect(t, addrs[0])
	zkMustCreate(t, cl, "/full", nil, zk.FlagPersistent)
	zkMustCreate(t, cl, "/full/kid", nil, zk.FlagPersistent)
	zkWantErr(t, "delete a node with a child", cl.Delete("/full", -1), zk.ErrNotEmpty)
	_, err := cl.Multi(&zk.DeleteRequest{Path: "/full", Version: -1})
	zkWantErr(t, "delete a node with a child in a multi", err, zk.ErrNotEmpty)
	// Deleting the child first in the same multi makes it fine.
	if _, err := cl.Multi(&zk.DeleteRequest{Path: "/full/kid", Version: -1}, &zk.DeleteRequest{Path: "/full", Version: -1}); err != nil {
		t.Errorf("multi deleting child then parent: %v", err)
	}
}

func testZKNoChildrenForEphemerals(t *testing.T, addrs []string) {
	cl := framework.ZKConnect(t, addrs[0])
	zkMustCreate(t, cl, "/eph-parent", nil, zk.FlagEphemeral)
	other := framework.ZKConnect(t, addrs[len(addrs)-1])
	for _, flags := range []int32{zk.FlagPersistent, zk.FlagEphemeral, zk.FlagSequence, zk.FlagEphemeralSequential} {
		_, err := other.Create("/eph-parent/kid", nil, flags, zkWorld)
		zkWantErr(t, "child of an ephemeral", err, zk.ErrNoChildrenForEphemerals)
	}
	_, err := other.CreateContainer("/eph-parent/ctr", nil, zk.FlagContainer, zkWorld)
	zkWantErr(t, "container child of an ephemeral", err, zk.ErrNoChildrenForEphemerals)
	_, err = other.CreateTTL("/eph-parent/ttl", nil, zk.FlagTTL, zkWorld, time.Minute)
	zkWantErr(t, "TTL child of an ephemeral", err, zk.ErrNoChildrenForEphemerals)
}

func testZKInvalidACL(t *testing.T, addrs []string) {
	cl := framework.ZKConnect(t, addrs[0])
	zkMustCreate(t, cl, "/iacl", nil, zk.FlagPersistent)
	for _, tc := range []struct {
		what string
		acl  []zk.ACL
	}{
		{"an empty ACL", []zk.ACL{}},
		{"scheme auth without an authenticated identity", zk.AuthACL(zk.PermAll)},
		{"a digest id without a colon", []zk.ACL{{Perms: zk.PermAll, Scheme: "digest", ID: "alice"}}},
		{"an ip id that is no address", []zk.ACL{{Perms: zk.PermAll, Scheme: "ip", ID: "not-an-ip"}}},
		{"an unknown scheme", []zk.ACL{{Perms: zk.PermAll, Scheme: "kerberos-ish", ID: "x"}}},
	} {
		_, err := cl.Create("/iacl/n", nil, zk.FlagPersistent, tc.acl)
		zkWantErr(t, "create with "+tc.what, err, zk.ErrInvalidACL)
		_, err = cl.SetACL("/iacl", tc.acl, -1)
		zkWantErr(t, "setACL with "+tc.what, err, zk.ErrInvalidACL)
	}
	if st := zkMustStat(t, cl, "/iacl"); st.NumChildren != 0 || st.Aversion != 0 {
		t.Errorf("refused ACLs changed something: %+v", st)
	}
}

func testZKBadArguments(t *testing.T, addrs []string) {
	r := framework.NewZKRawSession(t, addrs[0], 30000)
	r.MustDo(jute.OpCreate, &jute.CreateRequest{Path: "/badarg", ACL: rawWorld}, &jute.CreateResponse{})
	for _, p := range []string{"", "noslash", "/badarg/", "/badarg/.", "/badarg/..", "/bad\x00arg", "/badarg/x\x00"} {
		r.WantCode("create "+quoteZK(p), jute.OpCreate, &jute.CreateRequest{Path: p, ACL: rawWorld}, jute.CodeBadArguments)
		r.WantCode("create2 "+quoteZK(p), jute.OpCreate2, &jute.CreateRequest{Path: p, ACL: rawWorld}, jute.CodeBadArguments)
	}
	// ZooKeeper looks the parent up before it checks the whole path, so a
	// malformed parent is a missing one.
	for _, p := range []string{"/badarg//x", "/badarg/./x", "/badarg/../x"} {
		r.WantCode("create "+quoteZK(p), jute.OpCreate, &jute.CreateRequest{Path: p, ACL: rawWorld}, jute.CodeNoNode)
	}

	r.WantCode("create with flags 7", jute.OpCreate, &jute.CreateRequest{Path: "/badarg/f", ACL: rawWorld, Flags: 7}, jute.CodeBadArguments)
	r.WantCode("create with flags -1", jute.OpCreate, &jute.CreateRequest{Path: "/badarg/f", ACL: rawWorld, Flags: -1}, jute.CodeBadArguments)
	// Without a TTL, a TTL mode is refused; with one, only a TTL mode.
	r.WantCode("create with a TTL mode", jute.OpCreate, &jute.CreateRequest{Path: "/badarg/t", ACL: rawWorld, Flags: jute.ModePersistentWithTTL}, jute.CodeBadArguments)
	for _, tc := range []struct {
		what  string
		flags jute.CreateMode
		ttl   int64
	}{
		{"TTL 0", jute.ModePersistentWithTTL, 0},
		{"a negative TTL", jute.ModePersistentWithTTL, -5},
		{"a TTL above 2^40-1 ms", jute.ModePersistentWithTTL, 1 << 40},
		{"a sequential TTL of 0", jute.ModePersistentSequentialWithTTL, 0},
		{"a persistent mode", jute.ModePersistent, 1000},
		{"an ephemeral mode", jute.ModeEphemeral, 1000},
		{"the container mode", jute.ModeContainer, 1000},
	} {
		r.WantCode("createTTL with "+tc.what, jute.OpCreateTTL, &jute.CreateTTLRequest{Path: "/badarg/t", ACL: rawWorld, Flags: tc.flags, TTL: tc.ttl}, jute.CodeBadArguments)
	}
	r.MustDo(jute.OpCreateTTL, &jute.CreateTTLRequest{Path: "/badarg/t", ACL: rawWorld, Flags: jute.ModePersistentWithTTL, TTL: 1<<40 - 1}, &jute.Create2Response{})

	// go-zookeeper passes a TTL of 0 or less to the server.
	cl := framework.ZKConnect(t, addrs[len(addrs)-1])
	_, err := cl.CreateTTL("/badarg/zero", nil, zk.FlagTTL, zkWorld, 0)
	zkWantErr(t, "go-zookeeper createTTL with TTL 0", err, zk.ErrBadArguments)
	_, err = cl.CreateTTL("/badarg/neg", nil, zk.FlagTTL, zkWorld, -time.Second)
	zkWantErr(t, "go-zookeeper createTTL with a negative TTL", err, zk.ErrBadArguments)

	var ch jute.GetChildrenResponse
	r.MustDo(jute.OpGetChildren, &jute.GetChildrenRequest{Path: "/badarg"}, &ch)
	if len(ch.Children) != 1 || ch.Children[0] != "t" {
		t.Errorf("children of /badarg after refused creates: %v, want [t]", ch.Children)
	}
}

func quoteZK(p string) string { return "\"" + p + "\"" }

func testZKNoWatcher(t *testing.T, addrs []string) {
	r := framework.NewZKRawSession(t, addrs[0], 30000)
	r.MustDo(jute.OpCreate, &jute.CreateRequest{Path: "/nowatch", ACL: rawWorld}, &jute.CreateResponse{})
	for _, wt := range []jute.WatcherType{jute.WatcherChildren, jute.WatcherData, jute.WatcherAny, jute.WatcherPersistent, jute.WatcherPersistentRecursive} {
		r.WantCode("checkWatches without a watch", jute.OpCheckWatches, &jute.CheckWatchesRequest{Path: "/nowatch", Type: wt}, jute.CodeNoWatcher)
		r.WantCode("removeWatches without a watch", jute.OpRemoveWatches, &jute.RemoveWatchesRequest{Path: "/nowatch", Type: wt}, jute.CodeNoWatcher)
	}
	// A watch of one kind is not a watch of another.
	r.MustDo(jute.OpGetData, &jute.GetDataRequest{Path: "/nowatch", Watch: true}, &jute.GetDataResponse{})
	r.WantCode("checkWatches(children) with only a data watch", jute.OpCheckWatches, &jute.CheckWatchesRequest{Path: "/nowatch", Type: jute.WatcherChildren}, jute.CodeNoWatcher)
	r.WantCode("removeWatches(children) with only a data watch", jute.OpRemoveWatches, &jute.RemoveWatchesRequest{Path: "/nowatch", Type: jute.WatcherChildren}, jute.CodeNoWatcher)
	r.WantCode("checkWatches(data) with a data watch", jute.OpCheckWatches, &jute.CheckWatchesRequest{Path: "/nowatch", Type: jute.WatcherData}, jute.CodeOK)
	// Another session's watch is not this session's.
	r2 := framework.NewZKRawSession(t, addrs[len(addrs)-1], 30000)
	r2.WantCode("checkWatches on another session's watch", jute.OpCheckWatches, &jute.CheckWatchesRequest{Path: "/nowatch", Type: jute.WatcherData}, jute.CodeNoWatcher)
	r2.WantCode("removeWatches on another session's watch", jute.OpRemoveWatches, &jute.RemoveWatchesRequest{Path: "/nowatch", Type: jute.WatcherAny}, jute.CodeNoWatcher)
}

func testZKUnimplemented(t *testing.T, addrs []string) {
	r := framework.NewZKRawSession(t, addrs[0], 30000)
	r.WantCode("an unknown opcode", jute.OpCode(250), nil, jute.CodeUnimplemented)

	// reconfig: ZooKeeper answers RECONFIGDISABLED when reconfig is off,
	// which is its default; the brief asks for UNIMPLEMENTED. Either tells
	// the client it cannot reconfigure; nothing else may come back.
	r = framework.NewZKRawSession(t, addrs[0], 30000)
	h, err := r.Call(jute.OpReconfig, &rawReconfig{}, nil)
	if err != nil {
		t.Fatalf("reconfig: %v", err)
	}
	if h.Err != jute.CodeUnimplemented && h.Err != jute.CodeReconfigDisabled {
		t.Errorf("reconfig: got %v, want UNIMPLEMENTED (or ZooKeeper's RECONFIGDISABLED)", h.Err)
	}
	// go-zookeeper sees an error too, whichever it is.
	cl := framework.ZKConnect(t, addrs[len(addrs)-1])
	if _, err := cl.Reconfig([]string{"server.1=127.0.0.1:1:2;3"}, -1); err == nil {
		t.Errorf("go-zookeeper Reconfig succeeded")
	}
	// The session is still good afterwards.
	zkRetry(t, "create after reconfig", func() error {
		_, err := cl.Create("/after-reconfig", nil, zk.FlagEphemeral, zkWorld)
		return err
	})
}

// rawReconfig is ZooKeeper's ReconfigRequest, which jute does not define
// because Ensemble does not serve it.
type rawReconfig struct{}

func (*rawReconfig) Encode(w *jute.Writer) {
	w.UString("")
	w.UString("")
	w.UString("")
	w.Int64(-1)
}

func (*rawReconfig) Decode(r *jute.Reader) error { return r.Err() }

func testZKAuthFailed(t *testing.T, addrs []string) {
	// On the wire: AUTHFAILED under the auth xid, then the connection closes.
	r := framework.NewZKRawSession(t, addrs[0], 30000)
	h, err := r.CallXid(jute.XidAuth, jute.OpAuth, &jute.AuthPacket{Scheme: "no-such-scheme", Auth: []byte("x")}, nil)
	if err != nil || h.Err != jute.CodeAuthFailed {
		t.Errorf("auth with an unknown scheme: %+v %v, want AUTHFAILED", h, err)
	}
	r.ExpectClosed("after AUTHFAILED")

	// go-zookeeper gets the error; its session survives the closed
	// connection and carries on once it reconnects.
	cl := framework.ZKConnect(t, addrs[len(addrs)-1])
	zkWantErr(t, "go-zookeeper AddAuth with an unknown scheme", cl.AddAuth("no-such-scheme", []byte("x")), zk.ErrAuthFailed)
	id := cl.SessionID()
	zkRetry(t, "create after AUTHFAILED", func() error {
		_, err := cl.Create("/after-authfailed", nil, zk.FlagEphemeral, zkWorld)
		return err
	})
	if cl.SessionID() != id {
		t.Errorf("session changed from %#x to %#x after AUTHFAILED", id, cl.SessionID())
	}
}
