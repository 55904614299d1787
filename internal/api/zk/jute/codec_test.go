package jute

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"testing"
)

func TestPrimitivesRoundTrip(t *testing.T) {
	var w Writer
	w.Int32(math.MinInt32)
	w.Int64(math.MaxInt64)
	w.Bool(true)
	w.Bool(false)
	w.UString("")
	w.UString("héllo")
	w.Buffer(nil)
	w.Buffer([]byte{})
	w.Buffer([]byte{1, 2, 3})
	w.StringVector(nil)
	w.StringVector([]string{"a", ""})
	if w.Err() != nil {
		t.Fatal(w.Err())
	}
	want := mustHex(t, `
		80000000 7fffffffffffffff 01 00
		00000000 00000006 68c3a96c6c6f
		ffffffff 00000000 00000003 010203
		00000000 00000002 00000001 61 00000000`)
	if !bytes.Equal(w.Bytes(), want) {
		t.Fatalf("got  %x\nwant %x", w.Bytes(), want)
	}

	r := NewReader(w.Bytes(), 0)
	if v := r.Int32(); v != math.MinInt32 {
		t.Errorf("Int32 = %d", v)
	}
	if v := r.Int64(); v != math.MaxInt64 {
		t.Errorf("Int64 = %d", v)
	}
	if !r.Bool() || r.Bool() {
		t.Error("Bool")
	}
	if r.UString() != "" || r.UString() != "héllo" {
		t.Error("UString")
	}
	if b := r.Buffer(); b != nil {
		t.Errorf("null buffer = %#v, want nil", b)
	}
	if b := r.Buffer(); b == nil || len(b) != 0 {
		t.Errorf("empty buffer = %#v, want non-nil empty", b)
	}
	if b := r.Buffer(); !bytes.Equal(b, []byte{1, 2, 3}) || cap(b) != 3 {
		t.Errorf("buffer = %v (cap %d)", b, cap(b))
	}
	if v := r.StringVector(); v != nil {
		t.Errorf("empty vector = %#v", v)
	}
	if v := r.StringVector(); !reflect.DeepEqual(v, []string{"a", ""}) {
		t.Errorf("vector = %#v", v)
	}
	if r.Err() != nil || r.Len() != 0 || r.Offset() != len(want) {
		t.Fatalf("err %v, %d left", r.Err(), r.Len())
	}
}

func TestReaderNullAndLenient(t *testing.T) {
	// Null ustring and null vector read as empty; any non-zero boolean byte
	// is true, as in Java's readBoolean.
	r := NewReader(mustHex(t, `ffffffff ffffffff 02`), 0)
	if s := r.UString(); s != "" {
		t.Errorf("null ustring = %q", s)
	}
	if v := r.StringVector(); v != nil {
		t.Errorf("null vector = %#v", v)
	}
	if !r.Bool() {
		t.Error("bool 2 read as false")
	}
	if r.Err() != nil {
		t.Fatal(r.Err())
	}
}

func TestReaderRejectsBadLengths(t *testing.T) {
	cases := []struct {
		name  string
		in    string
		limit int
		read  func(*Reader)
		want  error
	}{
		{"negative string", `fffffffe`, 0, func(r *Reader) { r.UString() }, ErrMalformed},
		{"negative buffer", `80000000`, 0, func(r *Reader) { r.Buffer() }, ErrMalformed},
		{"string past end", `00000005 6162`, 0, func(r *Reader) { r.UString() }, ErrMalformed},
		{"huge vector", `7fffffff 00000000`, 0, func(r *Reader) { r.StringVector() }, ErrMalformed},
		{"vector past end", `00000003 00000000 00000000`, 0, func(r *Reader) { r.StringVector() }, ErrMalformed},
		{"buffer over limit", `00000004 01020304`, 3, func(r *Reader) { r.Buffer() }, ErrTooLarge},
		{"vector over limit", `00000002 00000000 00000000`, 1, func(r *Reader) { r.StringVector() }, ErrTooLarge},
		{"short int", `000000`, 0, func(r *Reader) { r.Int32() }, ErrMalformed},
		{"short long", `00000000000000`, 0, func(r *Reader) { r.Int64() }, ErrMalformed},
		{"short bool", ``, 0, func(r *Reader) { r.Bool() }, ErrMalformed},
	}
	for _, c := range cases {
		r := NewReader(mustHex(t, c.in), c.limit)
		c.read(r)
		if !errors.Is(r.Err(), c.want) {
			t.Errorf("%s: err %v, want %v", c.name, r.Err(), c.want)
		}
		// The error sticks and later reads are harmless no-ops.
		if r.Int64() != 0 || r.UString() != "" || r.Buffer() != nil || r.Len() != 0 {
			t.Errorf("%s: reads after an error returned data", c.name)
		}
	}
}

func TestHugeVectorDoesNotAllocate(t *testing.T) {
	// A count of 2^31-1 ACLs in a 12-byte input must fail before making a
	// slice for them.
	in := mustHex(t, `00000000 7fffffff 00000000`)
	allocs := testing.AllocsPerRun(100, func() {
		var x GetACLResponse
		_ = x.Decode(NewReader(in, 0))
	})
	// Only the error value itself may be allocated.
	if allocs > 4 {
		t.Fatalf("%v allocations decoding a bogus vector", allocs)
	}
}

func TestReaderReset(t *testing.T) {
	r := NewReader([]byte{1}, 0)
	r.Int32()
	if r.Err() == nil {
		t.Fatal("want error")
	}
	r.Reset(mustHex(t, `0000002a`), 0)
	if v := r.Int32(); v != 42 || r.Err() != nil {
		t.Fatalf("after Reset: %d, %v", v, r.Err())
	}
	var zero Reader
	if zero.Bool(); !errors.Is(zero.Err(), ErrMalformed) {
		t.Fatalf("zero Reader: %v", zero.Err())
	}
}

func TestWriterReuse(t *testing.T) {
	w := NewWriter(make([]byte, 3, 64))
	if w.Len() != 0 {
		t.Fatalf("NewWriter kept %d bytes", w.Len())
	}
	w.Int32(1)
	p := &w.Bytes()[0]
	w.Reset()
	w.Int32(2)
	if &w.Bytes()[0] != p {
		t.Fatal("Reset dropped the buffer")
	}
	if !bytes.Equal(w.Bytes(), []byte{0, 0, 0, 2}) {
		t.Fatalf("%x", w.Bytes())
	}
}

func TestEndFrameBadStart(t *testing.T) {
	var w Writer
	w.EndFrame(0)
	if !errors.Is(w.Err(), ErrInvalid) {
		t.Fatalf("EndFrame without BeginFrame: %v", w.Err())
	}
}

// TestEncodeAllocs guards the hot path: encoding a reply into a reused
// Writer allocates nothing.
func TestEncodeAllocs(t *testing.T) {
	w := NewWriter(make([]byte, 0, 1024))
	rsp := &GetDataResponse{Data: []byte("value"), Stat: sampleStat}
	hdr := &ReplyHeader{Xid: 5, Zxid: 6}
	allocs := testing.AllocsPerRun(100, func() {
		w.Reset()
		start := w.BeginFrame()
		hdr.Encode(w)
		rsp.Encode(w)
		w.EndFrame(start)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per encoded reply", allocs)
	}
}

func BenchmarkDecodeSetData(b *testing.B) {
	var w Writer
	(&RequestHeader{Xid: 1, Type: OpSetData}).Encode(&w)
	(&SetDataRequest{Path: "/bench/node-000001", Data: bytes.Repeat([]byte("x"), 128), Version: -1}).Encode(&w)
	frame := w.Bytes()
	var r Reader
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(frame, DefaultMaxBuffer)
		var h RequestHeader
		if err := h.Decode(&r); err != nil {
			b.Fatal(err)
		}
		if _, err := DecodeRequest(h.Type, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeGetDataReply(b *testing.B) {
	w := NewWriter(make([]byte, 0, 4096))
	rsp := &GetDataResponse{Data: bytes.Repeat([]byte("x"), 128), Stat: sampleStat}
	hdr := &ReplyHeader{Xid: 5, Zxid: 6}
	b.ReportAllocs()
	for b.Loop() {
		w.Reset()
		start := w.BeginFrame()
		hdr.Encode(w)
		rsp.Encode(w)
		w.EndFrame(start)
	}
}
