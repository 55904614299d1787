package robustness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Fabricated histories prove that each checker can fail.

func put(client int, call, ret int64, key, val string, rev int64) Op {
	return Op{Client: client, Kind: OpPut, Key: key, Value: val, Call: call, Return: ret, Rev: rev}
}

func read(client int, call, ret int64, key, val string, modRev, rev int64) Op {
	return Op{Client: client, Kind: OpGet, Key: key, Call: call, Return: ret, Found: val != "", Got: val, ModRev: modRev, Rev: rev}
}

func store(last int64, events ...Event) *StoreHistory { return NewStoreHistory(events, last) }

func checkers(t *testing.T, h History, s *StoreHistory) map[string]int {
	t.Helper()
	found := map[string]int{}
	var all []Violation
	all = append(all, CheckLinearizable(h, s, isModelKey, 10*time.Second, "")...)
	all = append(all, CheckAckedWrites(h, s)...)
	all = append(all, CheckReads(h, s)...)
	all = append(all, CheckRevisionOrder(h, nil)...)
	all = append(all, CheckLeases(h, s)...)
	all = append(all, CheckMutex(s)...)
	for _, v := range all {
		found[v.Checker]++
		t.Log(v.String())
	}
	return found
}

func TestValidHistoryPasses(t *testing.T) {
	h := History{
		put(0, 0, 10, "k/0", "a", 2),
		put(1, 5, 30, "k/0", "b", 3),
		read(2, 12, 20, "k/0", "a", 2, 2), // concurrent with b: may precede it
		read(2, 31, 40, "k/0", "b", 3, 3),
		{Client: 3, Kind: OpPut, Key: "k/1", Value: "x", Call: 1, Return: Infinity, Err: "timeout"},  // took effect, unacknowledged
		{Client: 3, Kind: OpPut, Key: "k/1", Value: "y", Call: 41, Return: Infinity, Err: "timeout"}, // never took effect
		{Client: 3, Kind: OpCAS, Key: "k/1", Value: "z", Expect: "x", Call: 50, Return: 60, Rev: 5, Succeeded: true},
		{Client: 3, Kind: OpGetSerial, Key: "k/1", Call: 61, Return: 62, Found: true, Got: "x", ModRev: 4, Rev: 4},
	}
	s := store(5,
		Event{Rev: 2, Key: "k/0", Value: "a", CreateRev: 2, Version: 1},
		Event{Rev: 3, Key: "k/0", Value: "b", CreateRev: 2, Version: 2},
		Event{Rev: 4, Key: "k/1", Value: "x", CreateRev: 4, Version: 1},
		Event{Rev: 5, Key: "k/1", Value: "z", CreateRev: 4, Version: 2},
	)
	if found := checkers(t, h, s); len(found) != 0 {
		t.Fatalf("violations in a valid history: %v", found)
	}
}

func TestStaleReadIsDetected(t *testing.T) {
	h := History{
		put(0, 0, 10, "k/0", "a", 2),
		put(0, 20, 30, "k/0", "b", 3),
		read(1, 40, 50, "k/0", "a", 2, 2), // after b was acknowledged
	}
	s := store(3,
		Event{Rev: 2, Key: "k/0", Value: "a", CreateRev: 2, Version: 1},
		Event{Rev: 3, Key: "k/0", Value: "b", CreateRev: 2, Version: 2},
	)
	html := filepath.Join(t.TempDir(), "viz.html")
	vs := CheckLinearizable(h, s, isModelKey, 10*time.Second, html)
	if len(vs) != 1 || !strings.Contains(vs[0].Detail, "not linearizable") {
		t.Fatalf("stale read not detected by porcupine: %v", vs)
	}
	if fi, err := os.Stat(html); err != nil || fi.Size() == 0 {
		t.Fatalf("no visualisation written: %v", err)
	}
	if len(vs[0].Context) == 0 {
		t.Fatalf("no operations around the violation")
	}
	if vs := CheckRevisionOrder(h, nil); len(vs) == 0 {
		t.Fatalf("stale read not detected by the revision order")
	}
}

func TestStaleSerializableReadAfterItsOwnMemberAnsweredNewerIsDetected(t *testing.T) {
	h := History{
		{Client: 0, Kind: OpGetSerial, Key: "k/0", Call: 0, Return: 10, Rev: 7, Member: 1},
		{Client: 1, Kind: OpGetSerial, Key: "k/0", Call: 20, Return: 30, Rev: 5, Member: 1},
	}
	if vs := CheckRevisionOrder(h, nil); len(vs) != 1 {
		t.Fatalf("revision going back on one member not detected: %v", vs)
	}
	// Across a restart of that member it is allowed.
	if vs := CheckRevisionOrder(h, map[uint64][]int64{1: {15}}); len(vs) != 0 {
		t.Fatalf("revision going back across a restart reported: %v", vs)
	}
}

func TestInconsistentReadIsDetected(t *testing.T) {
	h := History{read(0, 0, 10, "k/0", "b", 3, 2)} // b did not exist at revision 2
	s := store(3,
		Event{Rev: 2, Key: "k/0", Value: "a", CreateRev: 2, Version: 1},
		Event{Rev: 3, Key: "k/0", Value: "b", CreateRev: 2, Version: 2},
	)
	if vs := CheckReads(h, s); len(vs) != 1 {
		t.Fatalf("read not matching the history at its revision not detected: %v", vs)
	}
}

func TestLostAndPhantomWritesAreDetected(t *testing.T) {
	h := History{
		put(0, 0, 10, "k/0", "a", 2),
		put(0, 20, 30, "k/0", "b", 3), // acknowledged, then lost
		{Client: 0, Kind: OpDelete, Key: "k/1", Call: 40, Return: 50, Rev: 4, Deleted: 1},
	}
	s := store(5,
		Event{Rev: 2, Key: "k/0", Value: "a", CreateRev: 2, Version: 1},
		Event{Rev: 5, Key: "k/0", Value: "ghost", CreateRev: 2, Version: 2},
	)
	found := map[string]int{}
	for _, v := range CheckAckedWrites(h, s) {
		found[v.Checker]++
	}
	if found["lost-write"] != 2 || found["phantom-write"] != 1 {
		t.Fatalf("lost and phantom writes: %v, want 2 lost, 1 phantom", found)
	}
}

func TestWriteAppliedTwiceIsDetected(t *testing.T) {
	// As seen in split-5 seed 3: one put, acknowledged at 2, applied again at 4.
	h := History{put(0, 0, 10, "k/0", "a", 2), put(1, 1, 11, "k/0", "b", 3)}
	s := store(4,
		Event{Rev: 2, Key: "k/0", Value: "a", CreateRev: 2, Version: 1},
		Event{Rev: 3, Key: "k/0", Value: "b", CreateRev: 2, Version: 2},
		Event{Rev: 4, Key: "k/0", Value: "a", CreateRev: 2, Version: 3},
	)
	found := checkers(t, h, s)
	if found["duplicate-write"] != 1 {
		t.Fatalf("write applied twice: %v", found)
	}
}

func TestTwoLockHoldersAreDetected(t *testing.T) {
	s := store(5,
		Event{Rev: 2, Key: "lock/a", CreateRev: 2, Version: 1, Lease: 1},
		Event{Rev: 3, Key: "lock/b", CreateRev: 3, Version: 1, Lease: 2},
		Event{Rev: 4, Key: lockData, Value: "lock/a", CreateRev: 4, Version: 1},
		Event{Rev: 5, Key: lockData, Value: "lock/b", CreateRev: 4, Version: 2}, // a still holds it
	)
	vs := CheckMutex(s)
	if len(vs) != 1 || !strings.Contains(vs[0].Detail, "owner was lock/a") {
		t.Fatalf("second holder not detected: %v", vs)
	}
	// Once a's key is gone, b is the owner.
	s = store(6,
		Event{Rev: 2, Key: "lock/a", CreateRev: 2, Version: 1, Lease: 1},
		Event{Rev: 3, Key: "lock/b", CreateRev: 3, Version: 1, Lease: 2},
		Event{Rev: 4, Key: lockData, Value: "lock/a", CreateRev: 4, Version: 1},
		Event{Rev: 5, Key: "lock/a", Delete: true},
		Event{Rev: 6, Key: lockData, Value: "lock/b", CreateRev: 4, Version: 2},
	)
	if vs := CheckMutex(s); len(vs) != 0 {
		t.Fatalf("handover reported: %v", vs)
	}
}

func TestKeyOfRevokedLeaseIsDetected(t *testing.T) {
	h := History{{Client: 0, Kind: OpLeaseRevoke, Lease: 7, Call: 0, Return: 10, Rev: 3}}
	s := store(4,
		Event{Rev: 2, Key: "l/x", Value: "v", CreateRev: 2, Version: 1, Lease: 7},
		Event{Rev: 3, Key: "k/other", Value: "v", CreateRev: 3, Version: 1},
		Event{Rev: 4, Key: "l/y", Value: "v", CreateRev: 4, Version: 1, Lease: 7},
	)
	if vs := CheckLeases(h, s); len(vs) != 2 {
		t.Fatalf("live key at the revoke and put after it: %v, want 2 violations", vs)
	}
}

func watchStore() *StoreHistory {
	return store(5,
		Event{Rev: 2, Key: "k/0", Value: "a", CreateRev: 2, Version: 1},
		Event{Rev: 3, Key: "k/1", Value: "b", CreateRev: 3, Version: 1},
		Event{Rev: 4, Key: "k/0", Delete: true},
		Event{Rev: 5, Key: "k/1", Value: "c", CreateRev: 3, Version: 2},
	)
}

func resp(rev int64, events ...Event) WatchResp { return WatchResp{Rev: rev, Events: events} }

func TestWatchCheckerAcceptsAResumedStream(t *testing.T) {
	s := watchStore()
	rec := WatchRecord{Prefix: "k/", Segments: []WatchSegment{
		{From: 1, Resps: []WatchResp{resp(3, s.Events[0], s.Events[1]), {Rev: 3, Progress: true}, {Err: "broken"}}},
		{From: 4, Resps: []WatchResp{resp(5, s.Events[2]), resp(5, s.Events[3])}},
	}}
	if vs := CheckWatch(rec, s); len(vs) != 0 {
		t.Fatalf("valid watch reported: %v", vs)
	}
}

func TestWatchViolationsAreDetected(t *testing.T) {
	s := watchStore()
	cases := map[string]WatchRecord{
		"duplicate": {Prefix: "k/", Segments: []WatchSegment{{From: 2, Resps: []WatchResp{
			resp(3, s.Events[0], s.Events[1]), resp(3, s.Events[1])}}}},
		"missing": {Prefix: "k/", Segments: []WatchSegment{{From: 2, Resps: []WatchResp{
			resp(3, s.Events[0]), resp(5, s.Events[2], s.Events[3])}}}},
		"gap on resume": {Prefix: "k/", Segments: []WatchSegment{
			{From: 2, Resps: []WatchResp{resp(2, s.Events[0])}},
			{From: 4, Resps: []WatchResp{resp(5, s.Events[2])}}}},
		"progress ahead": {Prefix: "k/", Segments: []WatchSegment{{From: 2, Resps: []WatchResp{
			resp(2, s.Events[0]), {Rev: 4, Progress: true}, resp(4, s.Events[1], s.Events[2])}}}},
		"out of order": {Prefix: "k/", Segments: []WatchSegment{{From: 2, Resps: []WatchResp{
			resp(3, s.Events[1]), resp(3, s.Events[0])}}}},
		"one revision split": {Prefix: "k/", Segments: []WatchSegment{{From: 2, Resps: []WatchResp{
			resp(2, Event{Rev: 2, Key: "k/0", Value: "a", CreateRev: 2, Version: 1}),
			resp(2, Event{Rev: 2, Key: "k/9", Value: "z", CreateRev: 2, Version: 1})}}}},
	}
	for name, rec := range cases {
		if vs := CheckWatch(rec, s); len(vs) == 0 {
			t.Errorf("%s: not detected", name)
		} else {
			t.Logf("%s: %v", name, vs[0])
		}
	}
}
