package zktree

import (
	"bytes"
	"slices"
	"strings"

	"ensemble/internal/api/zk/jute"
	"ensemble/internal/lease"
	"ensemble/internal/mvcc"
	"ensemble/internal/types"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// mapAfter is the number of touched nodes above which the overlay indexes
// them by path; below it a linear scan is cheaper than hashing.
const mapAfter = 16

// entry is one node as a command sees it: what the store held before the
// command (existed, createRev, origTTL) and what the command made of it.
type entry struct {
	path      string
	existed   bool
	exists    bool
	dirty     bool
	origTTL   bool
	createRev int64
	lease     int64
	rec       record
}

// write is one key change of a flush.
type write struct {
	key   []byte
	val   []byte
	lease int64
	del   bool
}

// txn is the overlay of one command: every node it reads or changes, so that
// later ops of a multi see earlier ones, and so that each key is written at
// most once, at the end, in key order. Its buffers are kept by the Tree and
// reused from one command to the next.
type txn struct {
	w       *mvcc.TxnWrite
	lessor  *lease.Lessor
	rev     int64
	now     int64
	session int64
	auth    []jute.Id

	nodes      []*entry
	byPath     map[string]*entry
	slab       [][]entry
	used       int
	containers []*entry
	extra      []write
	writes     []write
	keyBuf     []byte
	// failed is set when the store fails under a read; the command then
	// answers SYSTEMERROR and writes nothing.
	failed bool
	// closing is set by a closeSession of a live session: its lease is
	// revoked after the flush.
	closing bool
}

// begin readies the overlay for a command of session, at time now (ms), in
// w.
func (x *txn) begin(w *mvcc.TxnWrite, l *lease.Lessor, session, now int64, auth []jute.Id) {
	x.w, x.lessor = w, l
	x.rev = w.Rev()
	if len(w.Changes()) == 0 {
		// Nothing written yet: the first write opens the next revision.
		x.rev++
	}
	x.now, x.session, x.auth = now, session, auth
	x.reset()
}

// reset forgets every change, keeping the buffers.
func (x *txn) reset() {
	for i := range x.used {
		x.slab[i/slabSize][i%slabSize] = entry{}
	}
	x.used = 0
	clear(x.nodes)
	x.nodes = x.nodes[:0]
	if x.byPath != nil {
		clear(x.byPath)
	}
	clear(x.containers)
	x.containers = x.containers[:0]
	clear(x.extra)
	x.extra = x.extra[:0]
	x.failed = false
	x.closing = false
}

// end drops references to what the command read, so that they can be
// collected while the Tree waits for the next command, and lets go of the
// room a rare huge multi needed.
func (x *txn) end() {
	x.reset()
	clear(x.writes)
	x.writes = x.writes[:0]
	x.w, x.auth = nil, nil
	if len(x.slab) > keptBlocks {
		clear(x.slab[keptBlocks:])
		x.slab = x.slab[:keptBlocks]
		x.nodes, x.writes, x.byPath = nil, nil, nil
	}
}

// Entries come in blocks of slabSize so that their addresses stay put as
// the overlay grows; keptBlocks of them stay allocated between commands.
const (
	slabSize   = 8
	keptBlocks = 16
)

func (x *txn) add(path string) *entry {
	b, i := x.used/slabSize, x.used%slabSize
	if b == len(x.slab) {
		x.slab = append(x.slab, make([]entry, slabSize))
	}
	x.used++
	e := &x.slab[b][i]
	e.path = path
	x.nodes = append(x.nodes, e)
	switch {
	case len(x.nodes) <= mapAfter:
	case len(x.nodes) == mapAfter+1:
		if x.byPath == nil {
			x.byPath = make(map[string]*entry, 4*mapAfter)
		}
		for _, n := range x.nodes {
			x.byPath[n.path] = n
		}
	default:
		x.byPath[path] = e
	}
	return e
}

func (x *txn) lookup(path string) *entry {
	if len(x.nodes) > mapAfter {
		return x.byPath[path]
	}
	for _, e := range x.nodes {
		if e.path == path {
			return e
		}
	}
	return nil
}

// get returns the node at path as the command sees it (e.exists false if
// there is none). The code is BADARGUMENTS for a path too deep for a key and
// SYSTEMERROR if the store failed.
func (x *txn) get(path string) (*entry, jute.Code) {
	if e := x.lookup(path); e != nil {
		return e, jute.CodeOK
	}
	key, ok := appendNodeKey(x.keyBuf[:0], path)
	x.keyBuf = key
	if !ok {
		return nil, jute.CodeBadArguments
	}
	rr, err := x.w.Range(key, nil, mvcc.RangeOptions{})
	if err != nil {
		x.failed = true
		return nil, jute.CodeSystemError
	}
	var rec record
	var kv *mvccpb.KeyValue
	if len(rr.KVs) == 1 {
		kv = &rr.KVs[0]
		if rec.decode(kv.Value) != nil {
			x.failed = true
			return nil, jute.CodeSystemError
		}
	}
	e := x.add(path)
	if kv != nil {
		e.existed, e.exists = true, true
		e.createRev, e.lease = kv.CreateRevision, kv.Lease
		e.origTTL = rec.mode.TTL()
		e.rec = rec
	}
	return e, jute.CodeOK
}

// has reports whether a node exists at path without loading it: a create
// needs no more of its target.
func (x *txn) has(path string) (bool, jute.Code) {
	if e := x.lookup(path); e != nil {
		return e.exists, jute.CodeOK
	}
	key, ok := appendNodeKey(x.keyBuf[:0], path)
	x.keyBuf = key
	if !ok {
		return false, jute.CodeBadArguments
	}
	rr, err := x.w.Range(key, nil, mvcc.RangeOptions{CountOnly: true})
	if err != nil {
		x.failed = true
		return false, jute.CodeSystemError
	}
	return rr.Count > 0, jute.CodeOK
}

// createNode makes n (absent) a child of parent with rec, which has the
// fields a create chooses; the zxids and times are filled in here.
func (x *txn) createNode(parent, n *entry, rec record, lease int64) {
	parent.rec.cversion++
	parent.rec.numChildren++
	parent.rec.pzxid = x.rev
	parent.dirty = true

	rec.czxid = 0
	if n.existed {
		// Deleted earlier in this command: the key keeps its mvcc
		// generation, the node must not keep its czxid.
		rec.czxid = x.rev
	}
	rec.mzxid, rec.pzxid = x.rev, x.rev
	rec.ctime, rec.mtime = x.now, x.now
	n.rec = rec
	n.lease = lease
	n.exists, n.dirty = true, true
}

// deleteNode removes n, a child of parent (which may be nil if missing).
func (x *txn) deleteNode(parent, n *entry) {
	n.exists, n.dirty = false, true
	n.rec = record{}
	n.lease = 0
	if parent == nil || !parent.exists {
		return
	}
	parent.rec.numChildren--
	parent.rec.pzxid = x.rev
	parent.dirty = true
	if parent.rec.mode.Container() && parent.rec.numChildren <= 0 {
		x.containers = append(x.containers, parent)
	}
}

// cascade deletes the containers the command left without children, and
// then their container parents if that empties them. ZooKeeper leaves this
// to its ContainerManager, which looks every minute or so; doing it in the
// command that empties them keeps every member deterministic without a
// timer, and only makes the deletion happen sooner. Like ContainerManager it
// spares containers that never had a child (cversion 0). It runs once the
// command's ops are done, so a multi that empties a container and refills it
// keeps it.
func (x *txn) cascade() {
	for len(x.containers) > 0 {
		// Deepest first, so that a parent is looked at after its children.
		slices.SortFunc(x.containers, func(a, b *entry) int {
			if da, db := depth(a.path), depth(b.path); da != db {
				return db - da
			}
			return strings.Compare(a.path, b.path)
		})
		c := x.containers[0]
		x.containers = x.containers[1:]
		if !c.exists || !c.rec.mode.Container() || c.rec.numChildren > 0 || c.rec.cversion <= 0 {
			continue
		}
		parent, code := x.get(parentPath(c.path, lastSlash(c.path)))
		if code != jute.CodeOK {
			return
		}
		x.deleteNode(parent, c)
	}
}

func lastSlash(path string) int {
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '/' {
			return i
		}
	}
	return -1
}

// flush writes every changed key once, in key order, so that every member
// gives each change the same sub revision.
func (x *txn) flush() {
	if x.failed {
		return
	}
	x.cascade()
	if x.failed {
		return
	}
	ws := x.writes[:0]
	for _, e := range x.nodes {
		if !e.dirty {
			continue
		}
		switch {
		case e.exists:
			kl := nodeKeyLen(e.path)
			buf := make([]byte, kl+e.rec.size())
			appendNodeKey(buf[:0], e.path)
			e.rec.encodeTo(buf[kl:])
			ws = append(ws, write{key: buf[:kl:kl], val: buf[kl:], lease: e.lease})
		case e.existed:
			key, _ := appendNodeKey(make([]byte, 0, nodeKeyLen(e.path)), e.path)
			ws = append(ws, write{key: key, del: true})
		}
		wasTTL := e.existed && e.origTTL
		isTTL := e.exists && e.rec.mode.TTL()
		if wasTTL != isTTL {
			key := make([]byte, 0, len(ttlPrefix)+len(e.path))
			key = append(append(key, ttlPrefix...), e.path...)
			ws = append(ws, write{key: key, val: []byte{}, del: wasTTL})
		}
	}
	ws = append(ws, x.extra...)
	slices.SortFunc(ws, func(a, b write) int { return bytes.Compare(a.key, b.key) })
	for i := range ws {
		if ws[i].del {
			x.w.DeleteRange(ws[i].key, nil)
		} else {
			x.w.Put(ws[i].key, ws[i].val, types.LeaseID(ws[i].lease))
		}
	}
	clear(ws)
	x.writes = ws[:0]
}

// bootstrap creates the nodes every ZooKeeper server starts with, if the
// root is missing: "/", "/zookeeper", "/zookeeper/quota" and
// "/zookeeper/config". Their Stat is ZooKeeper's (times and zxids 0, except
// that czxid is the revision that created the key), and /zookeeper/config is
// read-only for everyone, with the aversion -1 that ZooKeeper's own setACL
// at startup leaves.
func (x *txn) bootstrap() jute.Code {
	if x.lookup(rootPath) != nil {
		return jute.CodeOK
	}
	has, code := x.has(rootPath)
	if code != jute.CodeOK || has {
		return code
	}
	add := func(path string, numChildren int32, acl []byte, aversion int32) {
		e := x.add(path)
		e.exists, e.dirty = true, true
		e.rec = record{numChildren: numChildren, acl: acl, aversion: aversion, data: []byte{}}
	}
	add(rootPath, 1, openACL, 0)
	add(procPath, 2, openACL, 0)
	add(quotaPath, 0, openACL, 0)
	add(configPath, 0, readACL, -1)
	return jute.CodeOK
}

// nextVersion is ZooKeeper's checkAndIncVersion after the check: the
// version after a change, skipping -1, which would mean "any version".
func nextVersion(v int32) int32 {
	v++
	if v == -1 {
		return 0
	}
	return v
}

// versionOK reports whether a request's expected version matches.
func versionOK(current, expected int32) bool { return expected == -1 || expected == current }
