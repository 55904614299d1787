package zktree

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"ensemble/internal/api/zk/jute"
)

func sampleCommands() []*Command {
	auth := []jute.Id{{Scheme: "ip", ID: "127.0.0.1"}, {Scheme: "digest", ID: "bob:x"}}
	return []*Command{
		{Session: 1, Time: 2, Auth: auth, Op: jute.OpCreate, Req: &jute.CreateRequest{Path: "/a", Data: []byte("d"), ACL: openACLs, Flags: jute.ModeEphemeralSequential}},
		{Session: 1, Op: jute.OpCreate2, Req: &jute.CreateRequest{Path: "/a", Data: []byte{}, ACL: openACLs}},
		{Op: jute.OpCreateContainer, Req: &jute.CreateRequest{Path: "/c", ACL: openACLs, Flags: jute.ModeContainer}},
		{Op: jute.OpCreateTTL, Req: &jute.CreateTTLRequest{Path: "/t", ACL: openACLs, Flags: jute.ModePersistentWithTTL, TTL: 99}},
		{Session: -5, Time: -1, Op: jute.OpDelete, Req: &jute.DeleteRequest{Path: "/a", Version: -1}},
		{Op: jute.OpSetData, Req: &jute.SetDataRequest{Path: "/a", Version: 3}},
		{Op: jute.OpSetACL, Req: &jute.SetACLRequest{Path: "/a", ACL: openACLs, Version: 1}},
		{Op: jute.OpCheck, Req: &jute.CheckVersionRequest{Path: "/a", Version: 7}},
		{Op: jute.OpMulti, Req: &jute.MultiRequest{Ops: []jute.MultiOp{
			{Type: jute.OpCreate, Op: &jute.CreateRequest{Path: "/m", ACL: openACLs}},
			{Type: jute.OpCheck, Op: &jute.CheckVersionRequest{Path: "/m", Version: 0}},
			{Type: jute.OpCreateTTL, Op: &jute.CreateTTLRequest{Path: "/m", ACL: openACLs, Flags: jute.ModePersistentWithTTL, TTL: 1}},
			{Type: jute.OpDelete, Op: &jute.DeleteRequest{Path: "/m", Version: -1}},
		}}},
		{Op: jute.OpMulti, Req: &jute.MultiRequest{}},
		{Session: 1 << 62, Time: 1, Op: jute.OpCreateSession, Req: &SessionRequest{Timeout: 30000, Passwd: bytes.Repeat([]byte{7}, 16)}},
		{Session: 1 << 62, Op: jute.OpCloseSession},
		{Op: OpExpireTTL, Req: &ExpireTTL{Path: "/t", Mzxid: 12}},
	}
}

func TestCommandRoundTrip(t *testing.T) {
	for _, c := range sampleCommands() {
		b, err := c.Marshal()
		if err != nil {
			t.Fatalf("%v: %v", c.Op, err)
		}
		got, err := UnmarshalCommand(b)
		if err != nil {
			t.Fatalf("%v: %v", c.Op, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Fatalf("%v round trip:\n%#v\n%#v", c.Op, got, c)
		}
		for i := range b {
			if _, err := UnmarshalCommand(b[:i]); !errors.Is(err, ErrMalformed) {
				t.Fatalf("%v truncated to %d: %v", c.Op, i, err)
			}
		}
		if _, err := UnmarshalCommand(append(b, 0)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%v with a trailing byte: %v", c.Op, err)
		}
	}
	// The close request record is accepted in place of nil.
	c := &Command{Op: jute.OpCloseSession, Req: &jute.CloseSessionRequest{}}
	if _, err := c.Marshal(); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []*Command{
		{Op: jute.OpCreate, Req: &jute.DeleteRequest{}},
		{Op: jute.OpCreate},
		{Op: jute.OpGetData, Req: &jute.GetDataRequest{}},
		{Op: jute.OpMulti, Req: &jute.MultiRequest{Ops: []jute.MultiOp{{Type: jute.OpGetData, Op: &jute.GetDataRequest{}}}}},
	} {
		if _, err := bad.Marshal(); !errors.Is(err, ErrInvalidCommand) {
			t.Errorf("Marshal %v with %T: %v", bad.Op, bad.Req, err)
		}
	}
}

func FuzzUnmarshalCommand(f *testing.F) {
	for _, c := range sampleCommands() {
		b, err := c.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := UnmarshalCommand(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error outside ErrMalformed: %v", err)
			}
			return
		}
		b2, err := c.Marshal()
		if err != nil {
			t.Fatalf("re-encode %v: %v", c.Op, err)
		}
		c2, err := UnmarshalCommand(b2)
		if err != nil {
			t.Fatalf("re-decode %v: %v", c.Op, err)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip differs:\n%#v\n%#v", c, c2)
		}
		b3, err := c2.Marshal()
		if err != nil || !bytes.Equal(b2, b3) {
			t.Fatalf("encoding not stable: %v", err)
		}
	})
}

// TestApplyDecodedCommands applies every sample after a trip through the
// log encoding, as followers do; none may panic.
func TestApplyDecodedCommands(t *testing.T) {
	e := newEnv(t)
	for _, c := range sampleCommands() {
		b, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		d, err := UnmarshalCommand(b)
		if err != nil {
			t.Fatal(err)
		}
		e.apply(d)
	}
	e.check()
}
