package zktree

import (
	"bytes"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"ensemble/internal/api/zk/jute"
	"ensemble/internal/backend"
	"ensemble/internal/lease"
	"ensemble/internal/mvcc"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// env is a tree over a real mvcc store and lessor on a temporary bbolt
// file, applied the way the apply loop does it.
type env struct {
	t     testing.TB
	be    *backend.Backend
	kv    *mvcc.Store
	le    *lease.Lessor
	tree  *Tree
	index uint64
	now   int64
	// session and auth are what commands are sent with unless a test says
	// otherwise.
	session int64
	auth    []jute.Id
	// changes are the last applied command's changes.
	changes []mvccpb.KeyValue
}

var openACLs = []jute.ACL{{Perms: jute.PermAll, ID: jute.Id{Scheme: "world", ID: "anyone"}}}

func newEnv(t testing.TB) *env {
	t.Helper()
	be, err := backend.Open(backend.Options{Path: filepath.Join(t.TempDir(), "db"), MmapSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := mvcc.Open(be, nil)
	if err != nil {
		be.Close()
		t.Fatal(err)
	}
	le := lease.New(lease.Config{MinTTL: 1})
	if err := le.Recover(be, kv); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, be: be, kv: kv, le: le, tree: New(le), now: 1_000_000}
	t.Cleanup(func() {
		kv.Close()
		be.Close()
	})
	return e
}

// apply applies c as the apply loop does and checks that the revision holds
// at most one change per key.
func (e *env) apply(c *Command) Result {
	e.t.Helper()
	e.index++
	w := e.kv.Write(e.index, 1)
	res := e.tree.Apply(w, c)
	w.End()
	e.le.ApplyChanges(w.Changes())
	e.changes = slices.Clone(w.Changes())
	seen := map[string]bool{}
	for _, ch := range e.changes {
		if seen[string(ch.Key)] {
			e.t.Fatalf("%v wrote %q twice in one revision", c.Op, ch.Key)
		}
		seen[string(ch.Key)] = true
	}
	if res.Zxid != e.kv.Rev() {
		e.t.Fatalf("%v: Zxid %d, store at %d", c.Op, res.Zxid, e.kv.Rev())
	}
	return res
}

func (e *env) cmd(op jute.OpCode, req jute.Record) *Command {
	e.now++
	return &Command{Session: e.session, Time: e.now, Auth: e.auth, Op: op, Req: req}
}

// do applies op with req from the env's session and returns the result.
func (e *env) do(op jute.OpCode, req jute.Record) Result {
	e.t.Helper()
	return e.apply(e.cmd(op, req))
}

// mustOK applies and fails the test unless the command succeeded.
func (e *env) mustOK(op jute.OpCode, req jute.Record) Result {
	e.t.Helper()
	r := e.do(op, req)
	if r.Code != jute.CodeOK {
		e.t.Fatalf("%v %+v: %v", op, req, r.Code)
	}
	return r
}

// expect applies and checks the code; a failed command must not change the
// store.
func (e *env) expect(want jute.Code, op jute.OpCode, req jute.Record) Result {
	e.t.Helper()
	before := e.kv.Rev()
	r := e.do(op, req)
	if r.Code != want {
		e.t.Fatalf("%v %+v: code %v, want %v", op, req, r.Code, want)
	}
	if want != jute.CodeOK && e.kv.Rev() != before {
		e.t.Fatalf("%v failed with %v but changed the store (%d -> %d)", op, want, before, e.kv.Rev())
	}
	return r
}

func (e *env) create(path string, data []byte, mode jute.CreateMode) string {
	e.t.Helper()
	r := e.mustOK(jute.OpCreate, &jute.CreateRequest{Path: path, Data: data, ACL: openACLs, Flags: mode})
	return r.Resp.(*jute.CreateResponse).Path
}

func (e *env) create2(path string, data []byte, mode jute.CreateMode) (string, jute.Stat) {
	e.t.Helper()
	r := e.mustOK(jute.OpCreate2, &jute.CreateRequest{Path: path, Data: data, ACL: openACLs, Flags: mode})
	resp := r.Resp.(*jute.Create2Response)
	return resp.Path, resp.Stat
}

func (e *env) createContainer(path string) {
	e.t.Helper()
	e.mustOK(jute.OpCreateContainer, &jute.CreateRequest{Path: path, ACL: openACLs, Flags: jute.ModeContainer})
}

func (e *env) createTTL(path string, ttl int64) jute.Stat {
	e.t.Helper()
	r := e.mustOK(jute.OpCreateTTL, &jute.CreateTTLRequest{Path: path, ACL: openACLs, Flags: jute.ModePersistentWithTTL, TTL: ttl})
	return r.Resp.(*jute.Create2Response).Stat
}

func (e *env) delete(path string) {
	e.t.Helper()
	e.mustOK(jute.OpDelete, &jute.DeleteRequest{Path: path, Version: -1})
}

func (e *env) setData(path string, data []byte) jute.Stat {
	e.t.Helper()
	return e.mustOK(jute.OpSetData, &jute.SetDataRequest{Path: path, Data: data, Version: -1}).Resp.(*jute.SetDataResponse).Stat
}

func (e *env) openSession(id int64, timeout int32) {
	e.t.Helper()
	r := e.apply(&Command{Session: id, Time: e.now, Op: jute.OpCreateSession, Req: &SessionRequest{Timeout: timeout, Passwd: bytes.Repeat([]byte{byte(id)}, 16)}})
	if r.Code != jute.CodeOK {
		e.t.Fatalf("create session %#x: %v", id, r.Code)
	}
}

func (e *env) closeSession(id int64) Result {
	e.t.Helper()
	return e.apply(&Command{Session: id, Time: e.now, Op: jute.OpCloseSession})
}

func (e *env) get(path string) *Node {
	e.t.Helper()
	n, err := Get(e.kv, path)
	if err != nil {
		e.t.Fatalf("get %s: %v", path, err)
	}
	return n
}

func (e *env) stat(path string) jute.Stat {
	e.t.Helper()
	return e.get(path).Stat
}

func (e *env) exists(path string) bool {
	e.t.Helper()
	_, err := Get(e.kv, path)
	if errors.Is(err, jute.CodeNoNode) {
		return false
	}
	if err != nil {
		e.t.Fatalf("get %s: %v", path, err)
	}
	return true
}

func (e *env) children(path string) []string {
	e.t.Helper()
	c, _, err := Children(e.kv, path)
	if err != nil {
		e.t.Fatalf("children %s: %v", path, err)
	}
	return c
}

// check verifies the invariants of the whole tree: every node's parent
// exists, numChildren counts the children, ephemerals carry their session's
// lease and TTL nodes are exactly those in the TTL index.
func (e *env) check() {
	e.t.Helper()
	rr, err := e.kv.Range([]byte(Prefix), prefixEnd([]byte(Prefix)), mvcc.RangeOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	nodes := map[string]record{}
	kids := map[string]int32{}
	ttls := map[string]bool{}
	for _, kv := range rr.KVs {
		k := string(kv.Key)
		switch {
		case strings.HasPrefix(k, nodePrefix):
			p, ok := nodePath(kv.Key)
			if !ok {
				e.t.Fatalf("bad node key %q", k)
			}
			var rec record
			if err := rec.decode(kv.Value); err != nil {
				e.t.Fatalf("node %s: %v", p, err)
			}
			nodes[p] = rec
			if p != "/" {
				kids[parentPath(p, lastSlash(p))]++
			}
			if rec.mode.Ephemeral() != (kv.Lease != 0) || rec.mode.Ephemeral() && rec.owner != kv.Lease {
				e.t.Errorf("node %s: mode %v, owner %#x, lease %#x", p, rec.mode, rec.owner, kv.Lease)
			}
		case strings.HasPrefix(k, ttlPrefix):
			ttls[k[len(ttlPrefix):]] = true
		}
	}
	for p, rec := range nodes {
		if p != "/" {
			if _, ok := nodes[parentPath(p, lastSlash(p))]; !ok {
				e.t.Errorf("node %s has no parent", p)
			}
		}
		if rec.numChildren != kids[p] {
			e.t.Errorf("node %s: numChildren %d, has %d", p, rec.numChildren, kids[p])
		}
		if rec.mode.TTL() != ttls[p] {
			e.t.Errorf("node %s: TTL mode %v, in TTL index %v", p, rec.mode.TTL(), ttls[p])
		}
	}
	for p := range ttls {
		if _, ok := nodes[p]; !ok {
			e.t.Errorf("TTL index names missing node %s", p)
		}
	}
}
