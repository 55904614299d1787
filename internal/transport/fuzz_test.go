package transport

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

// FuzzReadFrame feeds arbitrary bytes to the inbound decoder: a handshake,
// then frames until the input runs out or is refused. Nothing may panic, no
// frame over the limit may be accepted, a decoded message must not alias the
// reused frame buffer, and it must survive a re-frame unchanged.
func FuzzReadFrame(f *testing.F) {
	var hs [handshakeSize]byte
	handshake{kind: kindMessages, cluster: 1, from: 2, to: 3}.encode(&hs)
	seed := func(msgs ...raftpb.Message) []byte {
		b := append([]byte(nil), hs[:]...)
		for i := range msgs {
			var err error
			if b, err = appendFrame(b, &msgs[i], msgs[i].Size()); err != nil {
				f.Fatal(err)
			}
		}
		return b
	}
	f.Add(seed())
	f.Add(seed(raftpb.Message{Type: raftpb.MsgHeartbeat, From: 2, To: 3}, app(2, 3, 9, []byte("entry"))))
	f.Add(seed(raftpb.Message{Type: raftpb.MsgSnap, From: 2, To: 3, Snapshot: &raftpb.Snapshot{Data: []byte("m")}}))
	f.Add(append(seed(), binary.AppendUvarint(nil, 1<<40)...))
	f.Add(append(seed(), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01))
	f.Add(append(seed(), 5, 1, 2))
	f.Add(hs[:10])
	bad := hs
	bad[4] = 9
	f.Add(bad[:])

	const limit = 1 << 16
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(data), 16)
		h, status, err := readHandshake(br)
		if err != nil {
			if status == statusOK && !errors.Is(err, ErrBadMagic) && !errors.Is(err, io.ErrUnexpectedEOF) && err != io.EOF {
				t.Fatalf("handshake error %v without a refusal status", err)
			}
			return
		}
		var again [handshakeSize]byte
		h.encode(&again)
		if !bytes.Equal(again[:], data[:handshakeSize]) {
			t.Fatalf("handshake %+v re-encodes differently", h)
		}
		var buf []byte
		for {
			buf, err = readFrame(br, buf, limit)
			if err != nil {
				if len(buf) != 0 {
					t.Fatal("failed read returned a body")
				}
				return
			}
			if len(buf) > limit {
				t.Fatalf("frame of %d bytes accepted over the %d limit", len(buf), limit)
			}
			var m raftpb.Message
			if err := decodeMessage(buf, &m); err != nil {
				return
			}
			// Byte fields must not alias the reused frame buffer.
			enc1, err := m.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			clear(buf)
			enc2, err := m.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc1, enc2) {
				t.Fatal("decoded message aliases the frame buffer")
			}
			// A decoded message re-frames and decodes to the same thing.
			framed, err := appendFrame(nil, &m, m.Size())
			if err != nil {
				t.Fatal(err)
			}
			body, err := readFrame(bufio.NewReader(bytes.NewReader(framed)), nil, limit+len(enc1))
			if err != nil {
				t.Fatal(err)
			}
			var m2 raftpb.Message
			if err := decodeMessage(body, &m2); err != nil {
				t.Fatal(err)
			}
			if enc3, _ := m2.Marshal(); !bytes.Equal(enc1, enc3) {
				t.Fatal("message changed across a re-frame")
			}
		}
	})
}
