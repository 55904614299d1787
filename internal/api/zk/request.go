package zk

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"ensemble/internal/api/zk/jute"
	"ensemble/internal/zktree"
)

// handle processes one request; an error closes the connection.
func (c *conn) handle(hdr jute.RequestHeader, start time.Time) error {
	if hdr.Type == jute.OpPing {
		// ZooKeeper answers every ping with the ping xid.
		c.reply("PING", jute.XidPing, c.s.watches.notified.Load(), jute.CodeOK, nil, start)
		return nil
	}
	req, err := jute.DecodeRequest(hdr.Type, &c.rd)
	if err != nil {
		if errors.Is(err, jute.ErrUnknownOp) {
			c.reply("NA", hdr.Xid, c.s.watches.notified.Load(), jute.CodeUnimplemented, nil, start)
			return nil
		}
		// ZooKeeper closes a connection whose request it cannot decode.
		return fmt.Errorf("%w: %v: %w", errMalformedRequest, hdr.Type, err)
	}
	switch hdr.Type {
	case jute.OpCreate, jute.OpCreate2, jute.OpCreateContainer, jute.OpCreateTTL:
		return c.write("CREA", hdr, req, start)
	case jute.OpDelete:
		return c.write("DELE", hdr, req, start)
	case jute.OpSetData:
		return c.write("SETD", hdr, req, start)
	case jute.OpSetACL:
		return c.write("SETA", hdr, req, start)
	case jute.OpCheck:
		return c.write("CHEC", hdr, req, start)
	case jute.OpMulti:
		return c.write("MULT", hdr, req, start)
	case jute.OpCloseSession:
		return c.closeSession(hdr, start)
	case jute.OpExists:
		return c.exists(hdr, req.(*jute.ExistsRequest), start)
	case jute.OpGetData:
		return c.getData(hdr, req.(*jute.GetDataRequest), start)
	case jute.OpGetChildren:
		r := req.(*jute.GetChildrenRequest)
		return c.getChildren(hdr, r.Path, r.Watch, false, start)
	case jute.OpGetChildren2:
		r := req.(*jute.GetChildren2Request)
		return c.getChildren(hdr, r.Path, r.Watch, true, start)
	case jute.OpGetACL:
		return c.getACL(hdr, req.(*jute.GetACLRequest), start)
	case jute.OpGetAllChildrenNumber:
		return c.getAllChildrenNumber(hdr, req.(*jute.GetAllChildrenNumberRequest), start)
	case jute.OpGetEphemerals:
		return c.getEphemerals(hdr, req.(*jute.GetEphemeralsRequest), start)
	case jute.OpMultiRead:
		return c.multiRead(hdr, req.(*jute.MultiRequest), start)
	case jute.OpSync:
		return c.sync(hdr, req.(*jute.SyncRequest), start)
	case jute.OpSetWatches:
		r := req.(*jute.SetWatches)
		return c.setWatches("SETW", hdr, &jute.SetWatches2{
			RelativeZxid: r.RelativeZxid, DataWatches: r.DataWatches, ExistWatches: r.ExistWatches, ChildWatches: r.ChildWatches,
		}, start)
	case jute.OpSetWatches2:
		return c.setWatches("STW2", hdr, req.(*jute.SetWatches2), start)
	case jute.OpAddWatch:
		return c.addWatch(hdr, req.(*jute.AddWatchRequest), start)
	case jute.OpRemoveWatches:
		r := req.(*jute.RemoveWatchesRequest)
		return c.watchesOf("REMW", hdr, r.Path, r.Type, true, start)
	case jute.OpCheckWatches:
		r := req.(*jute.CheckWatchesRequest)
		return c.watchesOf("CHKW", hdr, r.Path, r.Type, false, start)
	case jute.OpAuth:
		return c.authenticate(hdr, req.(*jute.AuthPacket), start)
	case jute.OpWhoAmI:
		return c.whoAmI(hdr, start)
	}
	c.reply("NA", hdr.Xid, c.s.watches.notified.Load(), jute.CodeUnimplemented, nil, start)
	return nil
}

// write replicates a write request and answers with its result once the
// events of its revision are queued ahead of the reply.
func (c *conn) write(op string, hdr jute.RequestHeader, req jute.Request, start time.Time) error {
	// The request aliases the read buffer and the proposal may hold on to
	// it: the next frame gets a buffer of its own.
	c.rbuf = nil
	ctx, cancel := context.WithTimeout(c.ctx, c.timeout)
	c.out.hold()
	res, err := c.s.b.ProposeZK(ctx, &zktree.Command{
		Session: c.sessionID.Load(),
		Time:    start.UnixMilli(),
		Auth:    c.auth,
		Op:      hdr.Type,
		Req:     req,
	})
	cancel()
	if err != nil {
		c.out.release(nil, 0)
		// The outcome is unknown; connection loss is how a ZooKeeper client
		// learns that, and it retries elsewhere.
		return fmt.Errorf("zk: %v: %w", hdr.Type, err)
	}
	if !c.s.watches.wait(c.done, res.Zxid) {
		c.out.release(nil, 0)
		return c.reasonOr(net.ErrClosed)
	}
	code, body := res.Code, jute.Record(res.Resp)
	if hdr.Type == jute.OpMulti && body != nil {
		// ZooKeeper answers a failed multi with OK in the header and the
		// error of each op in the body.
		code = jute.CodeOK
	}
	c.replyWrite(op, hdr.Xid, res.Zxid, code, body, start)
	return nil
}

func (c *conn) closeSession(hdr jute.RequestHeader, start time.Time) error {
	ctx, cancel := context.WithTimeout(c.ctx, c.timeout)
	res, err := c.s.b.ProposeZK(ctx, &zktree.Command{
		Session: c.sessionID.Load(),
		Time:    start.UnixMilli(),
		Auth:    c.auth,
		Op:      jute.OpCloseSession,
	})
	cancel()
	if err != nil {
		return fmt.Errorf("zk: %v: %w", hdr.Type, err)
	}
	if !c.s.watches.wait(c.done, res.Zxid) {
		return c.reasonOr(net.ErrClosed)
	}
	c.reply("CLOS", hdr.Xid, res.Zxid, res.Code, nil, start)
	return flushError{errSessionClosed}
}

// codeOf splits a zktree read error into a ZooKeeper code for the client
// and an internal error (a storage failure) that closes the connection.
func codeOf(err error) (jute.Code, error) {
	if err == nil {
		return jute.CodeOK, nil
	}
	var code jute.Code
	if errors.As(err, &code) {
		return code, nil
	}
	return 0, fmt.Errorf("zk: reading the tree: %w", err)
}

// serveRead serves a read at the notified revision and queues its reply;
// answer turns what read found into the reply. The reply follows every
// event of the revisions up to the one read and precedes the events of
// later ones, on the wire as in ZooKeeper, which processes requests and
// changes in one order. A read that leaves a watch registers it and queues
// its reply with the watch manager locked, one right after the other:
// clients register their watcher when the reply arrives and drop the
// events of watchers they do not know yet. Other reads skip that lock and
// try again if an event of a later revision got queued first.
func (c *conn) serveRead(op string, hdr jute.RequestHeader, start time.Time, watch bool,
	read func(zktree.Reader), answer func() (jute.Code, jute.Record, error), register func()) error {
	prepare := func(rev int64) error {
		code, body, err := answer()
		if err != nil {
			return err
		}
		c.encodeReply(op, hdr.Xid, rev, code, body)
		return nil
	}
	m := c.s.watches
	kv := c.s.b.KV()
	var rev int64
	var err error
	if watch {
		rev, err = m.view(kv, read, prepare, func() {
			register()
			c.send(c.w.Bytes())
		})
	} else {
		rev, err = m.readFresh(kv, read, prepare, func(rev int64) bool { return c.sendRead(c.w.Bytes(), rev) })
	}
	if err != nil {
		return err
	}
	c.replied(op, hdr.Xid, rev, start)
	return nil
}

func (c *conn) allowed(acl []jute.ACL, perm jute.Perm) bool {
	return zktree.Allowed(acl, perm, c.auth)
}

func (c *conn) exists(hdr jute.RequestHeader, r *jute.ExistsRequest, start time.Time) error {
	var node *zktree.Node
	var err error
	return c.serveRead("EXIS", hdr, start, r.Watch,
		func(rd zktree.Reader) { node, err = zktree.Get(rd, r.Path) },
		func() (jute.Code, jute.Record, error) {
			code, ierr := codeOf(err)
			switch {
			case ierr != nil:
				return 0, nil, ierr
			case code != jute.CodeOK:
				return code, nil, nil
			case !c.allowed(node.ACL, jute.PermRead):
				return jute.CodeNoAuth, nil, nil
			}
			return jute.CodeOK, &jute.ExistsResponse{Stat: node.Stat}, nil
		},
		func() {
			// A watch on a missing node waits for its creation; ZooKeeper
			// 3.9 leaves none on a node the client may not read.
			if code, _ := codeOf(err); code == jute.CodeNoNode || (err == nil && c.allowed(node.ACL, jute.PermRead)) {
				c.s.watches.addLocked(c, r.Path, watchData)
			}
		})
}

// getDataOp reads a node for getData, alone or in a multiRead, and leaves
// a watch if asked.
type getDataOp struct {
	path  string
	watch bool
	node  *zktree.Node
	err   error
}

func (op *getDataOp) read(rd zktree.Reader) { op.node, op.err = zktree.Get(rd, op.path) }

func (op *getDataOp) result(c *conn) (jute.Code, error) {
	code, err := codeOf(op.err)
	if err != nil || code != jute.CodeOK {
		return code, err
	}
	if !c.allowed(op.node.ACL, jute.PermRead) {
		return jute.CodeNoAuth, nil
	}
	return jute.CodeOK, nil
}

func (op *getDataOp) register(c *conn) {
	if code, err := op.result(c); op.watch && err == nil && code == jute.CodeOK {
		c.s.watches.addLocked(c, op.path, watchData)
	}
}

func (c *conn) getData(hdr jute.RequestHeader, r *jute.GetDataRequest, start time.Time) error {
	op := getDataOp{path: r.Path, watch: r.Watch}
	return c.serveRead("GETD", hdr, start, r.Watch, op.read,
		func() (jute.Code, jute.Record, error) {
			code, err := op.result(c)
			if err != nil || code != jute.CodeOK {
				return code, nil, err
			}
			return code, &jute.GetDataResponse{Data: op.node.Data, Stat: op.node.Stat}, nil
		},
		func() { op.register(c) })
}

// getChildrenOp lists a node's children for getChildren and getChildren2,
// alone or in a multiRead, and leaves a watch if asked.
type getChildrenOp struct {
	path     string
	watch    bool
	children []string
	node     *zktree.Node
	err      error
}

func (op *getChildrenOp) read(rd zktree.Reader) {
	op.children, op.node, op.err = zktree.Children(rd, op.path)
}

func (op *getChildrenOp) result(c *conn) (jute.Code, error) {
	code, err := codeOf(op.err)
	if err != nil || code != jute.CodeOK {
		return code, err
	}
	if op.node == nil || !c.allowed(op.node.ACL, jute.PermRead) {
		return jute.CodeNoAuth, nil
	}
	return jute.CodeOK, nil
}

func (op *getChildrenOp) register(c *conn) {
	if code, err := op.result(c); op.watch && err == nil && code == jute.CodeOK {
		c.s.watches.addLocked(c, op.path, watchChild)
	}
}

func (c *conn) getChildren(hdr jute.RequestHeader, path string, watch, withStat bool, start time.Time) error {
	op := getChildrenOp{path: path, watch: watch}
	return c.serveRead("GETC", hdr, start, watch, op.read,
		func() (jute.Code, jute.Record, error) {
			code, err := op.result(c)
			if err != nil || code != jute.CodeOK {
				return code, nil, err
			}
			if withStat {
				return code, &jute.GetChildren2Response{Children: op.children, Stat: op.node.Stat}, nil
			}
			return code, &jute.GetChildrenResponse{Children: op.children}, nil
		},
		func() { op.register(c) })
}

func (c *conn) multiRead(hdr jute.RequestHeader, m *jute.MultiRequest, start time.Time) error {
	gets := make([]getDataOp, len(m.Ops))
	lists := make([]getChildrenOp, len(m.Ops))
	watch := false
	for i, o := range m.Ops {
		switch r := o.Op.(type) {
		case *jute.GetDataRequest:
			gets[i] = getDataOp{path: r.Path, watch: r.Watch}
			watch = watch || r.Watch
		case *jute.GetChildrenRequest:
			lists[i] = getChildrenOp{path: r.Path, watch: r.Watch}
			watch = watch || r.Watch
		}
	}
	// One revision for all ops: they see one state of the tree.
	return c.serveRead("MLTR", hdr, start, watch,
		func(rd zktree.Reader) {
			for i, o := range m.Ops {
				if o.Type == jute.OpGetData {
					gets[i].read(rd)
				} else {
					lists[i].read(rd)
				}
			}
		},
		func() (jute.Code, jute.Record, error) {
			rsp := &jute.MultiResponse{Results: make([]jute.MultiResult, len(m.Ops))}
			for i, o := range m.Ops {
				res := &rsp.Results[i]
				var code jute.Code
				var err error
				if o.Type == jute.OpGetData {
					if code, err = gets[i].result(c); err == nil && code == jute.CodeOK {
						*res = jute.MultiResult{Type: jute.OpGetData, Data: gets[i].node.Data, Stat: gets[i].node.Stat}
					}
				} else {
					if code, err = lists[i].result(c); err == nil && code == jute.CodeOK {
						*res = jute.MultiResult{Type: jute.OpGetChildren, Children: lists[i].children}
					}
				}
				if err != nil {
					return 0, nil, err
				}
				if code != jute.CodeOK {
					// ZooKeeper answers each failed read inline.
					*res = jute.MultiResult{Type: jute.OpError, Err: code}
				}
			}
			return jute.CodeOK, rsp, nil
		},
		func() {
			for i, o := range m.Ops {
				if o.Type == jute.OpGetData {
					gets[i].register(c)
				} else {
					lists[i].register(c)
				}
			}
		})
}

func (c *conn) getACL(hdr jute.RequestHeader, r *jute.GetACLRequest, start time.Time) error {
	var node *zktree.Node
	var err error
	return c.serveRead("GETA", hdr, start, false,
		func(rd zktree.Reader) { node, err = zktree.Get(rd, r.Path) },
		func() (jute.Code, jute.Record, error) {
			code, ierr := codeOf(err)
			if ierr != nil || code != jute.CodeOK {
				return code, nil, ierr
			}
			// ZooKeeper lets READ or ADMIN see the ACL, but only ADMIN the
			// digests in it.
			switch {
			case c.allowed(node.ACL, jute.PermAdmin):
				return code, &jute.GetACLResponse{ACL: node.ACL, Stat: node.Stat}, nil
			case c.allowed(node.ACL, jute.PermRead):
				return code, &jute.GetACLResponse{ACL: redactDigests(node.ACL), Stat: node.Stat}, nil
			}
			return jute.CodeNoAuth, nil, nil
		}, nil)
}

// redactDigests hides the password hashes of digest ids: "user:x".
func redactDigests(acl []jute.ACL) []jute.ACL {
	out := make([]jute.ACL, len(acl))
	for i, a := range acl {
		out[i] = a
		if a.ID.Scheme == "digest" {
			user, _, _ := strings.Cut(a.ID.ID, ":")
			out[i].ID.ID = user + ":x"
		}
	}
	return out
}

func (c *conn) getAllChildrenNumber(hdr jute.RequestHeader, r *jute.GetAllChildrenNumberRequest, start time.Time) error {
	var node *zktree.Node
	var n int32
	var err error
	return c.serveRead("GETACN", hdr, start, false,
		func(rd zktree.Reader) {
			if node, err = zktree.Get(rd, r.Path); err == nil && c.allowed(node.ACL, jute.PermRead) {
				n, err = zktree.AllChildrenNumber(rd, r.Path)
			}
		},
		func() (jute.Code, jute.Record, error) {
			code, ierr := codeOf(err)
			if ierr != nil || code != jute.CodeOK {
				return code, nil, ierr
			}
			if !c.allowed(node.ACL, jute.PermRead) {
				return jute.CodeNoAuth, nil, nil
			}
			return code, &jute.GetAllChildrenNumberResponse{TotalNumber: n}, nil
		}, nil)
}

func (c *conn) getEphemerals(hdr jute.RequestHeader, r *jute.GetEphemeralsRequest, start time.Time) error {
	rev := c.s.watches.notified.Load()
	prefix := r.PrefixPath
	if p := strings.TrimSpace(prefix); p == "" || p == "/" {
		prefix = ""
	}
	paths := zktree.Ephemerals(c.s.b.Lessor(), c.sessionID.Load(), prefix)
	c.reply("GETE", hdr.Xid, rev, jute.CodeOK, &jute.GetEphemeralsResponse{Ephemerals: paths}, start)
	return nil
}

// sync waits for everything committed before it to be applied here, and
// for its events to be queued, so that the client's next reads see it.
func (c *conn) sync(hdr jute.RequestHeader, r *jute.SyncRequest, start time.Time) error {
	ctx, cancel := context.WithTimeout(c.ctx, c.timeout)
	err := c.s.b.Sync(ctx)
	cancel()
	if err != nil {
		return fmt.Errorf("zk: sync: %w", err)
	}
	rev := c.s.b.KV().Rev()
	if !c.s.watches.wait(c.done, rev) {
		return c.reasonOr(net.ErrClosed)
	}
	c.reply("SYNC", hdr.Xid, rev, jute.CodeOK, &jute.SyncResponse{Path: r.Path}, start)
	return nil
}

// setWatches re-registers the watches of a reconnecting client as
// ZooKeeper's DataTree.setWatches does: a watch whose node changed after
// relativeZxid fires at once, the others are registered.
func (c *conn) setWatches(op string, hdr jute.RequestHeader, r *jute.SetWatches2, start time.Time) error {
	type found struct {
		node *zktree.Node
		err  error
	}
	data := make([]found, len(r.DataWatches))
	exist := make([]found, len(r.ExistWatches))
	child := make([]found, len(r.ChildWatches))
	m := c.s.watches
	return c.serveRead(op, hdr, start, true,
		func(rd zktree.Reader) {
			for i, p := range r.DataWatches {
				data[i].node, data[i].err = zktree.Get(rd, p)
			}
			for i, p := range r.ExistWatches {
				exist[i].node, exist[i].err = zktree.Get(rd, p)
			}
			for i, p := range r.ChildWatches {
				child[i].node, child[i].err = zktree.Get(rd, p)
			}
		},
		func() (jute.Code, jute.Record, error) {
			for _, fs := range [][]found{data, exist, child} {
				for _, f := range fs {
					if _, err := codeOf(f.err); err != nil {
						return 0, nil, err
					}
				}
			}
			return jute.CodeOK, nil, nil
		},
		func() {
			for i, p := range r.DataWatches {
				switch code, _ := codeOf(data[i].err); {
				case code == jute.CodeNoNode:
					m.fireNowLocked(c, jute.EventNodeDeleted, p)
				case code != jute.CodeOK:
				case data[i].node.Stat.Mzxid > r.RelativeZxid:
					m.fireNowLocked(c, jute.EventNodeDataChanged, p)
				default:
					m.addLocked(c, p, watchData)
				}
			}
			for i, p := range r.ExistWatches {
				switch code, _ := codeOf(exist[i].err); code {
				case jute.CodeOK:
					m.fireNowLocked(c, jute.EventNodeCreated, p)
				case jute.CodeNoNode:
					m.addLocked(c, p, watchData)
				}
			}
			for i, p := range r.ChildWatches {
				switch code, _ := codeOf(child[i].err); {
				case code == jute.CodeNoNode:
					m.fireNowLocked(c, jute.EventNodeDeleted, p)
				case code != jute.CodeOK:
				case child[i].node.Stat.Pzxid > r.RelativeZxid:
					m.fireNowLocked(c, jute.EventNodeChildrenChanged, p)
				default:
					m.addLocked(c, p, watchChild)
				}
			}
			for _, p := range r.PersistentWatches {
				m.addLocked(c, p, watchPersistent)
			}
			for _, p := range r.PersistentRecursiveWatches {
				m.addLocked(c, p, watchRecursive)
			}
		})
}

func (c *conn) addWatch(hdr jute.RequestHeader, r *jute.AddWatchRequest, start time.Time) error {
	var b watchBits
	switch r.Mode {
	case jute.AddWatchPersistent:
		b = watchPersistent
	case jute.AddWatchPersistentRecursive:
		b = watchRecursive
	default:
		c.reply("ADDW", hdr.Xid, c.s.watches.notified.Load(), jute.CodeBadArguments, nil, start)
		return nil
	}
	// ZooKeeper does not look at the node: the watch may wait for it.
	return c.serveRead("ADDW", hdr, start, true, func(zktree.Reader) {},
		func() (jute.Code, jute.Record, error) { return jute.CodeOK, &jute.ErrorResponse{Err: jute.CodeOK}, nil },
		func() { c.s.watches.addLocked(c, r.Path, b) })
}

// watcherBits maps a removeWatches or checkWatches type to the watches it
// selects, as ZooKeeper's DataTree.removeWatch and containsWatcher do.
func watcherBits(t jute.WatcherType) (watchBits, bool) {
	switch t {
	case jute.WatcherChildren:
		return watchChild, true
	case jute.WatcherData:
		return watchData, true
	case jute.WatcherPersistent:
		return watchPersistent, true
	case jute.WatcherPersistentRecursive:
		return watchRecursive, true
	case jute.WatcherAny:
		return watchData | watchChild | watchPersistent | watchRecursive, true
	}
	return 0, false
}

// watchesOf answers removeWatches (remove) and checkWatches: NoWatcher if
// the connection holds no watch of that type on the path.
func (c *conn) watchesOf(op string, hdr jute.RequestHeader, path string, t jute.WatcherType, remove bool, start time.Time) error {
	rev := c.s.watches.notified.Load()
	b, ok := watcherBits(t)
	if !ok {
		// ZooKeeper fails to convert the type and answers with a marshalling
		// error.
		c.reply(op, hdr.Xid, rev, jute.CodeMarshallingError, nil, start)
		return nil
	}
	var found bool
	if remove {
		found = c.s.watches.remove(c, path, b)
	} else {
		found = c.s.watches.has(c, path, b)
	}
	code := jute.CodeOK
	if !found {
		code = jute.CodeNoWatcher
	}
	c.reply(op, hdr.Xid, rev, code, nil, start)
	return nil
}

// authenticate adds an identity to the connection (not to the session: a
// client re-sends its credentials after a reconnect).
func (c *conn) authenticate(hdr jute.RequestHeader, r *jute.AuthPacket, start time.Time) error {
	switch r.Scheme {
	case "digest":
		id := jute.Id{Scheme: "digest", ID: zktree.DigestID(string(r.Auth))}
		if !containsID(c.auth, id) {
			c.auth = append(c.auth, id)
		}
	case "ip":
		// ZooKeeper's ip provider authenticates the address the connection
		// comes from, which every connection has already.
	default:
		c.reply("AUTH", hdr.Xid, 0, jute.CodeAuthFailed, nil, start)
		return flushError{fmt.Errorf("%w: scheme %q", errAuthFailed, r.Scheme)}
	}
	c.reply("AUTH", hdr.Xid, 0, jute.CodeOK, nil, start)
	return nil
}

func containsID(ids []jute.Id, id jute.Id) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// whoAmI lists the connection's identities as ZooKeeper's AuthUtil does:
// the scheme, and the user its provider names (the part of a digest id
// before the colon, the address of an ip id).
func (c *conn) whoAmI(hdr jute.RequestHeader, start time.Time) error {
	infos := make([]jute.ClientInfo, len(c.auth))
	for i, id := range c.auth {
		user := id.ID
		if id.Scheme == "digest" {
			user, _, _ = strings.Cut(id.ID, ":")
		}
		infos[i] = jute.ClientInfo{AuthScheme: id.Scheme, User: user}
	}
	c.reply("HOMI", hdr.Xid, c.s.watches.notified.Load(), jute.CodeOK, &jute.WhoAmIResponse{ClientInfo: infos}, start)
	return nil
}
