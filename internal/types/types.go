// Package types holds the identifiers shared across Ensemble's layers, so that
// no storage package has to import another (or a client library) for a type.
package types

import (
	"fmt"
	"strconv"
)

// MemberID identifies one member of a cluster. It is derived from the member's
// peer URLs and the cluster token, as etcd does, so that it is stable across
// restarts and the same on every member.
type MemberID uint64

// String formats the id as etcd prints it: lower-case hexadecimal.
func (id MemberID) String() string { return strconv.FormatUint(uint64(id), 16) }

// ClusterID identifies a cluster; it is derived from its initial members.
type ClusterID uint64

// String formats the id as etcd prints it: lower-case hexadecimal.
func (id ClusterID) String() string { return strconv.FormatUint(uint64(id), 16) }

// LeaseID identifies a lease. Zero means "no lease".
type LeaseID int64

// NoLease is the lease id of a key that has none.
const NoLease LeaseID = 0

// Revision is a position in the store's history: Main grows by one for every
// write request that changes something (a put, a delete, a whole txn), and Sub
// numbers the changes inside that request from zero.
type Revision struct {
	Main int64
	Sub  int64
}

// Less reports whether r comes before o in history.
func (r Revision) Less(o Revision) bool {
	if r.Main != o.Main {
		return r.Main < o.Main
	}
	return r.Sub < o.Sub
}

func (r Revision) String() string { return fmt.Sprintf("%d.%d", r.Main, r.Sub) }
