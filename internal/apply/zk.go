package apply

import (
	"ensemble/internal/api/zk/jute"
	"ensemble/internal/zktree"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// ApplyZK executes the ZooKeeper command of the entry at (index, term) in
// one write transaction, so that everything it changes shares a revision
// (its zxid).
func (a *Applier) ApplyZK(index, term uint64, c *zktree.Command) *Result {
	if a.zk == nil {
		a.kv.SetConsistentIndex(index, term)
		return &Result{Resp: zktree.Result{Code: jute.CodeSystemError, Zxid: a.kv.Rev()}}
	}
	if res := a.cappedZK(index, term, c); res != nil {
		return res
	}
	w := a.kv.Write(index, term)
	res := a.zk.Apply(w, c)
	w.End()
	a.attach(w.Changes())
	res.Zxid = a.kv.Rev()
	return &Result{Resp: res}
}

// ErrReserved refuses an etcd write to ZooKeeper's part of the key space:
// znodes change only through ZooKeeper commands, which keep their Stat,
// parents and sessions consistent.
var ErrReserved = errReserved{}

type errReserved struct{}

func (errReserved) Error() string {
	return "etcdserver: keys under " + zktree.Prefix + " are ZooKeeper's data tree; write them through the ZooKeeper port"
}

// cappedZK refuses the commands that an active alarm forbids, as capped does
// for etcd requests: under NOSPACE only commands that free space (delete,
// closeSession, TTL expiry) pass, with ZooKeeper's quota error for the rest;
// under CORRUPT no write passes.
func (a *Applier) cappedZK(index, term uint64, c *zktree.Command) *Result {
	if a.alarms.types.Load() == 0 {
		return nil
	}
	var code jute.Code
	switch {
	case a.alarms.has(pb.AlarmType_CORRUPT):
		code = jute.CodeSystemError
	case a.alarms.has(pb.AlarmType_NOSPACE) && !freesSpace(c.Op):
		code = jute.CodeQuotaExceeded
	default:
		return nil
	}
	a.kv.SetConsistentIndex(index, term)
	return &Result{Resp: zktree.Result{Code: code, Zxid: a.kv.Rev()}}
}

func freesSpace(op jute.OpCode) bool {
	return op == jute.OpDelete || op == jute.OpCloseSession || op == zktree.OpExpireTTL
}

// writesReserved reports whether an etcd write request could change a key
// of ZooKeeper's tree, in any branch of a transaction, taken or not: the
// refusal must not depend on the data.
func writesReserved(r *pb.InternalRaftRequest) bool {
	switch {
	case r.Put != nil:
		return zktree.Reserved(r.Put.Key, nil)
	case r.DeleteRange != nil:
		return zktree.Reserved(r.DeleteRange.Key, r.DeleteRange.RangeEnd)
	case r.Txn != nil:
		return txnWritesReserved(r.Txn)
	}
	return false
}

func txnWritesReserved(t *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{t.Success, t.Failure} {
		for _, op := range ops {
			switch {
			case op.GetRequestPut() != nil:
				if zktree.Reserved(op.GetRequestPut().Key, nil) {
					return true
				}
			case op.GetRequestDeleteRange() != nil:
				d := op.GetRequestDeleteRange()
				if zktree.Reserved(d.Key, d.RangeEnd) {
					return true
				}
			case op.GetRequestTxn() != nil:
				if txnWritesReserved(op.GetRequestTxn()) {
					return true
				}
			}
		}
	}
	return false
}
