package apply

import (
	"log/slog"

	"ensemble/internal/lease"
	"ensemble/internal/mvcc"
	"ensemble/internal/zktree"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Result is the outcome of one applied request, handed back to the member
// that proposed it.
type Result struct {
	Resp any   // *pb.PutResponse, *pb.DeleteRangeResponse, *pb.TxnResponse, *pb.CompactionResponse, zktree.Result
	Err  error // a deterministic error: the request changed nothing
	// Physical, for a compaction, closes when old history is removed from disk.
	Physical <-chan struct{}
	// StaleTerm, with ErrStaleProposal, is the term the skipped attempt was
	// proposed in, so that its proposer knows which of its attempts it was.
	StaleTerm uint64
}

// Applier executes committed etcd requests against the key-value store. It is
// used by one goroutine, the server's apply loop.
type Applier struct {
	kv     *mvcc.Store
	leases LeaseChecker
	lg     *slog.Logger
	alarms alarmSet
	lessor *lease.Lessor
	zk     *zktree.Tree
}

// New returns an applier over kv.
func New(kv *mvcc.Store, lg *slog.Logger) *Applier {
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	return &Applier{kv: kv, leases: noLeases{}, lg: lg}
}

// SetStore points the applier at a new store, after a snapshot replaced it.
func (a *Applier) SetStore(kv *mvcc.Store) { a.kv = kv }

// Apply executes r, the request of the entry at (index, term). Requests the
// applier does not know change nothing but still advance the applied index.
func (a *Applier) Apply(index, term uint64, r *pb.InternalRaftRequest) *Result {
	if res := a.capped(index, term, r); res != nil {
		return res
	}
	if res, ok := a.applyLease(index, term, r); ok {
		return res
	}
	if writesReserved(r) {
		a.kv.SetConsistentIndex(index, term)
		return &Result{Err: ErrReserved}
	}
	switch {
	case r.Alarm != nil:
		return a.applyAlarm(index, term, r.Alarm)
	case r.Put != nil:
		return a.write(index, term, func(ka *kvApplier) (any, error) {
			if err := ka.checkPut(r.Put); err != nil {
				return nil, err
			}
			return ka.put(r.Put)
		})
	case r.DeleteRange != nil:
		return a.write(index, term, func(ka *kvApplier) (any, error) { return ka.deleteRange(r.DeleteRange) })
	case r.Txn != nil:
		return a.write(index, term, func(ka *kvApplier) (any, error) { return ka.txn(r.Txn) })
	case r.Compaction != nil:
		physical, err := a.kv.Compact(index, term, r.Compaction.Revision)
		if err != nil {
			a.kv.SetConsistentIndex(index, term)
			return &Result{Err: err}
		}
		return &Result{
			Resp:     &pb.CompactionResponse{Header: &pb.ResponseHeader{Revision: a.kv.Rev()}},
			Physical: physical,
		}
	default:
		a.kv.SetConsistentIndex(index, term)
		return &Result{}
	}
}

// write runs fn in one write transaction: every change it makes shares one
// revision, and the applied index is recorded with them.
func (a *Applier) write(index, term uint64, fn func(*kvApplier) (any, error)) *Result {
	w := a.kv.Write(index, term)
	ka := &kvApplier{r: w, w: w, rev: a.kv.Rev(), leases: a.leases, compactRev: a.kv.CompactRev()}
	resp, err := fn(ka)
	w.End()
	a.attach(w.Changes())
	if err != nil {
		return &Result{Err: err}
	}
	rev := a.kv.Rev()
	switch r := resp.(type) {
	case *pb.PutResponse:
		r.Header.Revision = rev
	case *pb.DeleteRangeResponse:
		r.Header.Revision = rev
	case *pb.TxnResponse:
		setTxnRevision(r, rev)
	}
	return &Result{Resp: resp}
}
