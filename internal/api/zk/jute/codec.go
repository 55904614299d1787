package jute

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

var (
	// ErrMalformed marks input that is not a valid encoding of the record
	// being read: a short read, a negative or oversized length, an unknown
	// type inside a multi.
	ErrMalformed = errors.New("jute: malformed record")
	// ErrTooLarge marks a frame or a field whose length exceeds the limit.
	ErrTooLarge = errors.New("jute: too large")
	// ErrUnknownOp marks an opcode that has no request or response record
	// here (or that clients must not send).
	ErrUnknownOp = errors.New("jute: unknown opcode")
	// ErrInvalid marks a record that cannot be encoded, such as a multi op
	// without a body or a result of an unknown type.
	ErrInvalid = errors.New("jute: record cannot be encoded")
)

// Record is a jute record: a Go struct with a fixed wire layout.
type Record interface {
	// Encode appends the record to w. Errors are kept in w (see Writer.Err).
	Encode(w *Writer)
	// Decode reads the record from r and returns r's error, if any.
	Decode(r *Reader) error
}

// Reader decodes jute primitives from a byte slice.
//
// It keeps the first error; later reads return zero values, so a record can
// read all of its fields and look at Err once. Its zero value reads nothing.
// A Reader is not safe for concurrent use.
type Reader struct {
	buf   []byte
	off   int
	limit int
	err   error
}

// NewReader returns a Reader over buf. limit caps every single length read
// (string and buffer bytes, vector counts); limit <= 0 leaves only the bytes
// remaining as the cap.
func NewReader(buf []byte, limit int) *Reader {
	r := &Reader{}
	r.Reset(buf, limit)
	return r
}

// Reset makes r read buf from its start, forgetting any earlier error, so a
// connection can keep one Reader for all its frames.
func (r *Reader) Reset(buf []byte, limit int) {
	r.buf, r.off, r.limit, r.err = buf, 0, limit, nil
}

// Err returns the first error met, wrapping ErrMalformed or ErrTooLarge.
func (r *Reader) Err() error { return r.err }

// Len returns the number of bytes not yet read.
func (r *Reader) Len() int { return len(r.buf) - r.off }

// Offset returns the number of bytes read so far.
func (r *Reader) Offset() int { return r.off }

func (r *Reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	// Later reads see no bytes, which keeps them cheap and harmless.
	r.off = len(r.buf)
}

func (r *Reader) short(what string, need int) {
	if r.err == nil {
		r.fail(fmt.Errorf("%w: %s needs %d bytes, %d left", ErrMalformed, what, need, r.Len()))
	}
}

// Int32 reads a big-endian int32.
func (r *Reader) Int32() int32 {
	if r.Len() < 4 {
		r.short("int", 4)
		return 0
	}
	v := binary.BigEndian.Uint32(r.buf[r.off:])
	r.off += 4
	return int32(v)
}

// Int64 reads a big-endian int64.
func (r *Reader) Int64() int64 {
	if r.Len() < 8 {
		r.short("long", 8)
		return 0
	}
	v := binary.BigEndian.Uint64(r.buf[r.off:])
	r.off += 8
	return int64(v)
}

// Bool reads one byte; like ZooKeeper (Java's readBoolean), any non-zero
// byte is true.
func (r *Reader) Bool() bool {
	if r.Len() < 1 {
		r.short("boolean", 1)
		return false
	}
	v := r.buf[r.off]
	r.off++
	return v != 0
}

// length reads an int32 length and checks it: -1 is null (returned as -1),
// any other negative value is malformed, and a positive one must fit both
// the limit and the remaining bytes at minItem bytes per unit.
func (r *Reader) length(what string, minItem int) int {
	n := r.Int32()
	if r.err != nil {
		return 0
	}
	if n == -1 {
		return -1
	}
	if n < 0 {
		r.fail(fmt.Errorf("%w: %s length %d", ErrMalformed, what, n))
		return 0
	}
	if r.limit > 0 && int(n) > r.limit {
		r.fail(fmt.Errorf("%w: %s length %d exceeds limit %d", ErrTooLarge, what, n, r.limit))
		return 0
	}
	// Compare by division so that a huge count cannot overflow; this is the
	// check that stops a 4-byte input from asking for a 2 GiB allocation.
	if int(n) > r.Len()/minItem {
		r.fail(fmt.Errorf("%w: %s length %d with %d bytes left", ErrMalformed, what, n, r.Len()))
		return 0
	}
	return int(n)
}

// UString reads a ustring. Null (-1) reads as "": Go has no null string and
// no ZooKeeper request gives null a meaning of its own. The bytes are not
// checked for UTF-8; paths are validated where they are used.
func (r *Reader) UString() string {
	n := r.length("ustring", 1)
	if n <= 0 {
		return ""
	}
	s := string(r.buf[r.off : r.off+n])
	r.off += n
	return s
}

// Buffer reads a buffer. Null (-1) reads as nil and empty as a non-nil empty
// slice, because ZooKeeper keeps null and empty znode data apart. The result
// aliases the Reader's input and is capped so that appending to it cannot
// overwrite the input.
func (r *Reader) Buffer() []byte {
	n := r.length("buffer", 1)
	if n < 0 || r.err != nil {
		return nil
	}
	b := r.buf[r.off : r.off+n : r.off+n]
	r.off += n
	return b
}

// VectorLen reads a vector's count, checked against the remaining bytes at
// minItem bytes per item (at least 1). Null (-1) reads as 0.
func (r *Reader) VectorLen(minItem int) int {
	n := r.length("vector", max(minItem, 1))
	if n < 0 {
		return 0
	}
	return n
}

// StringVector reads a vector<ustring>. Null and empty both read as nil.
func (r *Reader) StringVector() []string {
	n := r.VectorLen(4)
	if n == 0 {
		return nil
	}
	v := make([]string, n)
	for i := range v {
		v[i] = r.UString()
	}
	if r.err != nil {
		return nil
	}
	return v
}

// Writer appends jute primitives to a byte slice. Its zero value is ready to
// use. A Writer is not safe for concurrent use.
type Writer struct {
	buf []byte
	err error
}

// NewWriter returns a Writer that appends to buf[:0], reusing its capacity.
func NewWriter(buf []byte) *Writer { return &Writer{buf: buf[:0]} }

// Reset empties w, keeping its capacity, and forgets any error.
func (w *Writer) Reset() { w.buf, w.err = w.buf[:0], nil }

// Bytes returns the bytes written so far; they alias w's buffer until the
// next Reset.
func (w *Writer) Bytes() []byte { return w.buf }

// Len returns the number of bytes written so far.
func (w *Writer) Len() int { return len(w.buf) }

// Err returns the first error met: a length that does not fit an int32
// (ErrTooLarge) or a record that cannot be encoded (ErrInvalid).
func (w *Writer) Err() error { return w.err }

func (w *Writer) fail(err error) {
	if w.err == nil {
		w.err = err
	}
}

// Int32 appends a big-endian int32.
func (w *Writer) Int32(v int32) { w.buf = binary.BigEndian.AppendUint32(w.buf, uint32(v)) }

// Int64 appends a big-endian int64.
func (w *Writer) Int64(v int64) { w.buf = binary.BigEndian.AppendUint64(w.buf, uint64(v)) }

// Bool appends one byte, 1 for true and 0 for false.
func (w *Writer) Bool(v bool) {
	var b byte
	if v {
		b = 1
	}
	w.buf = append(w.buf, b)
}

func (w *Writer) length(n int) {
	if n > math.MaxInt32 {
		w.fail(fmt.Errorf("%w: length %d does not fit an int", ErrTooLarge, n))
		n = 0
	}
	w.Int32(int32(n))
}

// UString appends a ustring (never null).
func (w *Writer) UString(s string) {
	w.length(len(s))
	if w.err == nil {
		w.buf = append(w.buf, s...)
	}
}

// Buffer appends a buffer; nil is written as null (-1).
func (w *Writer) Buffer(b []byte) {
	if b == nil {
		w.Int32(-1)
		return
	}
	w.length(len(b))
	if w.err == nil {
		w.buf = append(w.buf, b...)
	}
}

// VectorLen appends a vector count; the caller then appends the n items.
func (w *Writer) VectorLen(n int) { w.length(n) }

// StringVector appends a vector<ustring>; nil is written as empty, never as
// null.
func (w *Writer) StringVector(v []string) {
	w.VectorLen(len(v))
	for _, s := range v {
		w.UString(s)
	}
}

// BeginFrame appends a placeholder for a frame's length and returns its
// offset, to be given to EndFrame once the frame's records are appended.
func (w *Writer) BeginFrame() int {
	start := len(w.buf)
	w.buf = append(w.buf, 0, 0, 0, 0)
	return start
}

// EndFrame writes the length of the frame begun at start.
func (w *Writer) EndFrame(start int) {
	if start < 0 || start+4 > len(w.buf) {
		w.fail(fmt.Errorf("%w: frame start %d outside %d bytes", ErrInvalid, start, len(w.buf)))
		return
	}
	n := len(w.buf) - start - 4
	if n > math.MaxInt32 {
		w.fail(fmt.Errorf("%w: frame of %d bytes", ErrTooLarge, n))
		return
	}
	binary.BigEndian.PutUint32(w.buf[start:], uint32(n))
}
