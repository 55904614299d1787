package robustness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"ensemble/internal/api/zk/jute"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ZooKeeper paths of the traffic. The data znodes are checked by
// porcupine; the others by the session, lock and history checkers.
const (
	zkRoot     = "/rz"
	zkDataDir  = "/rz/d" // data znodes zkDataDir/0..3: create, setData, CAS, multi, delete, reads, watches
	zkEphDir   = "/rz/e" // ephemerals, plain and sequential
	zkSeqDir   = "/rz/q" // persistent sequential items, deleted again soon
	zkLockDir  = "/rz/lock"
	zkLockData = "/rz/lockdata" // znode written under the ZooKeeper lock
	zkLockKey  = "zlock-data"   // etcd key written under the ZooKeeper lock
	zkDataKeys = 4
	// zkSessionTimeoutMs is the smallest timeout the server grants by
	// default, so that sessions abandoned or cut off expire within a run.
	zkSessionTimeoutMs = 4000
)

// zkDirs are created before the traffic starts, with empty data.
var zkDirs = []string{zkRoot, zkDataDir, zkEphDir, zkSeqDir, zkLockDir, zkLockData}

// zkOpenACL lets everyone do everything: the traffic tests data, not ACLs.
var zkOpenACL = []jute.ACL{{Perms: jute.PermAll, ID: jute.Id{Scheme: "world", ID: "anyone"}}}

// ZKOpKind names a recorded ZooKeeper operation.
type ZKOpKind uint8

const (
	ZKCreate    ZKOpKind = iota // create2 of Path (a prefix for sequential modes) with Data
	ZKDelete                    // delete of Path at Version
	ZKSetData                   // setData of Path to Data at Version (-1: any)
	ZKMulti                     // multi: check(Path, Version), setData(Path, Data, -1)
	ZKGet                       // getData served by the member connected to, maybe leaving a watch
	ZKSyncGet                   // sync then getData: a linearizable read of Path
	ZKChildren                  // getChildren of Path
	ZKClose                     // closeSession
	ZKExpired                   // not a request: the server told the client its session expired
	ZKLockMulti                 // lock holder: multi check(lock node, 0), setData(zkLockData, Data)
	ZKLockPut                   // lock holder: etcd txn if lock node's create revision = Token then put zkLockKey
)

func (k ZKOpKind) String() string {
	return [...]string{"zcreate", "zdelete", "zset", "zmulti", "zget", "zsyncget", "zchildren", "zclose", "zexpired", "zlockmulti", "zlockput"}[k]
}

// ZKOp is one recorded ZooKeeper operation. A transport error or a timeout
// is kept with Return = Infinity: its outcome is unknown.
type ZKOp struct {
	Client       int
	Session      int64
	Kind         ZKOpKind
	Path         string
	Data         string // what a create or a write sets
	Version      int32  // expected version; -1 for any
	Mode         jute.CreateMode
	Watch        bool  // getData left a data watch
	Token        int64 // lock writes: the fencing token (the lock node's czxid)
	Call, Return int64
	Err          string

	Code      jute.Code // ZooKeeper's answer
	Zxid      int64     // the reply header's zxid (the header revision for ZKLockPut)
	Created   string    // the path a create made
	Got       string    // the data read
	Stat      jute.Stat // of the node read, created or written
	Children  []string
	Succeeded bool // ZKLockPut: the comparison held
}

// Unknown reports whether the outcome is unknown.
func (o *ZKOp) Unknown() bool { return o.Return == Infinity }

func (o *ZKOp) String() string {
	var b strings.Builder
	ret := "?"
	if !o.Unknown() {
		ret = fmt.Sprintf("%.3fs", float64(o.Return)/1e9)
	}
	fmt.Fprintf(&b, "c%d s%x [%.3fs, %s] %v %s", o.Client, o.Session, float64(o.Call)/1e9, ret, o.Kind, o.Path)
	switch o.Kind {
	case ZKCreate:
		fmt.Fprintf(&b, "=%s mode=%d", o.Data, o.Mode)
	case ZKSetData, ZKLockMulti, ZKLockPut:
		fmt.Fprintf(&b, "=%s", o.Data)
	case ZKMulti:
		fmt.Fprintf(&b, "=%s", o.Data)
	}
	switch o.Kind {
	case ZKSetData, ZKMulti, ZKDelete:
		fmt.Fprintf(&b, " if v%d", o.Version)
	case ZKLockMulti, ZKLockPut:
		fmt.Fprintf(&b, " token=%d", o.Token)
	case ZKGet:
		if o.Watch {
			b.WriteString(" watch")
		}
	}
	if o.Err != "" {
		fmt.Fprintf(&b, " -> error %s", o.Err)
		return b.String()
	}
	fmt.Fprintf(&b, " -> %v zxid=%d", o.Code, o.Zxid)
	if o.Code == jute.CodeOK {
		switch o.Kind {
		case ZKCreate:
			fmt.Fprintf(&b, " %s czxid=%d owner=%x", o.Created, o.Stat.Czxid, o.Stat.EphemeralOwner)
		case ZKGet, ZKSyncGet:
			fmt.Fprintf(&b, " %s v%d mzxid=%d", o.Got, o.Stat.Version, o.Stat.Mzxid)
		case ZKSetData, ZKMulti:
			fmt.Fprintf(&b, " v%d mzxid=%d", o.Stat.Version, o.Stat.Mzxid)
		case ZKChildren:
			fmt.Fprintf(&b, " %v", o.Children)
		case ZKLockPut:
			fmt.Fprintf(&b, " ok=%v", o.Succeeded)
		}
	}
	return b.String()
}

// ZKEvent is a watch notification as a client received it. Zxid is the
// revision of the change, or -1 for an event that setWatches fired at once.
type ZKEvent struct {
	Client  int
	Session int64
	Type    jute.EventType
	Path    string
	Zxid    int64
	At      int64
}

func (e ZKEvent) String() string {
	return fmt.Sprintf("c%d s%x %.3fs event type=%d %s zxid=%d", e.Client, e.Session, float64(e.At)/1e9, e.Type, e.Path, e.Zxid)
}

// ZKWatch is one data watch registration: left by a getData answered at
// revision Rev, it must fire at most once, for the node's first change
// after Rev, and before any reply that shows that change.
type ZKWatch struct {
	Client  int
	Session int64
	Path    string
	Rev     int64 // the zxid of the getData reply that set it
	Set     int64 // when that reply came
	// Seen is the highest zxid of the replies the client got while the
	// watch was outstanding (before its event, if any).
	Seen   int64
	Events []ZKEvent
	Ended  string // "expired" or "closed" if the session ended before it fired
}

// ZKHistory is every ZooKeeper operation, watch and stray event of a run.
type ZKHistory struct {
	Ops     []ZKOp
	Watches []*ZKWatch
	// Stray are data events for which the client had no outstanding data
	// watch: a watch that fired twice, or one nobody set.
	Stray []ZKEvent
	// Anomalies are answers no server may give, seen by the clients.
	Anomalies []string
}

// Around returns the operations on path (all if "") within window of t.
func (h *ZKHistory) Around(path string, t, window int64) []string {
	var out []string
	for i := range h.Ops {
		o := &h.Ops[i]
		if path != "" && o.Path != path && o.Created != path {
			continue
		}
		if o.Call <= t+window && (o.Unknown() || o.Return >= t-window) {
			out = append(out, o.String())
		}
	}
	const max = 60
	if len(out) > max {
		out = append(out[:max], fmt.Sprintf("... %d more", len(out)-max))
	}
	return out
}

var (
	errZKExpired  = errors.New("robustness: zk session expired")
	errZKNoMember = errors.New("robustness: no zk member answered")
)

// zkClient is a minimal synchronous ZooKeeper client on the jute codec:
// one request at a time, which is all the traffic needs, with nothing
// shared between goroutines (go-zookeeper races on its last zxid after a
// reconnect, and hides the zxids the checkers need). It keeps one session,
// resuming it on a random member after any error, with its watches.
type zkClient struct {
	id    int
	clock *Clock
	rnd   *rand.Rand
	addrs func() []string

	conn     net.Conn
	br       *bufio.Reader
	w        jute.Writer
	rbuf     []byte
	xid      int32
	session  int64
	passwd   []byte
	lastZxid int64
	closing  bool // the reply to closeSession does not count as seen by watches

	watches map[string]*ZKWatch // outstanding data watches by path
	h       ZKHistory
	// abandoned are sessions dropped without a close, to be resumed once
	// they must have expired: the server must then say so.
	abandoned []zkAbandoned
}

type zkAbandoned struct {
	session int64
	passwd  []byte
	at      time.Time
}

func newZKClient(id int, clock *Clock, rnd *rand.Rand, addrs func() []string) *zkClient {
	return &zkClient{id: id, clock: clock, rnd: rnd, addrs: addrs, watches: map[string]*ZKWatch{}}
}

func (c *zkClient) drop() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// forget ends the session on the client side, its outstanding watches with
// it.
func (c *zkClient) forget(why string) {
	c.drop()
	for p, w := range c.watches {
		w.Ended = why
		delete(c.watches, p)
	}
	c.session, c.passwd = 0, nil
}

// connect opens or resumes the session on the members in a random order.
func (c *zkClient) connect(deadline time.Time) error {
	addrs := c.addrs()
	if len(addrs) == 0 {
		return errZKNoMember
	}
	first := c.rnd.IntN(len(addrs))
	err := errZKNoMember
	for i := range addrs {
		if !time.Now().Before(deadline) {
			break
		}
		// A paused member accepts connections and says nothing: leave time
		// for the others.
		d := min(time.Until(deadline), time.Second)
		err = c.handshake(addrs[(first+i)%len(addrs)], time.Now().Add(d))
		if err == nil || errors.Is(err, errZKExpired) {
			return err
		}
	}
	return err
}

func (c *zkClient) handshake(addr string, deadline time.Time) error {
	conn, err := net.DialTimeout("tcp", addr, time.Until(deadline))
	if err != nil {
		return err
	}
	c.conn, c.br = conn, bufio.NewReader(conn)
	passwd := c.passwd
	if c.session == 0 {
		passwd = make([]byte, jute.PasswordLen)
	}
	req := jute.ConnectRequest{LastZxidSeen: c.lastZxid, TimeOut: zkSessionTimeoutMs, SessionID: c.session, Passwd: passwd}
	if err := c.writeFrame(deadline, req.Encode); err != nil {
		c.drop()
		return err
	}
	if err := c.conn.SetReadDeadline(deadline); err != nil {
		c.drop()
		return err
	}
	body, err := jute.ReadFrame(c.br, 0, c.rbuf[:0])
	if err != nil {
		// Also how a member refuses a client that has seen more than it has.
		c.drop()
		return err
	}
	c.rbuf = body
	var resp jute.ConnectResponse
	if err := resp.Decode(jute.NewReader(body, 0)); err != nil {
		c.drop()
		return err
	}
	if resp.SessionID == 0 || resp.TimeOut <= 0 {
		c.drop()
		if c.session == 0 {
			return errors.New("robustness: zk member refused a new session")
		}
		now := c.clock.Now()
		c.h.Ops = append(c.h.Ops, ZKOp{Client: c.id, Session: c.session, Kind: ZKExpired, Call: now, Return: now})
		c.forget("expired")
		return errZKExpired
	}
	switch {
	case c.session == 0:
		c.session, c.passwd = resp.SessionID, slices.Clone(resp.Passwd)
	case resp.SessionID != c.session:
		c.h.Anomalies = append(c.h.Anomalies, fmt.Sprintf("c%d %.3fs: resuming session %x on %s got session %x",
			c.id, float64(c.clock.Now())/1e9, c.session, addr, resp.SessionID))
		c.drop()
		return errors.New("robustness: zk member answered with another session")
	}
	if len(c.watches) == 0 {
		return nil
	}
	// Re-arm the outstanding watches as ZooKeeper clients do: those whose
	// node changed after the last zxid seen fire at once.
	paths := make([]string, 0, len(c.watches))
	for p := range c.watches {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	sw := jute.SetWatches{RelativeZxid: c.lastZxid, DataWatches: paths, ExistWatches: []string{}, ChildWatches: []string{}}
	if _, err := c.exchange(deadline, jute.XidSetWatches, jute.OpSetWatches, &sw, nil); err != nil {
		c.drop()
		return err
	}
	return nil
}

func (c *zkClient) writeFrame(deadline time.Time, enc func(w *jute.Writer)) error {
	c.w.Reset()
	start := c.w.BeginFrame()
	enc(&c.w)
	c.w.EndFrame(start)
	if err := c.w.Err(); err != nil {
		return err
	}
	if err := c.conn.SetWriteDeadline(deadline); err != nil {
		return err
	}
	_, err := c.conn.Write(c.w.Bytes())
	return err
}

// exchange sends one request under xid and reads up to its reply, taking
// the notifications that come first. resp is decoded when the reply
// carries no error.
func (c *zkClient) exchange(deadline time.Time, xid int32, op jute.OpCode, req, resp jute.Record) (jute.ReplyHeader, error) {
	err := c.writeFrame(deadline, func(w *jute.Writer) {
		h := jute.RequestHeader{Xid: xid, Type: op}
		h.Encode(w)
		if req != nil {
			req.Encode(w)
		}
	})
	if err != nil {
		return jute.ReplyHeader{}, err
	}
	if err := c.conn.SetReadDeadline(deadline); err != nil {
		return jute.ReplyHeader{}, err
	}
	for {
		body, err := jute.ReadFrame(c.br, 0, c.rbuf[:0])
		if err != nil {
			return jute.ReplyHeader{}, err
		}
		c.rbuf = body
		rd := jute.NewReader(body, 0)
		var h jute.ReplyHeader
		if err := h.Decode(rd); err != nil {
			return h, err
		}
		switch h.Xid {
		case jute.XidNotification:
			var ev jute.WatcherEvent
			if err := ev.Decode(rd); err != nil {
				return h, err
			}
			c.event(ev, h.Zxid)
			continue
		case jute.XidPing:
			continue
		}
		if h.Zxid > 0 {
			c.lastZxid = max(c.lastZxid, h.Zxid)
			if !c.closing {
				for _, w := range c.watches {
					w.Seen = max(w.Seen, h.Zxid)
				}
			}
		}
		if h.Xid != xid {
			continue
		}
		if h.Err == jute.CodeOK && resp != nil {
			if err := resp.Decode(rd); err != nil {
				return h, err
			}
		}
		return h, nil
	}
}

func (c *zkClient) event(ev jute.WatcherEvent, zxid int64) {
	if ev.Type == jute.EventNone {
		return // a session state change, not a watch
	}
	e := ZKEvent{Client: c.id, Session: c.session, Type: ev.Type, Path: ev.Path, Zxid: zxid, At: c.clock.Now()}
	if w := c.watches[ev.Path]; w != nil && (ev.Type == jute.EventNodeDataChanged || ev.Type == jute.EventNodeDeleted) {
		w.Events = append(w.Events, e)
		delete(c.watches, ev.Path)
		return
	}
	c.h.Stray = append(c.h.Stray, e)
}

// call runs one request, connecting first if needed. Any error drops the
// connection: the outcome is unknown and the next call resumes elsewhere.
func (c *zkClient) call(deadline time.Time, op jute.OpCode, req, resp jute.Record) (jute.ReplyHeader, error) {
	if c.conn == nil {
		if err := c.connect(deadline); err != nil {
			return jute.ReplyHeader{}, err
		}
	}
	c.xid++
	h, err := c.exchange(deadline, c.xid, op, req, resp)
	if err != nil {
		c.drop()
	}
	return h, err
}

// do runs f as operation o and records it.
func (c *zkClient) do(o ZKOp, f func(deadline time.Time, o *ZKOp) error) ZKOp {
	o.Client = c.id
	deadline := time.Now().Add(opTimeout)
	o.Call = c.clock.Now()
	err := f(deadline, &o)
	ret := c.clock.Now()
	o.Session = c.session
	if err != nil {
		o.Err, o.Return = shortErr(err), Infinity
	} else {
		o.Return = ret
	}
	c.h.Ops = append(c.h.Ops, o)
	return o
}

func (c *zkClient) create(path, data string, mode jute.CreateMode) ZKOp {
	return c.do(ZKOp{Kind: ZKCreate, Path: path, Data: data, Mode: mode}, func(d time.Time, o *ZKOp) error {
		var r jute.Create2Response
		h, err := c.call(d, jute.OpCreate2, &jute.CreateRequest{Path: o.Path, Data: []byte(o.Data), ACL: zkOpenACL, Flags: o.Mode}, &r)
		if err != nil {
			return err
		}
		o.Code, o.Zxid = h.Err, h.Zxid
		if h.Err == jute.CodeOK {
			o.Created, o.Stat = r.Path, r.Stat
		}
		return nil
	})
}

func (c *zkClient) setData(path, data string, version int32) ZKOp {
	return c.do(ZKOp{Kind: ZKSetData, Path: path, Data: data, Version: version}, func(d time.Time, o *ZKOp) error {
		var r jute.SetDataResponse
		h, err := c.call(d, jute.OpSetData, &jute.SetDataRequest{Path: o.Path, Data: []byte(o.Data), Version: o.Version}, &r)
		if err != nil {
			return err
		}
		o.Code, o.Zxid = h.Err, h.Zxid
		if h.Err == jute.CodeOK {
			o.Stat = r.Stat
		}
		return nil
	})
}

func (c *zkClient) delete(path string, version int32) ZKOp {
	return c.do(ZKOp{Kind: ZKDelete, Path: path, Version: version}, func(d time.Time, o *ZKOp) error {
		h, err := c.call(d, jute.OpDelete, &jute.DeleteRequest{Path: o.Path, Version: o.Version}, nil)
		if err != nil {
			return err
		}
		o.Code, o.Zxid = h.Err, h.Zxid
		return nil
	})
}

// multi runs check(checkPath, version) then setData(setPath, data, -1) as
// one multi; the op's Code is OK or the error of the op that failed.
func (c *zkClient) multi(kind ZKOpKind, checkPath string, version int32, setPath, data string, token int64) ZKOp {
	o := ZKOp{Kind: kind, Path: setPath, Data: data, Version: version, Token: token}
	return c.do(o, func(d time.Time, o *ZKOp) error {
		req := jute.MultiRequest{Ops: []jute.MultiOp{
			{Type: jute.OpCheck, Op: &jute.CheckVersionRequest{Path: checkPath, Version: version}},
			{Type: jute.OpSetData, Op: &jute.SetDataRequest{Path: setPath, Data: []byte(data), Version: -1}},
		}}
		var r jute.MultiResponse
		h, err := c.call(d, jute.OpMulti, &req, &r)
		if err != nil {
			return err
		}
		o.Code, o.Zxid = h.Err, h.Zxid
		if h.Err != jute.CodeOK {
			return nil
		}
		if len(r.Results) != 2 {
			o.Code = jute.CodeMarshallingError
			return nil
		}
		if r.Results[1].Type == jute.OpSetData {
			o.Stat = r.Results[1].Stat
			return nil
		}
		// A failed multi: every op has an error result; the one that
		// failed carries the cause, the others OK or runtimeInconsistency.
		o.Code = jute.CodeRuntimeInconsistency
		for _, res := range r.Results {
			if res.Type == jute.OpError && res.Err != jute.CodeOK && res.Err != jute.CodeRuntimeInconsistency {
				o.Code = res.Err
				break
			}
		}
		return nil
	})
}

// get reads path from the member connected to; with watch it leaves a
// data watch, which the client tracks until it fires.
func (c *zkClient) get(path string, watch bool) ZKOp {
	return c.do(ZKOp{Kind: ZKGet, Path: path, Watch: watch}, func(d time.Time, o *ZKOp) error {
		var r jute.GetDataResponse
		h, err := c.call(d, jute.OpGetData, &jute.GetDataRequest{Path: o.Path, Watch: o.Watch}, &r)
		if err != nil {
			return err
		}
		o.Code, o.Zxid = h.Err, h.Zxid
		if h.Err == jute.CodeOK {
			o.Got, o.Stat = string(r.Data), r.Stat
			if o.Watch {
				w := &ZKWatch{Client: c.id, Session: c.session, Path: o.Path, Rev: h.Zxid, Set: c.clock.Now(), Seen: h.Zxid}
				c.watches[o.Path] = w
				c.h.Watches = append(c.h.Watches, w)
			}
		}
		return nil
	})
}

// syncGet is sync then getData, recorded as one operation: the read shows
// a state at least as new as every write acknowledged before the sync was
// sent, and no newer than the getData's reply, so it is linearizable.
func (c *zkClient) syncGet(path string) ZKOp {
	return c.do(ZKOp{Kind: ZKSyncGet, Path: path}, func(d time.Time, o *ZKOp) error {
		h, err := c.call(d, jute.OpSync, &jute.SyncRequest{Path: o.Path}, &jute.SyncResponse{})
		if err != nil {
			return err
		}
		if h.Err != jute.CodeOK {
			o.Code, o.Zxid = h.Err, h.Zxid
			return nil
		}
		var r jute.GetDataResponse
		if h, err = c.call(d, jute.OpGetData, &jute.GetDataRequest{Path: o.Path}, &r); err != nil {
			return err
		}
		o.Code, o.Zxid = h.Err, h.Zxid
		if h.Err == jute.CodeOK {
			o.Got, o.Stat = string(r.Data), r.Stat
		}
		return nil
	})
}

func (c *zkClient) children(path string) ZKOp {
	return c.do(ZKOp{Kind: ZKChildren, Path: path}, func(d time.Time, o *ZKOp) error {
		var r jute.GetChildrenResponse
		h, err := c.call(d, jute.OpGetChildren, &jute.GetChildrenRequest{Path: o.Path}, &r)
		if err != nil {
			return err
		}
		o.Code, o.Zxid = h.Err, h.Zxid
		if h.Err == jute.CodeOK {
			o.Children = slices.Clone(r.Children)
		}
		return nil
	})
}

// closeSession ends the session; on an unknown outcome the session is
// abandoned and expires on its own.
func (c *zkClient) closeSession() {
	if c.session == 0 {
		return
	}
	c.do(ZKOp{Kind: ZKClose}, func(d time.Time, o *ZKOp) error {
		if c.conn == nil {
			if err := c.connect(d); err != nil {
				return err
			}
		}
		c.xid++
		c.closing = true
		h, err := c.exchange(d, c.xid, jute.OpCloseSession, nil, nil)
		c.closing = false
		if err != nil {
			return err
		}
		o.Code, o.Zxid = h.Err, h.Zxid
		return nil
	})
	c.forget("closed")
}

// abandon drops the session without closing it: it expires on the server.
func (c *zkClient) abandon() {
	if c.session != 0 {
		c.abandoned = append(c.abandoned, zkAbandoned{c.session, c.passwd, time.Now()})
	}
	c.forget("closed")
}

// resumeAbandoned makes the next request resume a session abandoned more
// than twice its timeout ago (false if there is none). The server should
// answer that it expired; if a leader change extended it, it goes on.
func (c *zkClient) resumeAbandoned() bool {
	if len(c.abandoned) == 0 || time.Since(c.abandoned[0].at) < 2*zkSessionTimeoutMs*time.Millisecond {
		return false
	}
	a := c.abandoned[0]
	c.abandoned = c.abandoned[1:]
	c.forget("closed")
	c.session, c.passwd = a.session, a.passwd
	return true
}

// zkWorker runs the data traffic of one session: reads (local, after sync,
// with watches), creates of every mode, CAS setData, multi, deletes, and
// from time to time a move to another member or a new session.
type zkWorker struct {
	*zkClient
	seq      int
	version  map[string]int32 // the version last seen per data znode
	ownOf    int64            // the session own belongs to
	own      []string         // that session's ephemerals
	items    []string         // persistent sequential items to delete
	rotateIn int
}

func (w *zkWorker) uniq() string {
	w.seq++
	return fmt.Sprintf("z%d-%d", w.id, w.seq)
}

func (w *zkWorker) run(ctx context.Context) {
	w.rotateIn = 40 + w.rnd.IntN(80)
	for pace(ctx, w.rnd, 15*time.Millisecond) {
		if w.session != w.ownOf {
			w.ownOf, w.own = w.session, nil
		}
		if w.rotateIn--; w.rotateIn <= 0 {
			// A new session: the old one is closed, or abandoned to expire
			// with its ephemerals; or one abandoned long ago is resumed.
			w.rotateIn = 40 + w.rnd.IntN(80)
			if w.rnd.IntN(2) == 0 {
				w.closeSession()
			} else {
				w.abandon()
			}
			w.resumeAbandoned()
			continue
		}
		if w.rnd.IntN(30) == 0 {
			w.drop() // the session moves to another member
		}
		path := fmt.Sprintf("%s/%d", zkDataDir, w.rnd.IntN(zkDataKeys))
		expect, known := w.version[path]
		if !known {
			expect = -1
		}
		switch p := w.rnd.IntN(100); {
		case p < 14:
			_, watching := w.watches[path]
			w.saw(w.get(path, !watching && w.rnd.IntN(2) == 0))
		case p < 26:
			w.saw(w.syncGet(path))
		case p < 48:
			if w.rnd.IntN(10) == 0 {
				expect = -1
			}
			w.wrote(w.setData(path, w.uniq(), expect))
		case p < 58:
			w.wrote(w.multi(ZKMulti, path, expect, path, w.uniq(), 0))
		case p < 66:
			if o := w.create(path, w.uniq(), jute.ModePersistent); o.Code == jute.CodeOK && !o.Unknown() {
				w.version[path] = 0
			}
		case p < 69:
			if o := w.delete(path, expect); o.Code == jute.CodeOK && !o.Unknown() {
				delete(w.version, path)
			}
		case p < 76:
			w.ephemeral(fmt.Sprintf("%s/c%d-%d", zkEphDir, w.id, w.seq+1), jute.ModeEphemeral)
		case p < 82:
			w.ephemeral(fmt.Sprintf("%s/s%d-", zkEphDir, w.id), jute.ModeEphemeralSequential)
		case p < 88:
			if len(w.own) > 0 {
				i := w.rnd.IntN(len(w.own))
				if o := w.delete(w.own[i], 0); !o.Unknown() {
					w.own = slices.Delete(w.own, i, i+1)
				}
			}
		case p < 94:
			// Persistent sequential items, deleted again so that the key
			// space (read whole at every revision by the final history)
			// stays small.
			if len(w.items) >= 2 {
				if o := w.delete(w.items[0], 0); !o.Unknown() {
					w.items = w.items[1:]
				}
				continue
			}
			if o := w.create(fmt.Sprintf("%s/i%d-", zkSeqDir, w.id), w.uniq(), jute.ModePersistentSequential); o.Code == jute.CodeOK && !o.Unknown() {
				w.items = append(w.items, o.Created)
			}
		default:
			w.children(zkEphDir)
		}
	}
	w.closeSession()
}

func (w *zkWorker) ephemeral(path string, mode jute.CreateMode) {
	if o := w.create(path, w.uniq(), mode); o.Code == jute.CodeOK && !o.Unknown() && o.Session == w.ownOf {
		w.own = append(w.own, o.Created)
	}
}

func (w *zkWorker) saw(o ZKOp) {
	switch {
	case o.Unknown():
	case o.Code == jute.CodeOK:
		w.version[o.Path] = o.Stat.Version
	case o.Code == jute.CodeNoNode:
		delete(w.version, o.Path)
	}
}

func (w *zkWorker) wrote(o ZKOp) {
	switch {
	case o.Unknown():
		delete(w.version, o.Path)
	case o.Code == jute.CodeOK:
		w.version[o.Path] = o.Stat.Version
	case o.Code == jute.CodeBadVersion || o.Code == jute.CodeNoNode:
		// Learn the current version for the next CAS.
		w.saw(w.get(o.Path, false))
	}
}

// zkLockWorker uses ZooKeeper's lock recipe: an ephemeral sequential node
// under zkLockDir, the lowest of which holds the lock. While holding it, it
// writes a value tagged with its fencing token (its node's czxid, a
// revision) either to a znode, by a multi that checks its node, or to an
// etcd key, by a txn that compares its node's create revision.
type zkLockWorker struct {
	*zkClient
	cli *clientv3.Client
	n   int
}

func (w *zkLockWorker) run(ctx context.Context) {
	for pace(ctx, w.rnd, 20*time.Millisecond) {
		w.n++
		// The node's name carries a unique prefix, so that after a create
		// with an unknown outcome the client can find its node.
		prefix := fmt.Sprintf("g%d-%d-", w.id, w.n)
		o := w.create(zkLockDir+"/"+prefix+"lock-", fmt.Sprintf("zl%d-%d", w.id, w.n), jute.ModeEphemeralSequential)
		node, token := o.Created, o.Stat.Czxid
		switch {
		case o.Unknown():
			if node, token = w.find(prefix); node == "" {
				continue
			}
		case o.Code != jute.CodeOK:
			continue
		}
		if w.wait(ctx, node) {
			for k := range 1 + w.rnd.IntN(2) {
				w.write(node, token, k)
			}
		}
		if d := w.delete(node, -1); d.Unknown() {
			// A node left behind would hold the lock until its session
			// ends: end it now.
			w.closeSession()
		}
	}
	w.closeSession()
}

// find looks for the lock node whose name starts with prefix and returns
// it with its czxid; on any doubt it ends the session, node and all.
func (w *zkLockWorker) find(prefix string) (string, int64) {
	ch := w.children(zkLockDir)
	if ch.Unknown() || ch.Code != jute.CodeOK {
		w.closeSession()
		return "", 0
	}
	for _, name := range ch.Children {
		if strings.HasPrefix(name, prefix) {
			g := w.get(zkLockDir+"/"+name, false)
			if g.Unknown() || g.Code != jute.CodeOK || g.Stat.EphemeralOwner != w.session {
				w.closeSession()
				return "", 0
			}
			return zkLockDir + "/" + name, g.Stat.Czxid
		}
	}
	return "", 0
}

// wait polls the lock's children until node is the lowest (true), or is
// gone, or 3 s have passed (false).
func (w *zkLockWorker) wait(ctx context.Context, node string) bool {
	name := node[len(zkLockDir)+1:]
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		ch := w.children(zkLockDir)
		if !ch.Unknown() && ch.Code == jute.CodeOK {
			if !slices.Contains(ch.Children, name) {
				return false // its session ended
			}
			lowest := name
			for _, c := range ch.Children {
				if zkSeqOf(c) < zkSeqOf(lowest) {
					lowest = c
				}
			}
			if lowest == name {
				return true
			}
		}
		if !pace(ctx, w.rnd, 25*time.Millisecond) {
			return false
		}
	}
	return false
}

// zkSeqOf is the sequence number suffix of a sequential node's name.
func zkSeqOf(name string) string {
	if len(name) < 10 {
		return name
	}
	return name[len(name)-10:]
}

func (w *zkLockWorker) write(node string, token int64, k int) {
	val := fmt.Sprintf("%s@%d#%d-%d-%d", node[len(zkLockDir)+1:], token, w.id, w.n, k)
	if w.rnd.IntN(2) == 0 {
		w.multi(ZKLockMulti, node, 0, zkLockData, val, token)
		return
	}
	key := zkNodeKey(node)
	w.do(ZKOp{Kind: ZKLockPut, Path: zkLockKey, Data: val, Token: token}, func(d time.Time, o *ZKOp) error {
		ctx, cancel := context.WithDeadline(context.Background(), d)
		defer cancel()
		r, err := w.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", token)).
			Then(clientv3.OpPut(zkLockKey, val)).Commit()
		if err != nil {
			return err
		}
		o.Zxid, o.Succeeded = r.Header.Revision, r.Succeeded
		return nil
	})
}

// zkNodeKey is the etcd key of the znode at path (see internal/zktree).
func zkNodeKey(path string) string {
	if path == "/" {
		return zkNodeKeyPrefix + "000/"
	}
	return fmt.Sprintf("%s%03d%s", zkNodeKeyPrefix, strings.Count(path, "/"), path)
}

// summary counts the operations by kind and outcome, for the test log.
func (h *ZKHistory) summary() string {
	type agg struct {
		n, unknown int
		codes      map[jute.Code]int
		sum, max   int64
	}
	by := map[ZKOpKind]*agg{}
	for i := range h.Ops {
		o := &h.Ops[i]
		a := by[o.Kind]
		if a == nil {
			a = &agg{codes: map[jute.Code]int{}}
			by[o.Kind] = a
		}
		a.n++
		if o.Unknown() {
			a.unknown++
			continue
		}
		if o.Kind == ZKLockPut && !o.Succeeded {
			a.codes[jute.CodeBadVersion]++
		} else {
			a.codes[o.Code]++
		}
		d := o.Return - o.Call
		a.sum += d
		a.max = max(a.max, d)
	}
	var parts []string
	for k := ZKCreate; k <= ZKLockPut; k++ {
		a := by[k]
		if a == nil {
			continue
		}
		var codes []string
		for c, n := range a.codes {
			if c != jute.CodeOK {
				codes = append(codes, fmt.Sprintf("%v:%d", c, n))
			}
		}
		sort.Strings(codes)
		mean := time.Duration(0)
		if a.n > a.unknown {
			mean = time.Duration(a.sum / int64(a.n-a.unknown))
		}
		parts = append(parts, fmt.Sprintf("%v n=%d unknown=%d %v mean=%v max=%v", k, a.n, a.unknown, codes,
			mean.Round(time.Microsecond), time.Duration(a.max).Round(time.Millisecond)))
	}
	fired, now, ended := 0, 0, 0
	for _, w := range h.Watches {
		switch {
		case len(w.Events) > 0:
			fired++
			if w.Events[0].Zxid <= 0 {
				now++
			}
		case w.Ended != "":
			ended++
		}
	}
	return fmt.Sprintf("%s; watches=%d fired=%d (by setWatches %d) ended-unfired=%d", strings.Join(parts, "; "), len(h.Watches), fired, now, ended)
}

// zkChildrenKeyPrefix is the etcd key prefix of the children of dir.
func zkChildrenKeyPrefix(dir string) string {
	return fmt.Sprintf("%s%03d%s/", zkNodeKeyPrefix, strings.Count(dir, "/")+1, dir)
}

// zkTraffic is the ZooKeeper side of a run.
type zkTraffic struct {
	clock   *Clock
	clients []*zkClient
}

// startZKTraffic creates the traffic's directories and starts its workers
// (two data sessions, two lock users) on tctx, counted in wg.
func startZKTraffic(tctx context.Context, c *Cluster, clock *Clock, seed uint64, newCli func() (*clientv3.Client, error), next func() int, wg *sync.WaitGroup) (*zkTraffic, error) {
	addrs := func() []string {
		var out []string
		for _, i := range c.Active() {
			out = append(out, c.member(i).zkAddr)
		}
		return out
	}
	// The traffic's own generator: the etcd traffic's and the faults' draws
	// stay what they were for a given seed.
	rnd := rand.New(rand.NewPCG(seed, 0x2c))
	setup := newZKClient(-1, clock, rand.New(rand.NewPCG(rnd.Uint64(), 1)), addrs)
	deadline := time.Now().Add(30 * time.Second)
	for _, p := range zkDirs {
		for {
			o := setup.create(p, "", jute.ModePersistent)
			if !o.Unknown() && (o.Code == jute.CodeOK || o.Code == jute.CodeNodeExists) {
				break
			}
			if time.Now().After(deadline) {
				setup.drop()
				return nil, fmt.Errorf("robustness: creating %s through ZooKeeper: %s", p, o.String())
			}
			sleepCtx(tctx, 100*time.Millisecond)
		}
	}
	setup.closeSession()
	t := &zkTraffic{clock: clock}
	for range 2 {
		w := &zkWorker{zkClient: newZKClient(next(), clock, rand.New(rand.NewPCG(rnd.Uint64(), 2)), addrs), version: map[string]int32{}}
		t.clients = append(t.clients, w.zkClient)
		wg.Add(1)
		go func() { defer wg.Done(); w.run(tctx) }()
	}
	for range 2 {
		cli, err := newCli()
		if err != nil {
			return nil, err
		}
		w := &zkLockWorker{zkClient: newZKClient(next(), clock, rand.New(rand.NewPCG(rnd.Uint64(), 3)), addrs), cli: cli}
		t.clients = append(t.clients, w.zkClient)
		wg.Add(1)
		go func() { defer wg.Done(); w.run(tctx) }()
	}
	return t, nil
}

// History gathers the clients' histories; call it once the workers ended.
func (t *zkTraffic) History() *ZKHistory {
	h := &ZKHistory{}
	for _, c := range t.clients {
		h.Ops = append(h.Ops, c.h.Ops...)
		h.Watches = append(h.Watches, c.h.Watches...)
		h.Stray = append(h.Stray, c.h.Stray...)
		h.Anomalies = append(h.Anomalies, c.h.Anomalies...)
	}
	sort.SliceStable(h.Ops, func(i, j int) bool { return h.Ops[i].Call < h.Ops[j].Call })
	return h
}

// waitGone waits until no ephemeral of the traffic is left: every session
// was closed or abandoned, and an abandoned one must expire.
func (t *zkTraffic) waitGone(ctx context.Context, admin *clientv3.Client) []Violation {
	var vs []Violation
	for _, dir := range []string{zkEphDir, zkLockDir} {
		if err := waitEmpty(ctx, admin, zkChildrenKeyPrefix(dir), 20*time.Second); err != nil {
			vs = append(vs, Violation{Checker: "zk-session", Detail: "ephemerals of ended sessions: " + err.Error()})
		}
	}
	return vs
}

// Finish checks the ZooKeeper history against the final store history,
// counts what it checked into res, and writes the ZooKeeper history next
// to the failure report when the run has violations.
func (t *zkTraffic) Finish(res *Result, store *StoreHistory, dir, name string, logf func(string, ...any)) {
	h := t.History()
	logf("%s: zookeeper: %s", name, h.summary())
	res.ZKOps = len(h.Ops)
	for i := range h.Ops {
		if h.Ops[i].Unknown() {
			res.ZKUnknown++
		}
	}
	res.ZKWatches = len(h.Watches)
	for _, w := range h.Watches {
		res.ZKEvents += len(w.Events)
	}
	res.ZKEvents += len(h.Stray)
	html := filepath.Join(dir, name+"-zk-linearizability.html")
	for _, v := range CheckZK(h, store, 2*time.Minute, html) {
		if strings.Contains(v.Detail, "timed out") {
			res.Notes = append(res.Notes, v.String())
			continue
		}
		res.Violations = append(res.Violations, v)
	}
	if len(res.Violations) == 0 {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return
	}
	var b strings.Builder
	for i := range h.Ops {
		b.WriteString(h.Ops[i].String())
		b.WriteByte('\n')
	}
	for _, w := range h.Watches {
		fmt.Fprintf(&b, "watch c%d s%x %s rev=%d seen=%d ended=%q events=%v\n", w.Client, w.Session, w.Path, w.Rev, w.Seen, w.Ended, w.Events)
	}
	for _, e := range h.Stray {
		fmt.Fprintf(&b, "stray %s\n", e)
	}
	_ = os.WriteFile(filepath.Join(dir, name+"-zk-history.txt"), []byte(b.String()), 0o644)
}
