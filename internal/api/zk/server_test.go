package zk

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"ensemble/internal/api/zk/jute"
	"ensemble/internal/zktree"

	"github.com/go-zookeeper/zk"
)

// testConfig gives session timeouts in [500ms, 5s].
func testConfig() Config {
	return Config{TickTime: 250 * time.Millisecond, FourLetterWords: []string{"*"}}
}

var worldAll = []jute.ACL{{Perms: jute.PermAll, ID: jute.Id{Scheme: "world", ID: "anyone"}}}

func mustEqual[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Fatalf("%s = %v, want %v", what, got, want)
	}
}

func mustErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", what, err, want)
	}
}

func TestClientOps(t *testing.T) {
	e := newEnv(t, testConfig())
	c := e.newClient(5 * time.Second)
	acl := zk.WorldACL(zk.PermAll)

	p, err := c.Create("/a", []byte("1"), zk.FlagPersistent, acl)
	if err != nil || p != "/a" {
		t.Fatalf("create = %q, %v", p, err)
	}
	_, err = c.Create("/a", nil, zk.FlagPersistent, acl)
	mustErr(t, "create existing", err, zk.ErrNodeExists)
	_, err = c.Create("/missing/child", nil, zk.FlagPersistent, acl)
	mustErr(t, "create under a missing parent", err, zk.ErrNoNode)

	data, st, err := c.Get("/a")
	if err != nil || string(data) != "1" || st.Version != 0 || st.DataLength != 1 {
		t.Fatalf("get = %q %+v %v", data, st, err)
	}
	st, err = c.Set("/a", []byte("22"), 0)
	if err != nil || st.Version != 1 || st.DataLength != 2 {
		t.Fatalf("set = %+v, %v", st, err)
	}
	_, err = c.Set("/a", nil, 0)
	mustErr(t, "set with a stale version", err, zk.ErrBadVersion)
	_, _, err = c.Get("/nope")
	mustErr(t, "get missing", err, zk.ErrNoNode)

	ok, st, err := c.Exists("/a")
	if err != nil || !ok || st.Version != 1 {
		t.Fatalf("exists = %v %+v %v", ok, st, err)
	}
	if ok, _, err := c.Exists("/nope"); err != nil || ok {
		t.Fatalf("exists missing = %v %v", ok, err)
	}

	seq, err := c.Create("/a/s-", nil, zk.FlagSequence, acl)
	if err != nil || seq != "/a/s-0000000000" {
		t.Fatalf("sequential create = %q, %v", seq, err)
	}
	if _, err := c.Create("/a/e", []byte("x"), zk.FlagEphemeral, acl); err != nil {
		t.Fatal(err)
	}
	children, st, err := c.Children("/a")
	if err != nil || !slices.Equal(children, []string{"e", "s-0000000000"}) || st.NumChildren != 2 {
		t.Fatalf("children = %v %+v %v", children, st, err)
	}
	gotACL, _, err := c.GetACL("/a")
	if err != nil || len(gotACL) != 1 || gotACL[0].Scheme != "world" || gotACL[0].Perms != zk.PermAll {
		t.Fatalf("getACL = %+v, %v", gotACL, err)
	}
	st, err = c.SetACL("/a", zk.WorldACL(zk.PermRead|zk.PermWrite|zk.PermCreate|zk.PermDelete|zk.PermAdmin), 0)
	if err != nil || st.Aversion != 1 {
		t.Fatalf("setACL = %+v, %v", st, err)
	}
	if p, err := c.Sync("/a"); err != nil || p != "/a" {
		t.Fatalf("sync = %q, %v", p, err)
	}
	if p, err := c.CreateContainer("/cont", nil, zk.FlagContainer, acl); err != nil || p != "/cont" {
		t.Fatalf("createContainer = %q, %v", p, err)
	}
	if p, err := c.CreateTTL("/ttl", nil, zk.FlagTTL, acl, time.Hour); err != nil || p != "/ttl" {
		t.Fatalf("createTTL = %q, %v", p, err)
	}
	mustErr(t, "delete non-empty", c.Delete("/a", -1), zk.ErrNotEmpty)
	mustErr(t, "delete with a stale version", c.Delete("/a/e", 5), zk.ErrBadVersion)
	if err := c.Delete("/a/e", -1); err != nil {
		t.Fatal(err)
	}

	res, err := c.Multi(
		&zk.CreateRequest{Path: "/m", Data: []byte("m"), Acl: acl},
		&zk.SetDataRequest{Path: "/m", Data: []byte("n"), Version: 0},
		&zk.CheckVersionRequest{Path: "/m", Version: 1},
	)
	if err != nil || len(res) != 3 || res[0].String != "/m" || res[1].Stat == nil || res[1].Stat.Version != 1 {
		t.Fatalf("multi = %+v, %v", res, err)
	}
	for i, r := range res {
		if r.Error != nil {
			t.Fatalf("multi op %d: %v", i, r.Error)
		}
	}
	// A failed multi: the header says OK, each op carries its error (and
	// go-zookeeper returns the first one).
	res, err = c.Multi(
		&zk.CreateRequest{Path: "/m2", Acl: acl},
		&zk.DeleteRequest{Path: "/nope", Version: -1},
	)
	if !errors.Is(err, zk.ErrNoNode) || len(res) != 2 || !errors.Is(res[1].Error, zk.ErrNoNode) {
		t.Fatalf("failed multi = %+v, %v", res, err)
	}
	if ok, _, _ := c.Exists("/m2"); ok {
		t.Fatal("a failed multi created a node")
	}
}

func TestRawOps(t *testing.T) {
	e := newEnv(t, testConfig())
	r := e.raw(5000)

	var c2 jute.Create2Response
	r.callOK(jute.OpCreate2, &jute.CreateRequest{Path: "/r", Data: []byte("d"), ACL: worldAll}, &c2)
	if c2.Path != "/r" || c2.Stat.DataLength != 1 || c2.Stat.Czxid == 0 {
		t.Fatalf("create2 = %+v", c2)
	}
	r.callOK(jute.OpCreate, &jute.CreateRequest{Path: "/r/a", ACL: worldAll}, nil)
	r.callOK(jute.OpCreate, &jute.CreateRequest{Path: "/r/a/b", ACL: worldAll}, nil)
	r.callOK(jute.OpCreate, &jute.CreateRequest{Path: "/r/eph", ACL: worldAll, Flags: jute.ModeEphemeral}, nil)

	var gc jute.GetChildrenResponse
	r.callOK(jute.OpGetChildren, &jute.GetChildrenRequest{Path: "/r"}, &gc)
	if !slices.Equal(gc.Children, []string{"a", "eph"}) {
		t.Fatalf("getChildren = %v", gc.Children)
	}
	var n jute.GetAllChildrenNumberResponse
	r.callOK(jute.OpGetAllChildrenNumber, &jute.GetAllChildrenNumberRequest{Path: "/r"}, &n)
	mustEqual(t, "getAllChildrenNumber", n.TotalNumber, 3)
	h, _ := r.call(jute.OpGetAllChildrenNumber, &jute.GetAllChildrenNumberRequest{Path: "/nope"})
	mustEqual(t, "getAllChildrenNumber of a missing node", h.Err, jute.CodeNoNode)

	var eph jute.GetEphemeralsResponse
	r.callOK(jute.OpGetEphemerals, &jute.GetEphemeralsRequest{PrefixPath: "/"}, &eph)
	if !slices.Equal(eph.Ephemerals, []string{"/r/eph"}) {
		t.Fatalf("getEphemerals = %v", eph.Ephemerals)
	}
	r.callOK(jute.OpGetEphemerals, &jute.GetEphemeralsRequest{PrefixPath: "/x"}, &eph)
	if len(eph.Ephemerals) != 0 {
		t.Fatalf("getEphemerals /x = %v", eph.Ephemerals)
	}

	var mr jute.MultiResponse
	r.callOK(jute.OpMultiRead, &jute.MultiRequest{Ops: []jute.MultiOp{
		{Type: jute.OpGetData, Op: &jute.GetDataRequest{Path: "/r"}},
		{Type: jute.OpGetChildren, Op: &jute.GetChildrenRequest{Path: "/r/a"}},
		{Type: jute.OpGetData, Op: &jute.GetDataRequest{Path: "/nope"}},
	}}, &mr)
	if len(mr.Results) != 3 || string(mr.Results[0].Data) != "d" || !slices.Equal(mr.Results[1].Children, []string{"b"}) ||
		mr.Results[2].Type != jute.OpError || mr.Results[2].Err != jute.CodeNoNode {
		t.Fatalf("multiRead = %+v", mr.Results)
	}

	// A stand-alone check goes through the log like any write.
	var sd jute.SetDataResponse
	r.callOK(jute.OpCheck, &jute.CheckVersionRequest{Path: "/r", Version: 0}, &sd)
	h, _ = r.call(jute.OpCheck, &jute.CheckVersionRequest{Path: "/r", Version: 3})
	mustEqual(t, "check with a wrong version", h.Err, jute.CodeBadVersion)

	// A failed multi: OK in the header, the errors in the body.
	h, rd := r.call(jute.OpMulti, &jute.MultiRequest{Ops: []jute.MultiOp{
		{Type: jute.OpCreate, Op: &jute.CreateRequest{Path: "/mf", ACL: worldAll}},
		{Type: jute.OpDelete, Op: &jute.DeleteRequest{Path: "/nope", Version: -1}},
	}})
	mustEqual(t, "failed multi header", h.Err, jute.CodeOK)
	if err := mr.Decode(rd); err != nil || len(mr.Results) != 2 || mr.Results[1].Err != jute.CodeNoNode {
		t.Fatalf("failed multi = %+v, %v", mr.Results, err)
	}

	var sync jute.SyncResponse
	r.callOK(jute.OpSync, &jute.SyncRequest{Path: "/r"}, &sync)
	mustEqual(t, "sync path", sync.Path, "/r")

	var who jute.WhoAmIResponse
	r.callOK(jute.OpWhoAmI, nil, &who)
	if len(who.ClientInfo) != 1 || who.ClientInfo[0] != (jute.ClientInfo{AuthScheme: "ip", User: "127.0.0.1"}) {
		t.Fatalf("whoAmI = %+v", who.ClientInfo)
	}
	r.callOK(jute.OpAuth, &jute.AuthPacket{Scheme: "digest", Auth: []byte("bob:secret")}, nil)
	r.callOK(jute.OpAuth, &jute.AuthPacket{Scheme: "digest", Auth: []byte("bob:secret")}, nil)
	r.callOK(jute.OpWhoAmI, nil, &who)
	if len(who.ClientInfo) != 2 || who.ClientInfo[1] != (jute.ClientInfo{AuthScheme: "digest", User: "bob"}) {
		t.Fatalf("whoAmI after auth = %+v", who.ClientInfo)
	}

	// Unknown and unsupported ops are refused; the connection stays.
	for _, op := range []jute.OpCode{jute.OpReconfig, jute.OpSASL, 9999, jute.OpCreateSession} {
		h, _ := r.call(op, &jute.GetDataRequest{Path: "/r"})
		mustEqual(t, fmt.Sprintf("%v reply", op), h.Err, jute.CodeUnimplemented)
	}
	h, _ = r.call(jute.OpPing, nil)
	mustEqual(t, "ping", h.Err, jute.CodeOK)

	// Reads answer at the revision read; a ping carries the latest one.
	zx := r.callOK(jute.OpSetData, &jute.SetDataRequest{Path: "/r", Data: []byte("e"), Version: -1}, &sd)
	mustEqual(t, "setData zxid", zx, sd.Stat.Mzxid)
	var gd jute.GetDataResponse
	mustEqual(t, "getData zxid", r.callOK(jute.OpGetData, &jute.GetDataRequest{Path: "/r"}, &gd), zx)
	h, _ = r.call(jute.OpPing, nil)
	mustEqual(t, "ping zxid", h.Zxid, zx)
}

func TestWatchesOneShot(t *testing.T) {
	e := newEnv(t, testConfig())
	r := e.raw(5000)
	w := e.raw(5000)
	w.callOK(jute.OpCreate, &jute.CreateRequest{Path: "/w", ACL: worldAll}, nil)

	r.callOK(jute.OpGetData, &jute.GetDataRequest{Path: "/w", Watch: true}, &jute.GetDataResponse{})
	h, _ := r.call(jute.OpExists, &jute.ExistsRequest{Path: "/x", Watch: true})
	mustEqual(t, "exists missing", h.Err, jute.CodeNoNode)
	r.callOK(jute.OpGetChildren, &jute.GetChildrenRequest{Path: "/w", Watch: true}, &jute.GetChildrenResponse{})

	set := func(p string) {
		w.callOK(jute.OpSetData, &jute.SetDataRequest{Path: p, Data: []byte("v"), Version: -1}, &jute.SetDataResponse{})
	}
	create := func(p string) { w.callOK(jute.OpCreate, &jute.CreateRequest{Path: p, ACL: worldAll}, nil) }
	set("/w")
	set("/w")
	create("/x")
	set("/x")
	create("/w/c")
	create("/w/d")
	r.callOK(jute.OpPing, nil, nil)
	got := r.takeEvents()
	want := []jute.WatcherEvent{
		{Type: jute.EventNodeDataChanged, State: jute.StateSyncConnected, Path: "/w"},
		{Type: jute.EventNodeCreated, State: jute.StateSyncConnected, Path: "/x"},
		{Type: jute.EventNodeChildrenChanged, State: jute.StateSyncConnected, Path: "/w"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("events = %+v, want %+v", got, want)
	}

	// Deleting a node fires its data and child watches with one event.
	r.callOK(jute.OpGetData, &jute.GetDataRequest{Path: "/w/c", Watch: true}, &jute.GetDataResponse{})
	r.callOK(jute.OpGetChildren, &jute.GetChildrenRequest{Path: "/w/c", Watch: true}, &jute.GetChildrenResponse{})
	r.callOK(jute.OpExists, &jute.ExistsRequest{Path: "/w/d", Watch: true}, &jute.ExistsResponse{})
	w.callOK(jute.OpDelete, &jute.DeleteRequest{Path: "/w/c", Version: -1}, nil)
	w.callOK(jute.OpDelete, &jute.DeleteRequest{Path: "/w/d", Version: -1}, nil)
	r.callOK(jute.OpPing, nil, nil)
	got = r.takeEvents()
	want = []jute.WatcherEvent{
		{Type: jute.EventNodeDeleted, State: jute.StateSyncConnected, Path: "/w/c"},
		{Type: jute.EventNodeDeleted, State: jute.StateSyncConnected, Path: "/w/d"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("events = %+v, want %+v", got, want)
	}
	if st := e.s.Stats(); st.Watches != 0 {
		t.Fatalf("%d watches left after they all fired", st.Watches)
	}
}

func TestWatchesGoClient(t *testing.T) {
	e := newEnv(t, testConfig())
	c := e.newClient(5 * time.Second)
	acl := zk.WorldACL(zk.PermAll)
	if _, err := c.Create("/g", nil, 0, acl); err != nil {
		t.Fatal(err)
	}
	_, _, data, err := c.GetW("/g")
	if err != nil {
		t.Fatal(err)
	}
	_, _, children, err := c.ChildrenW("/g")
	if err != nil {
		t.Fatal(err)
	}
	_, _, exists, err := c.ExistsW("/g/x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create("/g/x", nil, 0, acl); err != nil {
		t.Fatal(err)
	}
	if ev := waitEvent(t, exists); ev.Type != zk.EventNodeCreated || ev.Path != "/g/x" {
		t.Fatalf("exists watch: %+v", ev)
	}
	if ev := waitEvent(t, children); ev.Type != zk.EventNodeChildrenChanged || ev.Path != "/g" {
		t.Fatalf("child watch: %+v", ev)
	}
	if _, err := c.Set("/g", []byte("v"), -1); err != nil {
		t.Fatal(err)
	}
	if ev := waitEvent(t, data); ev.Type != zk.EventNodeDataChanged || ev.Path != "/g" {
		t.Fatalf("data watch: %+v", ev)
	}
	_, _, data, _ = c.GetW("/g/x")
	_, _, children, _ = c.ChildrenW("/g/x")
	if err := c.Delete("/g/x", -1); err != nil {
		t.Fatal(err)
	}
	if ev := waitEvent(t, data); ev.Type != zk.EventNodeDeleted {
		t.Fatalf("data watch on delete: %+v", ev)
	}
	if ev := waitEvent(t, children); ev.Type != zk.EventNodeDeleted {
		t.Fatalf("child watch on delete: %+v", ev)
	}
}

func TestPersistentWatches(t *testing.T) {
	e := newEnv(t, testConfig())
	r := e.raw(5000)
	w := e.raw(5000)
	var ok jute.ErrorResponse
	r.callOK(jute.OpAddWatch, &jute.AddWatchRequest{Path: "/p", Mode: jute.AddWatchPersistent}, &ok)
	r.callOK(jute.OpAddWatch, &jute.AddWatchRequest{Path: "/r", Mode: jute.AddWatchPersistentRecursive}, nil)
	h, _ := r.call(jute.OpAddWatch, &jute.AddWatchRequest{Path: "/q", Mode: 7})
	mustEqual(t, "addWatch with a bad mode", h.Err, jute.CodeBadArguments)

	create := func(p string) { w.callOK(jute.OpCreate, &jute.CreateRequest{Path: p, ACL: worldAll}, nil) }
	set := func(p string) {
		w.callOK(jute.OpSetData, &jute.SetDataRequest{Path: p, Data: []byte("v"), Version: -1}, &jute.SetDataResponse{})
	}
	del := func(p string) { w.callOK(jute.OpDelete, &jute.DeleteRequest{Path: p, Version: -1}, nil) }
	create("/p")
	set("/p")
	create("/p/c")
	set("/p/c")
	set("/p")
	del("/p/c")
	create("/r")
	create("/r/a")
	create("/r/a/b")
	set("/r/a/b")
	del("/r/a/b")
	del("/p")
	r.callOK(jute.OpPing, nil, nil)
	ev := func(t jute.EventType, p string) jute.WatcherEvent {
		return jute.WatcherEvent{Type: t, State: jute.StateSyncConnected, Path: p}
	}
	want := []jute.WatcherEvent{
		ev(jute.EventNodeCreated, "/p"),
		ev(jute.EventNodeDataChanged, "/p"),
		ev(jute.EventNodeChildrenChanged, "/p"),
		ev(jute.EventNodeDataChanged, "/p"),
		ev(jute.EventNodeChildrenChanged, "/p"),
		ev(jute.EventNodeCreated, "/r"),
		ev(jute.EventNodeCreated, "/r/a"),
		ev(jute.EventNodeCreated, "/r/a/b"),
		ev(jute.EventNodeDataChanged, "/r/a/b"),
		ev(jute.EventNodeDeleted, "/r/a/b"),
		ev(jute.EventNodeDeleted, "/p"),
	}
	zxids := r.zxids
	if got := r.takeEvents(); !slices.Equal(got, want) {
		t.Fatalf("events = %+v\nwant %+v", got, want)
	}
	if !slices.IsSorted(zxids) || zxids[0] <= 0 {
		t.Fatalf("event zxids %v are not the revisions of the changes", zxids)
	}

	// A connection with a one-shot and a recursive watch on one node gets
	// one event per change.
	r.callOK(jute.OpGetData, &jute.GetDataRequest{Path: "/r/a", Watch: true}, &jute.GetDataResponse{})
	set("/r/a")
	r.callOK(jute.OpPing, nil, nil)
	if got := r.takeEvents(); !slices.Equal(got, []jute.WatcherEvent{ev(jute.EventNodeDataChanged, "/r/a")}) {
		t.Fatalf("events = %+v", got)
	}

	check := func(p string, typ jute.WatcherType, want jute.Code) {
		t.Helper()
		h, _ := r.call(jute.OpCheckWatches, &jute.CheckWatchesRequest{Path: p, Type: typ})
		mustEqual(t, fmt.Sprintf("checkWatches(%s, %d)", p, typ), h.Err, want)
	}
	remove := func(p string, typ jute.WatcherType, want jute.Code) {
		t.Helper()
		h, _ := r.call(jute.OpRemoveWatches, &jute.RemoveWatchesRequest{Path: p, Type: typ})
		mustEqual(t, fmt.Sprintf("removeWatches(%s, %d)", p, typ), h.Err, want)
	}
	check("/p", jute.WatcherPersistent, jute.CodeOK)
	check("/p", jute.WatcherData, jute.CodeNoWatcher)
	check("/p", jute.WatcherAny, jute.CodeOK)
	check("/r", jute.WatcherPersistentRecursive, jute.CodeOK)
	check("/p", 42, jute.CodeMarshallingError)
	remove("/p", jute.WatcherPersistent, jute.CodeOK)
	remove("/p", jute.WatcherPersistent, jute.CodeNoWatcher)
	remove("/r", jute.WatcherAny, jute.CodeOK)
	r.callOK(jute.OpGetData, &jute.GetDataRequest{Path: "/r/a", Watch: true}, &jute.GetDataResponse{})
	check("/r/a", jute.WatcherData, jute.CodeOK)
	remove("/r/a", jute.WatcherChildren, jute.CodeNoWatcher)
	remove("/r/a", jute.WatcherData, jute.CodeOK)
	create("/p")
	set("/r/a")
	r.callOK(jute.OpPing, nil, nil)
	if got := r.takeEvents(); len(got) != 0 {
		t.Fatalf("removed watches fired: %+v", got)
	}
}

func TestSetWatches(t *testing.T) {
	e := newEnv(t, testConfig())
	w := e.raw(5000)
	create := func(p string) { w.callOK(jute.OpCreate, &jute.CreateRequest{Path: p, ACL: worldAll}, nil) }
	set := func(p string) {
		w.callOK(jute.OpSetData, &jute.SetDataRequest{Path: p, Data: []byte("v"), Version: -1}, &jute.SetDataResponse{})
	}
	create("/s1")
	create("/s2")
	create("/s3")
	seen := w.callOK(jute.OpSync, &jute.SyncRequest{Path: "/"}, &jute.SyncResponse{})
	set("/s1")
	create("/s3/c")

	r := e.raw(5000)
	r.callOK(jute.OpSetWatches2, &jute.SetWatches2{
		RelativeZxid:               seen,
		DataWatches:                []string{"/s1", "/s2", "/gone"},
		ExistWatches:               []string{"/s2", "/later"},
		ChildWatches:               []string{"/s3", "/s2"},
		PersistentWatches:          []string{"/pw"},
		PersistentRecursiveWatches: []string{"/rw"},
	}, nil)
	ev := func(t jute.EventType, p string) jute.WatcherEvent {
		return jute.WatcherEvent{Type: t, State: jute.StateSyncConnected, Path: p}
	}
	want := []jute.WatcherEvent{
		ev(jute.EventNodeDataChanged, "/s1"),
		ev(jute.EventNodeDeleted, "/gone"),
		ev(jute.EventNodeCreated, "/s2"),
		ev(jute.EventNodeChildrenChanged, "/s3"),
	}
	if got := r.takeEvents(); !slices.Equal(got, want) {
		t.Fatalf("events at once = %+v\nwant %+v", got, want)
	}
	// The others were registered.
	set("/s2")
	create("/later")
	create("/s2/c")
	create("/pw")
	create("/rw")
	create("/rw/x")
	r.callOK(jute.OpPing, nil, nil)
	want = []jute.WatcherEvent{
		ev(jute.EventNodeDataChanged, "/s2"),
		ev(jute.EventNodeCreated, "/later"),
		ev(jute.EventNodeChildrenChanged, "/s2"),
		ev(jute.EventNodeCreated, "/pw"),
		ev(jute.EventNodeCreated, "/rw"),
		ev(jute.EventNodeCreated, "/rw/x"),
	}
	if got := r.takeEvents(); !slices.Equal(got, want) {
		t.Fatalf("events later = %+v\nwant %+v", got, want)
	}
	// The old request, as go-zookeeper sends it with its own xid.
	r.callOK(jute.OpSetWatches, &jute.SetWatches{RelativeZxid: seen, DataWatches: []string{"/s3"}}, nil)
	if got := r.takeEvents(); len(got) != 0 {
		t.Fatalf("unchanged node fired: %+v", got)
	}
	if !e.s.watches.has(r0conn(t, e), "/s3", watchData) {
		t.Fatal("setWatches did not register the data watch on /s3")
	}
}

// r0conn returns the server's only connection with watches.
func r0conn(t *testing.T, e *env) *conn {
	t.Helper()
	e.s.watches.mu.Lock()
	defer e.s.watches.mu.Unlock()
	for c := range e.s.watches.table["/s3"] {
		return c
	}
	t.Fatal("no connection watches /s3")
	return nil
}

func TestReconnectKeepsSessionAndWatches(t *testing.T) {
	e := newEnv(t, testConfig())
	c := e.newClient(5 * time.Second)
	acl := zk.WorldACL(zk.PermAll)
	for _, p := range []string{"/k1", "/k3"} {
		if _, err := c.Create(p, nil, 0, acl); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Create("/eph", nil, zk.FlagEphemeral, acl); err != nil {
		t.Fatal(err)
	}
	_, _, changed, err := c.GetW("/k1")
	if err != nil {
		t.Fatal(err)
	}
	_, _, created, err := c.ExistsW("/k2")
	if err != nil {
		t.Fatal(err)
	}
	_, _, later, err := c.GetW("/k3")
	if err != nil {
		t.Fatal(err)
	}
	sid := c.SessionID()

	// While the client is away, the tree changes under its watches.
	e.stop()
	propose := func(op jute.OpCode, req jute.Record) {
		res, err := e.b.ProposeZK(context.Background(), &zktree.Command{Time: time.Now().UnixMilli(), Op: op, Req: req})
		if err != nil || res.Code != jute.CodeOK {
			t.Fatalf("%v: %v %v", op, res.Code, err)
		}
	}
	propose(jute.OpSetData, &jute.SetDataRequest{Path: "/k1", Data: []byte("new"), Version: -1})
	propose(jute.OpCreate, &jute.CreateRequest{Path: "/k2", ACL: worldAll})
	e.start()

	if ev := waitEvent(t, changed); ev.Type != zk.EventNodeDataChanged || ev.Path != "/k1" {
		t.Fatalf("after reconnect: %+v", ev)
	}
	if ev := waitEvent(t, created); ev.Type != zk.EventNodeCreated || ev.Path != "/k2" {
		t.Fatalf("after reconnect: %+v", ev)
	}
	if c.SessionID() != sid {
		t.Fatalf("session 0x%x became 0x%x", sid, c.SessionID())
	}
	if ok, st, err := c.Exists("/eph"); err != nil || !ok || st.EphemeralOwner != sid {
		t.Fatalf("ephemeral after reconnect: %v %+v %v", ok, st, err)
	}
	// The unchanged node's watch was registered again.
	if _, err := c.Set("/k3", []byte("x"), -1); err != nil {
		t.Fatal(err)
	}
	if ev := waitEvent(t, later); ev.Type != zk.EventNodeDataChanged || ev.Path != "/k3" {
		t.Fatalf("re-registered watch: %+v", ev)
	}
}

func TestSnapshotResetClosesConnections(t *testing.T) {
	e := newEnv(t, testConfig())
	c := e.newClient(5 * time.Second)
	if _, err := c.Create("/z", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	_, _, ch, err := c.GetW("/z")
	if err != nil {
		t.Fatal(err)
	}
	r := e.raw(5000)
	// What the server does when a snapshot from the leader replaced the store.
	e.s.watches.Reset(e.b.kv.Rev())
	r.expectClosed()
	c.waitState(t, zk.StateDisconnected)
	c.waitState(t, zk.StateHasSession)
	e.waitWatched("/z")
	if _, err := c.Set("/z", []byte("v"), -1); err != nil {
		t.Fatal(err)
	}
	if ev := waitEvent(t, ch); ev.Type != zk.EventNodeDataChanged {
		t.Fatalf("watch after reset: %+v", ev)
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t, testConfig())
	a := e.newClient(5 * time.Second)
	b := e.newClient(5 * time.Second)
	if err := a.AddAuth("digest", []byte("user:pw")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Create("/secret", []byte("s"), 0, zk.DigestACL(zk.PermAll, "user", "pw")); err != nil {
		t.Fatal(err)
	}
	if d, _, err := a.Get("/secret"); err != nil || string(d) != "s" {
		t.Fatalf("owner's get = %q, %v", d, err)
	}
	_, _, err := b.Get("/secret")
	mustErr(t, "get without auth", err, zk.ErrNoAuth)
	_, _, err = b.GetACL("/secret")
	mustErr(t, "getACL without auth", err, zk.ErrNoAuth)
	_, _, err = b.Exists("/secret")
	mustErr(t, "exists without auth", err, zk.ErrNoAuth)
	_, _, err = b.Children("/secret")
	mustErr(t, "children without auth", err, zk.ErrNoAuth)
	_, err = b.Set("/secret", nil, -1)
	mustErr(t, "set without auth", err, zk.ErrNoAuth)

	// READ alone sees the ACL, with the digests hidden; ADMIN sees them.
	acl := append(zk.WorldACL(zk.PermRead), zk.DigestACL(zk.PermAll, "user", "pw")...)
	if _, err := a.Create("/half", nil, 0, acl); err != nil {
		t.Fatal(err)
	}
	got, _, err := b.GetACL("/half")
	if err != nil || len(got) != 2 || got[1].ID != "user:x" {
		t.Fatalf("getACL with READ = %+v, %v", got, err)
	}
	got, _, err = a.GetACL("/half")
	if err != nil || len(got) != 2 || got[1].ID != zktree.DigestID("user:pw") {
		t.Fatalf("getACL with ADMIN = %+v, %v", got, err)
	}

	// An unknown scheme fails and closes the connection, as in ZooKeeper.
	r := e.raw(5000)
	h, _ := r.call(jute.OpAuth, &jute.AuthPacket{Scheme: "bogus", Auth: []byte("x")})
	mustEqual(t, "auth with an unknown scheme", h.Err, jute.CodeAuthFailed)
	r.expectClosed()
	// The ip scheme is what the connection is already.
	r = e.raw(5000)
	r.callOK(jute.OpAuth, &jute.AuthPacket{Scheme: "ip", Auth: []byte("127.0.0.1")}, nil)
}

func fourLetter(t *testing.T, addr, word string) string {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.Write([]byte(word)); err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(waitLong))
	out, err := io.ReadAll(nc)
	if err != nil {
		t.Fatalf("%s: %v", word, err)
	}
	return string(out)
}

func TestFourLetterWords(t *testing.T) {
	e := newEnv(t, testConfig())
	c := e.newClient(5 * time.Second)
	if _, err := c.Create("/f", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := c.GetW("/f"); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "ruok", fourLetter(t, e.addr, "ruok"), "imok")
	mustEqual(t, "isro", fourLetter(t, e.addr, "isro"), "rw")
	mustEqual(t, "wchs", fourLetter(t, e.addr, "wchs"), "1 connections watching 1 paths\nTotal watches:1\n")
	if oks := zk.FLWRuok([]string{e.addr}, waitLong); !oks[0] {
		t.Fatal("FLWRuok failed")
	}
	below, err := zktree.AllChildrenNumber(e.b.kv, "/")
	if err != nil {
		t.Fatal(err)
	}
	stats, ok := zk.FLWSrvr([]string{e.addr}, waitLong)
	if !ok || stats[0].Mode != zk.ModeStandalone || stats[0].NodeCount != int64(below)+1 || stats[0].Connections < 1 || stats[0].Received == 0 {
		t.Fatalf("FLWSrvr = %+v %v; want %d nodes", stats[0], ok, below+1)
	}
	cons, ok := zk.FLWCons([]string{e.addr}, waitLong)
	if !ok || len(cons[0].Clients) != 1 || cons[0].Clients[0].SessionID != c.SessionID() {
		t.Fatalf("FLWCons = %+v %v", cons[0], ok)
	}
	mntr := fourLetter(t, e.addr, "mntr")
	for _, want := range []string{"zk_version\t" + zkVersion, "zk_server_state\tstandalone\n", "zk_watch_count\t1\n", "zk_znode_count\t", "zk_num_alive_connections\t"} {
		if !strings.Contains(mntr, want) {
			t.Fatalf("mntr lacks %q:\n%s", want, mntr)
		}
	}
	if stat := fourLetter(t, e.addr, "stat"); !strings.Contains(stat, "Clients:\n /127.0.0.1:") || !strings.Contains(stat, "Mode: standalone\n") {
		t.Fatalf("stat:\n%s", stat)
	}
	if conf := fourLetter(t, e.addr, "conf"); !strings.Contains(conf, "tickTime=250\n") || !strings.Contains(conf, "maxSessionTimeout=5000\n") {
		t.Fatalf("conf:\n%s", conf)
	}
	if envi := fourLetter(t, e.addr, "envi"); !strings.HasPrefix(envi, "Environment:\nzookeeper.version=") {
		t.Fatalf("envi:\n%s", envi)
	}

	// Only whitelisted words are answered, and srvr always.
	e2 := newEnv(t, Config{TickTime: 250 * time.Millisecond, FourLetterWords: []string{"ruok"}})
	mustEqual(t, "ruok", fourLetter(t, e2.addr, "ruok"), "imok")
	for _, w := range []string{"mntr", "dump", "stat", "wchc"} {
		mustEqual(t, w, fourLetter(t, e2.addr, w), w+" is not executed because it is not in the whitelist.\n")
	}
	if srvr := fourLetter(t, e2.addr, "srvr"); !strings.HasPrefix(srvr, "Zookeeper version: ") {
		t.Fatalf("srvr:\n%s", srvr)
	}
	// Four bytes that are no word are a frame length, far too large.
	mustEqual(t, "abcd", fourLetter(t, e2.addr, "abcd"), "")
}

func TestBadFramesCloseOnlyTheirConnection(t *testing.T) {
	cfg := testConfig()
	cfg.MaxBuffer = 1024
	e := newEnv(t, cfg)
	c := e.newClient(5 * time.Second)

	frame := func(n uint32, body []byte) []byte {
		return append(binary.BigEndian.AppendUint32(nil, n), body...)
	}
	cases := map[string]func(r *raw){
		"oversized frame": func(r *raw) { r.nc.Write(frame(1025, nil)) },
		"negative length": func(r *raw) { r.nc.Write(frame(0xffff_fff0, nil)) },
		"short header":    func(r *raw) { r.nc.Write(frame(2, []byte{0, 1})) },
		"bad string length": func(r *raw) {
			// getData whose path claims 1000 bytes.
			body := binary.BigEndian.AppendUint32(nil, 1)
			body = binary.BigEndian.AppendUint32(body, uint32(jute.OpGetData))
			body = binary.BigEndian.AppendUint32(body, 1000)
			r.nc.Write(frame(uint32(len(body)), append(body, 'a', 'b', 0)))
		},
		"multi mixing reads and writes": func(r *raw) {
			r.send(&jute.RequestHeader{Xid: 1, Type: jute.OpMulti}, &jute.MultiRequest{Ops: []jute.MultiOp{
				{Type: jute.OpGetData, Op: &jute.GetDataRequest{Path: "/"}},
				{Type: jute.OpDelete, Op: &jute.DeleteRequest{Path: "/x"}},
			}})
		},
	}
	for name, send := range cases {
		t.Run(name, func(t *testing.T) {
			r := e.raw(5000)
			r.t = t
			send(r)
			r.expectClosed()
			if _, err := c.Create("/ok-"+strings.ReplaceAll(name, " ", "-"), nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
				t.Fatalf("another client after %s: %v", name, err)
			}
		})
	}
	// Before the handshake: a connect request that is too large or garbage.
	r := dialRaw(t, e.addr)
	r.nc.Write(frame(100000, nil))
	r.expectClosed()
	r = dialRaw(t, e.addr)
	r.nc.Write(frame(3, []byte{1, 2, 3}))
	r.expectClosed()
	if _, _, err := c.Get("/"); err != nil {
		t.Fatal(err)
	}
}

func TestOutboxOverflowClosesConnection(t *testing.T) {
	cfg := testConfig()
	cfg.OutboxLimit = 4096
	e := newEnv(t, cfg)
	w := e.raw(5000)
	w.callOK(jute.OpCreate, &jute.CreateRequest{Path: "/big", Data: make([]byte, 8000), ACL: worldAll}, nil)
	r := e.raw(5000)
	r.send(&jute.RequestHeader{Xid: 1, Type: jute.OpGetData}, &jute.GetDataRequest{Path: "/big"})
	r.expectClosed()
	w.callOK(jute.OpPing, nil, nil)
}

func TestOrderingGuarantee(t *testing.T) {
	e := newEnv(t, testConfig())
	reader := e.newClient(5 * time.Second)
	writer := e.newClient(5 * time.Second)
	if _, err := writer.Create("/o", []byte("0"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := writer.Set("/o", []byte(fmt.Sprint(i)), -1); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer func() {
		close(stop)
		wg.Wait()
	}()
	for round := 0; round < 20; round++ {
		_, st, ch, err := reader.GetW("/o")
		if err != nil {
			t.Fatal(err)
		}
		for {
			_, st2, err := reader.Get("/o")
			if err != nil {
				t.Fatal(err)
			}
			if st2.Mzxid == st.Mzxid {
				continue
			}
			// Data newer than the watch: its event came first.
			select {
			case ev := <-ch:
				if ev.Type != zk.EventNodeDataChanged {
					t.Fatalf("event %+v", ev)
				}
			default:
				t.Fatalf("round %d: read mzxid 0x%x after watching at 0x%x, before the watch event", round, st2.Mzxid, st.Mzxid)
			}
			break
		}
	}
}

func TestSessionExpiry(t *testing.T) {
	e := newEnv(t, testConfig())
	c := e.newClient(time.Second)
	other := e.newClient(5 * time.Second)
	if _, err := c.Create("/gone", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	sid := c.SessionID()
	// The leader's lessor found the lease expired and revoked it.
	e.b.expire(sid)
	if ok, _, err := other.Exists("/gone"); err != nil || ok {
		t.Fatalf("ephemeral of an expired session: %v %v", ok, err)
	}
	// The next ping renews, finds the session gone and closes the
	// connection; the reconnect learns the session expired.
	c.waitState(t, zk.StateExpired)
	c.waitState(t, zk.StateHasSession)
	if c.SessionID() == sid {
		t.Fatal("expired session came back")
	}
}

func TestIdleConnectionClosed(t *testing.T) {
	e := newEnv(t, testConfig())
	r := e.raw(500)
	start := time.Now()
	r.expectClosed()
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Fatalf("closed after %v, before the session timeout", d)
	}
}

func TestConnectRefusals(t *testing.T) {
	e := newEnv(t, testConfig(), func(e *env) { e.catchUp = 50 * time.Millisecond })
	// An unknown session is expired: timeout 0, session 0, then close.
	r := dialRaw(t, e.addr)
	rsp := r.connect(jute.ConnectRequest{TimeOut: 5000, SessionID: 0x1234, Passwd: make([]byte, 16)})
	if rsp.SessionID != 0 || rsp.TimeOut != 0 {
		t.Fatalf("unknown session: %+v", rsp)
	}
	r.expectClosed()

	// A known session with the wrong password too.
	r = dialRaw(t, e.addr)
	rsp = r.connect(jute.ConnectRequest{TimeOut: 5000, Passwd: make([]byte, 16)})
	good := rsp
	r2 := dialRaw(t, e.addr)
	rsp = r2.connect(jute.ConnectRequest{TimeOut: 5000, SessionID: good.SessionID, Passwd: []byte("wrong-password!!")})
	if rsp.SessionID != 0 {
		t.Fatalf("wrong password: %+v", rsp)
	}
	r2.expectClosed()
	// The right one resumes, with the session's timeout, and replaces the
	// old connection.
	r3 := dialRaw(t, e.addr)
	rsp = r3.connect(jute.ConnectRequest{TimeOut: 100000, SessionID: good.SessionID, Passwd: good.Passwd})
	if rsp.SessionID != good.SessionID || rsp.TimeOut != good.TimeOut {
		t.Fatalf("resume = %+v, want session 0x%x timeout %d", rsp, good.SessionID, good.TimeOut)
	}
	r.expectClosed()
	r3.callOK(jute.OpPing, nil, nil)

	// A client that has seen more than this member is refused without an
	// answer once the member fails to catch up.
	r = dialRaw(t, e.addr)
	r.send(&jute.ConnectRequest{LastZxidSeen: e.b.kv.Rev() + 100, TimeOut: 5000, Passwd: make([]byte, 16)})
	if _, err := r.readFrame(); !errors.Is(err, io.EOF) {
		t.Fatalf("client ahead: %v, want the connection closed", err)
	}
}

func TestConnectWaitsForCatchUp(t *testing.T) {
	e := newEnv(t, testConfig(), func(e *env) { e.catchUp = waitLong })
	r := dialRaw(t, e.addr)
	r.send(&jute.ConnectRequest{LastZxidSeen: e.b.kv.Rev() + 1, TimeOut: 5000, Passwd: make([]byte, 16)})
	// The member applies the revision the client has seen.
	res, err := e.b.ProposeZK(context.Background(), &zktree.Command{Op: jute.OpCreate, Req: &jute.CreateRequest{Path: "/late", ACL: worldAll}})
	if err != nil || res.Code != jute.CodeOK {
		t.Fatal(res.Code, err)
	}
	body, err := r.readFrame()
	if err != nil {
		t.Fatal(err)
	}
	var rsp jute.ConnectResponse
	if err := rsp.Decode(jute.NewReader(body, 0)); err != nil || rsp.SessionID == 0 {
		t.Fatalf("connect after catch-up = %+v, %v", rsp, err)
	}
}

func TestConnectWithoutReadOnlyFlag(t *testing.T) {
	e := newEnv(t, testConfig())
	r := dialRaw(t, e.addr)
	// A pre-3.4 connect request: no readOnly byte at the end.
	var w jute.Writer
	start := w.BeginFrame()
	w.Int32(0)
	w.Int64(0)
	w.Int32(3000)
	w.Int64(0)
	w.Buffer(make([]byte, 16))
	w.EndFrame(start)
	r.nc.Write(w.Bytes())
	body, err := r.readFrame()
	if err != nil {
		t.Fatal(err)
	}
	var rsp jute.ConnectResponse
	if err := rsp.Decode(jute.NewReader(body, 0)); err != nil || rsp.SessionID == 0 || rsp.TimeOut != 3000 || len(rsp.Passwd) != 16 {
		t.Fatalf("connect = %+v, %v", rsp, err)
	}
	// Timeouts are clamped to [2, 20] ticks.
	r = dialRaw(t, e.addr)
	if rsp := r.connect(jute.ConnectRequest{TimeOut: 1, Passwd: make([]byte, 16)}); rsp.TimeOut != 500 {
		t.Fatalf("negotiated %d, want 500", rsp.TimeOut)
	}
	r = dialRaw(t, e.addr)
	if rsp := r.connect(jute.ConnectRequest{TimeOut: 1 << 30, Passwd: make([]byte, 16)}); rsp.TimeOut != 5000 {
		t.Fatalf("negotiated %d, want 5000", rsp.TimeOut)
	}
}

func TestCloseSession(t *testing.T) {
	e := newEnv(t, testConfig())
	c := e.newClient(5 * time.Second)
	other := e.newClient(5 * time.Second)
	if _, err := c.Create("/mine", nil, zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if ok, _, err := other.Exists("/mine"); err != nil || ok {
		t.Fatalf("ephemeral after closeSession: %v %v", ok, err)
	}
	r := e.raw(5000)
	r.callOK(jute.OpCloseSession, nil, nil)
	r.expectClosed()
}

func TestServerErrorsCloseConnection(t *testing.T) {
	e := newEnv(t, testConfig())
	r := e.raw(5000)
	e.b.failPropose.Store(true)
	r.send(&jute.RequestHeader{Xid: 1, Type: jute.OpCreate}, &jute.CreateRequest{Path: "/x", ACL: worldAll})
	r.expectClosed()
	e.b.failPropose.Store(false)
	r = e.raw(5000)
	r.callOK(jute.OpCreate, &jute.CreateRequest{Path: "/x", ACL: worldAll}, nil)
}

func TestConcurrentClients(t *testing.T) {
	e := newEnv(t, testConfig())
	const clients, each = 8, 25
	setup := e.newClient(5 * time.Second)
	if _, err := setup.Create("/c", nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	_, _, ch, err := setup.ChildrenW("/c")
	if err != nil {
		t.Fatal(err)
	}
	conns := make([]*client, clients)
	for i := range conns {
		conns[i] = e.newClient(5 * time.Second)
	}
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < each; j++ {
				p, err := c.Create("/c/n-", []byte(fmt.Sprint(i)), zk.FlagSequence, zk.WorldACL(zk.PermAll))
				if err != nil {
					t.Error(err)
					return
				}
				if d, _, err := c.Get(p); err != nil || string(d) != fmt.Sprint(i) {
					t.Errorf("get %s = %q, %v", p, d, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	children, _, err := setup.Children("/c")
	if err != nil || len(children) != clients*each {
		t.Fatalf("%d children, %v", len(children), err)
	}
	if ev := waitEvent(t, ch); ev.Type != zk.EventNodeChildrenChanged {
		t.Fatalf("event %+v", ev)
	}
	if st := e.s.Stats(); st.PacketsReceived < clients*each*2 || st.Connections != clients+1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestServeAfterClose(t *testing.T) {
	e := newEnv(t, testConfig())
	s := e.s
	e.stop()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mustErr(t, "Serve after Close", s.Serve(ln), ErrServerClosed)
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("listener left open: %v", err)
	}
}

// TestLockRecipe runs go-zookeeper's lock, which lives on sequential
// ephemeral nodes and exists watches, across contending sessions.
func TestLockRecipe(t *testing.T) {
	e := newEnv(t, testConfig())
	const clients, rounds = 4, 5
	var mu sync.Mutex
	holders, total := 0, 0
	var wg sync.WaitGroup
	for range clients {
		c := e.newClient(5 * time.Second)
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := zk.NewLock(c.Conn, "/lock", zk.WorldACL(zk.PermAll))
			for range rounds {
				if err := l.Lock(); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				holders++
				total++
				if holders != 1 {
					t.Errorf("%d holders of the lock", holders)
				}
				mu.Unlock()
				mu.Lock()
				holders--
				mu.Unlock()
				if err := l.Unlock(); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if total != clients*rounds {
		t.Fatalf("lock taken %d times, want %d", total, clients*rounds)
	}
}

// TestOrderingOnTheWire checks the order of replies and events byte by
// byte: a read's reply that comes before the event of a watched node shows
// the data the watch was set on, and one that comes after shows the change.
func TestOrderingOnTheWire(t *testing.T) {
	e := newEnv(t, testConfig())
	w := e.raw(5000)
	w.callOK(jute.OpCreate, &jute.CreateRequest{Path: "/ow", Data: []byte("0"), ACL: worldAll}, nil)
	const n = 200
	wr := e.newClient(5 * time.Second)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for v := 1; v <= n; v++ {
			if _, err := wr.Set("/ow", []byte(fmt.Sprint(v)), -1); err != nil {
				t.Errorf("setData: %v", err)
				return
			}
		}
	}()
	defer func() { <-done }()
	r := e.raw(5000)
	arm := func() (int64, string) {
		var gd jute.GetDataResponse
		r.callOK(jute.OpGetData, &jute.GetDataRequest{Path: "/ow", Watch: true}, &gd)
		return gd.Stat.Mzxid, string(gd.Data)
	}
	armed, val := arm()
	for val != fmt.Sprint(n) {
		var gd jute.GetDataResponse
		r.callOK(jute.OpGetData, &jute.GetDataRequest{Path: "/ow"}, &gd)
		fired := len(r.events) > 0
		if fired && (len(r.events) != 1 || r.events[0].Type != jute.EventNodeDataChanged) {
			t.Fatalf("events %+v", r.events)
		}
		r.takeEvents()
		switch {
		case !fired && gd.Stat.Mzxid != armed:
			t.Fatalf("read mzxid %d before the event of the change after %d", gd.Stat.Mzxid, armed)
		case fired && gd.Stat.Mzxid <= armed:
			t.Fatalf("the reply after the event shows mzxid %d, not newer than %d", gd.Stat.Mzxid, armed)
		case fired:
			armed, val = arm()
		}
	}
}

// TestWriteReplyBeforeLaterEvents lands someone else's change between a
// client's write being applied and its reply being sent: the client must get
// its reply before the event of that later change, as ZooKeeper, which
// processes both in one order, sends them.
func TestWriteReplyBeforeLaterEvents(t *testing.T) {
	e := newEnv(t, testConfig())
	r := e.raw(5000)
	r.callOK(jute.OpCreate, &jute.CreateRequest{Path: "/watched", ACL: worldAll}, nil)
	r.callOK(jute.OpCreate, &jute.CreateRequest{Path: "/mine", ACL: worldAll}, nil)
	r.callOK(jute.OpGetData, &jute.GetDataRequest{Path: "/watched", Watch: true}, nil)
	other := func() {
		res, err := e.b.ProposeZK(context.Background(), &zktree.Command{Time: time.Now().UnixMilli(), Op: jute.OpSetData,
			Req: &jute.SetDataRequest{Path: "/watched", Data: []byte("x"), Version: -1}})
		if err != nil || res.Code != jute.CodeOK {
			t.Errorf("the other change: %+v %v", res, err)
		}
	}
	e.b.afterApply.Store(&other)
	var sd jute.SetDataResponse
	r.callOK(jute.OpSetData, &jute.SetDataRequest{Path: "/mine", Data: []byte("y"), Version: -1}, &sd)
	if len(r.events) != 0 {
		t.Fatalf("events %+v arrived before the reply of a write applied before their change", r.events)
	}
	r.callOK(jute.OpSync, &jute.SyncRequest{Path: "/"}, nil)
	if len(r.events) != 1 || r.events[0].Type != jute.EventNodeDataChanged || r.events[0].Path != "/watched" {
		t.Fatalf("events after the reply: %+v, want NodeDataChanged /watched", r.events)
	}
}
