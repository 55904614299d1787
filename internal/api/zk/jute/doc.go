// Package jute encodes and decodes the ZooKeeper client wire protocol (jute records, their length-prefixed frames and the protocol's constants) so that unmodified ZooKeeper 3.8/3.9 clients can talk to Ensemble.
//
// The record layouts follow zookeeper.jute in the Apache ZooKeeper sources;
// the code is our own. Every integer is big-endian, a boolean is one byte, a
// ustring or buffer is an int32 length followed by the bytes (-1 meaning
// null), and a vector is an int32 count followed by its items (-1 meaning
// null).
//
// Decoding goes through a [Reader] that never panics: every length is checked
// against the bytes that remain and a caller-given limit, and every failure
// wraps [ErrMalformed]. The Reader keeps the first error and turns later reads
// into no-ops, so a record's Decode reads all its fields and checks once.
// Buffers ([]byte fields) alias the Reader's input instead of being copied:
// a caller that reuses its frame buffer must copy what it keeps.
//
// Encoding appends to a [Writer], whose BeginFrame/EndFrame pair builds a
// whole length-prefixed packet in one buffer without a second copy.
//
// Decoding is deliberately as lenient as ZooKeeper's own server where that
// matters for old or odd clients: trailing bytes after a record are ignored,
// a boolean byte other than zero is true, the optional trailing readOnly flag
// of ConnectRequest may be absent, and a null vector decodes as an empty
// (nil) one. Encoding never writes a null vector (count -1), because some
// clients (go-zookeeper among them) fail on it.
package jute
