package apply

import (
	"encoding/binary"
	"errors"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// The first byte of a normal entry's data says how the rest is encoded, so
// that other front ends (ZooKeeper) can add their own commands to the log.
const (
	kindEtcd     byte = 1 // an etcdserverpb.InternalRaftRequest
	kindEtcdTerm byte = 2 // the term it was proposed in (8 bytes), then the request
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

// Decode decodes the data of a normal entry and the term it was proposed in
// (0 when the entry carries none). Empty data (the no-op a new leader
// appends) decodes to nil and no error.
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
