package zktree

import (
	"slices"
	"testing"

	"ensemble/internal/api/zk/jute"
)

func TestEvents(t *testing.T) {
	e := newEnv(t)
	e.openSession(8, 1000)
	e.create("/a", nil, jute.ModePersistent)
	for _, tc := range []struct {
		name string
		run  func()
		want []Event
	}{
		{"create", func() { e.create("/a/b", nil, jute.ModePersistent) },
			[]Event{{jute.EventNodeCreated, "/a/b"}, {jute.EventNodeChildrenChanged, "/a"}}},
		{"setData", func() { e.setData("/a/b", []byte("x")) },
			[]Event{{jute.EventNodeDataChanged, "/a/b"}}},
		{"setACL", func() {
			e.mustOK(jute.OpSetACL, &jute.SetACLRequest{Path: "/a/b", ACL: openACLs, Version: -1})
		}, nil},
		{"delete", func() { e.delete("/a/b") },
			[]Event{{jute.EventNodeDeleted, "/a/b"}, {jute.EventNodeChildrenChanged, "/a"}}},
		{"create parent and child", func() {
			e.mustOK(jute.OpMulti, &jute.MultiRequest{Ops: []jute.MultiOp{
				mop(jute.OpCreate, &jute.CreateRequest{Path: "/p", ACL: openACLs}),
				mop(jute.OpCreate, &jute.CreateRequest{Path: "/p/c", ACL: openACLs}),
				mop(jute.OpSetData, &jute.SetDataRequest{Path: "/a", Version: -1}),
			}})
		}, []Event{
			{jute.EventNodeDataChanged, "/a"}, {jute.EventNodeCreated, "/p"}, {jute.EventNodeCreated, "/p/c"},
			{jute.EventNodeChildrenChanged, "/"}, {jute.EventNodeChildrenChanged, "/p"},
		}},
		{"data and children of one node", func() {
			e.mustOK(jute.OpMulti, &jute.MultiRequest{Ops: []jute.MultiOp{
				mop(jute.OpSetData, &jute.SetDataRequest{Path: "/p", Version: -1}),
				mop(jute.OpDelete, &jute.DeleteRequest{Path: "/p/c", Version: -1}),
			}})
		}, []Event{{jute.EventNodeDataChanged, "/p"}, {jute.EventNodeDeleted, "/p/c"}, {jute.EventNodeChildrenChanged, "/p"}}},
		{"session open ignored", func() { e.openSession(9, 1000) }, nil},
		{"ttl index ignored", func() { e.createTTL("/t", 10) },
			[]Event{{jute.EventNodeCreated, "/t"}, {jute.EventNodeChildrenChanged, "/"}}},
	} {
		tc.run()
		if got := Events(nil, e.changes); !slices.Equal(got, tc.want) {
			t.Errorf("%s: events %+v, want %+v", tc.name, got, tc.want)
		}
	}
	// Keys outside the tree are ignored.
	if got := Events(nil, e.changes[:0]); got != nil {
		t.Fatal("events of nothing")
	}
	// Events appends.
	dst := []Event{{jute.EventNone, "x"}}
	if got := Events(dst, e.changes); len(got) != 3 || got[0].Path != "x" {
		t.Fatalf("append: %+v", got)
	}
}

func TestReserved(t *testing.T) {
	for _, tc := range []struct {
		key, end string
		want     bool
	}{
		{"/.zk/", "", true},
		{"/.zk/n/001/a", "", true},
		{"/.zk", "", false},
		{"/.zk0", "", false},
		{"a", "", false},
		{"/", "\x00", true},
		{"/.zk/x", "\x00", true},
		{"/.zk0", "\x00", false},
		{"\x00", "\x00", true},
		{"/", "/.zk", false},
		{"/", "/.zk/", false},
		{"/", "/.zk/\x00", true},
		{"/.zk/a", "/.zk/b", true},
		{"/.zj", "/.zl", true},
		{"/.zk0", "/.zk1", false},
		{"/.zk/z", "/.zk/a", false}, // empty range
		{"", "\x00", true},
	} {
		var end []byte
		if tc.end != "" {
			end = []byte(tc.end)
		}
		if got := Reserved([]byte(tc.key), end); got != tc.want {
			t.Errorf("Reserved(%q, %q) = %v, want %v", tc.key, tc.end, got, tc.want)
		}
	}
}

func TestKeys(t *testing.T) {
	for path, key := range map[string]string{
		"/":     "/.zk/n/000/",
		"/a":    "/.zk/n/001/a",
		"/a/b":  "/.zk/n/002/a/b",
		"/a/bc": "/.zk/n/002/a/bc",
	} {
		got, ok := appendNodeKey(nil, path)
		if !ok || string(got) != key || len(got) != nodeKeyLen(path) {
			t.Errorf("key of %s: %q", path, got)
		}
		if p, ok := nodePath(got); !ok || p != path {
			t.Errorf("path of %q: %q", got, p)
		}
	}
	for path, start := range map[string]string{"/": "/.zk/n/001/", "/a/b": "/.zk/n/003/a/b/"} {
		s, end, ok := childrenRange(path)
		if !ok || string(s) != start || string(end) != start[:len(start)-1]+"0" {
			t.Errorf("children of %s: [%q, %q)", path, s, end)
		}
	}
	if got := string(sessionKey(-1)); got != "/.zk/s/ffffffffffffffff" {
		t.Errorf("session key %q", got)
	}
	for _, k := range []string{"/.zk/n/00", "/.zk/n/0a1/x", "/.zk/n/001x", "/.zk/s/00"} {
		if _, ok := nodePath([]byte(k)); ok {
			t.Errorf("nodePath(%q) accepted", k)
		}
	}
}
