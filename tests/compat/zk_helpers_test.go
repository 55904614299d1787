package compat

import (
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"ensemble/internal/api/zk/jute"
	"ensemble/tests/framework"

	"github.com/go-zookeeper/zk"
)

// zkWait bounds every single wait of the ZooKeeper tests.
const zkWait = framework.ZKWait

// zkClusters runs fn on a single member and on a three-member cluster. addrs
// are the members' ZooKeeper addresses, followers first, so that a test that
// spreads its clients over addrs[i%len(addrs)] crosses members and one that
// uses addrs[0] talks to a follower.
func zkClusters(t *testing.T, fn func(t *testing.T, c *framework.InProcessCluster, addrs []string), extra ...string) {
	for _, size := range []int{1, 3} {
		t.Run(fmt.Sprintf("members=%d", size), func(t *testing.T) {
			c := framework.StartInProcess(t, size, extra...)
			lead := c.WaitLeader(t)
			addrs := make([]string, size)
			for i := range size {
				idx := (lead + 1 + i) % size
				addrs[i] = c.Member(idx).ZKAddr()
				if addrs[i] == "" {
					t.Fatalf("member %d serves no ZooKeeper port", idx)
				}
			}
			fn(t, c, addrs)
		})
	}
}

var zkWorld = zk.WorldACL(zk.PermAll)

// zkMustCreate creates path (open to the world) and returns the path the
// server gave it.
func zkMustCreate(t testing.TB, c *zk.Conn, path string, data []byte, flags int32) string {
	t.Helper()
	p, err := c.Create(path, data, flags, zkWorld)
	if err != nil {
		t.Fatalf("create %s (flags %d): %v", path, flags, err)
	}
	return p
}

// zkMustStat returns path's Stat, failing if it does not exist.
func zkMustStat(t testing.TB, c *zk.Conn, path string) zk.Stat {
	t.Helper()
	ok, st, err := c.Exists(path)
	if err != nil || !ok {
		t.Fatalf("exists %s: %v %v", path, ok, err)
	}
	return *st
}

// zkMustGet returns path's data and Stat.
func zkMustGet(t testing.TB, c *zk.Conn, path string) ([]byte, zk.Stat) {
	t.Helper()
	data, st, err := c.Get(path)
	if err != nil {
		t.Fatalf("get %s: %v", path, err)
	}
	return data, *st
}

// zkWantErr checks that err is want (nil for success).
func zkWantErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got error %v, want %v", what, err, want)
	}
}

// zkEvent waits for one event on ch.
func zkEvent(t testing.TB, what string, ch <-chan zk.Event) zk.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatalf("%s: watch channel closed without an event", what)
		}
		return ev
	case <-time.After(zkWait):
		t.Fatalf("%s: no event within %v", what, zkWait)
	}
	return zk.Event{}
}

// zkWantEvent waits for one event on ch and checks its type and path.
func zkWantEvent(t testing.TB, what string, ch <-chan zk.Event, typ zk.EventType, path string) {
	t.Helper()
	ev := zkEvent(t, what, ch)
	if ev.Type != typ || ev.Path != path || ev.Err != nil {
		t.Errorf("%s: got event %v %q (err %v), want %v %q", what, ev.Type, ev.Path, ev.Err, typ, path)
	}
}

// zkWaitGone waits until path does not exist as seen through c, using an
// exists watch rather than polling.
func zkWaitGone(t testing.TB, c *zk.Conn, path string, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		ok, _, ch, err := c.ExistsW(path)
		if err != nil {
			t.Fatalf("exists %s: %v", path, err)
		}
		if !ok {
			return
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("%s still exists after %v", path, within)
		}
	}
}

// describeEvents prints events for failure messages.
func describeEvents(evs []jute.WatcherEvent) string {
	s := make([]string, len(evs))
	for i, ev := range evs {
		s[i] = fmt.Sprintf("%v %s", zk.EventType(ev.Type), ev.Path)
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// sortedCopy returns a sorted copy of s (ZooKeeper lists children in no
// particular order).
func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// fourLetterWord sends a four-letter word to addr and returns all the server
// writes before closing.
func fourLetterWord(t testing.TB, addr, word string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, zkWait)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(zkWait)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte(word)); err != nil {
		t.Fatalf("write %q: %v", word, err)
	}
	out, err := io.ReadAll(conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%q: the server did not close the connection within %v (got %q)", word, zkWait, out)
	}
	return string(out)
}

// juteStat converts go-zookeeper's Stat to jute's, to compare the two.
func juteStat(s zk.Stat) jute.Stat {
	return jute.Stat{
		Czxid: s.Czxid, Mzxid: s.Mzxid, Ctime: s.Ctime, Mtime: s.Mtime,
		Version: s.Version, Cversion: s.Cversion, Aversion: s.Aversion,
		EphemeralOwner: s.EphemeralOwner, DataLength: s.DataLength,
		NumChildren: s.NumChildren, Pzxid: s.Pzxid,
	}
}

// zkRetry runs op until it succeeds, retrying only while go-zookeeper is
// between connections (the server closed one on purpose); other errors and
// the deadline fail the test.
func zkRetry(t testing.TB, what string, op func() error) {
	t.Helper()
	deadline := time.Now().Add(zkWait)
	for {
		err := op()
		if err == nil {
			return
		}
		if !errors.Is(err, zk.ErrConnectionClosed) && !errors.Is(err, zk.ErrNoServer) || time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond) // a reconnect is under way; nothing to wait on
	}
}
