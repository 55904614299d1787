package zktree

import (
	"strconv"
	"strings"

	"ensemble/internal/api/zk/jute"
	"ensemble/internal/mvcc"
	"ensemble/internal/types"
)

// Apply executes c in w. Everything it changes shares w's revision; a
// failed command changes nothing. The root "/" and "/zookeeper" exist from
// the first command on (they are written even by a first command that
// fails).
func (t *Tree) Apply(w *mvcc.TxnWrite, c *Command) Result {
	x := &t.x
	x.begin(w, t.lessor, c.Session, c.Time, c.Auth)
	defer x.end()
	if code := x.bootstrap(); code != jute.CodeOK {
		return Result{Code: code, Zxid: w.Rev()}
	}
	booted := len(x.nodes) > 0

	res, ok := x.run(c)
	if x.failed {
		res, ok = Result{Code: jute.CodeSystemError}, false
		x.failed = false
	}
	if !ok {
		x.reset()
		if booted {
			x.bootstrap()
		}
	}
	x.flush()
	if x.failed {
		res, ok = Result{Code: jute.CodeSystemError}, false
	}
	if ok && c.Op == jute.OpCloseSession && x.closing {
		// After the flush: the lease's keys still attached (the session
		// record) go in the same revision; the ephemerals are gone already.
		if err := t.lessor.Revoke(w, types.LeaseID(c.Session)); err != nil {
			res = Result{Code: jute.CodeSystemError}
		}
	}
	res.Zxid = w.Rev()
	return res
}

// RemoveSession deletes the ephemeral nodes of session id in w, updating
// their parents (and removing containers left empty) as deletes do. The
// apply loop calls it before the session's lease is revoked, whether the
// lease expired, the client closed the session, or an etcd client revoked
// the lease.
func (t *Tree) RemoveSession(w *mvcc.TxnWrite, id int64) {
	x := &t.x
	x.begin(w, t.lessor, 0, 0, nil)
	defer x.end()
	x.removeSession(id)
	x.flush()
}

// run executes the command's op in the overlay. ok is false if the command
// failed and its changes must be dropped (for a failed multi too, whose
// Result still carries every op's result).
func (x *txn) run(c *Command) (Result, bool) {
	switch c.Op {
	case jute.OpCreate, jute.OpCreate2, jute.OpCreateContainer, jute.OpCreateTTL,
		jute.OpDelete, jute.OpSetData, jute.OpCheck:
		r, code := x.op(c.Op, c.Req)
		if code != jute.CodeOK {
			return Result{Code: code}, false
		}
		return Result{Code: jute.CodeOK, Resp: response(c.Op, &r)}, true
	case jute.OpSetACL:
		req, ok := c.Req.(*jute.SetACLRequest)
		if !ok {
			return Result{Code: jute.CodeMarshallingError}, false
		}
		stat, code := x.setACL(req.Path, req.ACL, req.Version)
		if code != jute.CodeOK {
			return Result{Code: code}, false
		}
		return Result{Code: jute.CodeOK, Resp: &jute.SetACLResponse{Stat: stat}}, true
	case jute.OpMulti:
		req, ok := c.Req.(*jute.MultiRequest)
		if !ok {
			return Result{Code: jute.CodeMarshallingError}, false
		}
		return x.multi(req)
	case jute.OpCreateSession:
		req, ok := c.Req.(*SessionRequest)
		if !ok {
			return Result{Code: jute.CodeMarshallingError}, false
		}
		code := x.createSession(c.Session, req)
		return Result{Code: code}, code == jute.CodeOK
	case jute.OpCloseSession:
		x.closeSession(c.Session)
		return Result{Code: jute.CodeOK}, true
	case OpExpireTTL:
		req, ok := c.Req.(*ExpireTTL)
		if !ok {
			return Result{Code: jute.CodeMarshallingError}, false
		}
		x.expireTTL(req)
		return Result{Code: jute.CodeOK}, true
	}
	return Result{Code: jute.CodeUnimplemented}, false
}

// opResult is what an op that can be part of a multi produces.
type opResult struct {
	path string
	stat jute.Stat
}

// response is the reply body of a successful stand-alone op.
func response(op jute.OpCode, r *opResult) jute.Response {
	switch op {
	case jute.OpCreate:
		return &jute.CreateResponse{Path: r.path}
	case jute.OpCreate2, jute.OpCreateContainer, jute.OpCreateTTL:
		return &jute.Create2Response{Path: r.path, Stat: r.stat}
	case jute.OpSetData, jute.OpCheck:
		// ZooKeeper's server answers a stand-alone check with a
		// SetDataResponse.
		return &jute.SetDataResponse{Stat: r.stat}
	}
	return nil
}

// multiResult is the result of a successful op inside a multi, typed as
// ZooKeeper's FinalRequestProcessor types it.
func multiResult(op jute.OpCode, r *opResult) jute.MultiResult {
	switch op {
	case jute.OpCreate:
		return jute.MultiResult{Type: jute.OpCreate, Path: r.path}
	case jute.OpCreate2, jute.OpCreateContainer, jute.OpCreateTTL:
		return jute.MultiResult{Type: jute.OpCreate2, Path: r.path, Stat: r.stat}
	case jute.OpSetData:
		return jute.MultiResult{Type: jute.OpSetData, Stat: r.stat}
	}
	return jute.MultiResult{Type: op}
}

// op executes one op of the kinds a multi may hold.
func (x *txn) op(op jute.OpCode, req jute.Record) (opResult, jute.Code) {
	switch op {
	case jute.OpCreate, jute.OpCreate2, jute.OpCreateContainer:
		r, ok := req.(*jute.CreateRequest)
		if !ok {
			return opResult{}, jute.CodeMarshallingError
		}
		return x.create(op, r.Path, r.Data, r.ACL, r.Flags, -1)
	case jute.OpCreateTTL:
		r, ok := req.(*jute.CreateTTLRequest)
		if !ok {
			return opResult{}, jute.CodeMarshallingError
		}
		return x.create(op, r.Path, r.Data, r.ACL, r.Flags, r.TTL)
	case jute.OpDelete:
		r, ok := req.(*jute.DeleteRequest)
		if !ok {
			return opResult{}, jute.CodeMarshallingError
		}
		return opResult{}, x.delete(r.Path, r.Version)
	case jute.OpSetData:
		r, ok := req.(*jute.SetDataRequest)
		if !ok {
			return opResult{}, jute.CodeMarshallingError
		}
		stat, code := x.setData(r.Path, r.Data, r.Version)
		return opResult{stat: stat}, code
	case jute.OpCheck:
		r, ok := req.(*jute.CheckVersionRequest)
		if !ok {
			return opResult{}, jute.CodeMarshallingError
		}
		stat, code := x.check(r.Path, r.Version)
		return opResult{stat: stat}, code
	}
	return opResult{}, jute.CodeMarshallingError
}

// multi executes the ops in order against the overlay, so that each sees
// the ones before it. On the first failure it stops and answers as
// ZooKeeper does: the reply header says OK, and the body gives every op an
// error result: OK for the ops before the failed one, its error for it, and
// RUNTIMEINCONSISTENCY for the ops after it.
func (x *txn) multi(m *jute.MultiRequest) (Result, bool) {
	for i := range m.Ops {
		if !jute.IsMultiWriteOp(m.Ops[i].Type) {
			// ZooKeeper cannot even decode such a multi.
			return Result{Code: jute.CodeMarshallingError}, false
		}
	}
	results := make([]jute.MultiResult, len(m.Ops))
	for i := range m.Ops {
		r, code := x.op(m.Ops[i].Type, m.Ops[i].Op)
		if x.failed {
			return Result{Code: jute.CodeSystemError}, false
		}
		if code != jute.CodeOK {
			for j := range results {
				e := jute.CodeOK
				switch {
				case j == i:
					e = code
				case j > i:
					e = jute.CodeRuntimeInconsistency
				}
				results[j] = jute.MultiResult{Type: jute.OpError, Err: e}
			}
			return Result{Code: jute.CodeOK, Resp: &jute.MultiResponse{Results: results}}, false
		}
		results[i] = multiResult(m.Ops[i].Type, &r)
	}
	return Result{Code: jute.CodeOK, Resp: &jute.MultiResponse{Results: results}}, true
}

// create follows PrepRequestProcessor.pRequest2TxnCreate, checks in its
// order: mode and TTL, session, path shape, ACL, parent, CREATE permission,
// sequence suffix, full path, existence, ephemeral parent. ttl is -1 for
// the requests that carry none.
func (x *txn) create(op jute.OpCode, path string, data []byte, acl []jute.ACL, mode jute.CreateMode, ttl int64) (opResult, jute.Code) {
	if !mode.Valid() {
		return opResult{}, jute.CodeBadArguments
	}
	kind := mode
	switch {
	case op == jute.OpCreateContainer:
		// Clients send createContainer with the container flag; anything
		// else is a malformed request (ZooKeeper would mix the flag's and
		// the opcode's meanings).
		if !mode.Container() {
			return opResult{}, jute.CodeBadArguments
		}
	case op == jute.OpCreateTTL:
		if !mode.TTL() {
			return opResult{}, jute.CodeBadArguments
		}
	case mode.TTL():
		// A plain create carries no TTL (EphemeralType.validateTTL).
		return opResult{}, jute.CodeBadArguments
	case mode.Container():
		// ZooKeeper stores a plain create with the container flag as a
		// persistent node: containers come only from createContainer.
		kind = jute.ModePersistent
	}
	if mode.TTL() && (ttl <= 0 || ttl > MaxTTL) {
		return opResult{}, jute.CodeBadArguments
	}
	if mode.Ephemeral() && (x.lessor == nil || !x.lessor.LeaseExists(types.LeaseID(x.session))) {
		return opResult{}, jute.CodeSessionExpired
	}
	slash := lastSlash(path)
	if slash < 0 || strings.IndexByte(path, 0) >= 0 {
		return opResult{}, jute.CodeBadArguments
	}
	rawACL, code := fixACL(acl, x.auth)
	if code != jute.CodeOK {
		return opResult{}, code
	}
	parent, code := x.get(parentPath(path, slash))
	if code != jute.CodeOK {
		return opResult{}, code
	}
	if !parent.exists {
		return opResult{}, jute.CodeNoNode
	}
	if !allowedRaw(parent.rec.acl, jute.PermCreate, x.auth) {
		return opResult{}, jute.CodeNoAuth
	}
	if mode.Sequential() {
		path = appendSequence(path, parent.rec.cversion)
	}
	if !validPath(path) {
		return opResult{}, jute.CodeBadArguments
	}
	has, code := x.has(path)
	if code != jute.CodeOK {
		return opResult{}, code
	}
	if has {
		return opResult{}, jute.CodeNodeExists
	}
	if parent.rec.mode.Ephemeral() {
		return opResult{}, jute.CodeNoChildrenForEphemerals
	}
	n := x.lookup(path)
	if n == nil {
		n = x.add(path)
	}
	rec := record{mode: kind, nullData: data == nil, acl: rawACL, data: data}
	if kind.TTL() {
		rec.ttl = ttl
	}
	var lease int64
	if kind.Ephemeral() {
		rec.owner, lease = x.session, x.session
	}
	x.createNode(parent, n, rec, lease)
	return opResult{path: path, stat: n.stat(x.rev)}, jute.CodeOK
}

// appendSequence appends ZooKeeper's sequence suffix, the parent's cversion
// as String.format("%010d"): ten digits, zero-padded after any sign.
func appendSequence(path string, cversion int32) string {
	var buf [12]byte
	digits := strconv.AppendInt(buf[:0], int64(cversion), 10)
	neg := cversion < 0
	if neg {
		digits = digits[1:]
	}
	width := 10
	if neg {
		width = 9
	}
	var sb strings.Builder
	sb.Grow(len(path) + 11)
	sb.WriteString(path)
	if neg {
		sb.WriteByte('-')
	}
	for i := len(digits); i < width; i++ {
		sb.WriteByte('0')
	}
	sb.Write(digits)
	return sb.String()
}

// stat is the Stat of an entry that exists; rev is the command's revision,
// the create revision of a node the command creates.
func (e *entry) stat(rev int64) jute.Stat {
	createRev := e.createRev
	if !e.existed {
		createRev = rev
	}
	return e.rec.stat(createRev)
}

// delete follows ZooKeeper's checks in order: path shape and special nodes,
// parent, DELETE permission on the parent, node, version, children. The
// parent's stored cversion does not change: ZooKeeper counts only creates in
// it (DataTree.deleteNode sets just pzxid), so a delete does not move the
// next sequence number; the cversion clients see still grows (record.stat).
func (x *txn) delete(path string, version int32) jute.Code {
	slash := lastSlash(path)
	if slash < 0 || strings.IndexByte(path, 0) >= 0 || isSpecial(path) {
		return jute.CodeBadArguments
	}
	parent, code := x.get(parentPath(path, slash))
	if code != jute.CodeOK {
		return code
	}
	if !parent.exists {
		return jute.CodeNoNode
	}
	if !allowedRaw(parent.rec.acl, jute.PermDelete, x.auth) {
		return jute.CodeNoAuth
	}
	n, code := x.get(path)
	if code != jute.CodeOK {
		return code
	}
	if !n.exists {
		return jute.CodeNoNode
	}
	if !versionOK(n.rec.version, version) {
		return jute.CodeBadVersion
	}
	if n.rec.numChildren > 0 {
		return jute.CodeNotEmpty
	}
	x.deleteNode(parent, n)
	return jute.CodeOK
}

// existing returns the node at a valid path, or the code for why not.
func (x *txn) existing(path string) (*entry, jute.Code) {
	if !validPath(path) {
		return nil, jute.CodeBadArguments
	}
	n, code := x.get(path)
	if code != jute.CodeOK {
		return nil, code
	}
	if !n.exists {
		return nil, jute.CodeNoNode
	}
	return n, jute.CodeOK
}

func (x *txn) setData(path string, data []byte, version int32) (jute.Stat, jute.Code) {
	n, code := x.existing(path)
	if code != jute.CodeOK {
		return jute.Stat{}, code
	}
	if !allowedRaw(n.rec.acl, jute.PermWrite, x.auth) {
		return jute.Stat{}, jute.CodeNoAuth
	}
	if !versionOK(n.rec.version, version) {
		return jute.Stat{}, jute.CodeBadVersion
	}
	n.rec.version = nextVersion(n.rec.version)
	n.rec.data, n.rec.nullData = data, data == nil
	n.rec.mzxid, n.rec.mtime = x.rev, x.now
	n.dirty = true
	return n.stat(x.rev), jute.CodeOK
}

// setACL checks the new ACL before it looks for the node, as ZooKeeper
// does.
func (x *txn) setACL(path string, acl []jute.ACL, version int32) (jute.Stat, jute.Code) {
	if !validPath(path) {
		return jute.Stat{}, jute.CodeBadArguments
	}
	rawACL, code := fixACL(acl, x.auth)
	if code != jute.CodeOK {
		return jute.Stat{}, code
	}
	n, code := x.existing(path)
	if code != jute.CodeOK {
		return jute.Stat{}, code
	}
	if !allowedRaw(n.rec.acl, jute.PermAdmin, x.auth) {
		return jute.Stat{}, jute.CodeNoAuth
	}
	if !versionOK(n.rec.aversion, version) {
		return jute.Stat{}, jute.CodeBadVersion
	}
	n.rec.aversion = nextVersion(n.rec.aversion)
	n.rec.acl = rawACL
	n.dirty = true
	return n.stat(x.rev), jute.CodeOK
}

// check needs READ permission, as in ZooKeeper 3.9.
func (x *txn) check(path string, version int32) (jute.Stat, jute.Code) {
	n, code := x.existing(path)
	if code != jute.CodeOK {
		return jute.Stat{}, code
	}
	if !allowedRaw(n.rec.acl, jute.PermRead, x.auth) {
		return jute.Stat{}, jute.CodeNoAuth
	}
	if !versionOK(n.rec.version, version) {
		return jute.Stat{}, jute.CodeBadVersion
	}
	return n.stat(x.rev), jute.CodeOK
}

// createSession grants session id's lease and records the session. An id
// that is taken is RUNTIMEINCONSISTENCY: the proposer picks another.
func (x *txn) createSession(id int64, req *SessionRequest) jute.Code {
	if id == 0 {
		return jute.CodeBadArguments
	}
	if x.lessor == nil {
		return jute.CodeSystemError
	}
	if x.lessor.LeaseExists(types.LeaseID(id)) {
		return jute.CodeRuntimeInconsistency
	}
	ttl := (int64(req.Timeout) + 999) / 1000
	if ttl < 0 {
		ttl = 0
	}
	if _, err := x.lessor.Grant(x.w, types.LeaseID(id), ttl); err != nil {
		return jute.CodeSystemError
	}
	x.extra = append(x.extra, write{key: sessionKey(id), val: encodeSession(req), lease: id})
	return jute.CodeOK
}

// closeSession removes the session's ephemerals; Apply then revokes its
// lease. An unknown session is already closed.
func (x *txn) closeSession(id int64) {
	x.closing = id != 0 && x.lessor != nil && x.lessor.LeaseExists(types.LeaseID(id))
	if x.closing {
		x.removeSession(id)
	}
}

// removeSession deletes the session's ephemerals, in key order.
func (x *txn) removeSession(id int64) {
	if x.lessor == nil || id == 0 {
		return
	}
	info, err := x.lessor.Lookup(types.LeaseID(id), true)
	if err != nil {
		return
	}
	for _, k := range info.Keys {
		path, ok := nodePath([]byte(k))
		if !ok {
			continue
		}
		n, code := x.get(path)
		if code != jute.CodeOK || !n.exists || n.lease != id {
			continue
		}
		parent, code := x.get(parentPath(path, lastSlash(path)))
		if code != jute.CodeOK {
			continue
		}
		x.deleteNode(parent, n)
	}
}

// expireTTL deletes a TTL node that is still what the reaper saw: no
// children, the same mzxid, and its TTL past at the command's time.
func (x *txn) expireTTL(req *ExpireTTL) {
	if !validPath(req.Path) || isSpecial(req.Path) {
		return
	}
	n, code := x.get(req.Path)
	if code != jute.CodeOK || !n.exists || !n.rec.mode.TTL() || n.rec.numChildren > 0 ||
		n.rec.mzxid != req.Mzxid || x.now-n.rec.mtime <= n.rec.ttl {
		return
	}
	parent, code := x.get(parentPath(req.Path, lastSlash(req.Path)))
	if code != jute.CodeOK {
		return
	}
	x.deleteNode(parent, n)
}
