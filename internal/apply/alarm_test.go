package apply

import (
	"errors"
	"path/filepath"
	"testing"

	"ensemble/internal/backend"
	"ensemble/internal/mvcc"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

type alarmEnv struct {
	t     *testing.T
	be    *backend.Backend
	kv    *mvcc.Store
	a     *Applier
	index uint64
}

func newAlarmEnv(t *testing.T, path string) *alarmEnv {
	t.Helper()
	be, err := backend.Open(backend.Options{Path: path, MmapSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := mvcc.Open(be, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &alarmEnv{t: t, be: be, kv: kv, a: New(kv, nil)}
	if err := e.a.LoadAlarms(be); err != nil {
		t.Fatal(err)
	}
	ci, _ := kv.ConsistentIndex()
	e.index = ci
	return e
}

func (e *alarmEnv) close() {
	e.kv.Close()
	e.be.Close()
}

func (e *alarmEnv) apply(r *pb.InternalRaftRequest) *Result {
	e.index++
	res := e.a.Apply(e.index, 1, r)
	if ci, _ := e.kv.ConsistentIndex(); ci != e.index {
		e.t.Fatalf("applied index %d after entry %d", ci, e.index)
	}
	return res
}

func alarmReq(action pb.AlarmRequest_AlarmAction, member uint64, t pb.AlarmType) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{Alarm: &pb.AlarmRequest{Action: action, MemberID: member, Alarm: t}}
}

func putReq(k string) *pb.InternalRaftRequest {
	return &pb.InternalRaftRequest{Put: &pb.PutRequest{Key: []byte(k), Value: []byte("v")}}
}

func TestNoSpaceAlarmRefusesGrowthOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	e := newAlarmEnv(t, path)
	if res := e.apply(putReq("a")); res.Err != nil {
		t.Fatal(res.Err)
	}
	res := e.apply(alarmReq(pb.AlarmRequest_ACTIVATE, 7, pb.AlarmType_NOSPACE))
	if got := res.Resp.(*pb.AlarmResponse).Alarms; len(got) != 1 || got[0].MemberID != 7 {
		t.Fatalf("activate answered %v", got)
	}
	// Activating again changes nothing and answers with nothing.
	res = e.apply(alarmReq(pb.AlarmRequest_ACTIVATE, 7, pb.AlarmType_NOSPACE))
	if got := res.Resp.(*pb.AlarmResponse).Alarms; len(got) != 0 {
		t.Fatalf("second activate answered %v", got)
	}
	rev := e.kv.Rev()

	refused := []*pb.InternalRaftRequest{
		putReq("b"),
		{Txn: &pb.TxnRequest{Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("b")}}}}}},
		{LeaseGrant: &pb.LeaseGrantRequest{TTL: 10, ID: 1}},
	}
	for _, r := range refused {
		if res := e.apply(r); !errors.Is(res.Err, ErrNoSpace) {
			t.Fatalf("%v under NOSPACE: %v", r, res.Err)
		}
	}
	allowed := []*pb.InternalRaftRequest{
		{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("zzz")}},
		{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte("a")}}}}}},
		{Compaction: &pb.CompactionRequest{Revision: rev}},
	}
	for _, r := range allowed {
		if res := e.apply(r); res.Err != nil {
			t.Fatalf("%v under NOSPACE: %v", r, res.Err)
		}
	}
	if e.kv.Rev() != rev+1 {
		t.Fatalf("revision %d, want %d: only the txn delete writes", e.kv.Rev(), rev+1)
	}

	// The alarm is in the database.
	e.kv.Commit()
	e.close()
	e = newAlarmEnv(t, path)
	defer e.close()
	got := e.apply(alarmReq(pb.AlarmRequest_GET, 0, pb.AlarmType_NONE)).Resp.(*pb.AlarmResponse).Alarms
	if len(got) != 1 || got[0].Alarm != pb.AlarmType_NOSPACE || got[0].MemberID != 7 {
		t.Fatalf("alarms after reopen: %v", got)
	}
	if res := e.apply(putReq("b")); !errors.Is(res.Err, ErrNoSpace) {
		t.Fatalf("put after reopen: %v", res.Err)
	}
	res = e.apply(alarmReq(pb.AlarmRequest_DEACTIVATE, 7, pb.AlarmType_NOSPACE))
	if got := res.Resp.(*pb.AlarmResponse).Alarms; len(got) != 1 {
		t.Fatalf("deactivate answered %v", got)
	}
	if res := e.apply(putReq("b")); res.Err != nil {
		t.Fatalf("put after disarm: %v", res.Err)
	}
	if got := e.a.Alarms(pb.AlarmType_NONE); len(got) != 0 {
		t.Fatalf("alarms after disarm: %v", got)
	}
}

func TestCorruptAlarmRefusesWritesAndClearAlarms(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	e := newAlarmEnv(t, path)
	e.apply(alarmReq(pb.AlarmRequest_ACTIVATE, 1, pb.AlarmType_CORRUPT))
	e.apply(alarmReq(pb.AlarmRequest_ACTIVATE, 2, pb.AlarmType_NOSPACE))
	if res := e.apply(&pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("a")}}); !errors.Is(res.Err, ErrCorrupt) {
		t.Fatalf("delete under CORRUPT: %v", res.Err)
	}
	if got := e.a.Alarms(pb.AlarmType_CORRUPT); len(got) != 1 || got[0].MemberID != 1 {
		t.Fatalf("CORRUPT alarms: %v", got)
	}
	if err := ClearAlarms(e.be); err != nil {
		t.Fatal(err)
	}
	e.kv.Commit()
	e.close()
	e = newAlarmEnv(t, path)
	defer e.close()
	if got := e.a.Alarms(pb.AlarmType_NONE); len(got) != 0 {
		t.Fatalf("alarms after clearing: %v", got)
	}
}

func TestRequestCost(t *testing.T) {
	putOp := &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("k"), Value: []byte("vv")}}}
	cases := []struct {
		r    *pb.InternalRaftRequest
		want int
	}{
		{putReq("k"), kvOverhead + 2},
		{&pb.InternalRaftRequest{Range: &pb.RangeRequest{Key: []byte("k")}}, 0},
		{&pb.InternalRaftRequest{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("k")}}, 0},
		{&pb.InternalRaftRequest{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{putOp, putOp}, Failure: []*pb.RequestOp{putOp}}}, 2 * (kvOverhead + 3)},
		{&pb.InternalRaftRequest{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{Success: []*pb.RequestOp{putOp}}}}}}}, kvOverhead + 3},
		{&pb.InternalRaftRequest{LeaseGrant: &pb.LeaseGrantRequest{TTL: 5}}, leaseOverhead},
		{alarmReq(pb.AlarmRequest_ACTIVATE, 1, pb.AlarmType_NOSPACE), 0},
	}
	for i, c := range cases {
		if got := RequestCost(c.r); got != c.want {
			t.Errorf("case %d: cost %d, want %d", i, got, c.want)
		}
	}
}
