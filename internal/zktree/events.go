package zktree

import (
	"bytes"

	"ensemble/internal/api/zk/jute"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Events appends to dst the events that one revision's changes cause, in
// order: NodeCreated, NodeDataChanged and NodeDeleted for the changed nodes
// (in the order of the changes), then NodeChildrenChanged for the nodes
// whose children changed. Changes of other keys are ignored.
//
// A put of a node key created at this revision is NodeCreated; one whose
// mzxid is the revision is NodeDataChanged; one whose pzxid is the revision
// is NodeChildrenChanged, unless the node was created at this revision and
// never had a child (a new node's pzxid is its czxid). A command writes
// each key once, so a node created and deleted within one multi causes no
// event of its own, and one deleted and created again only NodeCreated.
func Events(dst []Event, changes []mvccpb.KeyValue) []Event {
	var rec record
	for i := range changes {
		kv := &changes[i]
		path, ok := nodePath(kv.Key)
		if !ok {
			continue
		}
		if kv.Version == 0 {
			// mvcc's deletions carry only Key and ModRevision.
			dst = append(dst, Event{Type: jute.EventNodeDeleted, Path: path})
			continue
		}
		if rec.decodeHeader(kv.Value) != nil {
			continue
		}
		switch {
		case created(kv, &rec):
			dst = append(dst, Event{Type: jute.EventNodeCreated, Path: path})
		case rec.mzxid == kv.ModRevision:
			dst = append(dst, Event{Type: jute.EventNodeDataChanged, Path: path})
		}
	}
	for i := range changes {
		kv := &changes[i]
		if kv.Version == 0 || !bytes.HasPrefix(kv.Key, []byte(nodePrefix)) {
			continue
		}
		if rec.decodeHeader(kv.Value) != nil {
			continue
		}
		if rec.pzxid == kv.ModRevision && (!created(kv, &rec) || rec.cversion > 0) {
			if path, ok := nodePath(kv.Key); ok {
				dst = append(dst, Event{Type: jute.EventNodeChildrenChanged, Path: path})
			}
		}
	}
	return dst
}

func created(kv *mvccpb.KeyValue, rec *record) bool {
	return kv.CreateRevision == kv.ModRevision || rec.czxid == kv.ModRevision
}

// Reserved reports whether the etcd key range [key, end) (etcd's range
// conventions: end empty for key alone, "\x00" for every key from key on)
// touches the tree's prefix.
func Reserved(key, end []byte) bool {
	lo := []byte(Prefix)
	hi := prefixEnd(lo)
	if len(end) == 0 {
		return bytes.HasPrefix(key, lo)
	}
	if len(end) == 1 && end[0] == 0 {
		return bytes.Compare(key, hi) < 0
	}
	// Two ranges overlap when each starts before the other ends; an empty
	// range (end <= key) overlaps nothing.
	return bytes.Compare(key, end) < 0 && bytes.Compare(key, hi) < 0 && bytes.Compare(lo, end) < 0
}
