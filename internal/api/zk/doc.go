// Package zk serves the ZooKeeper client protocol on top of a member: connections, sessions, one-shot and persistent watches, and the four-letter words.
//
// # Connections
//
// Every connection has a reader goroutine and a writer goroutine. The reader
// reads one frame at a time and processes it to the end before it reads the
// next, which is ZooKeeper's FIFO guarantee per session; throughput comes
// from many sessions. Replies and watch notifications go into the
// connection's outbox, which the writer drains with one write per batch. The
// outbox never blocks whoever fills it (the apply loop among them): it is
// capped in bytes, and a connection whose client does not read is closed
// when it overflows.
//
// # Reads, writes and watches
//
// Writes are zktree commands replicated through Backend.ProposeZK; reads are
// served from the member's own store, as in ZooKeeper. The watch manager
// sees every applied revision (Backend.Observe) and records the last one it
// has turned into notifications, notifiedRev. Reads are served at
// notifiedRev, and a read that leaves a watch behind reads, registers and
// queues its reply with no revision notified in between, so the watch fires
// exactly for the revisions after the data the client was shown, and its
// events follow the reply (clients drop events of watches they have not
// yet seen the reply for). Any other read's reply is queued only if no
// event of a later revision got into the connection's outbox first (else
// the read runs again), so that, as in ZooKeeper, a reply that follows an
// event shows the event's change. A write's reply waits until its revision
// has been notified. Together this gives ZooKeeper's ordering guarantee: a
// client sees a watch event before it sees any data that changed after it.
//
// # Locks
//
// watchManager.mu may be held while taking a connection's outbox.mu (to
// queue events and replies); Server.mu and the connections' stats locks are
// taken alone. Notify runs on the apply loop and takes only watchManager.mu
// and outbox locks, and nothing done while holding watchManager.mu (reads
// of the store, queueing) waits for the apply loop.
package zk
