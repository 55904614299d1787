package robustness

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ensemble/internal/api/zk/jute"
	"ensemble/internal/zktree"
)

// Fabricated ZooKeeper histories prove that each ZooKeeper checker can fail.

// zkRec encodes a node record as internal/zktree stores it.
func zkRec(data string, version int32, mzxid, owner int64) string {
	return string(zktree.EncodeNode(&zktree.Node{Data: []byte(data), Stat: jute.Stat{Version: version, Mzxid: mzxid, EphemeralOwner: owner}}))
}

// znode is a put of a node's key: created at create, data set at mzxid.
func znode(rev int64, path, data string, version int32, create, mzxid, owner int64) Event {
	return Event{Rev: rev, Key: zkNodeKey(path), Value: zkRec(data, version, mzxid, owner), CreateRev: create, Version: rev - create + 1, Lease: owner}
}

func zgone(rev int64, path string) Event { return Event{Rev: rev, Delete: true, Key: zkNodeKey(path)} }

func zsession(rev int64, id int64, end bool) Event {
	return Event{Rev: rev, Delete: end, Key: fmt.Sprintf("%s%016x", zkSessionKeyPrefix, uint64(id)), Value: "s", CreateRev: rev, Lease: id}
}

const zd0 = zkDataDir + "/0"

// zkDirEvents are the traffic's directories, all created at revision 1.
func zkDirEvents() []Event {
	var evs []Event
	for _, d := range zkDirs {
		evs = append(evs, znode(1, d, "", 0, 1, 1, 0))
	}
	return evs
}

// zkValid is a history every checker accepts: a create, a CAS, a multi,
// reads, a watch that fired, an ephemeral of a session that was closed,
// and lock writes by the owner to the znode and to the etcd key.
func zkValid() (*ZKHistory, *StoreHistory) {
	s := store(12, append(zkDirEvents(),
		zsession(2, 0x51, false),
		znode(3, zd0, "a", 0, 3, 3, 0),
		znode(4, zd0, "b", 1, 3, 4, 0),
		znode(5, zkEphDir+"/c1-1", "e", 0, 5, 5, 0x51),
		znode(6, zd0, "c", 2, 3, 6, 0),
		znode(7, zkLockDir+"/g1-lock-0000000001", "l", 0, 7, 7, 0x51),
		znode(8, zkLockData, "g1-lock-0000000001@7#1", 1, 1, 8, 0),
		Event{Rev: 9, Key: zkLockKey, Value: "g1-lock-0000000001@7#2", CreateRev: 9, Version: 1},
		zgone(10, zkLockDir+"/g1-lock-0000000001"),
		zgone(11, zkEphDir+"/c1-1"),
		zsession(11, 0x51, true),
		zgone(12, zd0),
	)...)
	stat := func(v int32, czxid, mzxid int64) jute.Stat { return jute.Stat{Version: v, Czxid: czxid, Mzxid: mzxid} }
	h := &ZKHistory{Ops: []ZKOp{
		{Client: 1, Session: 0x51, Kind: ZKCreate, Path: zd0, Data: "a", Call: 0, Return: 10, Zxid: 3, Created: zd0, Stat: stat(0, 3, 3)},
		{Client: 1, Session: 0x51, Kind: ZKSetData, Path: zd0, Data: "b", Version: 0, Call: 11, Return: 20, Zxid: 4, Stat: stat(1, 3, 4)},
		{Client: 2, Session: 0x52, Kind: ZKGet, Path: zd0, Watch: true, Call: 21, Return: 22, Zxid: 4, Got: "b", Stat: stat(1, 3, 4)},
		{Client: 1, Session: 0x51, Kind: ZKCreate, Path: zkEphDir + "/c1-1", Data: "e", Mode: jute.ModeEphemeral, Call: 23, Return: 24, Zxid: 5, Created: zkEphDir + "/c1-1", Stat: stat(0, 5, 5)},
		{Client: 1, Session: 0x51, Kind: ZKMulti, Path: zd0, Data: "c", Version: 1, Call: 25, Return: 30, Zxid: 6, Stat: stat(2, 3, 6)},
		{Client: 3, Session: 0x53, Kind: ZKSyncGet, Path: zd0, Call: 31, Return: 32, Zxid: 6, Got: "c", Stat: stat(2, 3, 6)},
		{Client: 1, Session: 0x51, Kind: ZKSetData, Path: zd0, Data: "x", Version: 0, Call: 33, Return: 34, Zxid: 6, Code: jute.CodeBadVersion},
		{Client: 1, Session: 0x51, Kind: ZKSetData, Path: zd0, Data: "y", Version: -1, Call: 35, Return: Infinity, Err: "timeout"}, // never applied
		{Client: 1, Session: 0x51, Kind: ZKCreate, Path: zkLockDir + "/g1-lock-", Data: "l", Mode: jute.ModeEphemeralSequential, Call: 36, Return: 37, Zxid: 7, Created: zkLockDir + "/g1-lock-0000000001", Stat: stat(0, 7, 7)},
		{Client: 1, Session: 0x51, Kind: ZKChildren, Path: zkLockDir, Call: 38, Return: 39, Zxid: 7, Children: []string{"g1-lock-0000000001"}},
		{Client: 1, Session: 0x51, Kind: ZKLockMulti, Path: zkLockData, Data: "g1-lock-0000000001@7#1", Token: 7, Call: 40, Return: 41, Zxid: 8, Stat: stat(1, 1, 8)},
		{Client: 1, Session: 0x51, Kind: ZKLockPut, Path: zkLockKey, Data: "g1-lock-0000000001@7#2", Token: 7, Call: 42, Return: 43, Zxid: 9, Succeeded: true},
		{Client: 1, Session: 0x51, Kind: ZKDelete, Path: zkLockDir + "/g1-lock-0000000001", Version: -1, Call: 44, Return: 45, Zxid: 10},
		{Client: 1, Session: 0x51, Kind: ZKClose, Call: 46, Return: 47, Zxid: 11},
		{Client: 3, Session: 0x53, Kind: ZKDelete, Path: zd0, Version: 2, Call: 48, Return: Infinity, Err: "timeout"}, // applied at 12
		{Client: 3, Session: 0x53, Kind: ZKGet, Path: zd0, Call: 49, Return: 50, Zxid: 12, Code: jute.CodeNoNode},
	}}
	h.Watches = []*ZKWatch{{Client: 2, Session: 0x52, Path: zd0, Rev: 4, Set: 22, Seen: 5,
		Events: []ZKEvent{{Client: 2, Session: 0x52, Type: jute.EventNodeDataChanged, Path: zd0, Zxid: 6, At: 29}}}}
	return h, s
}

func zkCheckers(t *testing.T, h *ZKHistory, s *StoreHistory) map[string]int {
	t.Helper()
	found := map[string]int{}
	for _, v := range CheckZK(h, s, 10*time.Second, "") {
		found[v.Checker]++
		t.Log(v.String())
	}
	return found
}

func TestZKChecksAcceptAValidHistory(t *testing.T) {
	h, s := zkValid()
	if found := zkCheckers(t, h, s); len(found) != 0 {
		t.Fatalf("violations in a valid history: %v", found)
	}
}

func TestZKCheckDetectsAStaleLinearizableRead(t *testing.T) {
	h, s := zkValid()
	// After c was acknowledged, a sync-then-get still returns b.
	h.Ops = append(h.Ops, ZKOp{Client: 4, Session: 0x54, Kind: ZKSyncGet, Path: zd0, Call: 31, Return: 32, Zxid: 4,
		Got: "b", Stat: jute.Stat{Version: 1, Czxid: 3, Mzxid: 4}})
	html := filepath.Join(t.TempDir(), "zk.html")
	vs := CheckZKLinearizable(h, s, 10*time.Second, html)
	if len(vs) != 1 || !strings.Contains(vs[0].Detail, "not linearizable") || !strings.Contains(vs[0].Detail, zd0) {
		t.Fatalf("stale read not detected by porcupine: %v", vs)
	}
	if fi, err := os.Stat(html); err != nil || fi.Size() == 0 {
		t.Fatalf("no visualisation written: %v", err)
	}
	// A CAS that succeeded on a version the node no longer had.
	h, s = zkValid()
	h.Ops[4].Version = 0
	if vs := CheckZKLinearizable(h, s, 10*time.Second, ""); len(vs) != 1 {
		t.Fatalf("CAS against a stale version not detected: %v", vs)
	}
}

func TestZKCheckDetectsLostFailedPhantomAndDuplicateWrites(t *testing.T) {
	h, s := zkValid()
	// The acknowledged multi's write is gone from the history, the failed
	// setData x took effect, and z (no client's) and b twice appear.
	events := append([]Event(nil), s.Events...)
	for i, e := range events {
		if e.Rev == 6 {
			events[i] = znode(6, zd0, "x", 2, 3, 6, 0)
		}
	}
	events = append(events, znode(13, zkDataDir+"/1", "z", 0, 13, 13, 0), znode(14, zkDataDir+"/1", "b", 1, 13, 14, 0))
	s = store(14, events...)
	found := map[string]int{}
	for _, v := range CheckZKWrites(h, s) {
		found[v.Checker]++
		t.Log(v)
	}
	want := map[string]int{"zk-lost-write": 1, "zk-failed-write": 1, "zk-phantom-write": 1, "zk-duplicate-write": 1}
	for k, n := range want {
		if found[k] != n {
			t.Fatalf("found %v, want %v", found, want)
		}
	}
	// A lost ephemeral create: in the history, but owned by another session.
	h, s = zkValid()
	h.Ops[3].Session = 0x99
	if vs := CheckZKWrites(h, s); len(vs) != 1 || vs[0].Checker != "zk-lost-write" {
		t.Fatalf("ephemeral of the wrong session not detected: %v", vs)
	}
}

func TestZKCheckDetectsAReadNotMatchingItsZxid(t *testing.T) {
	h, s := zkValid()
	h.Ops[2].Got = "c" // c was written at 6, the read says 4
	if vs := CheckZKReads(h, s); len(vs) != 1 || vs[0].Checker != "zk-read" {
		t.Fatalf("read not matching the history at its zxid: %v", vs)
	}
	h, s = zkValid()
	h.Ops[9].Children = nil // the lock node existed at 7
	if vs := CheckZKReads(h, s); len(vs) != 1 || vs[0].Checker != "zk-read" {
		t.Fatalf("children not matching the history: %v", vs)
	}
}

func TestZKCheckDetectsASessionGoingBack(t *testing.T) {
	h, s := zkValid()
	// After seeing 6, session 0x53 reads at 4 (a member behind it).
	h.Ops = append(h.Ops, ZKOp{Client: 3, Session: 0x53, Kind: ZKGet, Path: zd0, Call: 33, Return: 34, Zxid: 4,
		Got: "b", Stat: jute.Stat{Version: 1, Czxid: 3, Mzxid: 4}})
	vs := CheckZKReads(h, s)
	if len(vs) != 1 || vs[0].Checker != "zk-session-order" {
		t.Fatalf("zxid going back in a session: %v", vs)
	}
}

func TestZKCheckDetectsEphemeralsOfEndedSessions(t *testing.T) {
	h, _ := zkValid()
	s := store(12,
		zsession(2, 0x51, false),
		znode(5, zkEphDir+"/c1-1", "e", 0, 5, 5, 0x51),
		zsession(11, 0x51, true), // its ephemeral outlives it
		znode(12, zkEphDir+"/c1-2", "f", 0, 12, 12, 0x51),
		znode(12, zkEphDir+"/c9-1", "g", 0, 12, 12, 0x77), // no such session
	)
	h.Ops = []ZKOp{
		{Client: 1, Session: 0x51, Kind: ZKClose, Call: 0, Return: 1, Zxid: 10},                                    // acknowledged before the end
		{Client: 2, Session: 0x52, Kind: ZKExpired, Call: 2, Return: 2},                                            // never ended
		{Client: 1, Session: 0x51, Kind: ZKCreate, Path: zkEphDir + "/c1-1", Data: "e", Call: 0, Return: Infinity}, // attempts
		{Client: 1, Session: 0x51, Kind: ZKCreate, Path: zkEphDir + "/c1-2", Data: "f", Call: 0, Return: Infinity},
	}
	found := 0
	for _, v := range CheckZKSessions(h, s) {
		if v.Checker == "zk-session" {
			found++
		}
		t.Log(v)
	}
	// live at the end, created after the end, of no session, close
	// acknowledged before the end, expiry never in the history.
	if found != 5 {
		t.Fatalf("found %d session violations, want 5", found)
	}
}

func TestZKCheckDetectsTwoLockHolders(t *testing.T) {
	a, b := zkLockDir+"/g1-lock-0000000001", zkLockDir+"/g2-lock-0000000002"
	s := store(6,
		znode(2, a, "la", 0, 2, 2, 0x51),
		znode(3, b, "lb", 0, 3, 3, 0x52),
		znode(4, zkLockData, "g1-lock-0000000001@2#1", 1, 1, 4, 0),
		Event{Rev: 5, Key: zkLockKey, Value: "g2-lock-0000000002@3#1", CreateRev: 5, Version: 1}, // a still holds it
	)
	vs := CheckZKLock(s)
	if len(vs) != 1 || !strings.Contains(vs[0].Detail, "owner was \""+a+"\"") {
		t.Fatalf("second holder not detected: %v", vs)
	}
	// After a's node is gone b owns the lock; a write with a's token then
	// is by a holder that is no more, and tokens must not go back.
	s = store(7,
		znode(2, a, "la", 0, 2, 2, 0x51),
		znode(3, b, "lb", 0, 3, 3, 0x52),
		zgone(4, a),
		znode(5, zkLockData, "g2-lock-0000000002@3#1", 1, 1, 5, 0),
		Event{Rev: 6, Key: zkLockKey, Value: "g1-lock-0000000001@2#2", CreateRev: 6, Version: 1},
	)
	if vs := CheckZKLock(s); len(vs) != 1 {
		t.Fatalf("write by a released holder not detected: %v", vs)
	}
	s = store(5,
		znode(2, a, "la", 0, 2, 2, 0x51),
		znode(3, zkLockData, "g1-lock-0000000001@2#1", 1, 1, 3, 0),
		Event{Rev: 4, Key: zkLockKey, Value: "g1-lock-0000000001@9#2", CreateRev: 4, Version: 1}, // a wrong token
	)
	if vs := CheckZKLock(s); len(vs) != 1 {
		t.Fatalf("write with another node's token not detected: %v", vs)
	}
}

func TestZKCheckDetectsWatchViolations(t *testing.T) {
	ev := func(typ jute.EventType, zxid int64) ZKEvent {
		return ZKEvent{Client: 2, Session: 0x52, Type: typ, Path: zd0, Zxid: zxid, At: 29}
	}
	w := func(seen int64, evs ...ZKEvent) *ZKWatch {
		return &ZKWatch{Client: 2, Session: 0x52, Path: zd0, Rev: 4, Set: 22, Seen: seen, Events: evs}
	}
	cases := map[string]*ZKHistory{
		"fired twice":              {Watches: []*ZKWatch{w(5, ev(jute.EventNodeDataChanged, 6), ev(jute.EventNodeDataChanged, 6))}},
		"for a change before it":   {Watches: []*ZKWatch{w(5, ev(jute.EventNodeDataChanged, 4))}},
		"not the first change":     {Watches: []*ZKWatch{w(5, ev(jute.EventNodeDeleted, 12))}},
		"wrong type":               {Watches: []*ZKWatch{w(5, ev(jute.EventNodeDeleted, 6))}},
		"missed":                   {Watches: []*ZKWatch{w(6)}},
		"after a newer reply":      {Watches: []*ZKWatch{w(7, ev(jute.EventNodeDataChanged, 6))}},
		"stray":                    {Stray: []ZKEvent{ev(jute.EventNodeDataChanged, 6)}},
		"fired now, never deleted": {Watches: []*ZKWatch{{Client: 2, Session: 0x52, Path: zd0, Rev: 12, Seen: 12, Events: []ZKEvent{ev(jute.EventNodeDeleted, -1)}}}},
	}
	_, s := zkValid()
	for name, h := range cases {
		if vs := CheckZKWatches(h, s); len(vs) == 0 {
			t.Errorf("%s: not detected", name)
		} else {
			t.Logf("%s: %v", name, vs[0])
		}
	}
	// Fired at once by setWatches after a reconnect: zxid -1 is fine.
	h := &ZKHistory{Watches: []*ZKWatch{w(5, ev(jute.EventNodeDataChanged, -1))}}
	if vs := CheckZKWatches(h, s); len(vs) != 0 {
		t.Fatalf("event fired by setWatches reported: %v", vs)
	}
}

func TestZKCheckNodeKeys(t *testing.T) {
	for path, key := range map[string]string{"/": "/.zk/n/000/", "/rz": "/.zk/n/001/rz", "/rz/e/c1": "/.zk/n/003/rz/e/c1"} {
		if got := zkNodeKey(path); got != key {
			t.Errorf("zkNodeKey(%q) = %q, want %q", path, got, key)
		}
		if got, ok := zkPathOfKey(key); !ok || got != path {
			t.Errorf("zkPathOfKey(%q) = %q, %v", key, got, ok)
		}
	}
	if got := zkChildrenKeyPrefix(zkEphDir); got != "/.zk/n/003/rz/e/" {
		t.Errorf("children of %s: %q", zkEphDir, got)
	}
}
