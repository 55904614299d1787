package jute

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
)

// DefaultMaxBuffer is ZooKeeper's default jute.maxbuffer: 0xfffff bytes, one
// byte short of 1 MiB. A frame longer than the limit is refused.
const DefaultMaxBuffer = 0xfffff

// ReadFrame reads one length-prefixed frame from br and returns its body.
//
// The body is read into buf when it fits buf's capacity, so a connection can
// reuse one buffer; otherwise a new slice is allocated. limit <= 0 means
// DefaultMaxBuffer. A length above limit fails with ErrTooLarge and a negative
// one with ErrMalformed; in both cases nothing is consumed from br (the four
// length bytes stay there, which lets the caller look at them, for instance
// for a four-letter word). A clean end of stream before a frame starts
// returns io.EOF; an end inside a frame returns io.ErrUnexpectedEOF.
func ReadFrame(br *bufio.Reader, limit int, buf []byte) ([]byte, error) {
	if limit <= 0 {
		limit = DefaultMaxBuffer
	}
	hdr, err := br.Peek(4)
	if err != nil {
		if errors.Is(err, io.EOF) && len(hdr) > 0 {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(hdr))
	if n < 0 {
		return nil, fmt.Errorf("%w: frame length %d", ErrMalformed, n)
	}
	if int64(n) > int64(limit) {
		return nil, fmt.Errorf("%w: frame of %d bytes exceeds %d", ErrTooLarge, n, limit)
	}
	if _, err := br.Discard(4); err != nil {
		return nil, err
	}
	if cap(buf) >= int(n) {
		buf = buf[:n]
	} else {
		buf = make([]byte, n)
	}
	if _, err := io.ReadFull(br, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return buf, nil
}

// WriteFrame writes body to w behind its length. On a TCP connection that is
// one writev; other writers get two Write calls, so wrap them in a
// bufio.Writer. On hot paths, prefer building the frame in place with
// Writer.BeginFrame and Writer.EndFrame and writing it once.
func WriteFrame(w io.Writer, body []byte) error {
	if int64(len(body)) > int64(^uint32(0)>>1) {
		return fmt.Errorf("%w: frame of %d bytes", ErrTooLarge, len(body))
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(body)))
	bufs := net.Buffers{hdr[:], body}
	_, err := bufs.WriteTo(w)
	return err
}
