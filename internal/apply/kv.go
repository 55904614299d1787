package apply

import (
	"bytes"
	"errors"
	"sort"

	"ensemble/internal/mvcc"
	"ensemble/internal/types"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Errors that applying a request can return. They are deterministic: every
// member returns the same one for the same entry.
var (
	ErrKeyNotFound   = errors.New("apply: key not found")
	ErrLeaseNotFound = errors.New("apply: requested lease not found")
)

// Reader is what a range needs: the store itself for reads outside the log,
// or the write transaction of a txn, which sees the txn's own earlier writes.
type Reader interface {
	Range(key, end []byte, o mvcc.RangeOptions) (*mvcc.RangeResult, error)
}

// Range executes a RangeRequest with etcd's semantics: filters and sorting
// other than ascending by key need every match, so the limit is applied after
// them; one extra key is read to tell whether there are more.
func Range(r Reader, req *pb.RangeRequest) (*pb.RangeResponse, error) {
	needAll := (req.SortOrder != pb.RangeRequest_NONE && !(req.SortTarget == pb.RangeRequest_KEY && req.SortOrder == pb.RangeRequest_ASCEND)) ||
		(req.SortOrder == pb.RangeRequest_NONE && req.SortTarget != pb.RangeRequest_KEY) ||
		req.MinModRevision != 0 || req.MaxModRevision != 0 ||
		req.MinCreateRevision != 0 || req.MaxCreateRevision != 0
	limit := req.Limit
	if needAll {
		limit = 0
	} else if limit > 0 {
		limit++
	}
	rr, err := r.Range(req.Key, req.RangeEnd, mvcc.RangeOptions{
		Limit:     limit,
		Rev:       req.Revision,
		CountOnly: req.CountOnly,
		KeysOnly:  req.KeysOnly,
	})
	if err != nil {
		return nil, err
	}
	kvs := rr.KVs
	if req.MinModRevision != 0 || req.MaxModRevision != 0 || req.MinCreateRevision != 0 || req.MaxCreateRevision != 0 {
		kept := kvs[:0]
		for _, kv := range kvs {
			if (req.MinModRevision != 0 && kv.ModRevision < req.MinModRevision) ||
				(req.MaxModRevision != 0 && kv.ModRevision > req.MaxModRevision) ||
				(req.MinCreateRevision != 0 && kv.CreateRevision < req.MinCreateRevision) ||
				(req.MaxCreateRevision != 0 && kv.CreateRevision > req.MaxCreateRevision) {
				continue
			}
			kept = append(kept, kv)
		}
		kvs = kept
	}
	sortKVs(kvs, req.SortOrder, req.SortTarget)
	resp := &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: rr.Rev}, Count: int64(rr.Count)}
	if req.Limit > 0 && int64(len(kvs)) > req.Limit {
		kvs = kvs[:req.Limit]
		resp.More = true
	}
	if req.CountOnly {
		return resp, nil
	}
	resp.Kvs = make([]*mvccpb.KeyValue, len(kvs))
	for i := range kvs {
		if req.KeysOnly {
			kvs[i].Value = nil
		}
		resp.Kvs[i] = &kvs[i]
	}
	return resp, nil
}

func sortKVs(kvs []mvccpb.KeyValue, order pb.RangeRequest_SortOrder, target pb.RangeRequest_SortTarget) {
	// The store returns keys in ascending order, which is also what NONE means
	// for the key target. For any other target NONE means ascending, as in etcd.
	if order == pb.RangeRequest_NONE && target != pb.RangeRequest_KEY {
		order = pb.RangeRequest_ASCEND
	}
	if order == pb.RangeRequest_NONE || (order == pb.RangeRequest_ASCEND && target == pb.RangeRequest_KEY) {
		return
	}
	var less func(a, b *mvccpb.KeyValue) int
	switch target {
	case pb.RangeRequest_KEY:
		less = func(a, b *mvccpb.KeyValue) int { return bytes.Compare(a.Key, b.Key) }
	case pb.RangeRequest_VERSION:
		less = func(a, b *mvccpb.KeyValue) int { return cmpInt(a.Version, b.Version) }
	case pb.RangeRequest_CREATE:
		less = func(a, b *mvccpb.KeyValue) int { return cmpInt(a.CreateRevision, b.CreateRevision) }
	case pb.RangeRequest_MOD:
		less = func(a, b *mvccpb.KeyValue) int { return cmpInt(a.ModRevision, b.ModRevision) }
	case pb.RangeRequest_VALUE:
		less = func(a, b *mvccpb.KeyValue) int { return bytes.Compare(a.Value, b.Value) }
	}
	if order == pb.RangeRequest_DESCEND {
		asc := less
		less = func(a, b *mvccpb.KeyValue) int { return asc(b, a) }
	}
	sort.SliceStable(kvs, func(i, j int) bool { return less(&kvs[i], &kvs[j]) < 0 })
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// LeaseChecker says whether a lease exists. Leases arrive in a later part of
// the state machine; until a lessor is wired in, no lease exists.
type LeaseChecker interface {
	LeaseExists(id types.LeaseID) bool
}

type noLeases struct{}

func (noLeases) LeaseExists(types.LeaseID) bool { return false }

// kvApplier executes writes inside one mvcc write transaction.
// A read-only txn runs with w nil and r pinned to one revision.
type kvApplier struct {
	r          Reader
	w          *mvcc.TxnWrite
	rev        int64 // the revision reads see
	leases     LeaseChecker
	compactRev int64
}

func (a *kvApplier) prev(key []byte) (*mvccpb.KeyValue, error) {
	rr, err := a.r.Range(key, nil, mvcc.RangeOptions{})
	if err != nil {
		return nil, err
	}
	if len(rr.KVs) == 0 {
		return nil, nil
	}
	return &rr.KVs[0], nil
}

// checkPut finds the errors a put would hit, before anything is written.
func (a *kvApplier) checkPut(req *pb.PutRequest) error {
	if req.IgnoreValue || req.IgnoreLease {
		prev, err := a.prev(req.Key)
		if err != nil {
			return err
		}
		if prev == nil {
			return ErrKeyNotFound
		}
	}
	if req.Lease != 0 && !req.IgnoreLease && !a.leases.LeaseExists(types.LeaseID(req.Lease)) {
		return ErrLeaseNotFound
	}
	return nil
}

func (a *kvApplier) put(req *pb.PutRequest) (*pb.PutResponse, error) {
	var prev *mvccpb.KeyValue
	if req.PrevKv || req.IgnoreValue || req.IgnoreLease {
		var err error
		if prev, err = a.prev(req.Key); err != nil {
			return nil, err
		}
	}
	value, lease := req.Value, req.Lease
	if req.IgnoreValue || req.IgnoreLease {
		if prev == nil {
			return nil, ErrKeyNotFound
		}
		if req.IgnoreValue {
			value = prev.Value
		}
		if req.IgnoreLease {
			lease = prev.Lease
		}
	}
	a.w.Put(req.Key, value, types.LeaseID(lease))
	resp := &pb.PutResponse{Header: &pb.ResponseHeader{}}
	if req.PrevKv {
		resp.PrevKv = prev
	}
	return resp, nil
}

func (a *kvApplier) deleteRange(req *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	resp := &pb.DeleteRangeResponse{Header: &pb.ResponseHeader{}}
	if req.PrevKv {
		rr, err := a.r.Range(req.Key, req.RangeEnd, mvcc.RangeOptions{})
		if err != nil {
			return nil, err
		}
		resp.PrevKvs = make([]*mvccpb.KeyValue, len(rr.KVs))
		for i := range rr.KVs {
			resp.PrevKvs[i] = &rr.KVs[i]
		}
	}
	resp.Deleted = a.w.DeleteRange(req.Key, req.RangeEnd)
	return resp, nil
}

// compare evaluates one txn comparison. A comparison over a range holds only
// if it holds for every key in it; a missing key has zero version, revisions
// and lease, and no value (so a value comparison with it is false).
func (a *kvApplier) compare(c *pb.Compare) (bool, error) {
	rr, err := a.r.Range(c.Key, c.RangeEnd, mvcc.RangeOptions{})
	if err != nil {
		return false, err
	}
	if len(rr.KVs) == 0 {
		if c.Target == pb.Compare_VALUE {
			return false, nil
		}
		return compareKV(c, &mvccpb.KeyValue{}), nil
	}
	for i := range rr.KVs {
		if !compareKV(c, &rr.KVs[i]) {
			return false, nil
		}
	}
	return true, nil
}

func compareKV(c *pb.Compare, kv *mvccpb.KeyValue) bool {
	var r int
	switch c.Target {
	case pb.Compare_VALUE:
		if v, ok := c.TargetUnion.(*pb.Compare_Value); ok {
			r = bytes.Compare(kv.Value, v.Value)
		}
	case pb.Compare_CREATE:
		r = cmpInt(kv.CreateRevision, c.GetCreateRevision())
	case pb.Compare_MOD:
		r = cmpInt(kv.ModRevision, c.GetModRevision())
	case pb.Compare_VERSION:
		r = cmpInt(kv.Version, c.GetVersion())
	case pb.Compare_LEASE:
		r = cmpInt(kv.Lease, c.GetLease())
	}
	switch c.Result {
	case pb.Compare_EQUAL:
		return r == 0
	case pb.Compare_NOT_EQUAL:
		return r != 0
	case pb.Compare_GREATER:
		return r > 0
	case pb.Compare_LESS:
		return r < 0
	}
	return false
}

// chooseBranches evaluates the compares of a txn and of the txns nested in the
// chosen branch, before anything is written, so that the whole txn sees the
// state it started from.
func (a *kvApplier) chooseBranches(req *pb.TxnRequest) (*txnPlan, error) {
	ok := true
	for _, c := range req.Compare {
		held, err := a.compare(c)
		if err != nil {
			return nil, err
		}
		if !held {
			ok = false
			break
		}
	}
	ops := req.Failure
	if ok {
		ops = req.Success
	}
	plan := &txnPlan{succeeded: ok, ops: ops}
	for _, op := range ops {
		var sub *txnPlan
		switch r := op.Request.(type) {
		case *pb.RequestOp_RequestTxn:
			var err error
			if sub, err = a.chooseBranches(r.RequestTxn); err != nil {
				return nil, err
			}
		case *pb.RequestOp_RequestPut:
			if err := a.checkPut(r.RequestPut); err != nil {
				return nil, err
			}
		case *pb.RequestOp_RequestRange:
			if err := a.checkRange(r.RequestRange); err != nil {
				return nil, err
			}
		}
		plan.nested = append(plan.nested, sub)
	}
	return plan, nil
}

func (a *kvApplier) checkRange(req *pb.RangeRequest) error {
	if req.Revision == 0 {
		return nil
	}
	if req.Revision > a.rev {
		return mvcc.ErrFutureRev
	}
	if req.Revision < a.compactRev {
		return mvcc.ErrCompacted
	}
	return nil
}

type txnPlan struct {
	succeeded bool
	ops       []*pb.RequestOp
	nested    []*txnPlan // for each op, the plan of a nested txn, else nil
}

func (a *kvApplier) txn(req *pb.TxnRequest) (*pb.TxnResponse, error) {
	plan, err := a.chooseBranches(req)
	if err != nil {
		return nil, err
	}
	return a.execute(plan)
}

func (a *kvApplier) execute(plan *txnPlan) (*pb.TxnResponse, error) {
	resp := &pb.TxnResponse{Header: &pb.ResponseHeader{}, Succeeded: plan.succeeded, Responses: make([]*pb.ResponseOp, len(plan.ops))}
	for i, op := range plan.ops {
		switch r := op.Request.(type) {
		case *pb.RequestOp_RequestRange:
			rr, err := Range(a.r, r.RequestRange)
			if err != nil {
				return nil, err
			}
			resp.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{ResponseRange: rr}}
		case *pb.RequestOp_RequestPut:
			pr, err := a.put(r.RequestPut)
			if err != nil {
				return nil, err
			}
			resp.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponsePut{ResponsePut: pr}}
		case *pb.RequestOp_RequestDeleteRange:
			dr, err := a.deleteRange(r.RequestDeleteRange)
			if err != nil {
				return nil, err
			}
			resp.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: dr}}
		case *pb.RequestOp_RequestTxn:
			tr, err := a.execute(plan.nested[i])
			if err != nil {
				return nil, err
			}
			resp.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseTxn{ResponseTxn: tr}}
		default:
			resp.Responses[i] = &pb.ResponseOp{}
		}
	}
	return resp, nil
}

// setRevision stamps rev into the headers of a txn response and its parts.
func setTxnRevision(resp *pb.TxnResponse, rev int64) {
	resp.Header.Revision = rev
	for _, r := range resp.Responses {
		switch v := r.Response.(type) {
		case *pb.ResponseOp_ResponseRange:
			if v.ResponseRange.Header != nil && v.ResponseRange.Header.Revision == 0 {
				v.ResponseRange.Header.Revision = rev
			}
		case *pb.ResponseOp_ResponsePut:
			v.ResponsePut.Header.Revision = rev
		case *pb.ResponseOp_ResponseDeleteRange:
			v.ResponseDeleteRange.Header.Revision = rev
		case *pb.ResponseOp_ResponseTxn:
			setTxnRevision(v.ResponseTxn, rev)
		}
	}
}

// pinnedReader reads every range of a read-only txn at one revision, so that
// its compares and ranges see a single state of the store.
type pinnedReader struct {
	kv  *mvcc.Store
	rev int64
}

func (p pinnedReader) Range(key, end []byte, o mvcc.RangeOptions) (*mvcc.RangeResult, error) {
	if o.Rev == 0 {
		o.Rev = p.rev
	}
	return p.kv.Range(key, end, o)
}

// IsReadOnlyTxn reports whether a txn, nested txns included, only reads; such
// a txn is served without going through the log.
func IsReadOnlyTxn(req *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{req.Success, req.Failure} {
		for _, op := range ops {
			switch r := op.Request.(type) {
			case *pb.RequestOp_RequestRange:
			case *pb.RequestOp_RequestTxn:
				if !IsReadOnlyTxn(r.RequestTxn) {
					return false
				}
			default:
				return false
			}
		}
	}
	return true
}

// ReadTxn executes a read-only txn against the store at its current revision.
func ReadTxn(kv *mvcc.Store, req *pb.TxnRequest) (*pb.TxnResponse, error) {
	rev := kv.Rev()
	a := &kvApplier{r: pinnedReader{kv: kv, rev: rev}, rev: rev, leases: noLeases{}, compactRev: kv.CompactRev()}
	plan, err := a.chooseBranches(req)
	if err != nil {
		return nil, err
	}
	resp, err := a.execute(plan)
	if err != nil {
		return nil, err
	}
	setTxnRevision(resp, rev)
	return resp, nil
}
