package etcd

import (
	"bytes"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// The checks etcd makes before a request reaches the log, with its errors.

func checkRange(r *pb.RangeRequest) error {
	if len(r.Key) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	if _, ok := pb.RangeRequest_SortOrder_name[int32(r.SortOrder)]; !ok {
		return rpctypes.ErrGRPCInvalidSortOption
	}
	if _, ok := pb.RangeRequest_SortTarget_name[int32(r.SortTarget)]; !ok {
		return rpctypes.ErrGRPCInvalidSortOption
	}
	return nil
}

func checkPut(r *pb.PutRequest) error {
	if len(r.Key) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	if r.IgnoreValue && len(r.Value) != 0 {
		return rpctypes.ErrGRPCValueProvided
	}
	if r.IgnoreLease && r.Lease != 0 {
		return rpctypes.ErrGRPCLeaseProvided
	}
	return nil
}

func checkDeleteRange(r *pb.DeleteRangeRequest) error {
	if len(r.Key) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	return nil
}

func checkTxn(r *pb.TxnRequest, maxOps int) error {
	if len(r.Compare) > maxOps || len(r.Success) > maxOps || len(r.Failure) > maxOps {
		return rpctypes.ErrGRPCTooManyOps
	}
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			if err := checkOp(op, maxOps); err != nil {
				return err
			}
		}
	}
	if _, _, err := txnWrites(r.Success); err != nil {
		return err
	}
	if _, _, err := txnWrites(r.Failure); err != nil {
		return err
	}
	return nil
}

func checkOp(op *pb.RequestOp, maxOps int) error {
	switch r := op.Request.(type) {
	case *pb.RequestOp_RequestRange:
		return checkRange(r.RequestRange)
	case *pb.RequestOp_RequestPut:
		return checkPut(r.RequestPut)
	case *pb.RequestOp_RequestDeleteRange:
		return checkDeleteRange(r.RequestDeleteRange)
	case *pb.RequestOp_RequestTxn:
		return checkTxn(r.RequestTxn, maxOps)
	}
	return nil
}

// interval is a key range [start, end); end nil means the single key start.
type interval struct{ start, end []byte }

func (iv interval) contains(key []byte) bool {
	if iv.end == nil {
		return bytes.Equal(iv.start, key)
	}
	if len(iv.end) == 1 && iv.end[0] == 0 { // from-key
		return bytes.Compare(key, iv.start) >= 0
	}
	return bytes.Compare(key, iv.start) >= 0 && bytes.Compare(key, iv.end) < 0
}

// txnWrites collects the keys put and the ranges deleted by one branch, nested
// txns included, and refuses a key written twice: etcd's rule that a txn may
// not put the same key twice nor put a key it also deletes. Nested txns'
// success and failure branches are alternatives, so each is checked against
// the outer branch separately.
func txnWrites(ops []*pb.RequestOp) (puts map[string]struct{}, dels []interval, err error) {
	puts = map[string]struct{}{}
	for _, op := range ops {
		switch r := op.Request.(type) {
		case *pb.RequestOp_RequestPut:
			k := string(r.RequestPut.Key)
			if _, dup := puts[k]; dup {
				return nil, nil, rpctypes.ErrGRPCDuplicateKey
			}
			puts[k] = struct{}{}
		case *pb.RequestOp_RequestDeleteRange:
			d := r.RequestDeleteRange
			iv := interval{start: d.Key, end: d.RangeEnd}
			if len(d.RangeEnd) == 0 {
				iv.end = nil
			}
			dels = append(dels, iv)
		}
	}
	for _, op := range ops {
		nested, ok := op.Request.(*pb.RequestOp_RequestTxn)
		if !ok {
			continue
		}
		for _, branch := range [][]*pb.RequestOp{nested.RequestTxn.Success, nested.RequestTxn.Failure} {
			bp, bd, err := txnWrites(branch)
			if err != nil {
				return nil, nil, err
			}
			for k := range bp {
				if _, dup := puts[k]; dup {
					return nil, nil, rpctypes.ErrGRPCDuplicateKey
				}
				for _, iv := range dels {
					if iv.contains([]byte(k)) {
						return nil, nil, rpctypes.ErrGRPCDuplicateKey
					}
				}
			}
			for _, iv := range bd {
				for k := range puts {
					if iv.contains([]byte(k)) {
						return nil, nil, rpctypes.ErrGRPCDuplicateKey
					}
				}
			}
		}
	}
	for k := range puts {
		for _, iv := range dels {
			if iv.contains([]byte(k)) {
				return nil, nil, rpctypes.ErrGRPCDuplicateKey
			}
		}
	}
	return puts, dels, nil
}
