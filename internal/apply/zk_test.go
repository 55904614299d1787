package apply

import (
	"errors"
	"path/filepath"
	"testing"

	"ensemble/internal/api/zk/jute"
	"ensemble/internal/backend"
	"ensemble/internal/lease"
	"ensemble/internal/mvcc"
	"ensemble/internal/zktree"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

func newZKApplier(t *testing.T) (*mvcc.Store, *Applier) {
	t.Helper()
	be, err := backend.Open(backend.Options{Path: filepath.Join(t.TempDir(), "db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { be.Close() })
	kv, err := mvcc.Open(be, nil)
	if err != nil {
		t.Fatal(err)
	}
	le := lease.New(lease.Config{MinTTL: 1})
	if err := le.Recover(be, kv); err != nil {
		t.Fatal(err)
	}
	a := New(kv, nil)
	a.SetLessor(le)
	return kv, a
}

// applyEntries runs encoded log data through DecodeEntry and the applier, as
// the apply loop does.
func applyZK(t *testing.T, a *Applier, index uint64, c *zktree.Command) zktree.Result {
	t.Helper()
	data, err := EncodeZK(index*10, c, 1)
	if err != nil {
		t.Fatal(err)
	}
	e, err := DecodeEntry(data)
	if err != nil || e.ZK == nil || e.ID != index*10 || e.Term != 1 {
		t.Fatalf("DecodeEntry = %+v, %v", e, err)
	}
	return a.ApplyZK(index, 1, e.ZK).Resp.(zktree.Result)
}

// TestEtcdWritesUnderTheTreeAreRefused checks that no etcd request can
// change a znode behind ZooKeeper's back, in any branch of a txn, and that
// writes elsewhere still pass.
func TestEtcdWritesUnderTheTreeAreRefused(t *testing.T) {
	kv, a := newZKApplier(t)
	res := applyZK(t, a, 1, &zktree.Command{Session: 0, Time: 1, Op: jute.OpCreate,
		Req: &jute.CreateRequest{Path: "/app", Data: []byte("v1"), ACL: []jute.ACL{{Perms: jute.PermAll, ID: jute.Id{Scheme: "world", ID: "anyone"}}}}})
	if res.Code != jute.CodeOK {
		t.Fatalf("create /app: %v", res.Code)
	}
	rev := kv.Rev()
	put := func(k string) *pb.RequestOp {
		return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(k)}}}
	}
	refused := []*pb.InternalRaftRequest{
		{Put: &pb.PutRequest{Key: []byte(zktree.Prefix + "n/001/app"), Value: []byte("x")}},
		{DeleteRange: &pb.DeleteRangeRequest{Key: []byte(zktree.Prefix), RangeEnd: []byte(zktree.Prefix + "\xff")}},
		{DeleteRange: &pb.DeleteRangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}}, // everything
		{Txn: &pb.TxnRequest{Failure: []*pb.RequestOp{put(zktree.Prefix + "s/1")}}},
		{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Success: []*pb.RequestOp{put(zktree.Prefix + "x")}}}}}}},
	}
	for i, r := range refused {
		if res := a.Apply(uint64(10+i), 1, r); !errors.Is(res.Err, ErrReserved) {
			t.Errorf("request %d: err %v, want ErrReserved", i, res.Err)
		}
	}
	if kv.Rev() != rev {
		t.Fatalf("refused requests moved the revision from %d to %d", rev, kv.Rev())
	}
	if res := a.Apply(20, 1, &pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte("b")}}); res.Err != nil {
		t.Fatalf("delete outside the tree: %v", res.Err)
	}
	n, err := zktree.Get(kv, "/app")
	if err != nil || string(n.Data) != "v1" {
		t.Fatalf("/app after refused writes: %+v, %v", n, err)
	}
}

// TestRevokingASessionLeaseRemovesItsEphemerals revokes a session's lease as
// an etcd client or the leader's expiry would: its ephemeral nodes go in the
// same revision, and their parent's Stat follows.
func TestRevokingASessionLeaseRemovesItsEphemerals(t *testing.T) {
	kv, a := newZKApplier(t)
	const sid = 77
	world := []jute.ACL{{Perms: jute.PermAll, ID: jute.Id{Scheme: "world", ID: "anyone"}}}
	cmds := []*zktree.Command{
		{Session: sid, Time: 1, Op: jute.OpCreateSession, Req: &zktree.SessionRequest{Timeout: 4000, Passwd: make([]byte, 16)}},
		{Session: sid, Time: 2, Op: jute.OpCreate, Req: &jute.CreateRequest{Path: "/svc", ACL: world}},
		{Session: sid, Time: 3, Op: jute.OpCreate, Req: &jute.CreateRequest{Path: "/svc/a", ACL: world, Flags: jute.ModeEphemeral}},
		{Session: sid, Time: 4, Op: jute.OpCreate, Req: &jute.CreateRequest{Path: "/svc/b", ACL: world, Flags: jute.ModeEphemeralSequential}},
	}
	for i, c := range cmds {
		if res := applyZK(t, a, uint64(i+1), c); res.Code != jute.CodeOK {
			t.Fatalf("command %d: %v", i, res.Code)
		}
	}
	if _, ok, _ := zktree.Session(kv, sid); !ok {
		t.Fatal("session record missing")
	}
	before := kv.Rev()
	if res := a.Apply(10, 1, &pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: sid}}); res.Err != nil {
		t.Fatal(res.Err)
	}
	if kv.Rev() != before+1 {
		t.Fatalf("revocation took revisions %d..%d, want one", before, kv.Rev())
	}
	names, parent, err := zktree.Children(kv, "/svc")
	if err != nil || len(names) != 0 || parent.Stat.NumChildren != 0 || parent.Stat.Pzxid != kv.Rev() {
		t.Fatalf("/svc after revocation: children %v, stat %+v, err %v", names, parent, err)
	}
	if _, ok, _ := zktree.Session(kv, sid); ok {
		t.Fatal("session record survived its lease")
	}
}

// TestZKCommandsUnderNoSpace refuses commands that take space while the
// NOSPACE alarm is raised, and lets deletions through.
func TestZKCommandsUnderNoSpace(t *testing.T) {
	_, a := newZKApplier(t)
	world := []jute.ACL{{Perms: jute.PermAll, ID: jute.Id{Scheme: "world", ID: "anyone"}}}
	if res := applyZK(t, a, 1, &zktree.Command{Time: 1, Op: jute.OpCreate, Req: &jute.CreateRequest{Path: "/x", ACL: world}}); res.Code != jute.CodeOK {
		t.Fatal(res.Code)
	}
	a.Apply(2, 1, &pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: 1, Alarm: pb.AlarmType_NOSPACE}})
	if res := applyZK(t, a, 3, &zktree.Command{Time: 2, Op: jute.OpCreate, Req: &jute.CreateRequest{Path: "/y", ACL: world}}); res.Code != jute.CodeQuotaExceeded {
		t.Fatalf("create under NOSPACE: %v", res.Code)
	}
	if res := applyZK(t, a, 4, &zktree.Command{Time: 3, Op: jute.OpDelete, Req: &jute.DeleteRequest{Path: "/x", Version: -1}}); res.Code != jute.CodeOK {
		t.Fatalf("delete under NOSPACE: %v", res.Code)
	}
}
