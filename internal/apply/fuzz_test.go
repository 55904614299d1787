package apply

import (
	"testing"

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
	f.Fuzz(func(t *testing.T, data []byte) {
		r, term, err := Decode(data)
		if err != nil || r == nil {
			return
		}
		if _, err := EncodeEtcd(r, term); err != nil {
			t.Fatalf("decoded request does not encode: %v", err)
		}
	})
}
