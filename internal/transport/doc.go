// Package transport carries raft messages and snapshots between cluster members over TCP.
//
// Each member keeps one persistent outbound connection per peer for raft
// messages. A writer goroutine per peer drains a bounded queue into a buffered
// writer and flushes only when the queue is momentarily empty, so that bursts
// of small messages share one write system call. Snapshots travel on their own
// short-lived connections so that a large database never delays heartbeats or
// appends.
//
// Every connection begins with a fixed-size handshake (magic, protocol
// version, stream kind, cluster id, sender id, intended receiver id) that the
// receiver acknowledges with one status byte; a connection from another
// cluster, or meant for another member, is refused before any message is read.
// After the handshake a message stream is a sequence of frames, each a uvarint
// length followed by a marshaled raftpb.Message. A snapshot stream is one such
// frame carrying the MsgSnap, an 8-byte big-endian database size, the database
// bytes, and finally one status byte written back by the receiver.
//
// Lock order: Transport.mu before peer.mu. Handler methods are never called
// with either lock held.
package transport
