package apply

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"ensemble/internal/backend"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// Errors of requests refused because an alarm is active.
var (
	// ErrNoSpace refuses a request that would grow the store while the
	// NOSPACE alarm is active.
	ErrNoSpace = errors.New("apply: database space exceeded")
	// ErrCorrupt refuses writes while the CORRUPT alarm is active.
	ErrCorrupt = errors.New("apply: corrupt cluster")
)

// alarmBucket holds the active alarms, one key per alarm (the marshaled
// AlarmMember) with an empty value, as etcd keeps them.
var alarmBucket = []byte("alarm")

// Estimates of what a request adds to the database, as etcd's quota uses
// them: only requests that cost something are refused for lack of space.
const (
	kvOverhead    = 256
	leaseOverhead = 64
)

// RequestCost estimates how many bytes r adds to the database; 0 means it
// cannot grow it (reads, deletes, compactions, alarms, membership).
func RequestCost(r *pb.InternalRaftRequest) int {
	switch {
	case r.Put != nil:
		return costPut(r.Put)
	case r.Txn != nil:
		return costTxn(r.Txn)
	case r.LeaseGrant != nil:
		return leaseOverhead
	}
	return 0
}

func costPut(p *pb.PutRequest) int { return kvOverhead + len(p.Key) + len(p.Value) }

// costTxn is the cost of the costlier branch. Unlike etcd, puts in nested
// txns count too: they grow the database just the same.
func costTxn(t *pb.TxnRequest) int {
	branch := func(ops []*pb.RequestOp) int {
		n := 0
		for _, op := range ops {
			switch r := op.Request.(type) {
			case *pb.RequestOp_RequestPut:
				n += costPut(r.RequestPut)
			case *pb.RequestOp_RequestTxn:
				n += costTxn(r.RequestTxn)
			}
		}
		return n
	}
	return max(branch(t.Success), branch(t.Failure))
}

// alarmSet is the replicated set of active alarms. The apply loop changes
// it; front ends read it concurrently.
type alarmSet struct {
	mu     sync.RWMutex
	be     *backend.Backend
	active map[pb.AlarmType]map[uint64]struct{}
	// types has bit t set while an alarm of type t is active, so that the
	// apply path checks for alarms without taking the lock.
	types atomic.Uint32
}

// publish recomputes types; mu is held for writing.
func (s *alarmSet) publish() {
	var bits uint32
	for t, ms := range s.active {
		if len(ms) > 0 {
			bits |= 1 << uint(t)
		}
	}
	s.types.Store(bits)
}

// LoadAlarms makes be the backend that alarms are kept in and loads the
// alarms it holds. The server calls it at start and whenever a snapshot
// replaces the database.
func (a *Applier) LoadAlarms(be *backend.Backend) error {
	return a.alarms.load(be)
}

func (s *alarmSet) load(be *backend.Backend) error {
	active := make(map[pb.AlarmType]map[uint64]struct{})
	tx := be.BatchTx()
	tx.Lock()
	err := tx.UnsafeCreateBucket(alarmBucket)
	var derr error
	if err == nil {
		tx.UnsafeForEach(alarmBucket, func(k, _ []byte) bool {
			var m pb.AlarmMember
			if derr = m.Unmarshal(k); derr != nil {
				return false
			}
			addAlarm(active, m.Alarm, m.MemberID)
			return true
		})
	}
	tx.Unlock()
	if err != nil {
		return fmt.Errorf("apply: alarms: %w", err)
	}
	if derr != nil {
		return fmt.Errorf("apply: alarms: undecodable alarm: %w", derr)
	}
	s.mu.Lock()
	s.be, s.active = be, active
	s.publish()
	s.mu.Unlock()
	return nil
}

func addAlarm(m map[pb.AlarmType]map[uint64]struct{}, t pb.AlarmType, member uint64) bool {
	ms := m[t]
	if ms == nil {
		ms = make(map[uint64]struct{})
		m[t] = ms
	}
	if _, ok := ms[member]; ok {
		return false
	}
	ms[member] = struct{}{}
	return true
}

// Alarms lists the active alarms of type t (every type for NONE), ordered
// by type and member.
func (a *Applier) Alarms(t pb.AlarmType) []*pb.AlarmMember { return a.alarms.list(t) }

func (s *alarmSet) list(t pb.AlarmType) []*pb.AlarmMember {
	s.mu.RLock()
	var out []*pb.AlarmMember
	for typ, ms := range s.active {
		if t != pb.AlarmType_NONE && typ != t {
			continue
		}
		for id := range ms {
			out = append(out, &pb.AlarmMember{MemberID: id, Alarm: typ})
		}
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Alarm != out[j].Alarm {
			return out[i].Alarm < out[j].Alarm
		}
		return out[i].MemberID < out[j].MemberID
	})
	return out
}

func (s *alarmSet) has(t pb.AlarmType) bool { return s.types.Load()&(1<<uint(t)) != 0 }

// capped refuses, while an alarm is active, the requests etcd refuses then:
// under NOSPACE whatever would grow the database, under CORRUPT every write.
// It returns nil when r may be applied.
func (a *Applier) capped(index, term uint64, r *pb.InternalRaftRequest) *Result {
	if a.alarms.types.Load() == 0 {
		return nil
	}
	var err error
	switch {
	case a.alarms.has(pb.AlarmType_CORRUPT) && isWrite(r):
		err = ErrCorrupt
	case a.alarms.has(pb.AlarmType_NOSPACE) && RequestCost(r) > 0:
		err = ErrNoSpace
	default:
		return nil
	}
	a.kv.SetConsistentIndex(index, term)
	return &Result{Err: err}
}

func isWrite(r *pb.InternalRaftRequest) bool {
	return r.Put != nil || r.DeleteRange != nil || r.Txn != nil || r.Compaction != nil ||
		r.LeaseGrant != nil || r.LeaseRevoke != nil
}

// applyAlarm executes an AlarmRequest as etcd does: GET lists, ACTIVATE and
// DEACTIVATE answer with the alarm they changed (none if nothing changed).
// The change is kept in the alarm bucket; replaying it after a crash is
// harmless, since both changes are idempotent.
func (a *Applier) applyAlarm(index, term uint64, req *pb.AlarmRequest) *Result {
	resp := &pb.AlarmResponse{Header: &pb.ResponseHeader{Revision: a.kv.Rev()}}
	var err error
	switch req.Action {
	case pb.AlarmRequest_GET:
		resp.Alarms = a.alarms.list(req.Alarm)
	case pb.AlarmRequest_ACTIVATE:
		if req.Alarm == pb.AlarmType_NONE {
			break
		}
		var changed bool
		if changed, err = a.alarms.set(req.MemberID, req.Alarm, true); changed {
			resp.Alarms = append(resp.Alarms, &pb.AlarmMember{MemberID: req.MemberID, Alarm: req.Alarm})
			a.lg.Warn("alarm raised", "alarm", req.Alarm.String(), "member", fmt.Sprintf("%x", req.MemberID))
		}
	case pb.AlarmRequest_DEACTIVATE:
		var changed bool
		if changed, err = a.alarms.set(req.MemberID, req.Alarm, false); changed {
			resp.Alarms = append(resp.Alarms, &pb.AlarmMember{MemberID: req.MemberID, Alarm: req.Alarm})
			a.lg.Warn("alarm cleared", "alarm", req.Alarm.String(), "member", fmt.Sprintf("%x", req.MemberID))
		}
	}
	a.kv.SetConsistentIndex(index, term)
	if err != nil {
		// The backend refuses every write from now on; the store reports it
		// and the server stops.
		a.lg.Error("cannot record alarm", "err", err)
		return &Result{Err: err}
	}
	return &Result{Resp: resp}
}

// set activates or deactivates one alarm and reports whether that changed
// anything.
func (s *alarmSet) set(member uint64, t pb.AlarmType, on bool) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.active == nil {
		s.active = make(map[pb.AlarmType]map[uint64]struct{})
	}
	if on {
		if !addAlarm(s.active, t, member) {
			return false, nil
		}
	} else {
		if _, ok := s.active[t][member]; !ok {
			return false, nil
		}
		delete(s.active[t], member)
		if len(s.active[t]) == 0 {
			delete(s.active, t)
		}
	}
	s.publish()
	if s.be == nil {
		return true, nil
	}
	key, err := (&pb.AlarmMember{MemberID: member, Alarm: t}).Marshal()
	if err != nil {
		return true, err
	}
	tx := s.be.BatchTx()
	tx.Lock()
	if on {
		err = tx.UnsafePut(alarmBucket, key, []byte{})
	} else {
		err = tx.UnsafeDelete(alarmBucket, key)
	}
	tx.Unlock()
	return true, err
}

// ClearAlarms removes every alarm kept in be; a restored snapshot starts a
// new cluster whose members the old alarms do not name.
func ClearAlarms(be *backend.Backend) error {
	tx := be.BatchTx()
	tx.Lock()
	defer tx.Unlock()
	var keys [][]byte
	tx.UnsafeForEach(alarmBucket, func(k, _ []byte) bool {
		keys = append(keys, append([]byte(nil), k...))
		return true
	})
	for _, k := range keys {
		if err := tx.UnsafeDelete(alarmBucket, k); err != nil {
			return fmt.Errorf("apply: clear alarms: %w", err)
		}
	}
	return nil
}
