package compat

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"ensemble/internal/api/zk/jute"
	"ensemble/tests/framework"

	"github.com/go-zookeeper/zk"
)

// TestZKOps drives every ZooKeeper operation with go-zookeeper, and the ones
// it lacks with the raw client, on one member and on three (clients spread
// over the members).
func TestZKOps(t *testing.T) {
	zkClusters(t, func(t *testing.T, c *framework.InProcessCluster, addrs []string) {
		t.Run("StatFields", func(t *testing.T) { testZKStatFields(t, addrs) })
		t.Run("Create2AndReplyZxid", func(t *testing.T) { testZKCreate2(t, addrs) })
		t.Run("Sequential", func(t *testing.T) { testZKSequential(t, addrs) })
		t.Run("Ephemeral", func(t *testing.T) { testZKEphemeral(t, addrs) })
		t.Run("Container", func(t *testing.T) { testZKContainer(t, addrs) })
		t.Run("TTL", func(t *testing.T) { testZKTTL(t, addrs) })
		t.Run("Children", func(t *testing.T) { testZKChildren(t, addrs) })
		t.Run("Multi", func(t *testing.T) { testZKMulti(t, addrs) })
		t.Run("MultiRead", func(t *testing.T) { testZKMultiRead(t, addrs) })
		t.Run("Sync", func(t *testing.T) { testZKSync(t, addrs) })
		t.Run("Sessions", func(t *testing.T) { testZKSessions(t, addrs) })
		t.Run("PingAndWhoAmI", func(t *testing.T) { testZKPingWhoAmI(t, addrs) })
		t.Run("CloseSession", func(t *testing.T) { testZKCloseSession(t, addrs) })
	})
}

// testZKStatFields follows every Stat field through a sequence of changes.
func testZKStatFields(t *testing.T, addrs []string) {
	cl := framework.ZKConnect(t, addrs[0])
	before := time.Now().UnixMilli()
	p := zkMustCreate(t, cl, "/stat", []byte("abc"), zk.FlagPersistent)
	after := time.Now().UnixMilli()
	if p != "/stat" {
		t.Fatalf("create returned %q", p)
	}
	st0 := zkMustStat(t, cl, "/stat")
	if st0.Czxid <= 0 || st0.Mzxid != st0.Czxid || st0.Pzxid != st0.Czxid {
		t.Errorf("new node: czxid %d mzxid %d pzxid %d, want all equal and positive", st0.Czxid, st0.Mzxid, st0.Pzxid)
	}
	if st0.Version != 0 || st0.Cversion != 0 || st0.Aversion != 0 || st0.EphemeralOwner != 0 || st0.DataLength != 3 || st0.NumChildren != 0 {
		t.Errorf("new node stat %+v", st0)
	}
	// Same machine: ctime is the wall clock of the create, give or take
	// a second of clock reading.
	if st0.Ctime != st0.Mtime || st0.Ctime < before-1000 || st0.Ctime > after+1000 {
		t.Errorf("new node ctime %d mtime %d, want equal and within [%d, %d]", st0.Ctime, st0.Mtime, before, after)
	}

	st1, err := cl.Set("/stat", []byte("hello!"), 0)
	if err != nil {
		t.Fatalf("set version 0: %v", err)
	}
	if st1.Version != 1 || st1.Mzxid <= st0.Mzxid || st1.Czxid != st0.Czxid || st1.Pzxid != st0.Pzxid ||
		st1.Ctime != st0.Ctime || st1.Mtime < st0.Mtime || st1.DataLength != 6 || st1.Cversion != 0 {
		t.Errorf("after setData: %+v (before %+v)", *st1, st0)
	}
	if got := zkMustStat(t, cl, "/stat"); got != *st1 {
		t.Errorf("exists after setData %+v, setData returned %+v", got, *st1)
	}
	st2, err := cl.Set("/stat", []byte{}, -1)
	if err != nil || st2.Version != 2 || st2.DataLength != 0 {
		t.Errorf("set version -1: %+v %v", st2, err)
	}

	zkMustCreate(t, cl, "/stat/c1", nil, zk.FlagPersistent)
	c1 := zkMustStat(t, cl, "/stat/c1")
	st3 := zkMustStat(t, cl, "/stat")
	if st3.Cversion != 1 || st3.NumChildren != 1 || st3.Pzxid != c1.Czxid || st3.Mzxid != st2.Mzxid || st3.Version != 2 {
		t.Errorf("parent after a child create: %+v, child czxid %d", st3, c1.Czxid)
	}
	zkMustCreate(t, cl, "/stat/c2", nil, zk.FlagPersistent)
	c2 := zkMustStat(t, cl, "/stat/c2")
	if c2.Czxid <= c1.Czxid {
		t.Errorf("czxid went from %d to %d", c1.Czxid, c2.Czxid)
	}
	if err := cl.Delete("/stat/c1", 0); err != nil {
		t.Fatalf("delete child: %v", err)
	}
	// ZooKeeper stores the count of child creates (the next sequence
	// number) and shows cversion as 2*creates - children, so that deletes
	// count too (DataNode.copyStat; checked against ZooKeeper 3.8.0).
	st4 := zkMustStat(t, cl, "/stat")
	if st4.Cversion != 3 || st4.NumChildren != 1 || st4.Pzxid <= c2.Czxid || st4.Mzxid != st2.Mzxid {
		t.Errorf("parent after 2 child creates and a delete: %+v, want cversion 3, 1 child, pzxid > %d", st4, c2.Czxid)
	}
	// A child's data is not the parent's business.
	if _, err := cl.Set("/stat/c2", []byte("x"), -1); err != nil {
		t.Fatal(err)
	}
	if st5 := zkMustStat(t, cl, "/stat"); st5 != st4 {
		t.Errorf("parent changed by a child's setData: %+v, was %+v", st5, st4)
	}

	acl := []zk.ACL{{Perms: zk.PermAll, Scheme: "world", ID: "anyone"}}
	st6, err := cl.SetACL("/stat", acl, 0)
	if err != nil {
		t.Fatalf("setACL version 0: %v", err)
	}
	if st6.Aversion != 1 || st6.Version != st4.Version || st6.Cversion != st4.Cversion || st6.Mzxid != st4.Mzxid || st6.Mtime != st4.Mtime {
		t.Errorf("after setACL: %+v (before %+v); only aversion changes", *st6, st4)
	}
	got, gst, err := cl.GetACL("/stat")
	if err != nil || !slices.Equal(got, acl) || *gst != *st6 {
		t.Errorf("getACL: %v %+v %v, want %v %+v", got, gst, err, acl, *st6)
	}
	data, gst2 := zkMustGet(t, cl, "/stat")
	if len(data) != 0 || gst2 != *st6 {
		t.Errorf("getData: %q %+v, want empty data and %+v", data, gst2, *st6)
	}

	// The root and /zookeeper exist from the start.
	root, _, err := cl.Children("/")
	if err != nil || !slices.Contains(root, "zookeeper") || !slices.Contains(root, "stat") {
		t.Errorf("children of /: %v %v, want zookeeper and stat among them", root, err)
	}
}

// testZKCreate2 checks create2 (which go-zookeeper never sends) and that a
// write's reply carries the write's zxid, which Stat fields then show.
func testZKCreate2(t *testing.T, addrs []string) {
	r := framework.NewZKRawSession(t, addrs[0], 30000)
	var cr jute.Create2Response
	r.MustDo(jute.OpCreate2, &jute.CreateRequest{Path: "/c2", Data: []byte("xy"), ACL: rawWorld}, &cr)
	createZxid := r.Zxid
	if cr.Path != "/c2" || cr.Stat.Czxid != createZxid || cr.Stat.Mzxid != createZxid || cr.Stat.Pzxid != createZxid ||
		cr.Stat.DataLength != 2 || cr.Stat.Version != 0 {
		t.Errorf("create2 reply %+v at zxid %d", cr, createZxid)
	}
	var ex jute.ExistsResponse
	r.MustDo(jute.OpExists, &jute.ExistsRequest{Path: "/c2"}, &ex)
	if ex.Stat != cr.Stat {
		t.Errorf("exists %+v, create2 returned %+v", ex.Stat, cr.Stat)
	}
	var plain jute.CreateResponse
	r.MustDo(jute.OpCreate, &jute.CreateRequest{Path: "/c2/child", ACL: rawWorld}, &plain)
	if plain.Path != "/c2/child" {
		t.Errorf("create reply path %q", plain.Path)
	}
	childZxid := r.Zxid
	r.MustDo(jute.OpDelete, &jute.DeleteRequest{Path: "/c2/child", Version: -1}, nil)
	deleteZxid := r.Zxid
	if deleteZxid <= childZxid || childZxid <= createZxid {
		t.Errorf("reply zxids create %d, child create %d, delete %d: want increasing", createZxid, childZxid, deleteZxid)
	}
	r.MustDo(jute.OpExists, &jute.ExistsRequest{Path: "/c2"}, &ex)
	if ex.Stat.Pzxid != deleteZxid || ex.Stat.Cversion != 2 || ex.Stat.Mzxid != createZxid {
		t.Errorf("parent after child create+delete: %+v, want pzxid %d (the delete), cversion 2", ex.Stat, deleteZxid)
	}
	var sd jute.SetDataResponse
	r.MustDo(jute.OpSetData, &jute.SetDataRequest{Path: "/c2", Data: []byte("z"), Version: 0}, &sd)
	if sd.Stat.Mzxid != r.Zxid || sd.Stat.Version != 1 {
		t.Errorf("setData reply %+v at zxid %d", sd.Stat, r.Zxid)
	}
	// A read's reply carries the member's last zxid, never one older than
	// what this session already saw.
	before := r.Zxid
	r.MustDo(jute.OpGetData, &jute.GetDataRequest{Path: "/c2"}, &jute.GetDataResponse{})
	if r.Zxid < before {
		t.Errorf("getData reply zxid %d older than the session's last write %d", r.Zxid, before)
	}
}

var rawWorld = []jute.ACL{{Perms: jute.PermAll, ID: jute.Id{Scheme: "world", ID: "anyone"}}}

var seqSuffix = regexp.MustCompile(`^\d{10}$`)

// testZKSequential checks that the suffix is the parent's cversion, ten
// digits wide; cversion counts child creates only.
func testZKSequential(t *testing.T, addrs []string) {
	cl := framework.ZKConnect(t, addrs[0])
	zkMustCreate(t, cl, "/seq", nil, zk.FlagPersistent)
	want := func(got, path string) {
		t.Helper()
		if got != path {
			t.Errorf("sequential create gave %q, want %q", got, path)
		}
	}
	want(zkMustCreate(t, cl, "/seq/x-", nil, zk.FlagSequence), "/seq/x-0000000000")
	want(zkMustCreate(t, cl, "/seq/x-", nil, zk.FlagSequence), "/seq/x-0000000001")
	zkMustCreate(t, cl, "/seq/plain", nil, zk.FlagPersistent) // cversion 3
	if err := cl.Delete("/seq/plain", -1); err != nil {       // still 3
		t.Fatal(err)
	}
	want(zkMustCreate(t, cl, "/seq/y-", nil, zk.FlagEphemeralSequential), "/seq/y-0000000003")
	// A trailing slash makes the suffix the whole name.
	want(zkMustCreate(t, cl, "/seq/", nil, zk.FlagSequence), "/seq/0000000004")
	if st := zkMustStat(t, cl, "/seq"); st.Cversion != 6 || st.NumChildren != 4 {
		t.Errorf("parent %+v, want cversion 6 (2 x five creates - 4 children) and 4 children", st)
	}
	// Concurrent creates from every member never share a number.
	seen := map[string]bool{}
	conns := make([]*zk.Conn, len(addrs))
	for i := range addrs {
		conns[i] = framework.ZKConnect(t, addrs[i])
	}
	zkMustCreate(t, cl, "/seqc", nil, zk.FlagPersistent)
	type res struct {
		p   string
		err error
	}
	out := make(chan res, 30)
	for i := range 30 {
		go func() {
			p, err := conns[i%len(conns)].Create("/seqc/n-", nil, zk.FlagSequence, zkWorld)
			out <- res{p, err}
		}()
	}
	for range 30 {
		r := <-out
		if r.err != nil {
			t.Errorf("concurrent sequential create: %v", r.err)
			continue
		}
		suffix := r.p[len("/seqc/n-"):]
		if !seqSuffix.MatchString(suffix) || seen[r.p] {
			t.Errorf("sequential create gave %q (seen before: %v)", r.p, seen[r.p])
		}
		seen[r.p] = true
	}
	for i := range 30 {
		if p := fmt.Sprintf("/seqc/n-%010d", i); !seen[p] {
			t.Errorf("no node %s among the 30 concurrent creates", p)
		}
	}
}

// testZKEphemeral checks ephemeralOwner, getEphemerals, and that an
// ephemeral goes on every member when its session closes.
func testZKEphemeral(t *testing.T, addrs []string) {
	owner := framework.ZKConnect(t, addrs[0])
	zkMustCreate(t, owner, "/eph", nil, zk.FlagPersistent)
	zkMustCreate(t, owner, "/eph/sub", nil, zk.FlagPersistent)
	zkMustCreate(t, owner, "/eph/a", []byte("1"), zk.FlagEphemeral)
	zkMustCreate(t, owner, "/eph/sub/b", nil, zk.FlagEphemeral)
	if st := zkMustStat(t, owner, "/eph/a"); st.EphemeralOwner != owner.SessionID() {
		t.Errorf("ephemeralOwner %#x, want the session %#x", st.EphemeralOwner, owner.SessionID())
	}
	if st := zkMustStat(t, owner, "/eph"); st.EphemeralOwner != 0 {
		t.Errorf("persistent node with ephemeralOwner %#x", st.EphemeralOwner)
	}

	// getEphemerals through a raw session of its own.
	r := framework.NewZKRawSession(t, addrs[len(addrs)-1], 30000)
	for _, p := range []string{"/eph/r1", "/eph/sub/r2", "/ephx"} {
		r.MustDo(jute.OpCreate, &jute.CreateRequest{Path: p, ACL: rawWorld, Flags: jute.ModeEphemeral}, &jute.CreateResponse{})
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"/", []string{"/eph/r1", "/eph/sub/r2", "/ephx"}},
		{"", []string{"/eph/r1", "/eph/sub/r2", "/ephx"}},
		{"/eph", []string{"/eph/r1", "/eph/sub/r2", "/ephx"}},
		{"/eph/", []string{"/eph/r1", "/eph/sub/r2"}},
		{"/eph/sub", []string{"/eph/sub/r2"}},
		{"/none", nil},
	} {
		var ge jute.GetEphemeralsResponse
		r.MustDo(jute.OpGetEphemerals, &jute.GetEphemeralsRequest{PrefixPath: tc.prefix}, &ge)
		if got := sortedCopy(ge.Ephemerals); !slices.Equal(got, tc.want) {
			t.Errorf("getEphemerals(%q) = %v, want %v", tc.prefix, got, tc.want)
		}
	}

	// Watchers on every member see the owner's ephemerals go.
	var watches []<-chan zk.Event
	watchers := make([]*zk.Conn, len(addrs))
	for i, a := range addrs {
		watchers[i] = framework.ZKConnect(t, a)
		ok, _, ch, err := watchers[i].ExistsW("/eph/a")
		if err != nil || !ok {
			t.Fatalf("member %d: exists /eph/a: %v %v", i, ok, err)
		}
		watches = append(watches, ch)
	}
	owner.Close()
	for i, ch := range watches {
		zkWantEvent(t, fmt.Sprintf("member %d watch on /eph/a", i), ch, zk.EventNodeDeleted, "/eph/a")
		for _, p := range []string{"/eph/a", "/eph/sub/b"} {
			if ok, _, err := watchers[i].Exists(p); ok || err != nil {
				t.Errorf("member %d: %s still there after its session closed (%v)", i, p, err)
			}
		}
		if ok, _, err := watchers[i].Exists("/eph/r1"); !ok || err != nil {
			t.Errorf("member %d: another session's ephemeral went too (%v)", i, err)
		}
	}
	if st := zkMustStat(t, watchers[0], "/eph"); st.NumChildren != 2 {
		t.Errorf("/eph has %d children after the session closed, want 2 (sub, r1)", st.NumChildren)
	}
}

// testZKContainer checks a container's Stat and its removal once its last
// child goes, whether deleted or an ephemeral of a closed session.
func testZKContainer(t *testing.T, addrs []string) {
	cl := framework.ZKConnect(t, addrs[0])
	other := framework.ZKConnect(t, addrs[len(addrs)-1])
	p, err := cl.CreateContainer("/ctr", []byte("c"), zk.FlagContainer, zkWorld)
	if err != nil || p != "/ctr" {
		t.Fatalf("createContainer: %q %v", p, err)
	}
	// ZooKeeper keeps its container mark internal and shows 0.
	if st := zkMustStat(t, cl, "/ctr"); st.EphemeralOwner != 0 {
		t.Errorf("container ephemeralOwner %#x, want 0", uint64(st.EphemeralOwner))
	}
	zkMustCreate(t, cl, "/ctr/a", nil, zk.FlagPersistent)
	zkMustCreate(t, cl, "/ctr/b", nil, zk.FlagPersistent)
	if err := cl.Delete("/ctr/a", -1); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := cl.Exists("/ctr"); !ok || err != nil {
		t.Errorf("container gone while it still has a child: %v", err)
	}
	if err := cl.Delete("/ctr/b", -1); err != nil {
		t.Fatal(err)
	}
	zkWaitGone(t, other, "/ctr", zkWait)

	// An ephemeral child of a closed session empties the container too.
	if _, err := cl.CreateContainer("/ctr2", nil, zk.FlagContainer, zkWorld); err != nil {
		t.Fatal(err)
	}
	eph := framework.ZKConnect(t, addrs[len(addrs)-1])
	zkMustCreate(t, eph, "/ctr2/e", nil, zk.FlagEphemeral)
	eph.Close()
	zkWaitGone(t, other, "/ctr2", zkWait)
}

// testZKTTL checks createTTL: the Stat, expiry of an untouched childless
// node, and that a node with a child is kept.
func testZKTTL(t *testing.T, addrs []string) {
	cl := framework.ZKConnect(t, addrs[0])
	other := framework.ZKConnect(t, addrs[len(addrs)-1])
	ttl := 500 * time.Millisecond
	p, err := cl.CreateTTL("/ttl-kept", []byte("k"), zk.FlagTTL, zkWorld, ttl)
	if err != nil || p != "/ttl-kept" {
		t.Fatalf("createTTL: %q %v", p, err)
	}
	zkMustCreate(t, cl, "/ttl-kept/child", nil, zk.FlagPersistent)
	p, err = cl.CreateTTL("/ttl-gone", []byte("g"), zk.FlagTTL, zkWorld, ttl)
	if err != nil || p != "/ttl-gone" {
		t.Fatalf("createTTL: %q %v", p, err)
	}
	// ZooKeeper keeps its TTL mark internal and shows 0.
	if st := zkMustStat(t, cl, "/ttl-gone"); st.EphemeralOwner != 0 {
		t.Errorf("TTL node ephemeralOwner %#x, want 0", uint64(st.EphemeralOwner))
	}
	seqPath, err := cl.CreateTTL("/ttl-seq-", nil, zk.FlagPersistentSequentialWithTTL, zkWorld, time.Hour)
	if err != nil || !strings.HasPrefix(seqPath, "/ttl-seq-") || !seqSuffix.MatchString(strings.TrimPrefix(seqPath, "/ttl-seq-")) {
		t.Fatalf("sequential createTTL: %q %v", seqPath, err)
	}
	zkWaitGone(t, other, "/ttl-gone", zkWait)
	// Both had the same TTL; the one with a child must have survived the
	// reaper's pass that took the other.
	if ok, _, err := other.Exists("/ttl-kept"); !ok || err != nil {
		t.Errorf("TTL node with a child expired: %v", err)
	}
	if ok, _, err := other.Exists(seqPath); !ok || err != nil {
		t.Errorf("TTL node of an hour expired after a second: %v", err)
	}
	// Once the child goes, the TTL node expires too.
	if err := cl.Delete("/ttl-kept/child", -1); err != nil {
		t.Fatal(err)
	}
	zkWaitGone(t, other, "/ttl-kept", zkWait)
}

// testZKChildren checks getChildren, getChildren2 and getAllChildrenNumber.
func testZKChildren(t *testing.T, addrs []string) {
	cl := framework.ZKConnect(t, addrs[0])
	for _, p := range []string{"/kids", "/kids/a", "/kids/b", "/kids/c", "/kids/a/x", "/kids/a/y", "/kids/a/x/deep", "/kidsibling"} {
		zkMustCreate(t, cl, p, nil, zk.FlagPersistent)
	}
	kids, st, err := cl.Children("/kids")
	if err != nil || !slices.Equal(sortedCopy(kids), []string{"a", "b", "c"}) {
		t.Errorf("getChildren2 /kids: %v %v", kids, err)
	}
	if want := zkMustStat(t, cl, "/kids"); st == nil || *st != want || st.NumChildren != 3 {
		t.Errorf("getChildren2 stat %+v, exists says %+v", st, want)
	}
	if kids, _, err := cl.Children("/kids/b"); err != nil || len(kids) != 0 {
		t.Errorf("children of a leaf: %v %v", kids, err)
	}

	r := framework.NewZKRawSession(t, addrs[len(addrs)-1], 30000)
	var gc jute.GetChildrenResponse
	r.MustDo(jute.OpGetChildren, &jute.GetChildrenRequest{Path: "/kids/a"}, &gc)
	if got := sortedCopy(gc.Children); !slices.Equal(got, []string{"x", "y"}) {
		t.Errorf("getChildren /kids/a: %v", got)
	}
	for _, tc := range []struct {
		path string
		want int32
	}{{"/kids", 6}, {"/kids/a", 3}, {"/kids/b", 0}} {
		var n jute.GetAllChildrenNumberResponse
		r.MustDo(jute.OpGetAllChildrenNumber, &jute.GetAllChildrenNumberRequest{Path: tc.path}, &n)
		if n.TotalNumber != tc.want {
			t.Errorf("getAllChildrenNumber(%s) = %d, want %d", tc.path, n.TotalNumber, tc.want)
		}
	}
	r.WantCode("getAllChildrenNumber of a missing node", jute.OpGetAllChildrenNumber, &jute.GetAllChildrenNumberRequest{Path: "/kids/none"}, jute.CodeNoNode)
	r.WantCode("getChildren of a missing node", jute.OpGetChildren, &jute.GetChildrenRequest{Path: "/kids/none"}, jute.CodeNoNode)
}

// testZKMulti checks multi: every op's result on success, and on failure
// nothing applied, the failing op's code in its slot, OK before it and
// RUNTIMEINCONSISTENCY after it, with an OK reply header as ZooKeeper sends.
func testZKMulti(t *testing.T, addrs []string) {
	cl := framework.ZKConnect(t, addrs[0])
	zkMustCreate(t, cl, "/multi", nil, zk.FlagPersistent)
	res, err := cl.Multi(
		&zk.CreateRequest{Path: "/multi/a", Data: []byte("1"), Acl: zkWorld},
		&zk.CreateRequest{Path: "/multi/b", Acl: zkWorld},
		&zk.SetDataRequest{Path: "/multi/a", Data: []byte("22"), Version: 0},
		&zk.CheckVersionRequest{Path: "/multi/b", Version: 0},
		&zk.DeleteRequest{Path: "/multi/b", Version: 0},
		&zk.CreateRequest{Path: "/multi/s-", Acl: zkWorld, Flags: zk.FlagSequence},
	)
	if err != nil || len(res) != 6 {
		t.Fatalf("multi: %v, %d results", err, len(res))
	}
	for i, r := range res {
		if r.Error != nil {
			t.Errorf("multi op %d: %v", i, r.Error)
		}
	}
	if res[0].String != "/multi/a" || res[1].String != "/multi/b" || res[5].String != "/multi/s-0000000002" {
		t.Errorf("multi create results %q %q %q", res[0].String, res[1].String, res[5].String)
	}
	if res[2].Stat == nil || res[2].Stat.Version != 1 || res[2].Stat.DataLength != 2 {
		t.Errorf("multi setData result %+v", res[2].Stat)
	}
	data, st := zkMustGet(t, cl, "/multi/a")
	// One multi is one transaction: one zxid for all its changes.
	if string(data) != "22" || st.Version != 1 || st.Czxid != st.Mzxid {
		t.Errorf("/multi/a after multi: %q %+v, want data 22, version 1, czxid = mzxid", data, st)
	}
	if ok, _, _ := cl.Exists("/multi/b"); ok {
		t.Errorf("/multi/b created and deleted in one multi still exists")
	}
	if pst := zkMustStat(t, cl, "/multi"); pst.Pzxid != st.Czxid || pst.Cversion != 4 || pst.NumChildren != 2 {
		t.Errorf("parent after multi %+v, want pzxid %d, cversion 4 (2 x 3 creates - 2 children) and 2 children", pst, st.Czxid)
	}

	before := zkMustStat(t, cl, "/multi")
	res, err = cl.Multi(
		&zk.CreateRequest{Path: "/multi/c", Acl: zkWorld},
		&zk.CheckVersionRequest{Path: "/multi/a", Version: 7},
		&zk.CreateRequest{Path: "/multi/d", Acl: zkWorld},
	)
	zkWantErr(t, "multi with a failing check", err, zk.ErrBadVersion)
	if len(res) != 3 {
		t.Fatalf("failed multi gave %d results, want 3", len(res))
	}
	if res[0].Error != nil || res[1].Error != zk.ErrBadVersion || res[2].Error == nil {
		t.Errorf("failed multi results: %v, %v, %v", res[0].Error, res[1].Error, res[2].Error)
	}
	for _, p := range []string{"/multi/c", "/multi/d"} {
		if ok, _, _ := cl.Exists(p); ok {
			t.Errorf("%s created by a failed multi", p)
		}
	}
	if after := zkMustStat(t, cl, "/multi"); after != before {
		t.Errorf("failed multi changed the parent: %+v, was %+v", after, before)
	}

	// The same on the wire, where the codes are exact.
	r := framework.NewZKRawSession(t, addrs[len(addrs)-1], 30000)
	var mr jute.MultiResponse
	h, err := r.Call(jute.OpMulti, &jute.MultiRequest{Ops: []jute.MultiOp{
		{Type: jute.OpCreate, Op: &jute.CreateRequest{Path: "/multi/e", ACL: rawWorld}},
		{Type: jute.OpDelete, Op: &jute.DeleteRequest{Path: "/multi/none", Version: -1}},
		{Type: jute.OpSetData, Op: &jute.SetDataRequest{Path: "/multi/a", Version: -1}},
	}}, &mr)
	if err != nil {
		t.Fatal(err)
	}
	if h.Err != jute.CodeOK {
		t.Errorf("failed multi reply header err %v, want OK (ZooKeeper reports a multi's failure in its results)", h.Err)
	} else {
		want := []jute.Code{jute.CodeOK, jute.CodeNoNode, jute.CodeRuntimeInconsistency}
		if len(mr.Results) != len(want) {
			t.Fatalf("failed multi: %d results", len(mr.Results))
		}
		for i, w := range want {
			if mr.Results[i].Type != jute.OpError || mr.Results[i].Err != w {
				t.Errorf("failed multi result %d: type %v err %v, want error %v", i, mr.Results[i].Type, mr.Results[i].Err, w)
			}
		}
	}
	// create2, createTTL and createContainer in a multi answer with a Stat.
	mr = jute.MultiResponse{}
	r.MustDo(jute.OpMulti, &jute.MultiRequest{Ops: []jute.MultiOp{
		{Type: jute.OpCreate2, Op: &jute.CreateRequest{Path: "/multi/f", Data: []byte("f"), ACL: rawWorld}},
		{Type: jute.OpCreateContainer, Op: &jute.CreateRequest{Path: "/multi/g", ACL: rawWorld, Flags: jute.ModeContainer}},
		{Type: jute.OpCreateTTL, Op: &jute.CreateTTLRequest{Path: "/multi/h", ACL: rawWorld, Flags: jute.ModePersistentWithTTL, TTL: 3600000}},
		{Type: jute.OpCheck, Op: &jute.CheckVersionRequest{Path: "/multi/f", Version: 0}},
	}}, &mr)
	if len(mr.Results) != 4 {
		t.Fatalf("multi of creates: %d results", len(mr.Results))
	}
	for i, p := range []string{"/multi/f", "/multi/g", "/multi/h"} {
		res := mr.Results[i]
		if res.Type != jute.OpCreate2 || res.Path != p || res.Stat.Czxid != r.Zxid {
			t.Errorf("multi result %d: %+v, want a create2 result for %s at zxid %d", i, res, p, r.Zxid)
		}
	}
	if mr.Results[3].Type != jute.OpCheck {
		t.Errorf("multi check result %+v", mr.Results[3])
	}
}

// testZKMultiRead checks multiRead: reads of one snapshot, each with its own
// result or error, never all-or-nothing.
func testZKMultiRead(t *testing.T, addrs []string) {
	cl := framework.ZKConnect(t, addrs[0])
	zkMustCreate(t, cl, "/mr", nil, zk.FlagPersistent)
	zkMustCreate(t, cl, "/mr/a", []byte("A"), zk.FlagPersistent)
	zkMustCreate(t, cl, "/mr/b", nil, zk.FlagPersistent)
	ast := zkMustStat(t, cl, "/mr/a")
	r := framework.NewZKRawSession(t, addrs[len(addrs)-1], 30000)
	r.MustDo(jute.OpSync, &jute.SyncRequest{Path: "/mr"}, &jute.SyncResponse{})
	var mr jute.MultiResponse
	h, err := r.Call(jute.OpMultiRead, &jute.MultiRequest{Ops: []jute.MultiOp{
		{Type: jute.OpGetData, Op: &jute.GetDataRequest{Path: "/mr/a"}},
		{Type: jute.OpGetChildren, Op: &jute.GetChildrenRequest{Path: "/mr"}},
		{Type: jute.OpGetData, Op: &jute.GetDataRequest{Path: "/mr/none"}},
		{Type: jute.OpGetChildren, Op: &jute.GetChildrenRequest{Path: "/mr/b"}},
	}}, &mr)
	if err != nil || h.Err != jute.CodeOK {
		t.Fatalf("multiRead: %v %v", err, h.Err)
	}
	if len(mr.Results) != 4 {
		t.Fatalf("multiRead: %d results, want 4", len(mr.Results))
	}
	if res := mr.Results[0]; res.Type != jute.OpGetData || string(res.Data) != "A" || res.Stat != juteStat(ast) {
		t.Errorf("multiRead getData result %+v, want data A and %+v", res, ast)
	}
	if res := mr.Results[1]; res.Type != jute.OpGetChildren || !slices.Equal(sortedCopy(res.Children), []string{"a", "b"}) {
		t.Errorf("multiRead getChildren result %+v", res)
	}
	if res := mr.Results[2]; res.Type != jute.OpError || res.Err != jute.CodeNoNode {
		t.Errorf("multiRead of a missing node: %+v, want error NONODE", res)
	}
	if res := mr.Results[3]; res.Type != jute.OpGetChildren || len(res.Children) != 0 {
		t.Errorf("multiRead getChildren of a leaf: %+v", res)
	}
}

// testZKSync checks that after sync a client on another member reads what a
// write on the first member made.
func testZKSync(t *testing.T, addrs []string) {
	writer := framework.ZKConnect(t, addrs[0])
	reader := framework.ZKConnect(t, addrs[1%len(addrs)])
	for i := range 20 {
		p := fmt.Sprintf("/sync-%d", i)
		zkMustCreate(t, writer, p, []byte(p), zk.FlagPersistent)
		got, err := reader.Sync(p)
		if err != nil || got != p {
			t.Fatalf("sync %s: %q %v", p, got, err)
		}
		if data, _ := zkMustGet(t, reader, p); string(data) != p {
			t.Fatalf("after sync, %s reads %q", p, data)
		}
	}
}

// testZKSessions checks timeout negotiation and the refusals a connect can
// meet: an expired or closed session, a wrong password, and a client that
// has seen a later zxid than the member.
func testZKSessions(t *testing.T, addrs []string) {
	for _, tc := range []struct{ ask, want int32 }{
		{1000, 4000},    // raised to 2 ticks
		{10000, 10000},  // kept
		{100000, 40000}, // lowered to 20 ticks
	} {
		r := framework.NewZKRawSession(t, addrs[0], tc.ask)
		if r.Timeout != tc.want {
			t.Errorf("asked for a %d ms session, got %d ms, want %d", tc.ask, r.Timeout, tc.want)
		}
	}

	// A live session resumes on any member with its password.
	r := framework.NewZKRawSession(t, addrs[0], 30000)
	r.MustDo(jute.OpCreate, &jute.CreateRequest{Path: "/sess-eph", ACL: rawWorld, Flags: jute.ModeEphemeral}, &jute.CreateResponse{})
	last := r.Zxid
	r.Conn.Close()
	r2, resp, err := framework.ResumeZKRaw(t, addrs[len(addrs)-1], r.Session, r.Passwd, last)
	if err != nil || resp.SessionID != r.Session || !slices.Equal(resp.Passwd, r.Passwd) || resp.TimeOut != 30000 {
		t.Fatalf("resuming session %#x: %+v %v", r.Session, resp, err)
	}
	var ge jute.GetEphemeralsResponse
	r2.MustDo(jute.OpGetEphemerals, &jute.GetEphemeralsRequest{PrefixPath: "/"}, &ge)
	if !slices.Equal(ge.Ephemerals, []string{"/sess-eph"}) {
		t.Errorf("resumed session owns %v, want [/sess-eph]", ge.Ephemerals)
	}

	// A wrong password is refused as ZooKeeper refuses it: timeout 0,
	// session 0, then the connection closes.
	bad := append([]byte(nil), r.Passwd...)
	bad[0] ^= 0xff
	r3, resp, err := framework.ResumeZKRaw(t, addrs[0], r.Session, bad, 0)
	if err != nil || resp.TimeOut != 0 || resp.SessionID != 0 {
		t.Errorf("wrong password: %+v %v, want timeout 0 and session 0", resp, err)
	} else {
		r3.ExpectClosed("after refusing a wrong password")
	}

	// A client that saw a later zxid than the member must go elsewhere: no
	// answer, the connection closes.
	r4 := framework.DialZKRaw(t, addrs[0])
	if err := r4.WriteFrame((&jute.ConnectRequest{LastZxidSeen: 1 << 50, TimeOut: 30000, Passwd: make([]byte, 16)}).Encode); err != nil {
		t.Fatal(err)
	}
	r4.ExpectClosedSilently("connect with lastZxidSeen ahead of the member")

	// Closed: the ephemeral is gone and the session cannot resume.
	r2.MustDo(jute.OpCloseSession, nil, nil)
	r5, resp, err := framework.ResumeZKRaw(t, addrs[0], r.Session, r.Passwd, 0)
	if err != nil || resp.TimeOut != 0 || resp.SessionID != 0 {
		t.Errorf("resuming a closed session: %+v %v, want timeout 0 and session 0 (SESSIONEXPIRED)", resp, err)
	} else {
		r5.ExpectClosed("after refusing a closed session")
	}
}

// testZKPingWhoAmI checks ping and whoAmI.
func testZKPingWhoAmI(t *testing.T, addrs []string) {
	r := framework.NewZKRawSession(t, addrs[0], 30000)
	r.MustDo(jute.OpCreate, &jute.CreateRequest{Path: "/ping", ACL: rawWorld}, &jute.CreateResponse{})
	seen := r.Zxid
	h, err := r.CallXid(jute.XidPing, jute.OpPing, nil, nil)
	if err != nil || h.Err != jute.CodeOK || h.Xid != jute.XidPing {
		t.Errorf("ping: %+v %v", h, err)
	}
	if h.Zxid < seen {
		t.Errorf("ping reply zxid %d, older than the session's write at %d", h.Zxid, seen)
	}

	var who jute.WhoAmIResponse
	r.MustDo(jute.OpWhoAmI, nil, &who)
	if !slices.Contains(who.ClientInfo, jute.ClientInfo{AuthScheme: "ip", User: "127.0.0.1"}) || len(who.ClientInfo) != 1 {
		t.Errorf("whoAmI without auth: %+v, want just ip 127.0.0.1", who.ClientInfo)
	}
	h, err = r.CallXid(jute.XidAuth, jute.OpAuth, &jute.AuthPacket{Scheme: "digest", Auth: []byte("alice:secret")}, nil)
	if err != nil || h.Err != jute.CodeOK || h.Xid != jute.XidAuth {
		t.Fatalf("auth: %+v %v", h, err)
	}
	who = jute.WhoAmIResponse{}
	r.MustDo(jute.OpWhoAmI, nil, &who)
	if !slices.Contains(who.ClientInfo, jute.ClientInfo{AuthScheme: "digest", User: "alice"}) ||
		!slices.Contains(who.ClientInfo, jute.ClientInfo{AuthScheme: "ip", User: "127.0.0.1"}) {
		t.Errorf("whoAmI after digest auth: %+v, want digest alice and ip 127.0.0.1", who.ClientInfo)
	}
}

// testZKCloseSession checks closeSession on the wire: OK, then the server
// closes the connection, and the session's ephemerals go everywhere.
func testZKCloseSession(t *testing.T, addrs []string) {
	watcher := framework.ZKConnect(t, addrs[len(addrs)-1])
	r := framework.NewZKRawSession(t, addrs[0], 30000)
	r.MustDo(jute.OpCreate, &jute.CreateRequest{Path: "/closing", ACL: rawWorld, Flags: jute.ModeEphemeral}, &jute.CreateResponse{})
	if _, err := watcher.Sync("/closing"); err != nil {
		t.Fatal(err)
	}
	ok, _, ch, err := watcher.ExistsW("/closing")
	if err != nil || !ok {
		t.Fatalf("exists /closing: %v %v", ok, err)
	}
	r.MustDo(jute.OpCloseSession, nil, nil)
	r.ExpectClosed("after closeSession")
	zkWantEvent(t, "watch on the closed session's ephemeral", ch, zk.EventNodeDeleted, "/closing")
}
