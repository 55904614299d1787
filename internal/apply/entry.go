package apply

import (
	"encoding/binary"
	"errors"
	"fmt"

	"ensemble/internal/zktree"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// The first byte of a normal entry's data says how the rest is encoded, so
// that other front ends (ZooKeeper) can add their own commands to the log.
const (
	kindEtcd     byte = 1 // an etcdserverpb.InternalRaftRequest
	kindEtcdTerm byte = 2 // the term it was proposed in (8 bytes), then the request
	kindZK       byte = 3 // the proposal term (8 bytes), the request id (8 bytes), a zktree.Command
)

// ErrBadEntry marks log data that cannot be decoded. A committed entry that
// fails to decode means a bug or corruption: every member would fail alike.
var ErrBadEntry = errors.New("apply: undecodable entry")

// ErrStaleProposal is the result of an entry that reached the log in another
// term than the one it was proposed in. Such an entry is not applied, on any
// member; the proposer proposes it again (see EncodeEtcd).
var ErrStaleProposal = errors.New("apply: proposal reached the log in another term; not applied")

// EncodeEtcd encodes an etcd request for the log, stamped with the term its
// proposer saw when it proposed it.
//
// The stamp makes retries safe. A proposal can be lost with a leader, or be
// held up (in a paused member, in a socket) and forwarded to a later leader
// long after. Applying only entries that reached the log in the term they
// were proposed in means that, once the proposer has seen an entry of a later
// term applied, its earlier attempt can never be applied, and it may propose
// again (in the new term) without risk of applying the request twice.
func EncodeEtcd(r *pb.InternalRaftRequest, term uint64) ([]byte, error) {
	buf := make([]byte, 9+r.Size())
	buf[0] = kindEtcdTerm
	binary.BigEndian.PutUint64(buf[1:9], term)
	if _, err := r.MarshalTo(buf[9:]); err != nil {
		return nil, err
	}
	return buf, nil
}

// EncodeZK encodes a ZooKeeper command for the log, with the id its
// proposer waits on and the term it is proposed in (see EncodeEtcd).
func EncodeZK(id uint64, c *zktree.Command, term uint64) ([]byte, error) {
	body, err := c.Marshal()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 17, 17+len(body))
	buf[0] = kindZK
	binary.BigEndian.PutUint64(buf[1:9], term)
	binary.BigEndian.PutUint64(buf[9:17], id)
	return append(buf, body...), nil
}

// Entry is a decoded normal entry: an etcd request or a ZooKeeper command.
type Entry struct {
	// Term is the term the entry was proposed in; 0 when it carries none.
	Term uint64
	// ID is the request id its proposer waits on; 0 for none.
	ID   uint64
	Etcd *pb.InternalRaftRequest
	ZK   *zktree.Command
}

// DecodeEntry decodes the data of a normal entry. Empty data (the no-op a new
// leader appends) decodes to an empty Entry and no error.
func DecodeEntry(data []byte) (Entry, error) {
	if len(data) > 0 && data[0] == kindZK {
		if len(data) < 17 {
			return Entry{}, fmt.Errorf("%w: short ZooKeeper command header", ErrBadEntry)
		}
		c, err := zktree.UnmarshalCommand(data[17:])
		if err != nil {
			return Entry{}, fmt.Errorf("%w: %v", ErrBadEntry, err)
		}
		return Entry{Term: binary.BigEndian.Uint64(data[1:9]), ID: binary.BigEndian.Uint64(data[9:17]), ZK: c}, nil
	}
	r, term, err := Decode(data)
	if err != nil || r == nil {
		return Entry{}, err
	}
	e := Entry{Term: term, Etcd: r}
	if r.Header != nil {
		e.ID = r.Header.ID
	}
	return e, nil
}

// Decode decodes the data of a normal entry that holds an etcd request, and
// the term it was proposed in (0 when the entry carries none). Empty data
// (the no-op a new leader appends) decodes to nil and no error.
func Decode(data []byte) (*pb.InternalRaftRequest, uint64, error) {
	if len(data) == 0 {
		return nil, 0, nil
	}
	var term uint64
	body := data[1:]
	switch data[0] {
	case kindEtcd:
	case kindEtcdTerm:
		if len(body) < 8 {
			return nil, 0, fmt.Errorf("%w: short proposal term", ErrBadEntry)
		}
		term, body = binary.BigEndian.Uint64(body[:8]), body[8:]
	default:
		return nil, 0, fmt.Errorf("%w: unknown kind %d", ErrBadEntry, data[0])
	}
	r := &pb.InternalRaftRequest{}
	if err := r.Unmarshal(body); err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrBadEntry, err)
	}
	return r, term, nil
}

// Stale reports whether an entry proposed in proposalTerm that reached the log
// in entryTerm must be skipped.
func Stale(proposalTerm, entryTerm uint64) bool {
	return proposalTerm != 0 && proposalTerm != entryTerm
}
