package zk

import (
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Counters are kept per connection, where only its reader and writer touch
// them, and summed when a four-letter word asks: server-wide atomics would
// be written by every core on every request.

// latency aggregates request latencies in ms.
type latency struct {
	min, max, total, count int64
}

func newLatency() latency { return latency{min: math.MaxInt64} }

func (l *latency) add(ms int64) {
	l.min = min(l.min, ms)
	l.max = max(l.max, ms)
	l.total += ms
	l.count++
}

func (l *latency) merge(o latency) {
	l.min = min(l.min, o.min)
	l.max = max(l.max, o.max)
	l.total += o.total
	l.count += o.count
}

// get returns min, avg and max; all zero before the first request.
func (l *latency) get() (lo int64, avg float64, hi int64) {
	if l.count == 0 {
		return 0, 0, 0
	}
	return l.min, float64(l.total) / float64(l.count), l.max
}

// retiredStats keeps the counters of closed connections, so that the
// server's totals do not go down when a client leaves. The server's lock
// guards it, so that a connection counts either here or as open.
type retiredStats struct {
	received int64
	sent     int64
	latency  latency
}

func (r *retiredStats) add(snap *connSnapshot) {
	r.received += snap.received
	r.sent += snap.sent
	r.latency.merge(snap.lat)
}

// connStats are one connection's counters, for cons and the server's
// totals. The reader updates them; a four-letter word reads them from
// another goroutine.
type connStats struct {
	received    atomic.Int64
	sent        atomic.Int64
	outstanding atomic.Int64
	established time.Time

	mu       sync.Mutex
	lastOp   string
	lastCxid int64
	lastZxid int64
	lastResp int64 // ms since the epoch
	lastLat  int64
	lat      latency
}

func (c *connStats) init(now time.Time) {
	c.established = now
	c.lastOp = "NA"
	c.lastCxid = -1
	c.lastZxid = -1
	c.lat = newLatency()
}

// response records a reply to request xid, like ServerCnxn's
// updateStatsForResponse.
func (c *connStats) response(xid int32, zxid int64, op string, start, end time.Time) {
	lat := end.Sub(start).Milliseconds()
	c.mu.Lock()
	if xid >= 0 {
		c.lastCxid = int64(xid)
	}
	c.lastZxid = zxid
	c.lastOp = op
	c.lastResp = end.UnixMilli()
	c.lastLat = lat
	c.lat.add(lat)
	c.mu.Unlock()
}

type connSnapshot struct {
	lastOp                             string
	lastCxid, lastZxid                 int64
	lastResp, lastLat                  int64
	lat                                latency
	received, sent, outstanding, estMs int64
}

func (c *connStats) snapshot() connSnapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return connSnapshot{
		lastOp: c.lastOp, lastCxid: c.lastCxid, lastZxid: c.lastZxid, lastResp: c.lastResp, lastLat: c.lastLat,
		lat:      c.lat,
		received: c.received.Load(), sent: c.sent.Load(), outstanding: c.outstanding.Load(),
		estMs: c.established.UnixMilli(),
	}
}
