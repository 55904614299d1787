package e2e

import (
	"slices"
	"testing"
	"time"

	"ensemble/internal/api/zk/jute"
	"ensemble/tests/framework"

	"github.com/go-zookeeper/zk"
)

// TestZKSessionSurvivesSIGKILLOfItsMember connects go-zookeeper to all three
// members, kills the one it talks to, and checks that it moves to another
// member within its session timeout with the same session, its ephemeral
// and its watch.
func TestZKSessionSurvivesSIGKILLOfItsMember(t *testing.T) {
	spec := framework.NewClusterSpec(t, 3, t.TempDir())
	c := framework.StartProcesses(t, binary, spec)
	addrs := spec.ZKAddrs()
	cl, events := framework.ZKConnectEvents(t, addrs...)
	id := cl.SessionID()
	victim := slices.Index(addrs, cl.Server())
	if victim < 0 {
		t.Fatalf("go-zookeeper talks to %q, not one of %v", cl.Server(), addrs)
	}
	if _, err := cl.Create("/survivor", []byte("v0"), zk.FlagEphemeral, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("create the ephemeral: %v", err)
	}
	_, _, watch, err := cl.GetW("/survivor")
	if err != nil {
		t.Fatalf("set the data watch: %v", err)
	}

	killed := time.Now()
	c.Kill(victim)
	// go-zookeeper reports a session event for each state it goes through;
	// wait for the session to be back.
	deadline := time.After(framework.ZKSessionTimeout)
	for back := false; !back; {
		select {
		case ev := <-events:
			if ev.State == zk.StateExpired {
				t.Fatalf("the session expired after its member was killed")
			}
			back = ev.State == zk.StateHasSession && ev.Server != addrs[victim]
		case <-deadline:
			t.Fatalf("go-zookeeper did not get its session back within the session timeout %v (state %v, server %s)",
				framework.ZKSessionTimeout, cl.State(), cl.Server())
		}
	}
	t.Logf("session back on %s %v after the SIGKILL", cl.Server(), time.Since(killed).Round(time.Millisecond))
	if cl.SessionID() != id {
		t.Fatalf("session %#x became %#x", id, cl.SessionID())
	}
	data, st, err := cl.Get("/survivor")
	if err != nil || string(data) != "v0" || st.EphemeralOwner != id {
		t.Fatalf("the ephemeral after the move: %q %+v %v", data, st, err)
	}

	// Another client, on a member that lives, changes the node: the watch
	// set before the kill fires.
	other := framework.ZKConnect(t, addrs[(victim+1)%3])
	if _, err := other.Set("/survivor", []byte("v1"), -1); err != nil {
		t.Fatalf("set from another client: %v", err)
	}
	select {
	case ev := <-watch:
		if ev.Type != zk.EventNodeDataChanged || ev.Path != "/survivor" || ev.Err != nil {
			t.Fatalf("watch event %v %q %v, want NodeDataChanged /survivor", ev.Type, ev.Path, ev.Err)
		}
	case <-time.After(framework.ZKWait):
		t.Fatalf("the data watch set before the SIGKILL did not fire")
	}
	if ok, st, err := other.Exists("/survivor"); !ok || err != nil || st.EphemeralOwner != id {
		t.Fatalf("the ephemeral seen by another client: %v %+v %v", ok, st, err)
	}
}

// TestZKSilentSessionExpires opens a 4 s session with the raw client,
// creates an ephemeral and goes silent with its socket open: the session
// expires within its timeout plus one tick (2 s) of its last packet, and the
// ephemeral is gone on every member.
func TestZKSilentSessionExpires(t *testing.T) {
	const timeout = 4 * time.Second
	const tick = 2 * time.Second
	// The expiry is decided by the leader and goes through the log; allow
	// that round and the event's delivery on top of ZooKeeper's bound.
	const delivery = 500 * time.Millisecond
	spec := framework.NewClusterSpec(t, 3, t.TempDir())
	framework.StartProcesses(t, binary, spec)
	addrs := spec.ZKAddrs()

	watchers := make([]*zk.Conn, len(addrs))
	for i, a := range addrs {
		watchers[i] = framework.ZKConnect(t, a)
	}
	if _, err := watchers[0].Create("/silent", nil, zk.FlagPersistent, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}

	r := framework.NewZKRawSession(t, addrs[1], int32(timeout/time.Millisecond))
	if r.Timeout != int32(timeout/time.Millisecond) {
		t.Fatalf("negotiated %d ms, asked for %v", r.Timeout, timeout)
	}
	r.MustDo(jute.OpCreate, &jute.CreateRequest{
		Path:  "/silent/eph",
		ACL:   []jute.ACL{{Perms: jute.PermAll, ID: jute.Id{Scheme: "world", ID: "anyone"}}},
		Flags: jute.ModeEphemeral,
	}, &jute.CreateResponse{})
	lastPacket := time.Now() // the create's reply came after the server got it

	watches := make([]<-chan zk.Event, len(addrs))
	for i, w := range watchers {
		if _, err := w.Sync("/silent/eph"); err != nil {
			t.Fatal(err)
		}
		ok, _, ch, err := w.ExistsW("/silent/eph")
		if err != nil || !ok {
			t.Fatalf("member %d: exists /silent/eph: %v %v", i, ok, err)
		}
		watches[i] = ch
	}

	// From here the raw client sends nothing and keeps its socket open.
	for i, ch := range watches {
		select {
		case ev := <-ch:
			took := time.Since(lastPacket)
			if ev.Type != zk.EventNodeDeleted || ev.Path != "/silent/eph" {
				t.Fatalf("member %d: event %v %q, want NodeDeleted /silent/eph", i, ev.Type, ev.Path)
			}
			t.Logf("member %d saw the ephemeral go %v after the last packet", i, took.Round(time.Millisecond))
			if took < timeout-delivery {
				t.Errorf("member %d: the session expired %v after its last packet, before its %v timeout", i, took, timeout)
			}
			if took > timeout+tick+delivery {
				t.Errorf("member %d: the session expired %v after its last packet, want within %v (timeout + one tick)", i, took, timeout+tick)
			}
		case <-time.After(timeout + tick + framework.ZKWait):
			t.Fatalf("member %d: the silent session's ephemeral is still there after %v", i, time.Since(lastPacket))
		}
		if ok, _, err := watchers[i].Exists("/silent/eph"); ok || err != nil {
			t.Errorf("member %d: /silent/eph exists after its session expired (%v)", i, err)
		}
	}

	// The session is gone for good: the server closed its connection, and
	// resuming it is refused.
	r.ExpectClosed("the expired session's connection")
	r2, resp, err := framework.ResumeZKRaw(t, addrs[2], r.Session, r.Passwd, r.Zxid)
	if err != nil || resp.SessionID != 0 || resp.TimeOut != 0 {
		t.Errorf("resuming the expired session: %+v %v, want session 0 and timeout 0", resp, err)
	} else {
		r2.ExpectClosed("after refusing an expired session")
	}
}
