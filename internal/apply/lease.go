package apply

import (
	"ensemble/internal/lease"
	"ensemble/internal/types"
	"ensemble/internal/zktree"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// SetLessor makes l the applier's lessor: puts with a lease then need the
// lease to exist, and grants, revocations and checkpoints change it.
func (a *Applier) SetLessor(l *lease.Lessor) {
	a.lessor = l
	a.leases = l
	a.zk = zktree.New(l)
}

// applyLease executes a lease request; ok is false if r holds none.
func (a *Applier) applyLease(index, term uint64, r *pb.InternalRaftRequest) (res *Result, ok bool) {
	switch {
	case r.LeaseGrant != nil:
		return a.leaseGrant(index, term, r.LeaseGrant), true
	case r.LeaseRevoke != nil:
		return a.leaseRevoke(index, term, r.LeaseRevoke), true
	case r.LeaseCheckpoint != nil:
		return a.leaseCheckpoint(index, term, r.LeaseCheckpoint), true
	}
	return nil, false
}

func (a *Applier) leaseGrant(index, term uint64, req *pb.LeaseGrantRequest) *Result {
	if a.lessor == nil {
		a.kv.SetConsistentIndex(index, term)
		return &Result{Err: lease.ErrLeaseNotFound}
	}
	// The write transaction holds the backend batch, so the lease is stored
	// in the same commit as the entry's index.
	w := a.kv.Write(index, term)
	ttl, err := a.lessor.Grant(w, types.LeaseID(req.ID), req.TTL)
	w.End()
	if err != nil {
		return &Result{Err: err}
	}
	return &Result{Resp: &pb.LeaseGrantResponse{Header: &pb.ResponseHeader{Revision: a.kv.Rev()}, ID: req.ID, TTL: ttl}}
}

func (a *Applier) leaseRevoke(index, term uint64, req *pb.LeaseRevokeRequest) *Result {
	if a.lessor == nil {
		a.kv.SetConsistentIndex(index, term)
		return &Result{Err: lease.ErrLeaseNotFound}
	}
	w := a.kv.Write(index, term)
	if a.lessor.LeaseExists(types.LeaseID(req.ID)) {
		// A ZooKeeper session is a lease: its ephemeral nodes go with it, and
		// their parents' Stat changes in the same revision.
		a.zk.RemoveSession(w, req.ID)
	}
	err := a.lessor.Revoke(w, types.LeaseID(req.ID))
	w.End()
	if err != nil {
		return &Result{Err: err}
	}
	return &Result{Resp: &pb.LeaseRevokeResponse{Header: &pb.ResponseHeader{Revision: a.kv.Rev()}}}
}

func (a *Applier) leaseCheckpoint(index, term uint64, req *pb.LeaseCheckpointRequest) *Result {
	if a.lessor == nil {
		a.kv.SetConsistentIndex(index, term)
		return &Result{Resp: &pb.LeaseCheckpointResponse{Header: &pb.ResponseHeader{Revision: a.kv.Rev()}}}
	}
	w := a.kv.Write(index, term)
	var err error
	for _, cp := range req.Checkpoints {
		if cp == nil {
			continue
		}
		if e := a.lessor.Checkpoint(w, types.LeaseID(cp.ID), cp.Remaining_TTL); e != nil && err == nil {
			err = e
		}
	}
	w.End()
	if err != nil {
		return &Result{Err: err}
	}
	return &Result{Resp: &pb.LeaseCheckpointResponse{Header: &pb.ResponseHeader{Revision: a.kv.Rev()}}}
}

// attach tells the lessor which keys a write attached to or detached from
// leases.
func (a *Applier) attach(changes []mvccpb.KeyValue) {
	if a.lessor != nil && len(changes) > 0 {
		a.lessor.ApplyChanges(changes)
	}
}
