package zktree

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strings"

	"ensemble/internal/api/zk/jute"
	"ensemble/internal/lease"
	"ensemble/internal/mvcc"
	"ensemble/internal/types"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Get reads the node at path; jute.CodeNoNode if there is none,
// jute.CodeBadArguments for an invalid path.
func Get(r Reader, path string) (*Node, error) {
	n, _, err := get(r, path, 0)
	return n, err
}

// get reads the node at path as of rev (0: the current revision) and
// returns the revision it read at.
func get(r Reader, path string, rev int64) (*Node, int64, error) {
	if !validPath(path) {
		return nil, 0, jute.CodeBadArguments
	}
	key, ok := appendNodeKey(make([]byte, 0, nodeKeyLen(path)), path)
	if !ok {
		return nil, 0, jute.CodeBadArguments
	}
	rr, err := r.Range(key, nil, mvcc.RangeOptions{Rev: rev})
	if err != nil {
		return nil, 0, fmt.Errorf("zktree: %w", err)
	}
	if len(rr.KVs) == 0 {
		return nil, rr.Rev, jute.CodeNoNode
	}
	n, err := nodeOf(&rr.KVs[0])
	if err != nil {
		return nil, 0, err
	}
	if rev == 0 {
		rev = rr.Rev
	}
	return n, rev, nil
}

// nodeOf decodes a node's KeyValue; Data aliases its value.
func nodeOf(kv *mvccpb.KeyValue) (*Node, error) {
	var rec record
	if err := rec.decode(kv.Value); err != nil {
		return nil, fmt.Errorf("%w: node %q", err, kv.Key)
	}
	acl, err := decodeACL(rec.acl)
	if err != nil {
		return nil, fmt.Errorf("%w: ACL of node %q", err, kv.Key)
	}
	return &Node{Data: rec.data, Stat: rec.stat(kv.CreateRevision), ACL: acl}, nil
}

// Children lists the names (not paths) of path's children, sorted, with
// path's own node, both as of one revision; the cost is proportional to the
// number of children.
func Children(r Reader, path string) ([]string, *Node, error) {
	n, rev, err := get(r, path, 0)
	if err != nil {
		return nil, nil, err
	}
	start, end, ok := childrenRange(path)
	if !ok || n.Stat.NumChildren == 0 {
		return nil, n, nil
	}
	rr, err := r.Range(start, end, mvcc.RangeOptions{Rev: rev, KeysOnly: true})
	if err != nil {
		return nil, nil, fmt.Errorf("zktree: %w", err)
	}
	names := make([]string, len(rr.KVs))
	for i := range rr.KVs {
		names[i] = string(rr.KVs[i].Key[len(start):])
	}
	return names, n, nil
}

// AllChildrenNumber counts every descendant of path, one depth at a time
// from the index alone, stopping at the first depth that has none.
func AllChildrenNumber(r Reader, path string) (int32, error) {
	_, rev, err := get(r, path, 0)
	if err != nil {
		return 0, err
	}
	var total int64
	for d := depth(path) + 1; ; d++ {
		start, end, ok := descendantsRange(path, d)
		if !ok {
			break
		}
		rr, err := r.Range(start, end, mvcc.RangeOptions{Rev: rev, CountOnly: true})
		if err != nil {
			return 0, fmt.Errorf("zktree: %w", err)
		}
		if rr.Count == 0 {
			break
		}
		total += int64(rr.Count)
	}
	return int32(min(total, math.MaxInt32)), nil
}

// Session reads a session's record; ok is false if it does not exist (never
// created, closed or expired).
func Session(r Reader, id int64) (rec SessionRequest, ok bool, err error) {
	rr, err := r.Range(sessionKey(id), nil, mvcc.RangeOptions{})
	if err != nil {
		return SessionRequest{}, false, fmt.Errorf("zktree: %w", err)
	}
	if len(rr.KVs) == 0 {
		return SessionRequest{}, false, nil
	}
	v := rr.KVs[0].Value
	if len(v) < 4 {
		return SessionRequest{}, false, fmt.Errorf("%w: session %#x", ErrCorrupt, uint64(id))
	}
	return SessionRequest{Timeout: int32(binary.BigEndian.Uint32(v)), Passwd: v[4:]}, true, nil
}

// encodeSession is the value of a session's record: the timeout, then the
// password.
func encodeSession(req *SessionRequest) []byte {
	v := make([]byte, 4+len(req.Passwd))
	binary.BigEndian.PutUint32(v, uint32(req.Timeout))
	copy(v[4:], req.Passwd)
	return v
}

// Ephemerals lists the paths of session id's ephemeral nodes that start with
// prefix, sorted.
func Ephemerals(l *lease.Lessor, id int64, prefix string) []string {
	info, err := l.Lookup(types.LeaseID(id), true)
	if err != nil {
		return nil
	}
	var paths []string
	for _, k := range info.Keys {
		p, ok := nodePath([]byte(k))
		if ok && strings.HasPrefix(p, prefix) {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	return paths
}

// ttlPage is how many TTL index keys ExpiredTTLs reads at a time.
const ttlPage = 1000

// ExpiredTTLs lists up to limit TTL nodes that have no children and whose
// mtime is more than their TTL before now (ms): what the leader's reaper
// proposes to delete. It reads the TTL index, not the tree, so its cost
// follows the number of TTL nodes.
func ExpiredTTLs(r Reader, now int64, limit int) ([]ExpireTTL, error) {
	var out []ExpireTTL
	from := []byte(ttlPrefix)
	end := prefixEnd(from)
	var rev int64
	for len(out) < limit {
		rr, err := r.Range(from, end, mvcc.RangeOptions{Rev: rev, Limit: ttlPage, KeysOnly: true})
		if err != nil {
			return nil, fmt.Errorf("zktree: %w", err)
		}
		if rev == 0 {
			rev = rr.Rev
		}
		for i := range rr.KVs {
			path := string(rr.KVs[i].Key[len(ttlPrefix):])
			key, ok := appendNodeKey(nil, path)
			if !ok {
				continue
			}
			nr, err := r.Range(key, nil, mvcc.RangeOptions{Rev: rev})
			if err != nil {
				return nil, fmt.Errorf("zktree: %w", err)
			}
			if len(nr.KVs) == 0 {
				continue
			}
			var rec record
			if err := rec.decodeHeader(nr.KVs[0].Value); err != nil {
				return nil, fmt.Errorf("%w: node %q", err, key)
			}
			if rec.mode.TTL() && rec.numChildren == 0 && now-rec.mtime > rec.ttl {
				out = append(out, ExpireTTL{Path: path, Mzxid: rec.mzxid})
				if len(out) == limit {
					break
				}
			}
		}
		if len(rr.KVs) < ttlPage {
			break
		}
		from = append(rr.KVs[len(rr.KVs)-1].Key, 0)
	}
	return out, nil
}

// DecodeNode decodes the stored KeyValue of a node (Key, Value and
// CreateRevision are used), as read through the etcd API or from history;
// Data aliases its value.
func DecodeNode(kv *mvccpb.KeyValue) (*Node, error) { return nodeOf(kv) }

// PathOfKey returns the znode path an etcd key holds; ok is false for keys
// that are not znodes.
func PathOfKey(key []byte) (string, bool) { return nodePath(key) }

// SessionOfKey returns the session whose record an etcd key is; ok is false
// for other keys.
func SessionOfKey(key []byte) (int64, bool) {
	rest, ok := bytes.CutPrefix(key, []byte(sessionPrefix))
	if !ok || len(rest) != 16 {
		return 0, false
	}
	var b [8]byte
	if _, err := hex.Decode(b[:], rest); err != nil {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(b[:])), true
}

// EncodeNode is the inverse of DecodeNode for the fields a history reader
// looks at (Data, and Stat's version, mzxid and ephemeralOwner, an owner
// making the node ephemeral): tests use it to fabricate stored nodes.
func EncodeNode(n *Node) []byte {
	rec := record{mzxid: n.Stat.Mzxid, version: n.Stat.Version, owner: n.Stat.EphemeralOwner, data: n.Data}
	if rec.owner != 0 {
		rec.mode = jute.ModeEphemeral
	}
	b := make([]byte, rec.size())
	rec.encodeTo(b)
	return b
}
