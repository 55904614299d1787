package apply

import (
	"errors"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// The first byte of a normal entry's data says how the rest is encoded, so
// that other front ends (ZooKeeper) can add their own commands to the log.
const (
	kindEtcd byte = 1 // an etcdserverpb.InternalRaftRequest
)

// ErrBadEntry marks log data that cannot be decoded. A committed entry that
// fails to decode means a bug or corruption: every member would fail alike.
var ErrBadEntry = errors.New("apply: undecodable entry")

// EncodeEtcd encodes an etcd request for the log.
func EncodeEtcd(r *pb.InternalRaftRequest) ([]byte, error) {
	buf := make([]byte, 1+r.Size())
	buf[0] = kindEtcd
	if _, err := r.MarshalTo(buf[1:]); err != nil {
		return nil, err
	}
	return buf, nil
}

// Decode decodes the data of a normal entry. Empty data (the no-op a new
// leader appends) decodes to nil and no error.
func Decode(data []byte) (*pb.InternalRaftRequest, error) {
	if len(data) == 0 {
		return nil, nil
	}
	switch data[0] {
	case kindEtcd:
		r := &pb.InternalRaftRequest{}
		if err := r.Unmarshal(data[1:]); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadEntry, err)
		}
		return r, nil
	default:
		return nil, fmt.Errorf("%w: unknown kind %d", ErrBadEntry, data[0])
	}
}
