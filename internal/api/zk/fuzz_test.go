package zk

import (
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"ensemble/internal/api/zk/jute"
)

// FuzzRequest sends one arbitrary request body of an arbitrary opcode on an
// open session: whatever it is, the server answers or closes that
// connection, and keeps serving others.
func FuzzRequest(f *testing.F) {
	seed := func(op jute.OpCode, rec jute.Record) {
		var w jute.Writer
		if rec != nil {
			rec.Encode(&w)
		}
		f.Add(int32(op), w.Bytes())
	}
	seed(jute.OpCreate, &jute.CreateRequest{Path: "/f", Data: []byte("x"), ACL: worldAll})
	seed(jute.OpCreate, &jute.CreateRequest{Path: "//bad", ACL: worldAll, Flags: 9})
	seed(jute.OpCreateTTL, &jute.CreateTTLRequest{Path: "/t", ACL: worldAll, Flags: jute.ModePersistentWithTTL, TTL: -1})
	seed(jute.OpGetData, &jute.GetDataRequest{Path: "/", Watch: true})
	seed(jute.OpGetChildren2, &jute.GetChildren2Request{Path: "/zookeeper", Watch: true})
	seed(jute.OpSetACL, &jute.SetACLRequest{Path: "/", ACL: []jute.ACL{{Perms: 0, ID: jute.Id{Scheme: "x", ID: "y"}}}, Version: -1})
	seed(jute.OpMulti, &jute.MultiRequest{Ops: []jute.MultiOp{{Type: jute.OpDelete, Op: &jute.DeleteRequest{Path: "/", Version: -1}}}})
	seed(jute.OpMultiRead, &jute.MultiRequest{Ops: []jute.MultiOp{{Type: jute.OpGetChildren, Op: &jute.GetChildrenRequest{Path: "/", Watch: true}}}})
	seed(jute.OpSetWatches2, &jute.SetWatches2{RelativeZxid: -1, DataWatches: []string{"/", ""}, ChildWatches: []string{"no-slash"}})
	seed(jute.OpAddWatch, &jute.AddWatchRequest{Path: "", Mode: jute.AddWatchPersistentRecursive})
	seed(jute.OpRemoveWatches, &jute.RemoveWatchesRequest{Path: "/", Type: -3})
	seed(jute.OpGetEphemerals, &jute.GetEphemeralsRequest{PrefixPath: "\x00"})
	seed(jute.OpAuth, &jute.AuthPacket{Scheme: "digest", Auth: nil})
	seed(jute.OpSync, nil)
	seed(jute.OpCloseSession, nil)
	seed(12345, nil)

	// Long session timeouts: the checking session must outlive slow inputs.
	e := newEnv(f, Config{TickTime: time.Second})
	check := e.raw(20000)
	f.Fuzz(func(t *testing.T, op int32, body []byte) {
		r := dialRaw(t, e.addr)
		r.connect(jute.ConnectRequest{TimeOut: 20000, Passwd: make([]byte, 16)})
		frame := binary.BigEndian.AppendUint32(nil, uint32(8+len(body)))
		frame = binary.BigEndian.AppendUint32(frame, 1)
		frame = binary.BigEndian.AppendUint32(frame, uint32(op))
		if _, err := r.nc.Write(append(frame, body...)); err != nil {
			t.Fatal(err)
		}
		// One reply (or a few notifications and a reply), or the end.
		r.nc.SetReadDeadline(time.Now().Add(waitLong))
		for {
			b, err := jute.ReadFrame(r.br, 1<<24, nil)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("op %d: %v", op, err)
			}
			var h jute.ReplyHeader
			if h.Decode(jute.NewReader(b, 0)) != nil {
				t.Fatalf("op %d: bad reply header", op)
			}
			if h.Xid == 1 || h.Xid == jute.XidPing {
				break
			}
		}
		r.nc.Close()
		check.t = t
		check.callOK(jute.OpGetData, &jute.GetDataRequest{Path: "/"}, &jute.GetDataResponse{})
	})
}
