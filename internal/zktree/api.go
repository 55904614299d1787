package zktree

import (
	"ensemble/internal/api/zk/jute"
	"ensemble/internal/lease"
	"ensemble/internal/mvcc"
)

// Prefix is the reserved etcd key prefix under which the tree lives. Writes
// through the etcd API to keys under it are refused (see Reserved).
const Prefix = "/.zk/"

// Internal op codes of commands that only the server proposes; they never
// appear on the wire. Client commands use jute's op codes.
const (
	// OpExpireTTL deletes a TTL node whose TTL ran out (Req: *ExpireTTL).
	OpExpireTTL jute.OpCode = -1000
)

// Command is one ZooKeeper write as it is proposed to the log.
type Command struct {
	// Session is the session that sent the command; for OpCreateSession the
	// id of the session to create; 0 for the server's own commands.
	Session int64
	// Time is the proposer's wall clock in ms since the epoch: the ctime and
	// mtime of what the command creates or changes.
	Time int64
	// Auth are the identities of the session (and "ip:<addr>" of its
	// connection) against which ACLs are checked when the command applies.
	Auth []jute.Id
	Op   jute.OpCode
	// Req is the request: *jute.CreateRequest (create, create2,
	// createContainer), *jute.CreateTTLRequest, *jute.DeleteRequest,
	// *jute.SetDataRequest, *jute.SetACLRequest, *jute.CheckVersionRequest,
	// *jute.MultiRequest, *SessionRequest (OpCreateSession), nil
	// (OpCloseSession), *ExpireTTL (OpExpireTTL).
	Req jute.Record
}

// SessionRequest opens a session: the lease's TTL is ceil(Timeout/1000) s.
// It is a jute.Record so that it can be a Command's Req.
type SessionRequest struct {
	Timeout int32  // negotiated session timeout, ms
	Passwd  []byte // 16 bytes chosen by the proposer
}

// ExpireTTL deletes Path if it is still a TTL node without children whose
// mzxid is Mzxid (so that a node touched since the reaper looked survives)
// and whose TTL has run out at the command's Time. It is a jute.Record so
// that it can be a Command's Req.
type ExpireTTL struct {
	Path  string
	Mzxid int64
}

// Result is the outcome of an applied Command.
type Result struct {
	// Code is jute.CodeOK or the ZooKeeper error of the command. For a
	// failed multi it is what ZooKeeper puts in the reply header: CodeOK,
	// the errors being in the per-op results of Resp.
	Code jute.Code
	// Resp is the reply body when Code is CodeOK: *jute.CreateResponse
	// (create), *jute.Create2Response (create2, createContainer, createTTL),
	// *jute.SetDataResponse (setData, and check as ZooKeeper answers it),
	// *jute.SetACLResponse, *jute.MultiResponse (also for a failed multi:
	// every op gets an error result), nil otherwise.
	Resp jute.Response
	// Zxid is the store's revision after the command.
	Zxid int64
}

// Tree applies commands. It is used by the apply loop's one goroutine: its
// overlay buffers are reused from one command to the next.
type Tree struct {
	lessor *lease.Lessor
	x      txn
}

// New returns a tree whose sessions are leases of l.
func New(l *lease.Lessor) *Tree { return &Tree{lessor: l} }

// Reader is what reads need: the member's *mvcc.Store or a write transaction.
type Reader interface {
	Range(key, end []byte, o mvcc.RangeOptions) (*mvcc.RangeResult, error)
}

// Node is a znode as read.
type Node struct {
	Data []byte
	Stat jute.Stat
	ACL  []jute.ACL
}

// Event is a watch event that a change of the tree causes.
type Event struct {
	Type jute.EventType
	Path string
}
