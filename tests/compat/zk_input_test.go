package compat

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"ensemble/internal/api/zk/jute"
	"ensemble/tests/framework"

	"github.com/go-zookeeper/zk"
)

// zkTestMaxBuffer is the --zk-max-buffer of TestZKMalformedInput.
const zkTestMaxBuffer = 4096

// TestZKMalformedInput sends garbage, oversized and truncated frames: each
// closes its own connection (sessions survive), nothing stalls, and other
// clients carry on.
func TestZKMalformedInput(t *testing.T) {
	zkClusters(t, func(t *testing.T, c *framework.InProcessCluster, addrs []string) {
		// The bad input goes to addrs[0], and so does the bystander.
		bystander := framework.ZKConnect(t, addrs[0])
		zkMustCreate(t, bystander, "/input", nil, zk.FlagPersistent)
		still := func(what string) {
			t.Helper()
			p := zkMustCreate(t, bystander, "/input/ok-", []byte(what), zk.FlagSequence)
			if data, _ := zkMustGet(t, bystander, p); string(data) != what {
				t.Fatalf("after %s, a bystander reads %q", what, data)
			}
		}
		addr := addrs[0]

		t.Run("GarbageBeforeHandshake", func(t *testing.T) {
			for _, tc := range []struct{ what, bytes string }{
				{"a frame too short for a ConnectRequest", "\x00\x00\x00\x08garbage!"},
				{"a negative frame length", "\xff\xff\xff\xff\x00\x00"},
				{"a frame length of 2 GiB", "\x7f\xff\xff\xff\x00\x00\x00\x00"},
				{"a line of text", "hello world\r\n"},
				{"a ConnectRequest with a buffer longer than its frame", "\x00\x00\x00\x1c" + strings.Repeat("\x00", 24) + "\x7f\x00\x00\x00"},
			} {
				r := framework.DialZKRaw(t, addr)
				if err := r.WriteRaw([]byte(tc.bytes)); err != nil {
					t.Fatalf("%s: %v", tc.what, err)
				}
				r.ExpectClosed(tc.what)
				still(tc.what)
			}
		})

		t.Run("GarbageAfterHandshake", func(t *testing.T) {
			r := framework.NewZKRawSession(t, addr, 30000)
			w := jute.NewWriter(nil)
			start := w.BeginFrame()
			w.Int32(1) // half a request header
			w.EndFrame(start)
			if err := r.WriteRaw(w.Bytes()); err != nil {
				t.Fatal(err)
			}
			r.ExpectClosed("a frame shorter than a request header")
			still("a short request header")

			r = framework.NewZKRawSession(t, addr, 30000)
			w.Reset()
			start = w.BeginFrame()
			(&jute.RequestHeader{Xid: 1, Type: jute.OpGetData}).Encode(w)
			w.Int32(100) // a path said to be 100 bytes long, with 4 behind it
			w.Buffer(nil)
			w.EndFrame(start)
			if err := r.WriteRaw(w.Bytes()); err != nil {
				t.Fatal(err)
			}
			r.ExpectClosed("a getData whose path runs past its frame")
			still("a truncated record")
		})

		t.Run("Oversized", func(t *testing.T) {
			r := framework.NewZKRawSession(t, addr, 30000)
			r.MustDo(jute.OpCreate, &jute.CreateRequest{Path: "/input/big", ACL: rawWorld, Flags: jute.ModeEphemeral}, &jute.CreateResponse{})
			// A frame of exactly the limit is served...
			header := 4 + 4 + 4 + len("/input/big") + 4 + 4 // xid, type, path, data length, version
			exact := &jute.SetDataRequest{Path: "/input/big", Data: bytes.Repeat([]byte("x"), zkTestMaxBuffer-header), Version: -1}
			var sd jute.SetDataResponse
			r.MustDo(jute.OpSetData, exact, &sd)
			if int(sd.Stat.DataLength) != zkTestMaxBuffer-header {
				t.Errorf("setData in a frame of exactly --zk-max-buffer stored %d bytes", sd.Stat.DataLength)
			}
			// ...one byte more closes the connection, not the session.
			exact.Data = append(exact.Data, 'y')
			if err := r.Send(r.Xid+1, jute.OpSetData, exact); err != nil {
				t.Fatal(err)
			}
			r.ExpectClosed("a frame one byte over --zk-max-buffer")
			still("an oversized frame")
			r2, resp, err := framework.ResumeZKRaw(t, addrs[len(addrs)-1], r.Session, r.Passwd, r.Zxid)
			if err != nil || resp.SessionID != r.Session {
				t.Fatalf("the session did not survive its connection's oversized frame: %+v %v", resp, err)
			}
			var gd jute.GetDataResponse
			r2.MustDo(jute.OpGetData, &jute.GetDataRequest{Path: "/input/big"}, &gd)
			if len(gd.Data) != zkTestMaxBuffer-header {
				t.Errorf("the refused setData changed the node: %d bytes", len(gd.Data))
			}

			// A length far over the limit, with no body behind it.
			r3 := framework.NewZKRawSession(t, addr, 30000)
			if err := r3.WriteRaw([]byte{0x00, 0x10, 0x00, 0x00}); err != nil {
				t.Fatal(err)
			}
			r3.ExpectClosed("a frame length of 1 MiB with a 4 KiB limit")

			// go-zookeeper: the oversized set fails, the session carries on.
			cl := framework.ZKConnect(t, addr)
			id := cl.SessionID()
			if _, err := cl.Set("/input", bytes.Repeat([]byte("z"), 2*zkTestMaxBuffer), -1); err == nil {
				t.Errorf("go-zookeeper setData of %d bytes with a %d-byte limit succeeded", 2*zkTestMaxBuffer, zkTestMaxBuffer)
			}
			zkRetry(t, "setData after an oversized one", func() error {
				_, err := cl.Set("/input", []byte("small"), -1)
				return err
			})
			if cl.SessionID() != id {
				t.Errorf("go-zookeeper's session changed from %#x to %#x", id, cl.SessionID())
			}
			still("go-zookeeper's oversized setData")
		})

		t.Run("Truncated", func(t *testing.T) {
			// Half a frame, then the client stops writing.
			r := framework.NewZKRawSession(t, addr, 30000)
			var hdr [4]byte
			binary.BigEndian.PutUint32(hdr[:], 100)
			if err := r.WriteRaw(append(hdr[:], make([]byte, 10)...)); err != nil {
				t.Fatal(err)
			}
			if tcp, ok := r.Conn.(interface{ CloseWrite() error }); ok {
				if err := tcp.CloseWrite(); err != nil {
					t.Fatal(err)
				}
			}
			r.ExpectClosed("half a frame, then end of stream")
			still("a truncated frame")

			// Half a frame and silence, on a handshake and on a request:
			// the server waits for them but serves everybody else.
			stalled := framework.DialZKRaw(t, addr)
			if err := stalled.WriteRaw([]byte{0, 0, 0, 44, 0, 0, 0}); err != nil {
				t.Fatal(err)
			}
			stalled2 := framework.NewZKRawSession(t, addr, 30000)
			if err := stalled2.WriteRaw(append(hdr[:], 1, 2, 3)); err != nil {
				t.Fatal(err)
			}
			still("two stalled half frames")
			fresh := framework.NewZKRawSession(t, addr, 30000)
			fresh.MustDo(jute.OpExists, &jute.ExistsRequest{Path: "/input"}, &jute.ExistsResponse{})
		})

		// Every member still serves.
		for i, a := range addrs {
			cl := framework.ZKConnect(t, a)
			if _, err := cl.Sync("/input"); err != nil {
				t.Errorf("member %d after the bad input: %v", i, err)
			}
		}
	}, "--zk-max-buffer", fmt.Sprint(zkTestMaxBuffer))
}

// TestZKFourLetterWords checks the default whitelist (srvr, ruok, isro,
// mntr) with go-zookeeper's helpers where it has them, and the refusal of a
// word outside it.
func TestZKFourLetterWords(t *testing.T) {
	zkClusters(t, func(t *testing.T, c *framework.InProcessCluster, addrs []string) {
		oks := zk.FLWRuok(addrs, zkWait)
		for i, ok := range oks {
			if !ok {
				t.Errorf("member %d: ruok did not answer imok", i)
			}
		}
		if got := fourLetterWord(t, addrs[0], "ruok"); got != "imok" {
			t.Errorf("ruok: %q, want \"imok\"", got)
		}
		stats, ok := zk.FLWSrvr(addrs, zkWait)
		if !ok {
			for i, s := range stats {
				if s != nil && s.Error != nil {
					t.Errorf("member %d: go-zookeeper cannot parse srvr: %v\n%s", i, s.Error, fourLetterWord(t, addrs[i], "srvr"))
				}
			}
			t.FailNow()
		}
		modes := map[zk.Mode]int{}
		for _, s := range stats {
			modes[s.Mode]++
		}
		if len(addrs) == 1 && modes[zk.ModeStandalone] != 1 || len(addrs) == 3 && (modes[zk.ModeLeader] != 1 || modes[zk.ModeFollower] != 2) {
			t.Errorf("srvr modes %v for %d members", modes, len(addrs))
		}
		if got := fourLetterWord(t, addrs[0], "isro"); got != "rw" {
			t.Errorf("isro: %q, want \"rw\"", got)
		}
		mntr := fourLetterWord(t, addrs[0], "mntr")
		for _, key := range []string{"zk_version", "zk_server_state", "zk_znode_count", "zk_num_alive_connections"} {
			if !strings.Contains(mntr, key+"\t") {
				t.Errorf("mntr has no %s line:\n%s", key, mntr)
			}
		}
		for _, w := range []string{"stat", "cons", "conf", "envi", "wchs"} {
			got := fourLetterWord(t, addrs[0], w)
			if want := w + " is not executed because it is not in the whitelist."; !strings.Contains(got, want) {
				t.Errorf("%s outside the whitelist: %q, want %q", w, got, want)
			}
		}
		// The port still serves ZooKeeper sessions.
		zkMustCreate(t, framework.ZKConnect(t, addrs[0]), "/after-4lw", nil, zk.FlagEphemeral)
	})
}

// TestZKFourLetterWordsAll checks the words that only --zk-4lw-whitelist=*
// enables.
func TestZKFourLetterWordsAll(t *testing.T) {
	c := framework.StartInProcess(t, 1, "--zk-4lw-whitelist", "*")
	addr := c.Member(0).ZKAddr()
	cl := framework.ZKConnect(t, addr)
	zkMustCreate(t, cl, "/fourlw", nil, zk.FlagPersistent)
	if _, _, _, err := cl.GetW("/fourlw"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ word, want string }{
		{"stat", "Zookeeper version:"},
		{"stat", "Clients:"},
		{"stat", "Mode: standalone"},
		{"conf", "tickTime=2000"},
		{"cons", "sid=0x"},
		{"envi", "Environment:"},
		{"wchs", "watching 1 paths"},
		{"ruok", "imok"},
	} {
		if got := fourLetterWord(t, addr, tc.word); !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want it to contain %q", tc.word, got, tc.want)
		}
	}
	if clients, ok := zk.FLWCons([]string{addr}, zkWait); !ok || len(clients) != 1 || len(clients[0].Clients) == 0 {
		t.Errorf("go-zookeeper cannot parse cons: %+v %v\n%s", clients, ok, fourLetterWord(t, addr, "cons"))
	}
}
