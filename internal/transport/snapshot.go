package transport

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"ensemble/internal/types"

	"go.etcd.io/raft/v3/raftpb"
)

// snapshotChunk is how much of a database goes out under one write deadline;
// the copy itself may use sendfile when the database is a file.
const snapshotChunk = 4 << 20

// SendSnapshot streams m (a MsgSnap) followed by size bytes of db to m.To on
// a connection of its own, so that a big snapshot never delays heartbeats or
// appends. It returns at once; db is closed when the transfer ends, and
// Handler.ReportSnapshot(m.To, failed) gives the receiver's verdict.
func (t *Transport) SendSnapshot(m raftpb.Message, db io.ReadCloser, size int64) {
	started := t.goAdd(func() {
		start := time.Now()
		err := t.sendSnapshot(m, db, size)
		db.Close()
		to := types.MemberID(m.To)
		if t.closed.Load() {
			return
		}
		if err != nil {
			t.lg.Warn("sending snapshot failed", "to", to.String(), "bytes", size, "err", err)
		} else {
			t.lg.Info("sent snapshot", "to", to.String(), "bytes", size, "took", time.Since(start))
		}
		t.h.ReportSnapshot(m.To, err != nil)
	})
	if !started {
		db.Close()
	}
}

func (t *Transport) sendSnapshot(m raftpb.Message, db io.Reader, size int64) error {
	to := types.MemberID(m.To)
	if m.Type != raftpb.MsgSnap {
		return fmt.Errorf("%w: %s is not a MsgSnap", ErrBadSnapshot, m.Type)
	}
	if size < 0 {
		return fmt.Errorf("%w: negative size %d", ErrBadSnapshot, size)
	}
	msize := m.Size()
	if msize > t.cfg.MaxFrameSize {
		return fmt.Errorf("%w: snapshot message of %d bytes", ErrFrameTooLarge, msize)
	}
	t.mu.RLock()
	p := t.peers[to]
	t.mu.RUnlock()
	if p == nil {
		return fmt.Errorf("%w: %s", ErrUnknownPeer, to)
	}
	var (
		c   net.Conn
		err error
	)
	for _, addr := range p.addrList() {
		if c, err = t.dial(t.ctx, addr, kindSnapshot, to); err == nil {
			break
		}
	}
	if c == nil {
		if err == nil {
			err = fmt.Errorf("%w: no address for %s", ErrUnknownPeer, to)
		}
		return err
	}
	if !t.trackConn(c) {
		return ErrClosed
	}
	defer t.untrackConn(c)
	defer c.Close()

	fw := frameWriter{bw: bufio.NewWriterSize(deadlineWriter{c: c, timeout: t.cfg.WriteTimeout}, ioBufferSize)}
	if err := fw.write(&m, msize); err != nil {
		return err
	}
	var sz [8]byte
	binary.BigEndian.PutUint64(sz[:], uint64(size))
	if _, err := fw.bw.Write(sz[:]); err != nil {
		return err
	}
	if err := fw.bw.Flush(); err != nil {
		return err
	}
	for left := size; left > 0; {
		if err := c.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout)); err != nil {
			return err
		}
		n, err := io.CopyN(c, db, min(left, snapshotChunk))
		left -= n
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: database ended %d bytes short of %d", ErrBadSnapshot, left, size)
		}
		if err != nil {
			return err
		}
	}
	// The receiver answers once its handler has stored the database, which
	// may take a while (an fsync of the whole file); Close cuts it short by
	// closing c.
	if err := c.SetReadDeadline(time.Now().Add(t.cfg.SnapshotAckTimeout)); err != nil {
		return err
	}
	var verdict [1]byte
	if _, err := io.ReadFull(c, verdict[:]); err != nil {
		return fmt.Errorf("transport: read snapshot verdict: %w", err)
	}
	if verdict[0] != snapshotOK {
		return ErrSnapshotFailed
	}
	return nil
}

// receiveSnapshot reads one snapshot stream, hands it to the Handler, and
// answers with the verdict.
func (t *Transport) receiveSnapshot(c net.Conn, br *bufio.Reader, from types.MemberID) {
	start := time.Now()
	m, size, err := readSnapshotHeader(br, t.cfg.MaxFrameSize)
	if err != nil {
		if !t.closed.Load() {
			t.lg.Warn("bad snapshot stream", "from", from.String(), "err", err)
		}
		return
	}
	db := &exactReader{r: br, n: size}
	err = t.h.ReceiveSnapshot(t.ctx, m, db, size)
	if err == nil && db.n > 0 {
		err = fmt.Errorf("%w: handler left %d of %d bytes unread", ErrBadSnapshot, db.n, size)
	}
	verdict := snapshotOK
	if err != nil {
		verdict = snapshotFailed
		if !t.closed.Load() {
			t.lg.Warn("receiving snapshot failed", "from", from.String(), "index", snapIndex(&m), "bytes", size, "err", err)
		}
	} else {
		t.lg.Info("received snapshot", "from", from.String(), "index", snapIndex(&m), "bytes", size, "took", time.Since(start))
	}
	if db.n > 0 {
		// The sender is still writing the rest; it will see our close.
		return
	}
	c.SetWriteDeadline(time.Now().Add(t.cfg.WriteTimeout))
	c.Write([]byte{verdict})
}

func snapIndex(m *raftpb.Message) uint64 {
	if m.Snapshot == nil {
		return 0
	}
	return m.Snapshot.Metadata.Index
}

// readSnapshotHeader reads the MsgSnap frame and the database size that
// follow a snapshot handshake.
func readSnapshotHeader(br *bufio.Reader, limit int) (raftpb.Message, int64, error) {
	var m raftpb.Message
	body, err := readFrame(br, nil, limit)
	if err != nil {
		return m, 0, err
	}
	if err := decodeMessage(body, &m); err != nil {
		return m, 0, err
	}
	if m.Type != raftpb.MsgSnap {
		return m, 0, fmt.Errorf("%w: got %s, want MsgSnap", ErrBadSnapshot, m.Type)
	}
	var sz [8]byte
	if _, err := io.ReadFull(br, sz[:]); err != nil {
		return m, 0, fmt.Errorf("%w: size: %w", ErrBadSnapshot, err)
	}
	size := int64(binary.BigEndian.Uint64(sz[:]))
	if size < 0 {
		return m, 0, fmt.Errorf("%w: negative size", ErrBadSnapshot)
	}
	return m, size, nil
}

// exactReader yields exactly n bytes of r and turns an early end into
// io.ErrUnexpectedEOF, so that a handler cannot mistake a sender that died
// mid-stream for a complete database.
type exactReader struct {
	r io.Reader
	n int64
}

func (e *exactReader) Read(b []byte) (int, error) {
	if e.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > e.n {
		b = b[:e.n]
	}
	n, err := e.r.Read(b)
	e.n -= int64(n)
	if err == io.EOF {
		if e.n > 0 {
			err = io.ErrUnexpectedEOF
		} else {
			err = nil
		}
	}
	return n, err
}
