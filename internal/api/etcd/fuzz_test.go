package etcd

import (
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// FuzzRequestDecoding decodes arbitrary bytes as the requests clients send
// (as the gRPC codec does) and runs the server's validation on them: neither
// may panic, whatever the bytes.
func FuzzRequestDecoding(f *testing.F) {
	seed := []gogoMessage{
		&pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("b"), Limit: 3, SortOrder: pb.RangeRequest_DESCEND},
		&pb.PutRequest{Key: []byte("k"), Value: []byte("v"), PrevKv: true},
		&pb.TxnRequest{Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{}}}}},
	}
	for _, m := range seed {
		b, err := codec{}.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var rr pb.RangeRequest
		if (codec{}).Unmarshal(data, &rr) == nil {
			_ = checkRange(&rr)
		}
		var pr pb.PutRequest
		if (codec{}).Unmarshal(data, &pr) == nil {
			_ = checkPut(&pr)
		}
		var dr pb.DeleteRangeRequest
		if (codec{}).Unmarshal(data, &dr) == nil {
			_ = checkDeleteRange(&dr)
		}
		var tr pb.TxnRequest
		if (codec{}).Unmarshal(data, &tr) == nil {
			_ = checkTxn(&tr, 128)
		}
	})
}
