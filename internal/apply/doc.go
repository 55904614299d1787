// Package apply is the deterministic state machine: it decodes committed raft
// entries and executes them against the stores, producing the same result on
// every member, and it executes reads with the same semantics.
//
// Every function here must be deterministic: the result of applying an entry
// may depend only on the entry and on the state before it, never on time,
// randomness or which member runs it.
package apply
