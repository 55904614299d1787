package robustness

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Key spaces of the traffic. Model keys are checked by porcupine; the others
// by the lease and lock checkers; all by the history checkers.
const (
	kvPrefix    = "k/"
	leasePrefix = "l/"
	lockPrefix  = "lock/"
	lockData    = "lock-data"
)

func isModelKey(k string) bool { return strings.HasPrefix(k, kvPrefix) }

// clientWritten reports whether the key is one whose every value a client
// chose (lock keys are written by the concurrency package).
func clientWritten(k string) bool {
	return strings.HasPrefix(k, kvPrefix) || strings.HasPrefix(k, leasePrefix) || k == lockData
}

const aroundWindow = int64(300 * time.Millisecond)

// CheckAckedWrites checks that every acknowledged write is in the final
// history at the revision it was acknowledged with, and that every value in
// the history was written by some client.
func CheckAckedWrites(h History, store *StoreHistory) []Violation {
	var vs []Violation
	attempted := map[string]bool{}
	for i := range h {
		o := &h[i]
		switch o.Kind {
		case OpPut, OpCAS, OpLeasePut, OpLockWrite:
			attempted[o.Key+"\x00"+o.Value] = true
		}
		if o.Unknown() || o.Err != "" {
			continue
		}
		switch o.Kind {
		case OpPut, OpLeasePut, OpCAS, OpLockWrite:
			if (o.Kind == OpCAS || o.Kind == OpLockWrite) && !o.Succeeded {
				continue
			}
			e, ok := store.At(o.Key, o.Rev)
			if !ok || e.Rev != o.Rev || e.Delete || e.Value != o.Value {
				vs = append(vs, Violation{Checker: "lost-write",
					Detail:  fmt.Sprintf("acknowledged %v of %s=%s at revision %d is not in the final history (there: %v)", o.Kind, o.Key, o.Value, o.Rev, e),
					Context: h.Around(o.Key, o.Call, aroundWindow)})
			}
		case OpDelete:
			if o.Deleted == 0 {
				continue
			}
			if e, ok := store.At(o.Key, o.Rev); !ok || e.Rev != o.Rev || !e.Delete {
				vs = append(vs, Violation{Checker: "lost-write",
					Detail:  fmt.Sprintf("acknowledged delete of %s at revision %d is not in the final history (there: %v)", o.Key, o.Rev, e),
					Context: h.Around(o.Key, o.Call, aroundWindow)})
			}
		}
	}
	applied := map[string][]int64{}
	for _, e := range store.Events {
		if e.Delete || !clientWritten(e.Key) {
			continue
		}
		// Every client write carries a unique value (lock-data excepted: a
		// holder writes its key name each time it takes the lock), so a
		// value put twice is one request applied twice.
		if e.Key != lockData {
			k := e.Key + "\x00" + e.Value
			applied[k] = append(applied[k], e.Rev)
			if revs := applied[k]; len(revs) == 2 {
				vs = append(vs, Violation{Checker: "duplicate-write",
					Detail:  fmt.Sprintf("%s=%s, written once by its client, was applied at revisions %d and %d", e.Key, e.Value, revs[0], revs[1]),
					Context: h.Around(e.Key, opCall(h, e.Key, e.Value), aroundWindow)})
			}
		}
		if !attempted[e.Key+"\x00"+e.Value] {
			vs = append(vs, Violation{Checker: "phantom-write",
				Detail: fmt.Sprintf("the final history holds %v, which no client wrote", e)})
		}
	}
	return vs
}

// CheckReads checks that every successful read, linearizable or
// serializable, returned exactly the key's state at the revision in its
// response header: a read is a consistent snapshot, possibly stale.
func CheckReads(h History, store *StoreHistory) []Violation {
	var vs []Violation
	for i := range h {
		o := &h[i]
		if o.Unknown() || o.Err != "" {
			continue
		}
		isRead := o.Kind == OpGet || o.Kind == OpGetSerial || (o.Kind == OpCAS && !o.Succeeded)
		if !isRead {
			continue
		}
		if o.Rev > store.Last {
			vs = append(vs, Violation{Checker: "read", Detail: fmt.Sprintf("read at revision %d, beyond the final revision %d", o.Rev, store.Last),
				Context: []string{o.String()}})
			continue
		}
		e, ok := store.At(o.Key, o.Rev)
		exists := ok && !e.Delete
		if o.Found != exists || (exists && (o.Got != e.Value || o.ModRev != e.Rev)) {
			want := "absent"
			if exists {
				want = fmt.Sprintf("%s@%d", e.Value, e.Rev)
			}
			vs = append(vs, Violation{Checker: "read",
				Detail:  fmt.Sprintf("%s; the history says %s at revision %d", o.String(), want, o.Rev),
				Context: h.Around(o.Key, o.Call, aroundWindow)})
		}
	}
	return vs
}

// CheckRevisionOrder checks real-time order against revisions: an
// operation invoked after a linearizable one returned sees at least its
// revision (a write gets a greater one), and serializable reads from one
// member process never go back in revision.
func CheckRevisionOrder(h History, starts map[uint64][]int64) []Violation {
	var vs []Violation
	var lin []*Op
	serial := map[uint64][]*Op{}
	for i := range h {
		o := &h[i]
		if o.Unknown() || o.Err != "" || o.Rev == 0 {
			continue
		}
		switch o.Kind {
		case OpGet, OpPut, OpDelete, OpCAS, OpLeasePut:
			lin = append(lin, o)
		case OpGetSerial:
			serial[o.Member] = append(serial[o.Member], o)
		}
	}
	byReturn := append([]*Op(nil), lin...)
	sort.Slice(byReturn, func(i, j int) bool { return byReturn[i].Return < byReturn[j].Return })
	sort.Slice(lin, func(i, j int) bool { return lin[i].Call < lin[j].Call })
	var maxOp *Op
	j := 0
	for _, o := range lin {
		for j < len(byReturn) && byReturn[j].Return < o.Call {
			if maxOp == nil || byReturn[j].Rev > maxOp.Rev {
				maxOp = byReturn[j]
			}
			j++
		}
		if maxOp == nil {
			continue
		}
		wrote := (o.Kind == OpPut || o.Kind == OpLeasePut || (o.Kind == OpCAS && o.Succeeded) || (o.Kind == OpDelete && o.Deleted > 0))
		if o.Rev < maxOp.Rev || (wrote && o.Rev == maxOp.Rev) {
			vs = append(vs, Violation{Checker: "revision-order",
				Detail:  fmt.Sprintf("%s was invoked after %s returned, yet has revision %d", o.String(), maxOp.String(), o.Rev),
				Context: h.Around("", o.Call, aroundWindow/3)})
			if len(vs) > 5 {
				return vs
			}
		}
	}
	for member, ops := range serial {
		restarted := func(from, to int64) bool {
			for _, s := range starts[member] {
				if s >= from && s <= to {
					return true
				}
			}
			return false
		}
		byRet := append([]*Op(nil), ops...)
		sort.Slice(byRet, func(i, j int) bool { return byRet[i].Return < byRet[j].Return })
		sort.Slice(ops, func(i, j int) bool { return ops[i].Call < ops[j].Call })
		var maxOp *Op
		j := 0
		for _, o := range ops {
			for j < len(byRet) && byRet[j].Return < o.Call {
				if maxOp == nil || byRet[j].Rev > maxOp.Rev {
					maxOp = byRet[j]
				}
				j++
			}
			if maxOp != nil && o.Rev < maxOp.Rev && !restarted(maxOp.Call, o.Return) {
				vs = append(vs, Violation{Checker: "serializable-monotonic",
					Detail:  fmt.Sprintf("member %x answered %s after %s", member, o.String(), maxOp.String()),
					Context: h.Around("", o.Call, aroundWindow/3)})
				break
			}
		}
	}
	return vs
}

// CheckLeases checks lease safety in the final history: once a revoke is
// acknowledged at revision R, no key attached to the lease is live at R and
// no key is attached to it afterwards.
func CheckLeases(h History, store *StoreHistory) []Violation {
	var vs []Violation
	for i := range h {
		o := &h[i]
		if o.Kind != OpLeaseRevoke || o.Unknown() || o.Err != "" {
			continue
		}
		for _, e := range store.Live(leasePrefix, o.Rev) {
			if e.Lease == o.Lease {
				vs = append(vs, Violation{Checker: "lease",
					Detail: fmt.Sprintf("key %s of lease %x is live at revision %d, where its revoke was acknowledged", e.Key, o.Lease, o.Rev)})
			}
		}
		for _, e := range store.Events {
			if e.Rev > o.Rev && !e.Delete && e.Lease == o.Lease {
				vs = append(vs, Violation{Checker: "lease",
					Detail: fmt.Sprintf("%v is attached to lease %x, revoked at revision %d", e, o.Lease, o.Rev)})
			}
		}
	}
	return vs
}

// CheckMutex judges concurrency.Mutex holders by fencing revisions: every
// write made under the lock (a txn guarded by the holder's key's create
// revision) must have been made, at its revision, by the one owner, the
// live lock key with the lowest create revision, and owners' fencing
// revisions never go back.
func CheckMutex(store *StoreHistory) []Violation {
	var vs []Violation
	var lastToken int64
	for _, e := range store.Events {
		if e.Key != lockData || e.Delete {
			continue
		}
		live := store.Live(lockPrefix, e.Rev)
		if len(live) == 0 {
			vs = append(vs, Violation{Checker: "mutex", Detail: fmt.Sprintf("%v was written with no lock key live", e)})
			continue
		}
		owner := live[0]
		for _, l := range live[1:] {
			if l.CreateRev < owner.CreateRev {
				owner = l
			}
		}
		if owner.Key != e.Value {
			var ls []string
			for _, l := range live {
				ls = append(ls, l.String())
			}
			vs = append(vs, Violation{Checker: "mutex",
				Detail: fmt.Sprintf("%v was written by holder %s while the owner was %s (create revision %d)", e, e.Value, owner.Key, owner.CreateRev), Context: ls})
			continue
		}
		if owner.CreateRev < lastToken {
			vs = append(vs, Violation{Checker: "mutex",
				Detail: fmt.Sprintf("%v made with fencing revision %d after one with %d", e, owner.CreateRev, lastToken)})
		}
		lastToken = owner.CreateRev
	}
	return vs
}

// opCall is the call time of the write of value to key (0 if none).
func opCall(h History, key, value string) int64 {
	for i := range h {
		if h[i].Key == key && h[i].Value == value {
			return h[i].Call
		}
	}
	return 0
}
