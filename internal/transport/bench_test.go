package transport

import (
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

// BenchmarkSend measures messages per second from one transport to another
// over loopback, with raft-like batches of small appends.
func BenchmarkSend(b *testing.B) {
	const (
		batchSize = 64
		window    = 32 << 10 // messages in flight before the sender waits
	)
	big := func(c *Config) { c.QueueSize = 2 * window }
	src := startMember(b, 1, cluster, "127.0.0.1:0", big)
	dst := startMember(b, 2, cluster, "127.0.0.1:0", big)
	dst.rec.set(func(r *recorder) { r.keepMsgs = false })
	connectAll(b, src, dst)

	batch := make([]raftpb.Message, batchSize)
	data := make([]byte, 128)
	for i := range batch {
		batch[i] = app(1, 2, uint64(i), data)
	}
	b.SetBytes(int64(batch[0].Size()))
	b.ReportAllocs()
	b.ResetTimer()
	sent := 0
	for sent < b.N {
		n := min(batchSize, b.N-sent)
		if sent-read(dst.rec, func(r *recorder) int { return r.count }) > window {
			// Let the receiver catch up instead of overflowing the queue.
			dst.rec.waitFor(b, "receiver to catch up", func() bool { return sent-dst.rec.count <= window/2 })
		}
		src.tr.Send(batch[:n])
		sent += n
	}
	dst.rec.waitFor(b, "all messages", func() bool { return dst.rec.count == b.N })
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	if n := src.rec.unreachableTo(2); n != 0 {
		b.Fatalf("%d messages dropped", n)
	}
}
