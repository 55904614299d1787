package transport

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"ensemble/internal/types"

	"go.etcd.io/raft/v3/raftpb"
)

// Errors reported by the wire codec and the handshake. Callers match them with
// errors.Is; they are usually wrapped with the peer's id or address.
var (
	ErrClosed          = errors.New("transport: closed")
	ErrBadMagic        = errors.New("transport: not an ensemble peer connection")
	ErrBadVersion      = errors.New("transport: unsupported protocol version")
	ErrBadKind         = errors.New("transport: unknown stream kind")
	ErrClusterMismatch = errors.New("transport: cluster id mismatch")
	ErrWrongReceiver   = errors.New("transport: connection meant for another member")
	ErrRefused         = errors.New("transport: connection refused by peer")
	ErrFrameTooLarge   = errors.New("transport: frame larger than the limit")
	ErrBadFrame        = errors.New("transport: malformed frame")
	ErrBadSnapshot     = errors.New("transport: malformed snapshot stream")
	ErrSnapshotFailed  = errors.New("transport: receiver failed to apply the snapshot")
	ErrUnknownPeer     = errors.New("transport: unknown peer")
)

const (
	// protocolVersion changes whenever the framing changes incompatibly.
	protocolVersion = 1
	// handshakeSize is magic(4) + version(1) + kind(1) + cluster(8) + from(8) + to(8).
	handshakeSize = 30
	// DefaultMaxFrameSize bounds one message frame. A raft append is limited
	// well below this by MaxSizePerMsg; anything larger is a corrupt or hostile
	// stream, and refusing it keeps a bad length from exhausting memory.
	DefaultMaxFrameSize = 512 << 20
	// readChunk is how much a frame buffer grows at a time beyond its current
	// capacity, so that a peer claiming a huge length must actually send the
	// bytes before we hold the memory.
	readChunk = 1 << 20
	// maxScratch bounds the buffers kept between frames, so that one huge
	// message does not pin its size in memory for the life of a connection.
	maxScratch = 8 << 20
)

var magic = [4]byte{'E', 'N', 'S', 'P'}

// streamKind says what follows the handshake.
type streamKind uint8

const (
	kindMessages streamKind = 1
	kindSnapshot streamKind = 2
	// kindInfo asks a member what it knows of its cluster (ids, members), so
	// that a member joining an existing cluster can learn who it is. It is
	// answered without a cluster check: the asker does not know the id yet.
	kindInfo streamKind = 3
)

func (k streamKind) String() string {
	switch k {
	case kindMessages:
		return "messages"
	case kindSnapshot:
		return "snapshot"
	case kindInfo:
		return "info"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Handshake status bytes, written by the receiver after reading a handshake.
// They let the dialer log why it was refused instead of guessing from an EOF.
const (
	statusOK              byte = 0
	statusBadVersion      byte = 1
	statusBadKind         byte = 2
	statusClusterMismatch byte = 3
	statusWrongReceiver   byte = 4
)

// Snapshot verdicts, written by the receiver once ReceiveSnapshot returns.
const (
	snapshotOK     byte = 0
	snapshotFailed byte = 1
)

type handshake struct {
	kind    streamKind
	cluster types.ClusterID
	from    types.MemberID
	to      types.MemberID
}

func (h handshake) encode(b *[handshakeSize]byte) {
	copy(b[0:4], magic[:])
	b[4] = protocolVersion
	b[5] = byte(h.kind)
	binary.BigEndian.PutUint64(b[6:14], uint64(h.cluster))
	binary.BigEndian.PutUint64(b[14:22], uint64(h.from))
	binary.BigEndian.PutUint64(b[22:30], uint64(h.to))
}

// readHandshake reads and syntactically checks a handshake. The version and
// kind errors come back with the status byte to answer with; a bad magic gets
// no answer, since the other side does not speak our protocol.
func readHandshake(r io.Reader) (handshake, byte, error) {
	var b [handshakeSize]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return handshake{}, 0, err
	}
	return decodeHandshake(&b)
}

func decodeHandshake(b *[handshakeSize]byte) (handshake, byte, error) {
	if [4]byte(b[0:4]) != magic {
		return handshake{}, 0, ErrBadMagic
	}
	if b[4] != protocolVersion {
		return handshake{}, statusBadVersion, fmt.Errorf("%w: %d", ErrBadVersion, b[4])
	}
	h := handshake{
		kind:    streamKind(b[5]),
		cluster: types.ClusterID(binary.BigEndian.Uint64(b[6:14])),
		from:    types.MemberID(binary.BigEndian.Uint64(b[14:22])),
		to:      types.MemberID(binary.BigEndian.Uint64(b[22:30])),
	}
	if h.kind != kindMessages && h.kind != kindSnapshot && h.kind != kindInfo {
		return handshake{}, statusBadKind, fmt.Errorf("%w: %d", ErrBadKind, b[5])
	}
	return h, statusOK, nil
}

// statusError turns the receiver's handshake answer into an error.
func statusError(s byte) error {
	switch s {
	case statusOK:
		return nil
	case statusBadVersion:
		return fmt.Errorf("%w: %w", ErrRefused, ErrBadVersion)
	case statusBadKind:
		return fmt.Errorf("%w: %w", ErrRefused, ErrBadKind)
	case statusClusterMismatch:
		return fmt.Errorf("%w: %w", ErrRefused, ErrClusterMismatch)
	case statusWrongReceiver:
		return fmt.Errorf("%w: %w", ErrRefused, ErrWrongReceiver)
	}
	return fmt.Errorf("%w: status %d", ErrRefused, s)
}

// appendFrame appends m as one frame (uvarint length, then the marshaled
// message) to dst. size must be m.Size().
func appendFrame(dst []byte, m *raftpb.Message, size int) ([]byte, error) {
	dst = binary.AppendUvarint(dst, uint64(size))
	start := len(dst)
	dst = grow(dst, size)
	if _, err := m.MarshalToSizedBuffer(dst[start : start+size]); err != nil {
		return dst[:start], fmt.Errorf("transport: marshal %s: %w", m.Type, err)
	}
	return dst, nil
}

// grow extends b by n bytes, reallocating only when the capacity is short.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n, 2*cap(b)+n)
	copy(nb, b)
	return nb
}

// frameWriter writes frames into a bufio.Writer without allocating per
// message: small frames are marshaled straight into the writer's free space,
// large ones through a reusable scratch buffer.
type frameWriter struct {
	bw      *bufio.Writer
	scratch []byte
}

func (fw *frameWriter) write(m *raftpb.Message, size int) error {
	need := binary.MaxVarintLen64 + size
	if fw.bw.Available() < need && fw.bw.Buffered() > 0 && need <= fw.bw.Size() {
		// Make room so the frame can be built in place below.
		if err := fw.bw.Flush(); err != nil {
			return err
		}
	}
	var b []byte
	if fw.bw.Available() >= need {
		b = fw.bw.AvailableBuffer()
	} else {
		b = fw.scratch[:0]
	}
	b, err := appendFrame(b, m, size)
	if err != nil {
		return err
	}
	if cap(b) > cap(fw.scratch) && cap(b) > fw.bw.Size() && cap(b) <= maxScratch {
		fw.scratch = b[:0]
	}
	_, err = fw.bw.Write(b)
	return err
}

// readFrame reads one frame body from r into buf (reusing its capacity) and
// returns it. A length above max is ErrFrameTooLarge; the caller must then
// close the connection, since the stream can no longer be resynchronised.
func readFrame(r *bufio.Reader, buf []byte, limit int) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || (err != io.EOF && !isNetErr(err)) {
			return buf[:0], fmt.Errorf("%w: length: %w", ErrBadFrame, err)
		}
		return buf[:0], err
	}
	if n > uint64(limit) {
		return buf[:0], fmt.Errorf("%w: %d > %d bytes", ErrFrameTooLarge, n, limit)
	}
	size := int(n)
	if size <= cap(buf) {
		buf = buf[:size]
		if _, err := io.ReadFull(r, buf); err != nil {
			return buf[:0], unexpected(err)
		}
		return buf, nil
	}
	// Grow as the bytes arrive, so that a lying length costs the liar.
	buf = buf[:0]
	for len(buf) < size {
		step := min(size-len(buf), max(readChunk, len(buf)))
		start := len(buf)
		buf = grow(buf, step)
		if _, err := io.ReadFull(r, buf[start:]); err != nil {
			return buf[:0], unexpected(err)
		}
	}
	return buf, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// isNetErr reports whether err came from the connection rather than from the
// bytes on it.
func isNetErr(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne)
}

// decodeMessage unmarshals a frame body. The raftpb decoder copies byte
// fields out of body, so body may be reused for the next frame.
func decodeMessage(body []byte, m *raftpb.Message) error {
	if err := m.Unmarshal(body); err != nil {
		return fmt.Errorf("%w: %w", ErrBadFrame, err)
	}
	return nil
}
