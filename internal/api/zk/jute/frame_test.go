package jute

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	var stream bytes.Buffer
	bodies := [][]byte{{}, []byte("one"), bytes.Repeat([]byte{0xab}, 5000)}
	for _, b := range bodies {
		if err := WriteFrame(&stream, b); err != nil {
			t.Fatal(err)
		}
	}
	br := bufio.NewReader(&stream)
	buf := make([]byte, 0, 16)
	for i, want := range bodies {
		got, err := ReadFrame(br, 0, buf)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("frame %d: got %d bytes, want %d", i, len(got), len(want))
		}
		if len(want) <= cap(buf) && len(want) > 0 && &got[0] != &buf[:1][0] {
			t.Fatalf("frame %d did not reuse the caller's buffer", i)
		}
	}
	if _, err := ReadFrame(br, 0, nil); err != io.EOF {
		t.Fatalf("at end: %v, want io.EOF", err)
	}
}

func TestReadFrameTooLargeConsumesNothing(t *testing.T) {
	// A four-letter word arrives where a length should be: "ruok" is a
	// length of 1.9 GB, refused without reading, and still there to peek.
	br := bufio.NewReader(bytes.NewReader([]byte("ruok")))
	if _, err := ReadFrame(br, DefaultMaxBuffer, nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err %v, want ErrTooLarge", err)
	}
	if p, _ := br.Peek(4); string(p) != "ruok" {
		t.Fatalf("header consumed: %q left", p)
	}

	// The limit is inclusive: a frame of exactly limit bytes is fine.
	var stream bytes.Buffer
	_ = WriteFrame(&stream, make([]byte, 10))
	_ = WriteFrame(&stream, make([]byte, 11))
	br = bufio.NewReader(&stream)
	if _, err := ReadFrame(br, 10, nil); err != nil {
		t.Fatalf("frame at the limit: %v", err)
	}
	if _, err := ReadFrame(br, 10, nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("frame over the limit: %v", err)
	}
}

func TestReadFrameDefaultLimit(t *testing.T) {
	var stream bytes.Buffer
	_ = WriteFrame(&stream, make([]byte, DefaultMaxBuffer+1))
	if _, err := ReadFrame(bufio.NewReader(&stream), 0, nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err %v, want ErrTooLarge", err)
	}
}

func TestReadFrameBadInput(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"negative length", mustHex(t, `ffffffff`), ErrMalformed},
		{"short header", mustHex(t, `0000`), io.ErrUnexpectedEOF},
		{"short body", mustHex(t, `00000004 0102`), io.ErrUnexpectedEOF},
		{"no body", mustHex(t, `00000004`), io.ErrUnexpectedEOF},
		{"empty", nil, io.EOF},
	}
	for _, c := range cases {
		_, err := ReadFrame(bufio.NewReader(bytes.NewReader(c.in)), 0, nil)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
}

func TestWriteFrameOverTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		done <- WriteFrame(c, []byte("hello over tcp"))
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := ReadFrame(bufio.NewReader(c), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "hello over tcp" {
		t.Fatalf("got %q", got)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
