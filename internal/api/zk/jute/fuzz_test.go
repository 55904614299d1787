package jute

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
)

// FuzzDecodeRequest feeds an arbitrary opcode and body to DecodeRequest. It
// must never panic, must fail only with the package's sentinels, and a
// request it accepts must re-encode to bytes that decode to the same
// request.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range samples() {
		if s.kind == kindRequest {
			f.Add(int32(s.op), encode(f, s.rec))
		}
	}
	f.Add(int32(OpMulti), []byte{0, 0, 0, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff})
	f.Add(int32(OpSetWatches), []byte{0, 0, 0, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, op int32, body []byte) {
		req, err := DecodeRequest(OpCode(op), NewReader(body, DefaultMaxBuffer))
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrUnknownOp) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		var w Writer
		req.Encode(&w)
		if w.Err() != nil {
			t.Fatalf("re-encode %T: %v", req, w.Err())
		}
		again, err := DecodeRequest(OpCode(op), NewReader(w.Bytes(), DefaultMaxBuffer))
		if err != nil {
			t.Fatalf("re-decode %T: %v", req, err)
		}
		if !reflect.DeepEqual(req, again) {
			t.Fatalf("re-decode differs:\n%#v\n%#v", req, again)
		}
	})
}

// FuzzDecodeResponse does the same for the client side of the codec, used
// by compat tests and tools.
func FuzzDecodeResponse(f *testing.F) {
	for _, s := range samples() {
		if s.kind == kindResponse {
			f.Add(int32(s.op), encode(f, s.rec))
		}
	}
	f.Fuzz(func(t *testing.T, op int32, body []byte) {
		rsp, err := DecodeResponse(OpCode(op), NewReader(body, DefaultMaxBuffer))
		if err != nil {
			return
		}
		var w Writer
		rsp.Encode(&w)
		if w.Err() != nil {
			t.Fatalf("re-encode %T: %v", rsp, w.Err())
		}
		again, err := DecodeResponse(OpCode(op), NewReader(w.Bytes(), DefaultMaxBuffer))
		if err != nil || !reflect.DeepEqual(rsp, again) {
			t.Fatalf("re-decode %T: %v\n%#v\n%#v", rsp, err, rsp, again)
		}
	})
}

// FuzzConnectRequest covers the one request that has no header.
func FuzzConnectRequest(f *testing.F) {
	f.Add(encode(f, &ConnectRequest{TimeOut: 10000, Passwd: make([]byte, 16)}))
	f.Add(encode(f, &ConnectRequest{TimeOut: 10000, Passwd: nil})[:28])
	f.Fuzz(func(t *testing.T, body []byte) {
		var c ConnectRequest
		if c.Decode(NewReader(body, DefaultMaxBuffer)) != nil {
			return
		}
		var again ConnectRequest
		if err := again.Decode(NewReader(encode(t, &c), 0)); err != nil || !reflect.DeepEqual(c, again) {
			t.Fatalf("re-decode: %v\n%#v\n%#v", err, c, again)
		}
	})
}

// FuzzFrame reads frames from an arbitrary stream with a small limit: it
// must never panic or return a body over the limit, and the frames it
// returns, written back, must reproduce the bytes they were read from.
func FuzzFrame(f *testing.F) {
	var seed bytes.Buffer
	_ = WriteFrame(&seed, []byte("abc"))
	_ = WriteFrame(&seed, nil)
	f.Add(seed.Bytes(), 16)
	f.Add([]byte("ruok"), 16)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, 16)
	f.Add([]byte{0, 0, 0, 9, 1}, 64)
	f.Fuzz(func(t *testing.T, in []byte, limit int) {
		limit = limit%4096 + 1
		if limit <= 0 {
			limit += 4096
		}
		br := bufio.NewReader(bytes.NewReader(in))
		var out bytes.Buffer
		buf := make([]byte, 0, 8)
		for {
			body, err := ReadFrame(br, limit, buf)
			if err != nil {
				if err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
					t.Fatalf("unexpected error: %v", err)
				}
				break
			}
			if len(body) > limit {
				t.Fatalf("body of %d bytes over limit %d", len(body), limit)
			}
			if err := WriteFrame(&out, body); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.HasPrefix(in, out.Bytes()) {
			t.Fatalf("re-framed %x is not a prefix of the input %x", out.Bytes(), in)
		}
	})
}
