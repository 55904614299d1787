package compat

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"ensemble/internal/api/zk/jute"
	"ensemble/tests/framework"

	"github.com/go-zookeeper/zk"
)

// TestZKWatches checks one-shot, persistent and recursive watches, their
// removal, their re-registration after a reconnect, and the ordering
// guarantee, with the watcher and the writer on different members.
func TestZKWatches(t *testing.T) {
	zkClusters(t, func(t *testing.T, c *framework.InProcessCluster, addrs []string) {
		t.Run("OneShot", func(t *testing.T) { testZKOneShot(t, addrs) })
		t.Run("OneShotOnTheWire", func(t *testing.T) { testZKOneShotWire(t, addrs) })
		t.Run("Persistent", func(t *testing.T) { testZKPersistent(t, addrs) })
		t.Run("PersistentRecursive", func(t *testing.T) { testZKRecursive(t, addrs) })
		t.Run("CheckAndRemove", func(t *testing.T) { testZKRemoveWatches(t, addrs) })
		t.Run("SetWatchesAfterReconnect", func(t *testing.T) { testZKSetWatches(t, addrs) })
		t.Run("SetWatches2AfterReconnect", func(t *testing.T) { testZKSetWatches2(t, addrs) })
		t.Run("Ordering", func(t *testing.T) { testZKOrdering(t, addrs) })
		t.Run("OrderingOnTheWire", func(t *testing.T) { testZKOrderingWire(t, addrs) })
	})
}

// testZKOneShot checks go-zookeeper's data, exists and child watches: each
// fires with the right type and path.
func testZKOneShot(t *testing.T, addrs []string) {
	w := framework.ZKConnect(t, addrs[0])
	wr := framework.ZKConnect(t, addrs[len(addrs)-1])
	zkMustCreate(t, wr, "/os", nil, zk.FlagPersistent)
	zkMustCreate(t, wr, "/os/data", []byte("0"), zk.FlagPersistent)
	zkSync(t, w, "/os/data")

	_, _, ch, err := w.GetW("/os/data")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wr.Set("/os/data", []byte("1"), -1); err != nil {
		t.Fatal(err)
	}
	zkWantEvent(t, "data watch, setData", ch, zk.EventNodeDataChanged, "/os/data")

	ok, _, ch, err := w.ExistsW("/os/new")
	if err != nil || ok {
		t.Fatalf("exists /os/new: %v %v", ok, err)
	}
	zkMustCreate(t, wr, "/os/new", nil, zk.FlagPersistent)
	zkWantEvent(t, "exists watch on a missing node, create", ch, zk.EventNodeCreated, "/os/new")

	_, _, ch, err = w.ExistsW("/os/new")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wr.Set("/os/new", []byte("x"), -1); err != nil {
		t.Fatal(err)
	}
	zkWantEvent(t, "exists watch on a node, setData", ch, zk.EventNodeDataChanged, "/os/new")

	_, _, ch, err = w.GetW("/os/new")
	if err != nil {
		t.Fatal(err)
	}
	if err := wr.Delete("/os/new", -1); err != nil {
		t.Fatal(err)
	}
	zkWantEvent(t, "data watch, delete", ch, zk.EventNodeDeleted, "/os/new")

	_, _, ch, err = w.ChildrenW("/os")
	if err != nil {
		t.Fatal(err)
	}
	zkMustCreate(t, wr, "/os/kid", nil, zk.FlagEphemeral)
	zkWantEvent(t, "child watch, child created", ch, zk.EventNodeChildrenChanged, "/os")
	_, _, ch, err = w.ChildrenW("/os")
	if err != nil {
		t.Fatal(err)
	}
	if err := wr.Delete("/os/kid", -1); err != nil {
		t.Fatal(err)
	}
	zkWantEvent(t, "child watch, child deleted", ch, zk.EventNodeChildrenChanged, "/os")

	zkMustCreate(t, wr, "/os/leaf", nil, zk.FlagPersistent)
	zkSync(t, w, "/os/leaf")
	_, _, ch, err = w.ChildrenW("/os/leaf")
	if err != nil {
		t.Fatal(err)
	}
	if err := wr.Delete("/os/leaf", -1); err != nil {
		t.Fatal(err)
	}
	zkWantEvent(t, "child watch, the node itself deleted", ch, zk.EventNodeDeleted, "/os/leaf")
}

// testZKOneShotWire counts events on the wire: a one-shot watch fires once,
// a node watched twice by one session gets one event, a child's data change
// does not concern a child watch.
func testZKOneShotWire(t *testing.T, addrs []string) {
	wr := framework.ZKConnect(t, addrs[len(addrs)-1])
	zkMustCreate(t, wr, "/osw", nil, zk.FlagPersistent)
	zkMustCreate(t, wr, "/osw/a", nil, zk.FlagPersistent)
	r := framework.NewZKRawSession(t, addrs[0], 30000)
	r.Flush()

	r.MustDo(jute.OpGetData, &jute.GetDataRequest{Path: "/osw/a", Watch: true}, &jute.GetDataResponse{})
	r.MustDo(jute.OpExists, &jute.ExistsRequest{Path: "/osw/a", Watch: true}, &jute.ExistsResponse{})
	r.MustDo(jute.OpGetChildren, &jute.GetChildrenRequest{Path: "/osw", Watch: true}, &jute.GetChildrenResponse{})
	for i := range 3 {
		if _, err := wr.Set("/osw/a", []byte(strconv.Itoa(i)), -1); err != nil {
			t.Fatal(err)
		}
	}
	want := []jute.WatcherEvent{{Type: jute.EventNodeDataChanged, State: jute.StateSyncConnected, Path: "/osw/a"}}
	if got := r.Flush(); !slices.Equal(got, want) {
		t.Errorf("three setData on a node with a data and an exists watch, and a child watch on its parent: events %s, want %s", describeEvents(got), describeEvents(want))
	}

	// The child watch on /osw is still armed: a child's create fires it.
	zkMustCreate(t, wr, "/osw/b", nil, zk.FlagPersistent)
	want = []jute.WatcherEvent{ev(jute.EventNodeChildrenChanged, "/osw")}
	if got := r.Flush(); !slices.Equal(got, want) {
		t.Errorf("create of a child: events %s, want %s", describeEvents(got), describeEvents(want))
	}
	// Data and child watch on one node: its delete is one NodeDeleted.
	r.MustDo(jute.OpGetData, &jute.GetDataRequest{Path: "/osw/b", Watch: true}, &jute.GetDataResponse{})
	r.MustDo(jute.OpGetChildren, &jute.GetChildrenRequest{Path: "/osw/b", Watch: true}, &jute.GetChildrenResponse{})
	if err := wr.Delete("/osw/b", -1); err != nil {
		t.Fatal(err)
	}
	want = []jute.WatcherEvent{ev(jute.EventNodeDeleted, "/osw/b")}
	if got := r.Flush(); !slices.Equal(got, want) {
		t.Errorf("delete of a node with a data and a child watch: events %s, want %s", describeEvents(got), describeEvents(want))
	}
}

// sameEvents compares event lists as multisets: ZooKeeper gives no order
// among the events of one change.
func sameEvents(got, want []jute.WatcherEvent) bool {
	key := func(e jute.WatcherEvent) string { return fmt.Sprintf("%d %d %s", e.Type, e.State, e.Path) }
	g, w := make([]string, len(got)), make([]string, len(want))
	for i := range got {
		g[i] = key(got[i])
	}
	for i := range want {
		w[i] = key(want[i])
	}
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}

func ev(typ jute.EventType, path string) jute.WatcherEvent {
	return jute.WatcherEvent{Type: typ, State: jute.StateSyncConnected, Path: path}
}

// zkSteps applies changes with go-zookeeper, one transaction each.
type zkStep struct {
	op   string // create, set, delete
	path string
}

func zkApply(t *testing.T, c *zk.Conn, steps []zkStep) {
	t.Helper()
	for _, s := range steps {
		var err error
		switch s.op {
		case "create":
			_, err = c.Create(s.path, nil, zk.FlagPersistent, zkWorld)
		case "set":
			_, err = c.Set(s.path, []byte(s.path), -1)
		case "delete":
			err = c.Delete(s.path, -1)
		}
		if err != nil {
			t.Fatalf("%s %s: %v", s.op, s.path, err)
		}
	}
}

// testZKPersistent checks addWatch PERSISTENT: data and child events of the
// node itself, in order, and the watch stays through the node's delete.
func testZKPersistent(t *testing.T, addrs []string) {
	wr := framework.ZKConnect(t, addrs[len(addrs)-1])
	r := framework.NewZKRawSession(t, addrs[0], 30000)
	r.MustDo(jute.OpAddWatch, &jute.AddWatchRequest{Path: "/pw", Mode: jute.AddWatchPersistent}, nil)
	zkApply(t, wr, []zkStep{
		{"create", "/pw"}, {"set", "/pw"}, {"set", "/pw"},
		{"create", "/pw/a"}, {"set", "/pw/a"}, {"create", "/pw/a/b"}, {"delete", "/pw/a/b"},
		{"delete", "/pw/a"}, {"delete", "/pw"}, {"create", "/pw"}, {"create", "/pwx"},
	})
	want := []jute.WatcherEvent{
		ev(jute.EventNodeCreated, "/pw"), ev(jute.EventNodeDataChanged, "/pw"), ev(jute.EventNodeDataChanged, "/pw"),
		ev(jute.EventNodeChildrenChanged, "/pw"), ev(jute.EventNodeChildrenChanged, "/pw"),
		ev(jute.EventNodeDeleted, "/pw"), ev(jute.EventNodeCreated, "/pw"),
	}
	if got := r.Flush(); !slices.Equal(got, want) {
		t.Errorf("persistent watch events %s, want %s", describeEvents(got), describeEvents(want))
	}
}

// testZKRecursive checks addWatch PERSISTENT_RECURSIVE: created, deleted and
// data events of the node and every descendant, in order, and never a
// NodeChildrenChanged.
func testZKRecursive(t *testing.T, addrs []string) {
	wr := framework.ZKConnect(t, addrs[len(addrs)-1])
	r := framework.NewZKRawSession(t, addrs[0], 30000)
	r.MustDo(jute.OpAddWatch, &jute.AddWatchRequest{Path: "/rw", Mode: jute.AddWatchPersistentRecursive}, nil)
	zkApply(t, wr, []zkStep{
		{"create", "/rw"}, {"create", "/rw/a"}, {"create", "/rw/a/b"}, {"set", "/rw/a/b"},
		{"create", "/rwx"}, {"set", "/rwx"}, {"delete", "/rw/a/b"}, {"set", "/rw"}, {"delete", "/rw/a"},
	})
	want := []jute.WatcherEvent{
		ev(jute.EventNodeCreated, "/rw"), ev(jute.EventNodeCreated, "/rw/a"), ev(jute.EventNodeCreated, "/rw/a/b"),
		ev(jute.EventNodeDataChanged, "/rw/a/b"), ev(jute.EventNodeDeleted, "/rw/a/b"),
		ev(jute.EventNodeDataChanged, "/rw"), ev(jute.EventNodeDeleted, "/rw/a"),
	}
	if got := r.Flush(); !slices.Equal(got, want) {
		t.Errorf("recursive watch events %s, want %s", describeEvents(got), describeEvents(want))
	}
	// A recursive watch on / sees everything, and a one-shot watch of the
	// same session on a node under it adds no second event.
	r2 := framework.NewZKRawSession(t, addrs[0], 30000)
	r2.MustDo(jute.OpAddWatch, &jute.AddWatchRequest{Path: "/", Mode: jute.AddWatchPersistentRecursive}, nil)
	r2.MustDo(jute.OpGetData, &jute.GetDataRequest{Path: "/rw", Watch: true}, &jute.GetDataResponse{})
	zkApply(t, wr, []zkStep{{"set", "/rw"}, {"create", "/rw/c"}})
	want = []jute.WatcherEvent{ev(jute.EventNodeDataChanged, "/rw"), ev(jute.EventNodeCreated, "/rw/c")}
	if got := r2.Flush(); !slices.Equal(got, want) {
		t.Errorf("recursive watch on / with a data watch under it: events %s, want %s", describeEvents(got), describeEvents(want))
	}
}

// testZKRemoveWatches checks checkWatches and removeWatches for each watcher
// type: a removed watch no longer fires, and the server sends nothing for
// the removal itself (the client raises the *WatchRemoved events).
func testZKRemoveWatches(t *testing.T, addrs []string) {
	wr := framework.ZKConnect(t, addrs[len(addrs)-1])
	zkMustCreate(t, wr, "/rm", nil, zk.FlagPersistent)
	r := framework.NewZKRawSession(t, addrs[0], 30000)
	r.Flush()
	check := func(what string, typ jute.WatcherType, want jute.Code) {
		t.Helper()
		r.WantCode(what, jute.OpCheckWatches, &jute.CheckWatchesRequest{Path: "/rm", Type: typ}, want)
	}
	remove := func(what string, typ jute.WatcherType) {
		t.Helper()
		r.WantCode(what, jute.OpRemoveWatches, &jute.RemoveWatchesRequest{Path: "/rm", Type: typ}, jute.CodeOK)
	}

	r.MustDo(jute.OpGetData, &jute.GetDataRequest{Path: "/rm", Watch: true}, &jute.GetDataResponse{})
	check("checkWatches(data) on a data watch", jute.WatcherData, jute.CodeOK)
	check("checkWatches(any) on a data watch", jute.WatcherAny, jute.CodeOK)
	remove("removeWatches(data)", jute.WatcherData)
	check("checkWatches(data) after its removal", jute.WatcherData, jute.CodeNoWatcher)

	r.MustDo(jute.OpGetChildren, &jute.GetChildrenRequest{Path: "/rm", Watch: true}, &jute.GetChildrenResponse{})
	check("checkWatches(children) on a child watch", jute.WatcherChildren, jute.CodeOK)
	remove("removeWatches(any) on a child watch", jute.WatcherAny)
	check("checkWatches(children) after its removal", jute.WatcherChildren, jute.CodeNoWatcher)

	r.MustDo(jute.OpAddWatch, &jute.AddWatchRequest{Path: "/rm", Mode: jute.AddWatchPersistent}, nil)
	check("checkWatches(persistent)", jute.WatcherPersistent, jute.CodeOK)
	remove("removeWatches(persistent)", jute.WatcherPersistent)
	check("checkWatches(persistent) after its removal", jute.WatcherPersistent, jute.CodeNoWatcher)

	r.MustDo(jute.OpAddWatch, &jute.AddWatchRequest{Path: "/rm", Mode: jute.AddWatchPersistentRecursive}, nil)
	check("checkWatches(recursive)", jute.WatcherPersistentRecursive, jute.CodeOK)
	remove("removeWatches(recursive)", jute.WatcherPersistentRecursive)
	check("checkWatches(recursive) after its removal", jute.WatcherPersistentRecursive, jute.CodeNoWatcher)

	zkApply(t, wr, []zkStep{{"set", "/rm"}, {"create", "/rm/kid"}, {"set", "/rm/kid"}, {"delete", "/rm/kid"}, {"delete", "/rm"}})
	if got := r.Flush(); len(got) != 0 {
		t.Errorf("events after every watch was removed: %s", describeEvents(got))
	}
}

// testZKSetWatches checks setWatches after a reconnect to another member:
// watches whose node changed after the client's last zxid fire at once, the
// others are armed for later.
func testZKSetWatches(t *testing.T, addrs []string) {
	wr := framework.ZKConnect(t, addrs[len(addrs)-1])
	for _, p := range []string{"/sw", "/sw/data", "/sw/stable", "/sw/parent", "/sw/gone", "/sw/quiet"} {
		zkMustCreate(t, wr, p, nil, zk.FlagPersistent)
	}
	r := framework.NewZKRawSession(t, addrs[0], 30000)
	r.Flush()
	last := r.Zxid
	r.Conn.Close() // the client loses its server...

	zkApply(t, wr, []zkStep{{"set", "/sw/data"}, {"create", "/sw/new"}, {"create", "/sw/parent/kid"}, {"delete", "/sw/gone"}})

	// ...and resumes on another one, re-registering its watches.
	r2, resp, err := framework.ResumeZKRaw(t, addrs[len(addrs)-1], r.Session, r.Passwd, last)
	if err != nil || resp.SessionID != r.Session {
		t.Fatalf("resume: %+v %v", resp, err)
	}
	h, err := r2.CallXid(jute.XidSetWatches, jute.OpSetWatches, &jute.SetWatches{
		RelativeZxid: last,
		DataWatches:  []string{"/sw/data", "/sw/stable", "/sw/gone"},
		ExistWatches: []string{"/sw/new", "/sw/never"},
		ChildWatches: []string{"/sw/parent", "/sw/quiet"},
	}, nil)
	if err != nil || h.Err != jute.CodeOK {
		t.Fatalf("setWatches: %+v %v", h, err)
	}
	want := []jute.WatcherEvent{
		ev(jute.EventNodeDataChanged, "/sw/data"), ev(jute.EventNodeDeleted, "/sw/gone"),
		ev(jute.EventNodeCreated, "/sw/new"), ev(jute.EventNodeChildrenChanged, "/sw/parent"),
	}
	if got := r2.Flush(); !sameEvents(got, want) {
		t.Errorf("events for changes missed while away: %s, want %s", describeEvents(got), describeEvents(want))
	}
	// The watches that had nothing to report are armed now.
	zkApply(t, wr, []zkStep{{"set", "/sw/stable"}, {"create", "/sw/never"}, {"create", "/sw/quiet/kid"}, {"set", "/sw/data"}})
	want = []jute.WatcherEvent{
		ev(jute.EventNodeDataChanged, "/sw/stable"), ev(jute.EventNodeCreated, "/sw/never"),
		ev(jute.EventNodeChildrenChanged, "/sw/quiet"),
	}
	if got := r2.Flush(); !slices.Equal(got, want) {
		t.Errorf("events of re-armed watches: %s, want %s (the fired ones are gone)", describeEvents(got), describeEvents(want))
	}
}

// testZKSetWatches2 checks setWatches2, which also carries persistent
// watches: they come back and keep firing.
func testZKSetWatches2(t *testing.T, addrs []string) {
	wr := framework.ZKConnect(t, addrs[len(addrs)-1])
	zkApply(t, wr, []zkStep{{"create", "/sw2"}, {"create", "/sw2/d"}, {"create", "/sw2r"}})
	r := framework.NewZKRawSession(t, addrs[0], 30000)
	r.Flush()
	last := r.Zxid
	r.Conn.Close()
	zkApply(t, wr, []zkStep{{"set", "/sw2/d"}})
	r2, resp, err := framework.ResumeZKRaw(t, addrs[len(addrs)-1], r.Session, r.Passwd, last)
	if err != nil || resp.SessionID != r.Session {
		t.Fatalf("resume: %+v %v", resp, err)
	}
	h, err := r2.CallXid(jute.XidSetWatches, jute.OpSetWatches2, &jute.SetWatches2{
		RelativeZxid:               last,
		DataWatches:                []string{"/sw2/d"},
		PersistentWatches:          []string{"/sw2"},
		PersistentRecursiveWatches: []string{"/sw2r"},
	}, nil)
	if err != nil || h.Err != jute.CodeOK {
		t.Fatalf("setWatches2: %+v %v", h, err)
	}
	want := []jute.WatcherEvent{ev(jute.EventNodeDataChanged, "/sw2/d")}
	if got := r2.Flush(); !slices.Equal(got, want) {
		t.Errorf("events after setWatches2: %s, want %s", describeEvents(got), describeEvents(want))
	}
	zkApply(t, wr, []zkStep{{"set", "/sw2"}, {"create", "/sw2/e"}, {"create", "/sw2r/x"}, {"set", "/sw2r/x"}, {"set", "/sw2"}})
	want = []jute.WatcherEvent{
		ev(jute.EventNodeDataChanged, "/sw2"), ev(jute.EventNodeChildrenChanged, "/sw2"),
		ev(jute.EventNodeCreated, "/sw2r/x"), ev(jute.EventNodeDataChanged, "/sw2r/x"),
		ev(jute.EventNodeDataChanged, "/sw2"),
	}
	if got := r2.Flush(); !slices.Equal(got, want) {
		t.Errorf("persistent watches after setWatches2: events %s, want %s", describeEvents(got), describeEvents(want))
	}
}

// testZKOrdering is the ordering guarantee with go-zookeeper: a writer on
// one member bumps a counter; a watcher on every member re-arms its data
// watch on each event, and what it reads after an event is always newer than
// what it read when it armed the watch.
func testZKOrdering(t *testing.T, addrs []string) {
	const n = 60
	wr := framework.ZKConnect(t, addrs[0])
	zkMustCreate(t, wr, "/order", []byte("0"), zk.FlagPersistent)
	var wg sync.WaitGroup
	errs := make(chan error, len(addrs)+1)
	for i, a := range addrs {
		w := framework.ZKConnect(t, a)
		zkSync(t, w, "/order")
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- watchCounter(w, fmt.Sprintf("member %d", i), n)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for v := 1; v <= n; v++ {
			if _, err := wr.Set("/order", []byte(strconv.Itoa(v)), -1); err != nil {
				errs <- fmt.Errorf("writer: %w", err)
				return
			}
		}
		errs <- nil
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// watchCounter follows /order until it reads n, checking the guarantee.
func watchCounter(w *zk.Conn, who string, n int) error {
	prev, prevZxid := -1, int64(-1)
	for {
		data, st, ch, err := w.GetW("/order")
		if err != nil {
			return fmt.Errorf("%s: getData: %w", who, err)
		}
		v, err := strconv.Atoi(string(data))
		if err != nil {
			return fmt.Errorf("%s: counter %q", who, data)
		}
		if prevZxid >= 0 && (st.Mzxid <= prevZxid || v <= prev) {
			return fmt.Errorf("%s: after a NodeDataChanged event read value %d (mzxid %d), no newer than %d (mzxid %d) read when the watch was set",
				who, v, st.Mzxid, prev, prevZxid)
		}
		if v == n {
			return nil
		}
		prev, prevZxid = v, st.Mzxid
		select {
		case e := <-ch:
			if e.Type != zk.EventNodeDataChanged || e.Path != "/order" || e.Err != nil {
				return fmt.Errorf("%s: event %v %q %v", who, e.Type, e.Path, e.Err)
			}
		case <-time.After(zkWait):
			return fmt.Errorf("%s: no event within %v after reading %d", who, zkWait, v)
		}
	}
}

// testZKOrderingWire checks both halves of the guarantee on the wire: no
// read shows a change of a watched node before the change's event, and
// every read after the event shows it.
func testZKOrderingWire(t *testing.T, addrs []string) {
	const n = 60
	wr := framework.ZKConnect(t, addrs[0])
	zkMustCreate(t, wr, "/orderw", []byte("0"), zk.FlagPersistent)
	r := framework.NewZKRawSession(t, addrs[1%len(addrs)], 30000)
	r.Flush()
	done := make(chan error, 1)
	go func() {
		for v := 1; v <= n; v++ {
			if _, err := wr.Set("/orderw", []byte(strconv.Itoa(v)), -1); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	arm := func() (int64, string) {
		var gd jute.GetDataResponse
		r.MustDo(jute.OpGetData, &jute.GetDataRequest{Path: "/orderw", Watch: true}, &gd)
		return gd.Stat.Mzxid, string(gd.Data)
	}
	armed, val := arm()
	deadline := time.Now().Add(3 * zkWait)
	for val != strconv.Itoa(n) {
		if time.Now().After(deadline) {
			t.Fatalf("the counter did not reach %d (last read %s)", n, val)
		}
		var gd jute.GetDataResponse
		r.MustDo(jute.OpGetData, &jute.GetDataRequest{Path: "/orderw"}, &gd)
		fired := len(r.Events) > 0
		if fired {
			if e := r.Events[0]; e != ev(jute.EventNodeDataChanged, "/orderw") || len(r.Events) != 1 {
				t.Fatalf("events %s, want one NodeDataChanged /orderw", describeEvents(r.Events))
			}
			r.Events = nil
		}
		switch {
		case !fired && gd.Stat.Mzxid != armed:
			t.Fatalf("a read returned mzxid %d (value %s) before the event for the change after mzxid %d arrived", gd.Stat.Mzxid, gd.Data, armed)
		case fired && gd.Stat.Mzxid <= armed:
			// ZooKeeper queues replies and events in the order it
			// processes them, so a reply that comes after an event shows
			// the event's change.
			t.Fatalf("the getData reply that came after the NodeDataChanged event shows mzxid %d (value %s), no newer than %d when the watch was set",
				gd.Stat.Mzxid, gd.Data, armed)
		case fired:
			prev := armed
			armed, val = arm()
			if armed < gd.Stat.Mzxid || armed <= prev {
				t.Fatalf("re-arming read mzxid %d after reading %d", armed, gd.Stat.Mzxid)
			}
			// A change between the read and the re-arm has no event coming.
		}
	}
	if err := <-done; err != nil && !errors.Is(err, zk.ErrClosing) {
		t.Fatalf("writer: %v", err)
	}
}
