package zktree

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"ensemble/internal/api/zk/jute"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

func TestBootstrapByFirstCommandEvenIfItFails(t *testing.T) {
	e := newEnv(t)
	if _, err := Get(e.kv, "/"); !errors.Is(err, jute.CodeNoNode) {
		t.Fatalf("root before any command: %v", err)
	}
	r := e.do(jute.OpCreate, &jute.CreateRequest{Path: "/a/b", ACL: openACLs})
	if r.Code != jute.CodeNoNode {
		t.Fatalf("create /a/b: %v", r.Code)
	}
	rev := e.kv.Rev()
	if got := e.children("/"); !slices.Equal(got, []string{"zookeeper"}) {
		t.Fatalf("children of /: %q", got)
	}
	if got := e.children("/zookeeper"); !slices.Equal(got, []string{"config", "quota"}) {
		t.Fatalf("children of /zookeeper: %q", got)
	}
	root := e.get("/")
	// As in ZooKeeper, a fresh root has cversion -1 (2*0 creates - 1 child).
	want := jute.Stat{Czxid: rev, NumChildren: 1, Cversion: -1}
	if root.Stat != want || !slices.Equal(root.ACL, openACLs) || root.Data == nil || len(root.Data) != 0 {
		t.Fatalf("root: %+v", root)
	}
	cfg := e.get("/zookeeper/config")
	if cfg.Stat.Aversion != -1 || len(cfg.ACL) != 1 || cfg.ACL[0].Perms != jute.PermRead {
		t.Fatalf("/zookeeper/config: %+v", cfg)
	}
	if st := e.stat("/zookeeper"); st.Cversion != -2 || st.NumChildren != 2 {
		t.Fatalf("/zookeeper: %+v", st)
	}
	// Later commands leave them alone.
	e.create("/a", nil, jute.ModePersistent)
	if e.stat("/zookeeper").Czxid != rev {
		t.Fatal("/zookeeper rewritten")
	}
	e.check()
}

func TestCreateStat(t *testing.T) {
	e := newEnv(t)
	e.create("/x", nil, jute.ModePersistent) // bootstraps
	path, st := e.create2("/a", []byte("hello"), jute.ModePersistent)
	rev := e.kv.Rev()
	if path != "/a" {
		t.Fatalf("path %q", path)
	}
	want := jute.Stat{Czxid: rev, Mzxid: rev, Pzxid: rev, Ctime: e.now, Mtime: e.now, DataLength: 5}
	if st != want {
		t.Fatalf("create2 stat %+v, want %+v", st, want)
	}
	if got := e.stat("/a"); got != want {
		t.Fatalf("read stat %+v, want %+v", got, want)
	}
	root := e.stat("/")
	if root.Cversion != 1 || root.NumChildren != 3 || root.Pzxid != rev {
		t.Fatalf("root after creates: %+v", root)
	}
	// create answers with the path only.
	r := e.mustOK(jute.OpCreate, &jute.CreateRequest{Path: "/b", ACL: openACLs})
	if cr, ok := r.Resp.(*jute.CreateResponse); !ok || cr.Path != "/b" {
		t.Fatalf("create response %#v", r.Resp)
	}
	// Null and empty data stay apart.
	if d := e.get("/b").Data; d != nil {
		t.Fatalf("null data read as %q", d)
	}
	e.create("/c", []byte{}, jute.ModePersistent)
	if d := e.get("/c").Data; d == nil || len(d) != 0 {
		t.Fatalf("empty data read as %#v", d)
	}
	e.check()
}

func TestCreateErrors(t *testing.T) {
	e := newEnv(t)
	e.create("/p", nil, jute.ModePersistent)
	e.openSession(7, 10000)
	e.session = 7
	e.create("/eph", nil, jute.ModeEphemeral)
	e.session = 0
	digestOnly := []jute.ACL{{Perms: jute.PermAll, ID: jute.Id{Scheme: "digest", ID: DigestID("u:p")}}}
	e.mustOK(jute.OpCreate, &jute.CreateRequest{Path: "/locked", ACL: digestOnly})

	req := func(path string, mode jute.CreateMode) *jute.CreateRequest {
		return &jute.CreateRequest{Path: path, ACL: openACLs, Flags: mode}
	}
	for _, tc := range []struct {
		name string
		code jute.Code
		op   jute.OpCode
		req  jute.Record
	}{
		{"no parent", jute.CodeNoNode, jute.OpCreate, req("/none/x", 0)},
		{"exists", jute.CodeNodeExists, jute.OpCreate, req("/p", 0)},
		{"zookeeper exists", jute.CodeNodeExists, jute.OpCreate, req("/zookeeper", 0)},
		{"root", jute.CodeNodeExists, jute.OpCreate, req("/", 0)},
		{"relative", jute.CodeBadArguments, jute.OpCreate, req("a", 0)},
		{"empty", jute.CodeBadArguments, jute.OpCreate, req("", 0)},
		{"dot", jute.CodeBadArguments, jute.OpCreate, req("/.", 0)},
		{"dotdot", jute.CodeBadArguments, jute.OpCreate, req("/p/..", 0)},
		{"trailing slash", jute.CodeBadArguments, jute.OpCreate, req("/p/", 0)},
		{"double slash", jute.CodeBadArguments, jute.OpCreate, req("//p", 0)},
		{"nul", jute.CodeBadArguments, jute.OpCreate, req("/p\x00", 0)},
		// The parent lookup comes before the full path check, as in ZooKeeper.
		{"dot parent", jute.CodeNoNode, jute.OpCreate, req("/p/./x", 0)},
		{"bad flags", jute.CodeBadArguments, jute.OpCreate, req("/q", 7)},
		{"ttl flag on create", jute.CodeBadArguments, jute.OpCreate, req("/q", jute.ModePersistentWithTTL)},
		{"container op without flag", jute.CodeBadArguments, jute.OpCreateContainer, req("/q", 0)},
		{"ephemeral parent", jute.CodeNoChildrenForEphemerals, jute.OpCreate, req("/eph/x", 0)},
		{"no session", jute.CodeSessionExpired, jute.OpCreate, req("/q", jute.ModeEphemeral)},
		{"no create permission", jute.CodeNoAuth, jute.OpCreate, req("/locked/x", 0)},
		{"empty acl", jute.CodeInvalidACL, jute.OpCreate, &jute.CreateRequest{Path: "/q"}},
		{"ttl zero", jute.CodeBadArguments, jute.OpCreateTTL, &jute.CreateTTLRequest{Path: "/q", ACL: openACLs, Flags: jute.ModePersistentWithTTL}},
		{"ttl too big", jute.CodeBadArguments, jute.OpCreateTTL, &jute.CreateTTLRequest{Path: "/q", ACL: openACLs, Flags: jute.ModePersistentWithTTL, TTL: MaxTTL + 1}},
		{"ttl op without ttl mode", jute.CodeBadArguments, jute.OpCreateTTL, &jute.CreateTTLRequest{Path: "/q", ACL: openACLs, Flags: jute.ModePersistent, TTL: 5}},
		{"wrong request type", jute.CodeMarshallingError, jute.OpCreate, &jute.DeleteRequest{Path: "/q"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.t = t
			e.expect(tc.code, tc.op, tc.req)
		})
	}
	e.t = t
	// Errors come in ZooKeeper's order: an invalid ACL before a missing
	// parent, a missing parent before a missing permission.
	e.expect(jute.CodeInvalidACL, jute.OpCreate, &jute.CreateRequest{Path: "/none/x"})
	e.expect(jute.CodeNoNode, jute.OpCreate, &jute.CreateRequest{Path: "/locked/none/x", ACL: openACLs})
	e.check()
}

func TestCreateModes(t *testing.T) {
	e := newEnv(t)
	e.openSession(0x42, 4000)
	e.session = 0x42
	_, st := e.create2("/e", nil, jute.ModeEphemeral)
	if st.EphemeralOwner != 0x42 {
		t.Fatalf("ephemeral owner %#x", st.EphemeralOwner)
	}
	// ZooKeeper shows no owner for its extended types.
	e.createContainer("/c")
	if got := e.stat("/c").EphemeralOwner; got != 0 {
		t.Fatalf("container owner %#x", got)
	}
	st = e.createTTL("/t", 5000)
	if st.EphemeralOwner != 0 {
		t.Fatalf("TTL owner %#x", uint64(st.EphemeralOwner))
	}
	// ZooKeeper stores a plain create with the container flag as a
	// persistent node.
	_, st = e.create2("/pc", nil, jute.ModeContainer)
	if st.EphemeralOwner != 0 {
		t.Fatalf("create with container flag: owner %#x", st.EphemeralOwner)
	}
	// Containers and TTL nodes may have children, ephemerals may not.
	e.create("/c/x", nil, jute.ModePersistent)
	e.create("/t/x", nil, jute.ModePersistent)
	e.check()
}

func TestSequentialNumbersFollowCversion(t *testing.T) {
	e := newEnv(t)
	e.create("/q", nil, jute.ModePersistent)
	var got []string
	for range 3 {
		got = append(got, e.create("/q/n-", nil, jute.ModePersistentSequential))
	}
	want := []string{"/q/n-0000000000", "/q/n-0000000001", "/q/n-0000000002"}
	if !slices.Equal(got, want) {
		t.Fatalf("sequential paths %q", got)
	}
	// A plain create counts too; deletes do not: the number is the count
	// of creates ZooKeeper stores as cversion, while the cversion clients
	// see (2*creates - children) counts the deletes as well.
	e.create("/q/plain", nil, jute.ModePersistent)
	e.delete("/q/n-0000000002")
	e.delete("/q/n-0000000001")
	if st := e.stat("/q"); st.Cversion != 6 || st.NumChildren != 2 {
		t.Fatalf("parent stat after deletes %+v", st)
	}
	if p := e.create("/q/n-", nil, jute.ModePersistentSequential); p != "/q/n-0000000004" {
		t.Fatalf("after deletes: %s", p)
	}
	if st := e.stat("/q"); st.Cversion != 7 || st.NumChildren != 3 {
		t.Fatalf("parent stat %+v", st)
	}
	// A sequential create may end in "/": the suffix is the name.
	if p := e.create("/q/", nil, jute.ModePersistentSequential); p != "/q/0000000005" {
		t.Fatalf("trailing slash: %s", p)
	}
	e.openSession(9, 1000)
	e.session = 9
	if p := e.create("/q/e-", nil, jute.ModeEphemeralSequential); p != "/q/e-0000000006" {
		t.Fatalf("ephemeral sequential: %s", p)
	}
	if p := e.create("/s-", nil, jute.ModePersistentSequential); !strings.HasPrefix(p, "/s-00000000") {
		t.Fatalf("under root: %s", p)
	}
	if appendSequence("/x", -3) != "/x-000000003" {
		t.Fatalf("negative cversion: %s", appendSequence("/x", -3))
	}
	e.check()
}

func TestDelete(t *testing.T) {
	e := newEnv(t)
	e.create("/a", nil, jute.ModePersistent)
	e.create("/a/b", nil, jute.ModePersistent)
	e.setData("/a/b", []byte("v1"))
	before := e.stat("/a")

	for _, tc := range []struct {
		path string
		ver  int32
		code jute.Code
	}{
		{"/", -1, jute.CodeBadArguments},
		{"/zookeeper", -1, jute.CodeBadArguments},
		{"/zookeeper/quota", -1, jute.CodeBadArguments},
		{"/zookeeper/config", -1, jute.CodeBadArguments},
		{"nope", -1, jute.CodeBadArguments},
		{"/none", -1, jute.CodeNoNode},
		{"/none/x", -1, jute.CodeNoNode},
		{"/a/", -1, jute.CodeNoNode},
		{"/a", -1, jute.CodeNotEmpty},
		{"/a/b", 0, jute.CodeBadVersion},
		{"/a/b", 2, jute.CodeBadVersion},
	} {
		e.expect(tc.code, jute.OpDelete, &jute.DeleteRequest{Path: tc.path, Version: tc.ver})
	}
	r := e.mustOK(jute.OpDelete, &jute.DeleteRequest{Path: "/a/b", Version: 1})
	if r.Resp != nil {
		t.Fatalf("delete response %#v", r.Resp)
	}
	rev := e.kv.Rev()
	after := e.stat("/a")
	if after.NumChildren != 0 || after.Pzxid != rev || after.Cversion != before.Cversion+1 || after.Mzxid != before.Mzxid {
		t.Fatalf("parent after delete: %+v (before %+v)", after, before)
	}
	if e.exists("/a/b") {
		t.Fatal("deleted node still there")
	}
	e.delete("/a")
	// A deleted node can be created again, with a new czxid.
	_, st := e.create2("/a", nil, jute.ModePersistent)
	if st.Czxid != e.kv.Rev() || st.Version != 0 {
		t.Fatalf("recreated: %+v", st)
	}
	e.check()
}

func TestSetData(t *testing.T) {
	e := newEnv(t)
	_, created := e.create2("/a", []byte("x"), jute.ModePersistent)
	e.expect(jute.CodeBadArguments, jute.OpSetData, &jute.SetDataRequest{Path: "/a/", Version: -1})
	e.expect(jute.CodeNoNode, jute.OpSetData, &jute.SetDataRequest{Path: "/b", Version: -1})
	e.expect(jute.CodeBadVersion, jute.OpSetData, &jute.SetDataRequest{Path: "/a", Version: 3})
	r := e.mustOK(jute.OpSetData, &jute.SetDataRequest{Path: "/a", Data: []byte("hello"), Version: 0})
	st := r.Resp.(*jute.SetDataResponse).Stat
	rev := e.kv.Rev()
	want := created
	want.Version, want.Mzxid, want.Mtime, want.DataLength = 1, rev, e.now, 5
	if st != want || e.stat("/a") != want {
		t.Fatalf("after setData %+v, want %+v", st, want)
	}
	if got := string(e.get("/a").Data); got != "hello" {
		t.Fatalf("data %q", got)
	}
	// Data can be set to null.
	e.mustOK(jute.OpSetData, &jute.SetDataRequest{Path: "/a", Version: 1})
	if d := e.get("/a").Data; d != nil {
		t.Fatalf("data %q, want null", d)
	}
	// Root's data can be set.
	e.setData("/", []byte("r"))
	// The version skips -1 when it wraps, as ZooKeeper's does.
	if nextVersion(-2) != 0 || nextVersion(1<<31-1) != -1<<31 {
		t.Fatal("nextVersion")
	}
	e.check()
}

func TestSetACL(t *testing.T) {
	e := newEnv(t)
	e.create("/a", nil, jute.ModePersistent)
	user := jute.Id{Scheme: "digest", ID: DigestID("bob:secret")}
	mine := []jute.ACL{{Perms: jute.PermAll, ID: user}}
	e.expect(jute.CodeBadArguments, jute.OpSetACL, &jute.SetACLRequest{Path: "a", ACL: mine, Version: -1})
	// The ACL is checked before the node is looked for.
	e.expect(jute.CodeInvalidACL, jute.OpSetACL, &jute.SetACLRequest{Path: "/none", Version: -1})
	e.expect(jute.CodeNoNode, jute.OpSetACL, &jute.SetACLRequest{Path: "/none", ACL: mine, Version: -1})
	e.expect(jute.CodeBadVersion, jute.OpSetACL, &jute.SetACLRequest{Path: "/a", ACL: mine, Version: 1})
	r := e.mustOK(jute.OpSetACL, &jute.SetACLRequest{Path: "/a", ACL: mine, Version: 0})
	st := r.Resp.(*jute.SetACLResponse).Stat
	if st.Aversion != 1 || st.Mzxid == e.kv.Rev() {
		t.Fatalf("setACL stat %+v", st)
	}
	n := e.get("/a")
	if !slices.Equal(n.ACL, mine) || n.Stat != st {
		t.Fatalf("after setACL: %+v", n)
	}
	// Now only bob may change it again.
	e.expect(jute.CodeNoAuth, jute.OpSetACL, &jute.SetACLRequest{Path: "/a", ACL: openACLs, Version: -1})
	e.expect(jute.CodeNoAuth, jute.OpSetData, &jute.SetDataRequest{Path: "/a", Version: -1})
	e.expect(jute.CodeNoAuth, jute.OpCreate, &jute.CreateRequest{Path: "/a/b", ACL: openACLs})
	e.auth = []jute.Id{{Scheme: "ip", ID: "127.0.0.1"}, user}
	e.mustOK(jute.OpCreate, &jute.CreateRequest{Path: "/a/b", ACL: openACLs})
	e.mustOK(jute.OpSetACL, &jute.SetACLRequest{Path: "/a", ACL: openACLs, Version: 1})
	e.auth = nil
	e.check()
}

func TestCheck(t *testing.T) {
	e := newEnv(t)
	e.create("/a", nil, jute.ModePersistent)
	e.setData("/a", []byte("x"))
	e.expect(jute.CodeBadArguments, jute.OpCheck, &jute.CheckVersionRequest{Path: "/a/", Version: 1})
	e.expect(jute.CodeNoNode, jute.OpCheck, &jute.CheckVersionRequest{Path: "/b", Version: 1})
	e.expect(jute.CodeBadVersion, jute.OpCheck, &jute.CheckVersionRequest{Path: "/a", Version: 0})
	rev := e.kv.Rev()
	r := e.mustOK(jute.OpCheck, &jute.CheckVersionRequest{Path: "/a", Version: 1})
	if e.kv.Rev() != rev {
		t.Fatal("check wrote something")
	}
	if st := r.Resp.(*jute.SetDataResponse).Stat; st.Version != 1 {
		t.Fatalf("check stat %+v", st)
	}
	e.mustOK(jute.OpCheck, &jute.CheckVersionRequest{Path: "/a", Version: -1})
	// check needs READ.
	noRead := []jute.ACL{{Perms: jute.PermAll &^ jute.PermRead, ID: jute.Id{Scheme: "world", ID: "anyone"}}}
	e.mustOK(jute.OpCreate, &jute.CreateRequest{Path: "/w", ACL: noRead})
	e.expect(jute.CodeNoAuth, jute.OpCheck, &jute.CheckVersionRequest{Path: "/w", Version: -1})
}

func TestStatAfterSequence(t *testing.T) {
	e := newEnv(t)
	_, st := e.create2("/s", []byte("abc"), jute.ModePersistent)
	czxid, ctime := st.Czxid, st.Ctime
	e.create("/s/a", nil, jute.ModePersistent)
	e.create("/s/b", nil, jute.ModePersistent)
	e.setData("/s", []byte("defg"))
	mzxid, mtime := e.kv.Rev(), e.now
	e.delete("/s/a")
	pzxid := e.kv.Rev()
	e.mustOK(jute.OpSetACL, &jute.SetACLRequest{Path: "/s", ACL: openACLs, Version: -1})
	e.setData("/s", []byte("hi"))
	mzxid2, mtime2 := e.kv.Rev(), e.now

	want := jute.Stat{
		Czxid: czxid, Mzxid: mzxid2, Ctime: ctime, Mtime: mtime2,
		Version: 2, Cversion: 3, Aversion: 1, DataLength: 2, NumChildren: 1, Pzxid: pzxid,
	}
	if got := e.stat("/s"); got != want {
		t.Fatalf("stat %+v, want %+v", got, want)
	}
	if mzxid >= mzxid2 || mtime >= mtime2 {
		t.Fatal("times did not move")
	}
	if all, err := AllChildrenNumber(e.kv, "/s"); err != nil || all != 1 {
		t.Fatalf("all children %d, %v", all, err)
	}
}

func TestChildrenAmongSiblingsAndCousins(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"/a", "/ab", "/a0", "/a/b", "/a/c", "/a/b/c", "/a/b/d", "/ab/x", "/a/bb", "/a/b/c/d"} {
		e.create(p, nil, jute.ModePersistent)
	}
	for _, tc := range []struct {
		path string
		want []string
		all  int32
	}{
		{"/", []string{"a", "a0", "ab", "zookeeper"}, 13},
		{"/a", []string{"b", "bb", "c"}, 6},
		{"/a/b", []string{"c", "d"}, 3},
		{"/ab", []string{"x"}, 1},
		{"/a/b/c/d", nil, 0},
	} {
		got, n, err := Children(e.kv, tc.path)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("children of %s: %q, %v; want %q", tc.path, got, err, tc.want)
			continue
		}
		if n.Stat.NumChildren != int32(len(tc.want)) {
			t.Errorf("children of %s: node says %d", tc.path, n.Stat.NumChildren)
		}
		all, err := AllChildrenNumber(e.kv, tc.path)
		if err != nil || all != tc.all {
			t.Errorf("all children of %s: %d, %v; want %d", tc.path, all, err, tc.all)
		}
	}
	if _, _, err := Children(e.kv, "/none"); !errors.Is(err, jute.CodeNoNode) {
		t.Fatalf("children of missing node: %v", err)
	}
	if _, err := AllChildrenNumber(e.kv, "/none"); !errors.Is(err, jute.CodeNoNode) {
		t.Fatalf("all children of missing node: %v", err)
	}
	if _, err := Get(e.kv, "/a/"); !errors.Is(err, jute.CodeBadArguments) {
		t.Fatalf("get of invalid path: %v", err)
	}
	// Many siblings: listing reads just them.
	for i := range 50 {
		e.create(fmt.Sprintf("/a/c/%02d", i), nil, jute.ModePersistent)
	}
	if got := e.children("/a/c"); len(got) != 50 || got[0] != "00" || got[49] != "49" {
		t.Fatalf("50 children: %q", got)
	}
	e.check()
}

func TestDepthLimit(t *testing.T) {
	e := newEnv(t)
	// One multi builds the deepest chain a key can hold (and exercises an
	// overlay of a thousand nodes).
	var ops []jute.MultiOp
	p := ""
	for range maxDepth {
		p += "/d"
		ops = append(ops, jute.MultiOp{Type: jute.OpCreate, Op: &jute.CreateRequest{Path: p, ACL: openACLs}})
	}
	r := e.mustOK(jute.OpMulti, &jute.MultiRequest{Ops: ops})
	if res := r.Resp.(*jute.MultiResponse).Results; len(res) != maxDepth || res[maxDepth-1].Path != p {
		t.Fatalf("multi results: %d", len(res))
	}
	e.expect(jute.CodeBadArguments, jute.OpCreate, &jute.CreateRequest{Path: p + "/d", ACL: openACLs})
	if _, err := Get(e.kv, p+"/d"); !errors.Is(err, jute.CodeBadArguments) {
		t.Fatalf("get too deep: %v", err)
	}
	if got := e.children(p); len(got) != 0 {
		t.Fatalf("children of the deepest: %q", got)
	}
	if n, err := AllChildrenNumber(e.kv, "/d"); err != nil || n != maxDepth-1 {
		t.Fatalf("all children: %d, %v", n, err)
	}
	e.check()
}

func TestUnknownOp(t *testing.T) {
	e := newEnv(t)
	e.create("/x", nil, jute.ModePersistent)
	e.expect(jute.CodeUnimplemented, jute.OpGetData, &jute.GetDataRequest{Path: "/"})
	e.expect(jute.CodeMarshallingError, jute.OpSetACL, &jute.DeleteRequest{})
	e.expect(jute.CodeMarshallingError, jute.OpMulti, nil)
}

func TestValidPath(t *testing.T) {
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{"/", true}, {"/a", true}, {"/a/b", true}, {"/a.b", true}, {"/...", true}, {"/.a", true},
		{"/a..", true}, {"/a/.b./c", true}, {"/ünï", true}, {"/\u00a0", true}, {"/\ufffd", false},
		{"", false}, {"a", false}, {"/a/", false}, {"//", false}, {"/a//b", false},
		{"/.", false}, {"/..", false}, {"/a/./b", false}, {"/a/../b", false}, {"/a/.", false},
		{"/a\x00", false}, {"/a\x01", false}, {"/a\x1f", false}, {"/a\x7f", false}, {"/a\u0085", false},
		{"/a\ud7ff", true}, {"/\ue000", false}, {"/\uf8ff", false}, {"/\uf900", true}, {"/\ufff0", false},
		{"/\U0001F600", false}, {"/\xff", false},
	} {
		if got := validPath(tc.path); got != tc.ok {
			t.Errorf("validPath(%q) = %v, want %v", tc.path, got, tc.ok)
		}
	}
}

func TestRecordRoundTrip(t *testing.T) {
	in := record{
		czxid: 3, mzxid: 4, ctime: 5, mtime: 6, version: -7, cversion: 8, aversion: 9, owner: -10,
		pzxid: 11, numChildren: 12, mode: jute.ModePersistentSequentialWithTTL, ttl: 13,
		acl: openACL, data: []byte("data"),
	}
	buf := make([]byte, in.size())
	in.encodeTo(buf)
	var out record
	if err := out.decode(buf); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(in) != fmt.Sprint(out) {
		t.Fatalf("round trip:\n%+v\n%+v", in, out)
	}
	for i := range buf {
		if err := out.decode(buf[:i]); err == nil && i < headerLen+1+len(openACL) {
			t.Fatalf("truncated to %d bytes decoded", i)
		}
	}
	buf[0] = 2
	if err := out.decode(buf); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("unknown version: %v", err)
	}
}

// TestDecodeFromHistory reads nodes and sessions back the way a reader of
// the etcd API or of the store's history sees them.
func TestDecodeFromHistory(t *testing.T) {
	if p, ok := PathOfKey([]byte(Prefix + "n/002/a/b")); !ok || p != "/a/b" {
		t.Errorf("PathOfKey = %q, %v", p, ok)
	}
	for _, k := range []string{Prefix + "n/00x/a", Prefix + "s/0000000000000001", "other"} {
		if _, ok := PathOfKey([]byte(k)); ok {
			t.Errorf("PathOfKey(%q) accepted", k)
		}
	}
	if id, ok := SessionOfKey(sessionKey(-5)); !ok || id != -5 {
		t.Errorf("SessionOfKey = %d, %v", id, ok)
	}
	if _, ok := SessionOfKey([]byte(Prefix + "s/zz")); ok {
		t.Error("SessionOfKey accepted a bad key")
	}
	buf := EncodeNode(&Node{Data: []byte("payload"), Stat: jute.Stat{Version: 3, Mzxid: 9, EphemeralOwner: 11}})
	n, err := DecodeNode(&mvccpb.KeyValue{Key: []byte(Prefix + "n/001/x"), Value: buf, CreateRevision: 7})
	if err != nil || string(n.Data) != "payload" || n.Stat.Version != 3 || n.Stat.Mzxid != 9 || n.Stat.Czxid != 7 || n.Stat.EphemeralOwner != 11 {
		t.Fatalf("DecodeNode = %+v, %v", n, err)
	}
	if _, err := DecodeNode(&mvccpb.KeyValue{Value: []byte{9}}); err == nil {
		t.Error("DecodeNode accepted garbage")
	}
}
