package apply

import (
	"errors"
	"path/filepath"
	"testing"

	"ensemble/internal/backend"
	"ensemble/internal/lease"
	"ensemble/internal/mvcc"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// TestLeaseRequests applies grants, puts with leases and a revoke the way
// the apply loop does, then replays the log against the stored state after a
// restart: the result is the same state, whatever the replay's answers.
func TestLeaseRequests(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	open := func() (*backend.Backend, *mvcc.Store, *Applier) {
		be, err := backend.Open(backend.Options{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		kv, err := mvcc.Open(be, nil)
		if err != nil {
			t.Fatal(err)
		}
		le := lease.New(lease.Config{MinTTL: 5})
		if err := le.Recover(be, kv); err != nil {
			t.Fatal(err)
		}
		a := New(kv, nil)
		a.SetLessor(le)
		return be, kv, a
	}
	be, kv, a := open()
	log := []*pb.InternalRaftRequest{
		{LeaseGrant: &pb.LeaseGrantRequest{ID: 7, TTL: 1}},
		{Put: &pb.PutRequest{Key: []byte("a"), Value: []byte("1"), Lease: 7}},
		{Txn: &pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("b"), Lease: 7}}}}}},
		{Put: &pb.PutRequest{Key: []byte("c"), Lease: 8}},
		{LeaseCheckpoint: &pb.LeaseCheckpointRequest{Checkpoints: []*pb.LeaseCheckpoint{{ID: 7, Remaining_TTL: 3}}}},
		{LeaseGrant: &pb.LeaseGrantRequest{ID: 7, TTL: 10}},
		{LeaseRevoke: &pb.LeaseRevokeRequest{ID: 9}},
	}
	var results []*Result
	for i, r := range log {
		results = append(results, a.Apply(uint64(i+1), 1, r))
	}
	if g, ok := results[0].Resp.(*pb.LeaseGrantResponse); !ok || g.ID != 7 || g.TTL != 5 {
		t.Fatalf("grant = %+v", results[0])
	}
	if !errors.Is(results[3].Err, ErrLeaseNotFound) {
		t.Fatalf("put with an unknown lease: %v", results[3].Err)
	}
	if !errors.Is(results[5].Err, lease.ErrLeaseExists) || !errors.Is(results[6].Err, lease.ErrLeaseNotFound) {
		t.Fatalf("duplicate grant %v, revoke of unknown %v", results[5].Err, results[6].Err)
	}
	rev := kv.Rev()
	kv.Close()
	be.Close()

	// A restart replays entries the store may already hold.
	be, kv, a = open()
	defer be.Close()
	defer kv.Close()
	for i, r := range log {
		if ci, _ := kv.ConsistentIndex(); uint64(i+1) > ci {
			a.Apply(uint64(i+1), 1, r)
		}
	}
	in, err := a.lessor.Lookup(7, true)
	if err != nil || in.TTL != 5 || in.Checkpointed != 3 || len(in.Keys) != 2 {
		t.Fatalf("lease after restart = %+v, %v", in, err)
	}
	res := a.Apply(uint64(len(log)+1), 1, &pb.InternalRaftRequest{LeaseRevoke: &pb.LeaseRevokeRequest{ID: 7}})
	if res.Err != nil || res.Resp.(*pb.LeaseRevokeResponse).Header.Revision != rev+1 {
		t.Fatalf("revoke = %+v, %v; want revision %d", res.Resp, res.Err, rev+1)
	}
	rr, err := kv.Range([]byte("a"), []byte("z"), mvcc.RangeOptions{})
	if err != nil || len(rr.KVs) != 0 {
		t.Fatalf("keys after revoke = %v, %v", rr, err)
	}
}
