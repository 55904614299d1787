package jute

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
)

var sampleStat = Stat{
	Czxid: 0x0102030405060708, Mzxid: 2, Ctime: 1700000000000, Mtime: 1700000000001,
	Version: 3, Cversion: 4, Aversion: 5, EphemeralOwner: -6, DataLength: 7, NumChildren: 8, Pzxid: 9,
}

var sampleACL = []ACL{
	{Perms: PermAll, ID: Id{Scheme: "world", ID: "anyone"}},
	{Perms: PermRead | PermAdmin, ID: Id{Scheme: "digest", ID: "bob:hash="}},
}

// sampleRecords holds one filled-in value of every record type; requests
// and responses are tied to an opcode so the decoder tables are checked too.
type sample struct {
	name string
	op   OpCode // for requests and responses
	kind int    // kindRecord, kindRequest or kindResponse
	rec  Record
}

const (
	kindRecord = iota
	kindRequest
	kindResponse
)

func samples() []sample {
	create := &CreateRequest{Path: "/a/b", Data: []byte("data"), ACL: sampleACL, Flags: ModeEphemeralSequential}
	createTTL := &CreateTTLRequest{Path: "/ttl", Data: []byte{}, ACL: sampleACL[:1], Flags: ModePersistentWithTTL, TTL: 60000}
	multi := &MultiRequest{Ops: []MultiOp{
		{Type: OpCreate, Op: &CreateRequest{Path: "/m/1", Data: nil, ACL: sampleACL[:1], Flags: ModePersistent}},
		{Type: OpCreate2, Op: &CreateRequest{Path: "/m/2", Data: []byte("x"), ACL: sampleACL[:1], Flags: ModeEphemeral}},
		{Type: OpCreateContainer, Op: &CreateRequest{Path: "/m/c", ACL: sampleACL[:1], Flags: ModeContainer}},
		{Type: OpCreateTTL, Op: &CreateTTLRequest{Path: "/m/t", ACL: sampleACL[:1], Flags: ModePersistentSequentialWithTTL, TTL: 5}},
		{Type: OpDelete, Op: &DeleteRequest{Path: "/m/0", Version: -1}},
		{Type: OpSetData, Op: &SetDataRequest{Path: "/m", Data: []byte("y"), Version: 7}},
		{Type: OpCheck, Op: &CheckVersionRequest{Path: "/m", Version: 8}},
	}}
	multiRead := &MultiRequest{Ops: []MultiOp{
		{Type: OpGetData, Op: &GetDataRequest{Path: "/r/1"}},
		{Type: OpGetChildren, Op: &GetChildrenRequest{Path: "/r"}},
	}}
	multiRsp := &MultiResponse{Results: []MultiResult{
		{Type: OpCreate, Path: "/m/1"},
		{Type: OpCreate2, Path: "/m/2", Stat: sampleStat},
		{Type: OpDelete},
		{Type: OpSetData, Stat: sampleStat},
		{Type: OpCheck},
		{Type: OpError, Err: CodeBadVersion},
	}}
	multiReadRsp := &MultiResponse{Results: []MultiResult{
		{Type: OpGetData, Data: []byte("v"), Stat: sampleStat},
		{Type: OpGetData, Data: nil, Stat: sampleStat},
		{Type: OpGetChildren, Children: []string{"a", "b"}},
		{Type: OpError, Err: CodeNoNode},
	}}
	return []sample{
		{"Id", 0, kindRecord, &Id{Scheme: "ip", ID: "10.0.0.0/8"}},
		{"ACL", 0, kindRecord, &sampleACL[1]},
		{"Stat", 0, kindRecord, &Stat{Czxid: 1, Mzxid: 2, Ctime: 3, Mtime: 4, Version: 5, Cversion: 6, Aversion: 7, EphemeralOwner: 8, DataLength: 9, NumChildren: 10, Pzxid: 11}},
		{"StatPersisted", 0, kindRecord, &StatPersisted{Czxid: 1, Mzxid: 2, Ctime: 3, Mtime: 4, Version: 5, Cversion: 6, Aversion: 7, EphemeralOwner: 8, Pzxid: 9}},
		{"ClientInfo", 0, kindRecord, &ClientInfo{AuthScheme: "digest", User: "bob"}},
		{"ConnectRequest", 0, kindRecord, &ConnectRequest{ProtocolVersion: 0, LastZxidSeen: 42, TimeOut: 30000, SessionID: 0x1234, Passwd: bytes.Repeat([]byte{7}, 16), ReadOnly: true}},
		{"ConnectResponse", 0, kindRecord, &ConnectResponse{ProtocolVersion: 0, TimeOut: 4000, SessionID: 0x1234, Passwd: bytes.Repeat([]byte{9}, 16), ReadOnly: true}},
		{"RequestHeader", 0, kindRecord, &RequestHeader{Xid: 17, Type: OpGetData}},
		{"ReplyHeader", 0, kindRecord, &ReplyHeader{Xid: 17, Zxid: 99, Err: CodeNoNode}},
		{"MultiHeader", 0, kindRecord, &MultiHeader{Type: OpSetData, Done: true, Err: -1}},
		{"WatcherEvent", 0, kindRecord, &WatcherEvent{Type: EventNodeChildrenChanged, State: StateSyncConnected, Path: "/w"}},

		{"create", OpCreate, kindRequest, create},
		{"create2", OpCreate2, kindRequest, &CreateRequest{Path: "/c2", Data: nil, ACL: sampleACL, Flags: ModePersistentSequential}},
		{"createContainer", OpCreateContainer, kindRequest, &CreateRequest{Path: "/cc", Data: []byte("c"), ACL: sampleACL, Flags: ModeContainer}},
		{"createTTL", OpCreateTTL, kindRequest, createTTL},
		{"delete", OpDelete, kindRequest, &DeleteRequest{Path: "/d", Version: 3}},
		{"exists", OpExists, kindRequest, &ExistsRequest{Path: "/e", Watch: true}},
		{"getData", OpGetData, kindRequest, &GetDataRequest{Path: "/g", Watch: true}},
		{"setData", OpSetData, kindRequest, &SetDataRequest{Path: "/s", Data: []byte("new"), Version: -1}},
		{"getACL", OpGetACL, kindRequest, &GetACLRequest{Path: "/acl"}},
		{"setACL", OpSetACL, kindRequest, &SetACLRequest{Path: "/acl", ACL: sampleACL, Version: 2}},
		{"getChildren", OpGetChildren, kindRequest, &GetChildrenRequest{Path: "/p", Watch: true}},
		{"getChildren2", OpGetChildren2, kindRequest, &GetChildren2Request{Path: "/p2", Watch: true}},
		{"getAllChildrenNumber", OpGetAllChildrenNumber, kindRequest, &GetAllChildrenNumberRequest{Path: "/n"}},
		{"getEphemerals", OpGetEphemerals, kindRequest, &GetEphemeralsRequest{PrefixPath: "/eph"}},
		{"check", OpCheck, kindRequest, &CheckVersionRequest{Path: "/chk", Version: 4}},
		{"multi", OpMulti, kindRequest, multi},
		{"multiEmpty", OpMulti, kindRequest, &MultiRequest{}},
		{"multiRead", OpMultiRead, kindRequest, multiRead},
		{"sync", OpSync, kindRequest, &SyncRequest{Path: "/sync"}},
		{"setWatches", OpSetWatches, kindRequest, &SetWatches{RelativeZxid: 77, DataWatches: []string{"/a"}, ExistWatches: []string{"/b", "/c"}, ChildWatches: nil}},
		{"setWatches2", OpSetWatches2, kindRequest, &SetWatches2{RelativeZxid: 78, DataWatches: []string{"/a"}, ExistWatches: []string{"/b"}, ChildWatches: []string{"/c"}, PersistentWatches: []string{"/d"}, PersistentRecursiveWatches: []string{"/e", "/f"}}},
		{"addWatch", OpAddWatch, kindRequest, &AddWatchRequest{Path: "/aw", Mode: AddWatchPersistentRecursive}},
		{"removeWatches", OpRemoveWatches, kindRequest, &RemoveWatchesRequest{Path: "/rw", Type: WatcherAny}},
		{"checkWatches", OpCheckWatches, kindRequest, &CheckWatchesRequest{Path: "/cw", Type: WatcherData}},
		{"whoAmI", OpWhoAmI, kindRequest, &WhoAmIRequest{}},
		{"auth", OpAuth, kindRequest, &AuthPacket{Type: 0, Scheme: "digest", Auth: []byte("bob:secret")}},
		{"closeSession", OpCloseSession, kindRequest, &CloseSessionRequest{}},
		{"ping", OpPing, kindRequest, &PingRequest{}},

		{"createRsp", OpCreate, kindResponse, &CreateResponse{Path: "/a/b0000000001"}},
		{"create2Rsp", OpCreate2, kindResponse, &Create2Response{Path: "/c2", Stat: sampleStat}},
		{"createContainerRsp", OpCreateContainer, kindResponse, &Create2Response{Path: "/cc", Stat: sampleStat}},
		{"createTTLRsp", OpCreateTTL, kindResponse, &Create2Response{Path: "/ttl", Stat: sampleStat}},
		{"deleteRsp", OpDelete, kindResponse, &EmptyResponse{}},
		{"existsRsp", OpExists, kindResponse, &ExistsResponse{Stat: sampleStat}},
		{"getDataRsp", OpGetData, kindResponse, &GetDataResponse{Data: []byte("value"), Stat: sampleStat}},
		{"getDataNullRsp", OpGetData, kindResponse, &GetDataResponse{Data: nil, Stat: sampleStat}},
		{"setDataRsp", OpSetData, kindResponse, &SetDataResponse{Stat: sampleStat}},
		{"getACLRsp", OpGetACL, kindResponse, &GetACLResponse{ACL: sampleACL, Stat: sampleStat}},
		{"setACLRsp", OpSetACL, kindResponse, &SetACLResponse{Stat: sampleStat}},
		{"getChildrenRsp", OpGetChildren, kindResponse, &GetChildrenResponse{Children: []string{"x", "y", "z"}}},
		{"getChildren2Rsp", OpGetChildren2, kindResponse, &GetChildren2Response{Children: []string{"x"}, Stat: sampleStat}},
		{"getAllChildrenNumberRsp", OpGetAllChildrenNumber, kindResponse, &GetAllChildrenNumberResponse{TotalNumber: 12345}},
		{"getEphemeralsRsp", OpGetEphemerals, kindResponse, &GetEphemeralsResponse{Ephemerals: []string{"/e1", "/e2"}}},
		{"checkRsp", OpCheck, kindResponse, &SetDataResponse{Stat: sampleStat}},
		{"multiRsp", OpMulti, kindResponse, multiRsp},
		{"multiReadRsp", OpMultiRead, kindResponse, multiReadRsp},
		{"syncRsp", OpSync, kindResponse, &SyncResponse{Path: "/sync"}},
		{"setWatchesRsp", OpSetWatches, kindResponse, &EmptyResponse{}},
		{"setWatches2Rsp", OpSetWatches2, kindResponse, &EmptyResponse{}},
		{"addWatchRsp", OpAddWatch, kindResponse, &ErrorResponse{Err: CodeOK}},
		{"removeWatchesRsp", OpRemoveWatches, kindResponse, &EmptyResponse{}},
		{"checkWatchesRsp", OpCheckWatches, kindResponse, &EmptyResponse{}},
		{"whoAmIRsp", OpWhoAmI, kindResponse, &WhoAmIResponse{ClientInfo: []ClientInfo{{AuthScheme: "ip", User: "127.0.0.1"}, {AuthScheme: "digest", User: "bob"}}}},
		{"authRsp", OpAuth, kindResponse, &EmptyResponse{}},
		{"closeSessionRsp", OpCloseSession, kindResponse, &EmptyResponse{}},
		{"pingRsp", OpPing, kindResponse, &EmptyResponse{}},
	}
}

func encode(t testing.TB, rec Record) []byte {
	t.Helper()
	var w Writer
	rec.Encode(&w)
	if err := w.Err(); err != nil {
		t.Fatalf("encode %T: %v", rec, err)
	}
	return w.Bytes()
}

func fresh(rec Record) Record {
	return reflect.New(reflect.TypeOf(rec).Elem()).Interface().(Record)
}

func TestRoundTripEveryRecord(t *testing.T) {
	for _, s := range samples() {
		t.Run(s.name, func(t *testing.T) {
			b := encode(t, s.rec)
			var got Record
			var err error
			r := NewReader(b, DefaultMaxBuffer)
			switch s.kind {
			case kindRequest:
				got, err = DecodeRequest(s.op, r)
			case kindResponse:
				got, err = DecodeResponse(s.op, r)
			default:
				got = fresh(s.rec)
				err = got.Decode(r)
			}
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if r.Len() != 0 {
				t.Fatalf("%d bytes left after decode", r.Len())
			}
			if !reflect.DeepEqual(got, s.rec) {
				t.Fatalf("round trip mismatch:\n got %#v\nwant %#v", got, s.rec)
			}
			if again := encode(t, got); !bytes.Equal(again, b) {
				t.Fatalf("re-encoding differs:\n got %x\nwant %x", again, b)
			}
		})
	}
}

// TestEveryClientOpHasRecords checks that the request and response tables
// cover every operation the issue lists.
func TestEveryClientOpHasRecords(t *testing.T) {
	ops := []OpCode{
		OpCreate, OpCreate2, OpCreateContainer, OpCreateTTL, OpDelete, OpExists, OpGetData, OpSetData,
		OpGetACL, OpSetACL, OpGetChildren, OpGetChildren2, OpGetAllChildrenNumber, OpGetEphemerals,
		OpCheck, OpMulti, OpMultiRead, OpSync, OpSetWatches, OpSetWatches2, OpAddWatch, OpRemoveWatches,
		OpCheckWatches, OpWhoAmI, OpPing, OpCloseSession, OpAuth,
	}
	seenReq, seenRsp := map[OpCode]bool{}, map[OpCode]bool{}
	for _, s := range samples() {
		switch s.kind {
		case kindRequest:
			seenReq[s.op] = true
		case kindResponse:
			seenRsp[s.op] = true
		}
	}
	for _, op := range ops {
		if _, err := NewRequest(op); err != nil {
			t.Errorf("NewRequest(%v): %v", op, err)
		}
		if _, err := NewResponse(op); err != nil {
			t.Errorf("NewResponse(%v): %v", op, err)
		}
		if !seenReq[op] || !seenRsp[op] {
			t.Errorf("%v lacks a round-trip sample (request %v, response %v)", op, seenReq[op], seenRsp[op])
		}
	}
	for _, op := range []OpCode{OpNotification, OpCreateSession, OpDeleteContainer, OpError, OpReconfig, OpSASL, 10, 999} {
		if _, err := DecodeRequest(op, NewReader(nil, 0)); !errors.Is(err, ErrUnknownOp) {
			t.Errorf("DecodeRequest(%v) = %v, want ErrUnknownOp", op, err)
		}
	}
}

// TestTruncatedInputsFail decodes every prefix of every sample: each must
// fail with ErrMalformed (never panic), except where the shorter input is
// itself a complete encoding.
func TestTruncatedInputsFail(t *testing.T) {
	for _, s := range samples() {
		b := encode(t, s.rec)
		for n := 0; n < len(b); n++ {
			got := fresh(s.rec)
			err := got.Decode(NewReader(b[:n], 0))
			if err == nil {
				// ConnectRequest/Response without the trailing readOnly byte is
				// the old clients' form.
				_, isReq := s.rec.(*ConnectRequest)
				_, isRsp := s.rec.(*ConnectResponse)
				if (isReq || isRsp) && n == len(b)-1 {
					continue
				}
				t.Fatalf("%s: prefix of %d/%d bytes decoded without error", s.name, n, len(b))
			}
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("%s: prefix %d: error %v does not wrap ErrMalformed", s.name, n, err)
			}
		}
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.NewReplacer(" ", "", "\n", "", "\t", "").Replace(s))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The golden frames below were built by hand from zookeeper.jute and
// cross-checked against the field order of go-zookeeper's structs.go.

func TestGoldenConnectRequest(t *testing.T) {
	// go-zookeeper's first connect: protocol 0, no zxid seen, a 10 s
	// timeout, no session, a 16-byte zero password, readOnly false.
	want := mustHex(t, `
		0000002d
		00000000
		0000000000000000
		00002710
		0000000000000000
		00000010 00000000000000000000000000000000
		00`)
	var w Writer
	start := w.BeginFrame()
	(&ConnectRequest{TimeOut: 10000, Passwd: make([]byte, 16)}).Encode(&w)
	w.EndFrame(start)
	if !bytes.Equal(w.Bytes(), want) {
		t.Fatalf("got  %x\nwant %x", w.Bytes(), want)
	}

	// A pre-3.4 client stops after the password.
	old := want[4 : len(want)-1]
	var cr ConnectRequest
	if err := cr.Decode(NewReader(old, 0)); err != nil {
		t.Fatal(err)
	}
	if cr.ReadOnly || cr.TimeOut != 10000 || len(cr.Passwd) != 16 {
		t.Fatalf("old-client connect decoded as %+v", cr)
	}
}

func TestGoldenConnectResponse(t *testing.T) {
	want := mustHex(t, `
		0000000000000fa0 0123456789abcdef
		00000010 0102030405060708090a0b0c0d0e0f10
		01`)
	got := encode(t, &ConnectResponse{TimeOut: 4000, SessionID: 0x0123456789abcdef, Passwd: mustHex(t, "0102030405060708090a0b0c0d0e0f10"), ReadOnly: true})
	if !bytes.Equal(got, want) {
		t.Fatalf("got  %x\nwant %x", got, want)
	}
}

func TestGoldenCreateRequest(t *testing.T) {
	// zk.Create("/foo", []byte("bar"), zk.FlagEphemeral|zk.FlagSequence,
	// zk.WorldACL(zk.PermAll)) as the first request of a session (xid 1).
	want := mustHex(t, `
		00000036
		00000001 00000001
		00000004 2f666f6f
		00000003 626172
		00000001
		  0000001f 00000005 776f726c64 00000006 616e796f6e65
		00000003`)
	var w Writer
	start := w.BeginFrame()
	(&RequestHeader{Xid: 1, Type: OpCreate}).Encode(&w)
	(&CreateRequest{Path: "/foo", Data: []byte("bar"), ACL: []ACL{{Perms: PermAll, ID: Id{"world", "anyone"}}}, Flags: ModeEphemeralSequential}).Encode(&w)
	w.EndFrame(start)
	if !bytes.Equal(w.Bytes(), want) {
		t.Fatalf("got  %x\nwant %x", w.Bytes(), want)
	}

	r := NewReader(want[4:], 0)
	var h RequestHeader
	if err := h.Decode(r); err != nil || h != (RequestHeader{Xid: 1, Type: OpCreate}) {
		t.Fatalf("header %+v, %v", h, err)
	}
	req, err := DecodeRequest(h.Type, r)
	if err != nil {
		t.Fatal(err)
	}
	c := req.(*CreateRequest)
	if c.Path != "/foo" || string(c.Data) != "bar" || c.Flags != ModeEphemeralSequential || !c.Flags.Ephemeral() || !c.Flags.Sequential() {
		t.Fatalf("decoded %+v", c)
	}
}

func TestGoldenNotification(t *testing.T) {
	// A data watch firing on /a: xid -1, zxid -1, err 0, then the event.
	want := mustHex(t, `
		0000001e
		ffffffff ffffffffffffffff 00000000
		00000003 00000003 00000002 2f61`)
	var w Writer
	start := w.BeginFrame()
	(&ReplyHeader{Xid: XidNotification, Zxid: -1, Err: CodeOK}).Encode(&w)
	(&WatcherEvent{Type: EventNodeDataChanged, State: StateSyncConnected, Path: "/a"}).Encode(&w)
	w.EndFrame(start)
	if !bytes.Equal(w.Bytes(), want) {
		t.Fatalf("got  %x\nwant %x", w.Bytes(), want)
	}
}

func TestGoldenMulti(t *testing.T) {
	// A multi of a delete and a check, as the op headers and end marker of
	// MultiOperationRecord lay them out.
	want := mustHex(t, `
		00000002 00 ffffffff  00000002 2f61 ffffffff
		0000000d 00 ffffffff  00000002 2f62 00000005
		ffffffff 01 ffffffff`)
	got := encode(t, &MultiRequest{Ops: []MultiOp{
		{Type: OpDelete, Op: &DeleteRequest{Path: "/a", Version: -1}},
		{Type: OpCheck, Op: &CheckVersionRequest{Path: "/b", Version: 5}},
	}})
	if !bytes.Equal(got, want) {
		t.Fatalf("got  %x\nwant %x", got, want)
	}

	// The failed multi's answer: every op an ErrorResponse, the header
	// carrying the same code.
	wantRsp := mustHex(t, `
		ffffffff 00 00000000  00000000
		ffffffff 00 ffffff99  ffffff99
		ffffffff 01 ffffffff`)
	gotRsp := encode(t, &MultiResponse{Results: []MultiResult{
		{Type: OpError, Err: CodeOK},
		{Type: OpError, Err: CodeBadVersion},
	}})
	if !bytes.Equal(gotRsp, wantRsp) {
		t.Fatalf("got  %x\nwant %x", gotRsp, wantRsp)
	}
}

func TestGoldenPingAndAuth(t *testing.T) {
	ping := mustHex(t, `00000008 fffffffe 0000000b`)
	var w Writer
	start := w.BeginFrame()
	(&RequestHeader{Xid: XidPing, Type: OpPing}).Encode(&w)
	w.EndFrame(start)
	if !bytes.Equal(w.Bytes(), ping) {
		t.Fatalf("ping: got %x want %x", w.Bytes(), ping)
	}

	auth := mustHex(t, `
		fffffffc 00000064
		00000000 00000006 646967657374 00000007 626f623a707764`)
	w.Reset()
	(&RequestHeader{Xid: XidAuth, Type: OpAuth}).Encode(&w)
	(&AuthPacket{Scheme: "digest", Auth: []byte("bob:pwd")}).Encode(&w)
	if !bytes.Equal(w.Bytes(), auth) {
		t.Fatalf("auth: got %x want %x", w.Bytes(), auth)
	}
}

func TestMultiRejects(t *testing.T) {
	enc := func(ops ...MultiOp) []byte { return encode(t, &MultiRequest{Ops: ops}) }
	read := MultiOp{Type: OpGetData, Op: &GetDataRequest{Path: "/r"}}
	write := MultiOp{Type: OpDelete, Op: &DeleteRequest{Path: "/w"}}
	cases := []struct {
		name string
		op   OpCode
		in   []byte
	}{
		{"mixed", OpMulti, enc(write, read)},
		{"readInMulti", OpMulti, enc(read)},
		{"writeInMultiRead", OpMultiRead, enc(write)},
		{"badCreateFlags", OpMulti, enc(MultiOp{Type: OpCreate, Op: &CreateRequest{Path: "/x", Flags: 7}})},
		{"badType", OpMulti, mustHex(t, `00000003 00 ffffffff 00000001 2f 00`)},
		{"noEnd", OpMulti, enc(write)[:len(enc(write))-9]},
	}
	for _, c := range cases {
		if _, err := DecodeRequest(c.op, NewReader(c.in, 0)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v, want ErrMalformed", c.name, err)
		}
	}

	var w Writer
	(&MultiRequest{Ops: []MultiOp{{Type: OpDelete}}}).Encode(&w)
	if !errors.Is(w.Err(), ErrInvalid) {
		t.Errorf("multi op without body: %v", w.Err())
	}
	w.Reset()
	(&MultiResponse{Results: []MultiResult{{Type: OpExists}}}).Encode(&w)
	if !errors.Is(w.Err(), ErrInvalid) {
		t.Errorf("multi result of type exists: %v", w.Err())
	}
}
