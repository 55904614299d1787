package mvcc

import "go.etcd.io/etcd/api/v3/mvccpb"

// Observer is told about every revision the store applies, so that watchers
// can be fed without polling.
type Observer interface {
	// Notify is called once per revision that changes keys, in revision
	// order, by the writer that made it, after the revision is visible to
	// readers and before the next writer starts. changes are the revision's
	// changes in order: a put is the new KeyValue, a deletion a KeyValue
	// holding only Key and ModRevision. Neither the slice nor what it points
	// to may be modified; both stay valid after the call. Writers wait for
	// Notify to return, so it must only hand the changes on.
	Notify(rev int64, changes []mvccpb.KeyValue)
}

// observerSlot boxes an Observer so that it can sit in an atomic pointer.
type observerSlot struct{ o Observer }

// SetObserver makes o (nil: nobody) the receiver of every revision applied
// from now on. Revisions that a writer is publishing concurrently may reach
// the previous observer or o; o must tolerate one it has already seen.
func (s *Store) SetObserver(o Observer) {
	if o == nil {
		s.observer.Store(nil)
		return
	}
	s.observer.Store(&observerSlot{o: o})
}

// notify hands a finished transaction's changes to the observer. The writer
// lock is held, which keeps the calls in revision order.
func (w *TxnWrite) notify() {
	if len(w.changes) == 0 {
		return
	}
	if o := w.s.observer.Load(); o != nil {
		o.o.Notify(w.base+1, w.changes)
	}
}
