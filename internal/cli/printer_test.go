package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// testCtl is a ctl that prints to a buffer in the given format.
func testCtl(output string) (*ctl, *bytes.Buffer) {
	var out bytes.Buffer
	c := &ctl{env: Env{Stdout: &out, Stderr: &out}, out: &syncWriter{w: &out}}
	c.g.output = output
	c.g.commandTimeout = time.Second
	return c, &out
}

func TestTableRender(t *testing.T) {
	tb := table{header: []string{"NAME", "VALUE"}}
	tb.add("a", "1")
	tb.add("longer name", "")
	tb.add("ünï", "two\nlines")
	var b bytes.Buffer
	if err := tb.render(&b); err != nil {
		t.Fatal(err)
	}
	want := `+-------------+------------+
| NAME        | VALUE      |
+-------------+------------+
| a           | 1          |
| longer name |            |
| ünï         | two\nlines |
+-------------+------------+
`
	if b.String() != want {
		t.Fatalf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestHumanBytes(t *testing.T) {
	cases := map[int64]string{
		0: "0 B", 999: "999 B", 1000: "1.0 kB", 20480: "20 kB", 1_500_000: "1.5 MB",
		2_147_483_648: "2.1 GB", 123_000_000_000: "123 GB",
	}
	for n, want := range cases {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func rangeResponse() *clientv3.GetResponse {
	return &clientv3.GetResponse{
		Header: &pb.ResponseHeader{ClusterId: 1, MemberId: 2, Revision: 7, RaftTerm: 3},
		Kvs: []*mvccpb.KeyValue{
			{Key: []byte("a"), Value: []byte("1"), CreateRevision: 2, ModRevision: 5, Version: 2},
			{Key: []byte("b"), Value: []byte("x y"), CreateRevision: 6, ModRevision: 6, Version: 1, Lease: 0x1f},
		},
		Count: 2,
	}
}

func TestPrintGet(t *testing.T) {
	c, out := testCtl("simple")
	if err := c.printGet(rangeResponse(), false, false); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "a\n1\nb\nx y\n"; got != want {
		t.Errorf("simple: %q, want %q", got, want)
	}

	out.Reset()
	if err := c.printGet(rangeResponse(), false, true); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "1\nx y\n"; got != want {
		t.Errorf("value only: %q, want %q", got, want)
	}

	out.Reset()
	if err := c.printGet(&clientv3.GetResponse{Header: &pb.ResponseHeader{}, Count: 42}, true, false); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "42\n" {
		t.Errorf("count only: %q", got)
	}

	c, out = testCtl("table")
	if err := c.printGet(rangeResponse(), false, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| KEY | VALUE | CREATE REV | MOD REV | VERSION | LEASE            |",
		"| b   | x y   | 6          | 6       | 1       | 000000000000001f |"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

// JSON output is etcd's: the protobuf message through encoding/json, keys
// and values in base64.
func TestPrintGetJSON(t *testing.T) {
	c, out := testCtl("json")
	if err := c.printGet(rangeResponse(), false, false); err != nil {
		t.Fatal(err)
	}
	if strings.Count(out.String(), "\n") != 1 {
		t.Fatalf("JSON is not one line: %q", out.String())
	}
	var doc struct {
		Header struct {
			ClusterID uint64 `json:"cluster_id"`
			MemberID  uint64 `json:"member_id"`
			Revision  int64  `json:"revision"`
			RaftTerm  uint64 `json:"raft_term"`
		} `json:"header"`
		Kvs []struct {
			Key            []byte `json:"key"`
			Value          []byte `json:"value"`
			CreateRevision int64  `json:"create_revision"`
			ModRevision    int64  `json:"mod_revision"`
			Version        int64  `json:"version"`
			Lease          int64  `json:"lease"`
		} `json:"kvs"`
		Count int64 `json:"count"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Header.Revision != 7 || doc.Header.RaftTerm != 3 || doc.Count != 2 || len(doc.Kvs) != 2 ||
		string(doc.Kvs[1].Key) != "b" || string(doc.Kvs[1].Value) != "x y" || doc.Kvs[1].Lease != 0x1f ||
		doc.Kvs[0].ModRevision != 5 {
		t.Fatalf("decoded %+v from %s", doc, out.String())
	}
	if !strings.Contains(out.String(), `"key":"YQ=="`) {
		t.Fatalf("keys are not base64 as in etcd: %s", out.String())
	}
}

func TestPrintTxn(t *testing.T) {
	c, out := testCtl("simple")
	resp := &clientv3.TxnResponse{
		Header:    &pb.ResponseHeader{},
		Succeeded: false,
		Responses: []*pb.ResponseOp{
			{Response: &pb.ResponseOp_ResponsePut{ResponsePut: &pb.PutResponse{}}},
			{Response: &pb.ResponseOp_ResponseRange{ResponseRange: &pb.RangeResponse{
				Kvs: []*mvccpb.KeyValue{{Key: []byte("k"), Value: []byte("v")}}}}},
			{Response: &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: &pb.DeleteRangeResponse{Deleted: 3}}},
		},
	}
	if err := c.printTxn(resp); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "FAILURE\n\nOK\n\nk\nv\n\n3\n"; got != want {
		t.Fatalf("txn: %q, want %q", got, want)
	}
}

func TestPrintWatchResponse(t *testing.T) {
	c, out := testCtl("simple")
	resp := clientv3.WatchResponse{
		Header: pb.ResponseHeader{Revision: 9},
		Events: []*clientv3.Event{
			{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte("k"), Value: []byte("new")},
				PrevKv: &mvccpb.KeyValue{Key: []byte("k"), Value: []byte("old")}},
			{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte("j")}},
		},
	}
	if err := c.printWatchResponse(resp); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "PUT\nk\nold\nk\nnew\nDELETE\nj\n\n"; got != want {
		t.Fatalf("watch: %q, want %q", got, want)
	}
	out.Reset()
	if err := c.printWatchResponse(clientv3.WatchResponse{Header: pb.ResponseHeader{Revision: 12}}); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "progress notify: 12\n" {
		t.Fatalf("progress: %q", got)
	}
}

func TestPrintMemberList(t *testing.T) {
	resp := &clientv3.MemberListResponse{Header: &pb.ResponseHeader{}, Members: []*pb.Member{
		{ID: 0xabc, Name: "m1", PeerURLs: []string{"http://p1"}, ClientURLs: []string{"http://c1", "http://c1b"}},
		{ID: 0xdef, PeerURLs: []string{"http://p2"}, IsLearner: true},
	}}
	c, out := testCtl("simple")
	if err := c.printMemberList(resp); err != nil {
		t.Fatal(err)
	}
	want := "abc, started, m1, http://p1, http://c1,http://c1b, false\ndef, unstarted, , http://p2, , true\n"
	if out.String() != want {
		t.Fatalf("member list: %q, want %q", out.String(), want)
	}
	c, out = testCtl("table")
	if err := c.printMemberList(resp); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "| ID  | STATUS    | NAME | PEER ADDRS | CLIENT ADDRS         | IS LEARNER |") {
		t.Fatalf("member table:\n%s", out.String())
	}
}

func TestPrintStatusMarksTheLeader(t *testing.T) {
	st := func(id, leader uint64) *clientv3.StatusResponse {
		return &clientv3.StatusResponse{Header: &pb.ResponseHeader{MemberId: id}, Leader: leader,
			Version: "3.6.0", DbSize: 25000, DbSizeInUse: 20000, RaftTerm: 4, RaftIndex: 100, RaftAppliedIndex: 99}
	}
	ss := []epStatus{
		{Ep: "http://a", Name: "m1", Resp: st(1, 2), latency: 1234 * time.Microsecond},
		{Ep: "http://b", Name: "m2", Resp: st(2, 2), latency: 2 * time.Millisecond},
		{Ep: "http://c", Name: "m3", Error: "cannot connect"},
	}
	c, out := testCtl("table")
	if err := c.printStatus(ss); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	if len(lines) != 8 {
		t.Fatalf("status table has %d lines:\n%s", len(lines), out.String())
	}
	for _, want := range []string{
		"| http://a | 1  | m1   | 3.6.0   | 25 kB   | 20 kB  | false     | false      | 4         | 100        | 99            | 1.23ms  |",
		"| http://b | 2  | m2   | 3.6.0   | 25 kB   | 20 kB  | true      |",
		"| http://c |    | m3   |         |",
		"cannot connect |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status table lacks %q:\n%s", want, out.String())
		}
	}

	c, out = testCtl("json")
	if err := c.printStatus(ss); err != nil {
		t.Fatal(err)
	}
	var doc []struct {
		Endpoint string
		Status   *struct {
			Leader    uint64 `json:"leader"`
			RaftIndex uint64 `json:"raftIndex"`
		}
		Error string
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc) != 3 || doc[1].Status.Leader != 2 || doc[1].Status.RaftIndex != 100 || doc[2].Error != "cannot connect" {
		t.Fatalf("status JSON: %s", out.String())
	}
}

func TestDrawTree(t *testing.T) {
	n := &zkNode{Path: "/", Children: []*zkNode{
		{Path: "/app", Children: []*zkNode{{Path: "/app/config"}, {Path: "/app/lock", Children: []*zkNode{{Path: "/app/lock/x"}}}}},
		{Path: "/zookeeper"},
	}}
	var b bytes.Buffer
	drawTree(&b, n, "")
	want := `├── app
│   ├── config
│   └── lock
│       └── x
└── zookeeper
`
	if b.String() != want {
		t.Fatalf("tree:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestWriteStat(t *testing.T) {
	var b bytes.Buffer
	writeStat(&b, &zk.Stat{Czxid: 0x10, Mzxid: 0x12, Pzxid: 0x11, Version: 2, Cversion: 1, EphemeralOwner: 0xbeef, DataLength: 5, NumChildren: 1})
	for _, want := range []string{"cZxid = 0x10\n", "mZxid = 0x12\n", "pZxid = 0x11\n", "dataVersion = 2\n", "cversion = 1\n",
		"ephemeralOwner = 0xbeef\n", "dataLength = 5\n", "numChildren = 1\n", "aclVersion = 0\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("stat lacks %q:\n%s", want, b.String())
		}
	}
}

func TestErrorLine(t *testing.T) {
	err := errorLine(errWrap{"get: rpc error: code = Unavailable desc = connection refused\nsecond line"}, time.Second)
	if err != "get: connection refused second line" {
		t.Fatalf("errorLine = %q", err)
	}
}

type errWrap struct{ s string }

func (e errWrap) Error() string { return e.s }
