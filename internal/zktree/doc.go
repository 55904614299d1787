// Package zktree keeps ZooKeeper's data tree, with ZooKeeper's exact semantics, as keys of the MVCC store.
//
// Writes are Commands in the replicated log, applied deterministically by
// Tree.Apply inside the write transaction of their entry, so zxid =
// revision on every member: sequence numbers, cversion, pzxid and
// ephemeral ownership are decided at apply time. Reads work on any mvcc
// reader: the member's store, or a write transaction.
//
// # Layout
//
// Everything lives under Prefix ("/.zk/"):
//
//	n/DDD<path>   a node; DDD is its depth (number of segments) in three
//	              digits, so "/" is n/000/, "/a" n/001/a, "/a/b" n/002/a/b,
//	              and the children of a node are exactly one key range
//	s/<16 hex>    a session: timeout and password, put with the session's
//	              lease
//	t/<path>      the index of TTL nodes, which the reaper scans
//
// A node's value is a versioned binary record (record.go): its Stat fields
// (czxid is the key's create revision), mode, TTL, ACL and data. An
// ephemeral node is put with its session's lease, so the lessor tracks it
// and revoking the lease is a backstop.
//
// # Commands
//
// Each command builds an overlay of the nodes it touches, so that the ops
// of a multi see each other, and writes each changed key once at the end,
// in key order, so that a revision never holds two changes of one key and
// every member assigns the same sub revisions. A failed command (or multi)
// writes nothing.
//
// Checks and their order follow ZooKeeper 3.9's PrepRequestProcessor, so
// clients get the same error codes; where this package differs from
// ZooKeeper on purpose, the code says so (containers emptied by a command
// are deleted by it rather than later by a background task; createContainer
// needs the container flag).
package zktree
