package zktree

import (
	"encoding/binary"
	"errors"
	"fmt"

	"ensemble/internal/api/zk/jute"
)

// ErrCorrupt marks a stored node or session record that cannot be decoded.
var ErrCorrupt = errors.New("zktree: corrupt record")

// recordVersion is the first byte of every node record; a new layout gets a
// new number and the decoder keeps reading the old ones.
const recordVersion = 1

// Layout of a version 1 node record (big-endian, fixed offsets so that the
// header decodes without a loop):
//
//	0  version (1)          1  flags               2  mode
//	3  czxid override       11 mzxid              19 ctime
//	27 mtime                35 version (int32)    39 cversion
//	43 aversion             47 ephemeralOwner     55 pzxid
//	63 numChildren (int32)  67 ttl (ms)           75 ACL length (uvarint)
//
// then the encoded ACL list and, to the end, the data.
const (
	offFlags    = 1
	offMode     = 2
	offCzxid    = 3
	offMzxid    = 11
	offCtime    = 19
	offMtime    = 27
	offVersion  = 35
	offCversion = 39
	offAversion = 43
	offOwner    = 47
	offPzxid    = 55
	offNumChild = 63
	offTTL      = 67
	headerLen   = 75
)

// flagNullData marks data that is null rather than empty: ZooKeeper keeps
// the two apart and clients see the difference.
const flagNullData = 1

// record is a node as stored. acl and data alias the buffer it was decoded
// from.
type record struct {
	// czxid, if not zero, overrides the key's create revision: a node deleted
	// and created again within one command keeps its key's generation in
	// mvcc (the key is written once), but ZooKeeper gives it a new czxid.
	czxid       int64
	mzxid       int64
	ctime       int64
	mtime       int64
	version     int32
	cversion    int32 // creates of children, as ZooKeeper stores it
	aversion    int32
	owner       int64 // the session of an ephemeral, 0 otherwise
	pzxid       int64
	numChildren int32
	mode        jute.CreateMode
	ttl         int64
	nullData    bool
	acl         []byte // encoded ACL list (see acl.go)
	data        []byte
}

// size is the length of the encoded record.
func (r *record) size() int {
	return headerLen + uvarintLen(uint64(len(r.acl))) + len(r.acl) + len(r.data)
}

// encodeTo writes the record into dst, which has exactly r.size() bytes.
func (r *record) encodeTo(dst []byte) {
	dst[0] = recordVersion
	var flags byte
	if r.nullData {
		flags |= flagNullData
	}
	dst[offFlags] = flags
	dst[offMode] = byte(r.mode)
	be := binary.BigEndian
	be.PutUint64(dst[offCzxid:], uint64(r.czxid))
	be.PutUint64(dst[offMzxid:], uint64(r.mzxid))
	be.PutUint64(dst[offCtime:], uint64(r.ctime))
	be.PutUint64(dst[offMtime:], uint64(r.mtime))
	be.PutUint32(dst[offVersion:], uint32(r.version))
	be.PutUint32(dst[offCversion:], uint32(r.cversion))
	be.PutUint32(dst[offAversion:], uint32(r.aversion))
	be.PutUint64(dst[offOwner:], uint64(r.owner))
	be.PutUint64(dst[offPzxid:], uint64(r.pzxid))
	be.PutUint32(dst[offNumChild:], uint32(r.numChildren))
	be.PutUint64(dst[offTTL:], uint64(r.ttl))
	n := headerLen + binary.PutUvarint(dst[headerLen:], uint64(len(r.acl)))
	n += copy(dst[n:], r.acl)
	copy(dst[n:], r.data)
}

// decode reads a record from b; acl and data alias b.
func (r *record) decode(b []byte) error {
	if err := r.decodeHeader(b); err != nil {
		return err
	}
	l, n := binary.Uvarint(b[headerLen:])
	if n <= 0 || l > uint64(len(b)-headerLen-n) {
		return fmt.Errorf("%w: bad ACL length", ErrCorrupt)
	}
	start := headerLen + n
	end := start + int(l)
	r.acl = b[start:end:end]
	if r.nullData {
		r.data = nil
	} else {
		r.data = b[end:len(b):len(b)]
	}
	return nil
}

// decodeHeader reads the fixed fields only, leaving acl and data alone.
func (r *record) decodeHeader(b []byte) error {
	if len(b) < headerLen+1 {
		return fmt.Errorf("%w: %d bytes", ErrCorrupt, len(b))
	}
	if b[0] != recordVersion {
		return fmt.Errorf("%w: format version %d", ErrCorrupt, b[0])
	}
	be := binary.BigEndian
	r.nullData = b[offFlags]&flagNullData != 0
	r.mode = jute.CreateMode(b[offMode])
	r.czxid = int64(be.Uint64(b[offCzxid:]))
	r.mzxid = int64(be.Uint64(b[offMzxid:]))
	r.ctime = int64(be.Uint64(b[offCtime:]))
	r.mtime = int64(be.Uint64(b[offMtime:]))
	r.version = int32(be.Uint32(b[offVersion:]))
	r.cversion = int32(be.Uint32(b[offCversion:]))
	r.aversion = int32(be.Uint32(b[offAversion:]))
	r.owner = int64(be.Uint64(b[offOwner:]))
	r.pzxid = int64(be.Uint64(b[offPzxid:]))
	r.numChildren = int32(be.Uint32(b[offNumChild:]))
	r.ttl = int64(be.Uint64(b[offTTL:]))
	return nil
}

// stat fills the Stat clients see; createRev is the key's create revision.
// Like ZooKeeper's DataNode.copyStat it reports cversion as
// 2*cversion - numChildren: the stored cversion counts creates only (it is
// what sequence numbers come from), and every child no longer there was
// deleted, so clients see creates plus deletes. Hence a fresh root shows
// cversion -1. Only an ephemeral has an ephemeralOwner; containers and TTL
// nodes show 0, as in ZooKeeper.
func (r *record) stat(createRev int64) jute.Stat {
	czxid := r.czxid
	if czxid == 0 {
		czxid = createRev
	}
	var owner int64
	if r.mode.Ephemeral() {
		owner = r.owner
	}
	return jute.Stat{
		Czxid:          czxid,
		Mzxid:          r.mzxid,
		Ctime:          r.ctime,
		Mtime:          r.mtime,
		Version:        r.version,
		Cversion:       r.cversion*2 - r.numChildren,
		Aversion:       r.aversion,
		EphemeralOwner: owner,
		DataLength:     int32(len(r.data)),
		NumChildren:    r.numChildren,
		Pzxid:          r.pzxid,
	}
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

// MaxTTL is the largest TTL in ms a TTL node may have, ZooKeeper's limit:
// what fits the 40 value bits of the ephemeralOwner encoding its
// EphemeralType uses for TTL nodes.
const MaxTTL = 1<<40 - 1
