package apply

import (
	"testing"

	"ensemble/internal/api/zk/jute"
	"ensemble/internal/zktree"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// FuzzDecode feeds arbitrary log data to the entry decoder: it must return a
// request or an error, never panic, and what it decodes must encode again.
func FuzzDecode(f *testing.F) {
	for _, r := range []*pb.InternalRaftRequest{
		{Put: &pb.PutRequest{Key: []byte("k"), Value: []byte("v")}},
		{DeleteRange: &pb.DeleteRangeRequest{Key: []byte("a"), RangeEnd: []byte("b")}},
		{Txn: &pb.TxnRequest{Compare: []*pb.Compare{{Key: []byte("k")}}, Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("k")}}}}}},
		{Compaction: &pb.CompactionRequest{Revision: 7, Physical: true}},
	} {
		b, err := EncodeEtcd(r, 3)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{kindEtcd, 0xff, 0xff, 0xff})
	f.Add([]byte{99})
	zkData, err := EncodeZK(9, &zktree.Command{Session: 5, Time: 6, Op: jute.OpDelete, Req: &jute.DeleteRequest{Path: "/a", Version: -1}}, 3)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(zkData)
	f.Add([]byte{kindZK, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := DecodeEntry(data)
		if err != nil {
			return
		}
		switch {
		case e.Etcd != nil:
			if _, err := EncodeEtcd(e.Etcd, e.Term); err != nil {
				t.Fatalf("decoded request does not encode: %v", err)
			}
		case e.ZK != nil:
			if _, err := EncodeZK(e.ID, e.ZK, e.Term); err != nil {
				t.Fatalf("decoded command does not encode: %v", err)
			}
		}
	})
}
