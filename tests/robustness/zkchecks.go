package robustness

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"ensemble/internal/api/zk/jute"
	"ensemble/internal/zktree"

	"github.com/anishathalye/porcupine"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// Where the ZooKeeper tree lives in the etcd key space (internal/zktree):
// a node at n/<depth, 3 digits><path>, a session at s/<16 hex digits>.
const (
	zkNodeKeyPrefix    = "/.zk/n/"
	zkSessionKeyPrefix = "/.zk/s/"
)

// zkChangeKind says what a change of a node's key did to the node.
type zkChangeKind uint8

const (
	zkCreated     zkChangeKind = iota
	zkDataChanged              // a setData: new data, version and mzxid
	zkMetaChanged              // only its children's bookkeeping (cversion, pzxid)
	zkDeleted
)

func (k zkChangeKind) String() string {
	return [...]string{"created", "data", "meta", "deleted"}[k]
}

// zkChange is one change of a znode in the final store history, with the
// node as it was after it.
type zkChange struct {
	Rev          int64
	Path         string
	Kind         zkChangeKind
	Data         string
	Version      int32
	Czxid, Mzxid int64
	Owner        int64 // the session of an ephemeral; 0 otherwise
}

func (c zkChange) String() string {
	if c.Kind == zkDeleted {
		return fmt.Sprintf("rev %d %s deleted", c.Rev, c.Path)
	}
	s := fmt.Sprintf("rev %d %s %v %q v%d czxid=%d mzxid=%d", c.Rev, c.Path, c.Kind, c.Data, c.Version, c.Czxid, c.Mzxid)
	if c.Owner != 0 {
		s += fmt.Sprintf(" owner=%x", c.Owner)
	}
	return s
}

// zkStore is the ZooKeeper view of a StoreHistory: every node change and
// every session's start and end, by revision.
type zkStore struct {
	changes      []zkChange
	byPath       map[string][]int // indexes into changes, in revision order
	byData       map[string][]int // created and data changes by their data
	sessionStart map[int64]int64  // session id -> revision its record was put
	sessionEnd   map[int64]int64  // session id -> revision its record was deleted
	undecodable  []Violation      // node records that could not be read
	last         int64
}

var errZKRecord = errors.New("robustness: bad znode record")

// zkRecord is the part of a stored node that the checkers read.
type zkRecord struct {
	data         string
	version      int32
	czxid, mzxid int64
	owner        int64
}

func decodeZKRecord(key, v string, createRev int64) (zkRecord, error) {
	n, err := zktree.DecodeNode(&mvccpb.KeyValue{Key: []byte(key), Value: []byte(v), CreateRevision: createRev})
	if err != nil {
		return zkRecord{}, fmt.Errorf("%w: %v", errZKRecord, err)
	}
	return zkRecord{data: string(n.Data), version: n.Stat.Version, czxid: n.Stat.Czxid, mzxid: n.Stat.Mzxid, owner: n.Stat.EphemeralOwner}, nil
}

// zkPathOfKey returns the znode path of an etcd key, ok false for other
// keys.
func zkPathOfKey(key string) (string, bool) { return zktree.PathOfKey([]byte(key)) }

func zkSessionOfKey(key string) (int64, bool) { return zktree.SessionOfKey([]byte(key)) }

func newZKStore(store *StoreHistory) *zkStore {
	z := &zkStore{byPath: map[string][]int{}, byData: map[string][]int{},
		sessionStart: map[int64]int64{}, sessionEnd: map[int64]int64{}, last: store.Last}
	for _, e := range store.Events {
		if id, ok := zkSessionOfKey(e.Key); ok {
			if e.Delete {
				z.sessionEnd[id] = e.Rev
			} else if _, seen := z.sessionStart[id]; !seen {
				z.sessionStart[id] = e.Rev
			}
			continue
		}
		path, ok := zkPathOfKey(e.Key)
		if !ok {
			continue
		}
		idx := z.byPath[path]
		var prev *zkChange
		if len(idx) > 0 && z.changes[idx[len(idx)-1]].Kind != zkDeleted {
			prev = &z.changes[idx[len(idx)-1]]
		}
		c := zkChange{Rev: e.Rev, Path: path}
		if e.Delete {
			c.Kind = zkDeleted
		} else {
			r, err := decodeZKRecord(e.Key, e.Value, e.CreateRev)
			if err != nil {
				z.undecodable = append(z.undecodable, Violation{Checker: "zk-store", Detail: fmt.Sprintf("%s at revision %d: %v", path, e.Rev, err)})
				continue
			}
			c.Data, c.Version, c.Czxid, c.Mzxid, c.Owner = r.data, r.version, r.czxid, r.mzxid, r.owner
			switch {
			case prev == nil || prev.Czxid != c.Czxid:
				c.Kind = zkCreated
			case prev.Mzxid != c.Mzxid:
				c.Kind = zkDataChanged
			default:
				c.Kind = zkMetaChanged
			}
		}
		z.changes = append(z.changes, c)
		i := len(z.changes) - 1
		z.byPath[path] = append(idx, i)
		if c.Kind == zkCreated || c.Kind == zkDataChanged {
			z.byData[c.Data] = append(z.byData[c.Data], i)
		}
	}
	return z
}

// at returns the node's last change at or before rev and whether the node
// existed then.
func (z *zkStore) at(path string, rev int64) (zkChange, bool) {
	idx := z.byPath[path]
	n := sort.Search(len(idx), func(i int) bool { return z.changes[idx[i]].Rev > rev })
	if n == 0 {
		return zkChange{}, false
	}
	c := z.changes[idx[n-1]]
	return c, c.Kind != zkDeleted
}

// changeAt returns the node's change at exactly rev.
func (z *zkStore) changeAt(path string, rev int64) (zkChange, bool) {
	c, _ := z.at(path, rev)
	return c, c.Rev == rev && c.Path == path
}

// firstChangeAfter returns the node's first create, data change or delete
// after rev: what a watch set at rev fires for.
func (z *zkStore) firstChangeAfter(path string, rev int64) (zkChange, bool) {
	idx := z.byPath[path]
	n := sort.Search(len(idx), func(i int) bool { return z.changes[idx[i]].Rev > rev })
	for _, i := range idx[n:] {
		if c := z.changes[i]; c.Kind != zkMetaChanged {
			return c, true
		}
	}
	return zkChange{}, false
}

// children returns the names of dir's children that exist at rev, sorted.
func (z *zkStore) children(dir string, rev int64) []string {
	var out []string
	for p := range z.byPath {
		parent, name, ok := cutLast(p)
		if !ok || parent != dir {
			continue
		}
		if _, exists := z.at(p, rev); exists {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func cutLast(p string) (parent, name string, ok bool) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 || p == "/" {
		return "", "", false
	}
	if i == 0 {
		return "/", p[1:], true
	}
	return p[:i], p[i+1:], true
}

// CheckZK runs every ZooKeeper checker; htmlPath is where porcupine's
// visualisation goes on a linearizability violation.
func CheckZK(h *ZKHistory, store *StoreHistory, timeout time.Duration, htmlPath string) []Violation {
	z := newZKStore(store)
	vs := append([]Violation(nil), z.undecodable...)
	for _, a := range h.Anomalies {
		vs = append(vs, Violation{Checker: "zk-protocol", Detail: a})
	}
	vs = append(vs, checkZKLinearizable(h, z, timeout, htmlPath)...)
	vs = append(vs, checkZKWrites(h, z, store)...)
	vs = append(vs, checkZKReads(h, z)...)
	vs = append(vs, checkZKSessions(h, z)...)
	vs = append(vs, checkZKLock(z, store)...)
	vs = append(vs, checkZKWatches(h, z)...)
	return vs
}

// CheckZKLinearizable checks the data znodes' history with porcupine.
func CheckZKLinearizable(h *ZKHistory, store *StoreHistory, timeout time.Duration, htmlPath string) []Violation {
	return checkZKLinearizable(h, newZKStore(store), timeout, htmlPath)
}

// CheckZKWrites checks that every acknowledged create, setData, multi and
// delete is in the final history at its zxid, that no write answered with
// an error took effect, and that every data in the history was written by
// a client, once.
func CheckZKWrites(h *ZKHistory, store *StoreHistory) []Violation {
	return checkZKWrites(h, newZKStore(store), store)
}

// CheckZKReads checks every acknowledged read against the history at its
// zxid, and that zxids never go back within a session.
func CheckZKReads(h *ZKHistory, store *StoreHistory) []Violation {
	return checkZKReads(h, newZKStore(store))
}

// CheckZKSessions checks session safety: once a session ends at revision
// R, none of its ephemerals is live at R or created later.
func CheckZKSessions(h *ZKHistory, store *StoreHistory) []Violation {
	return checkZKSessions(h, newZKStore(store))
}

// CheckZKLock checks the ZooKeeper lock by fencing tokens.
func CheckZKLock(store *StoreHistory) []Violation { return checkZKLock(newZKStore(store), store) }

// CheckZKWatches checks the data watches.
func CheckZKWatches(h *ZKHistory, store *StoreHistory) []Violation {
	return checkZKWatches(h, newZKStore(store))
}

func isZKModelPath(p string) bool { return strings.HasPrefix(p, zkDataDir+"/") }

// zkInput and zkOutput are one operation of the znode model.
type zkInput struct {
	Kind    ZKOpKind
	Path    string
	Data    string
	Version int32
}

type zkOutput struct {
	Unknown bool
	Code    jute.Code
	Zxid    int64
	Got     string
	Version int32
	Mzxid   int64
}

// zkState is one znode: whether it exists, its data, version and mzxid,
// and the revision of its last change (a delete's too).
type zkState struct {
	Exists  bool
	Data    string
	Version int32
	Mzxid   int64
	Rev     int64
}

// zkStep is the sequential specification of one znode under create,
// setData and multi (check then setData) with expected versions, delete
// and linearizable reads: a write's zxid exceeds the node's last change,
// and a read returns the data, version and mzxid of the state it sees.
func zkStep(s zkState, in zkInput, out zkOutput) (bool, zkState) {
	newer := out.Zxid > s.Rev
	match := s.Exists && (in.Version == -1 || in.Version == s.Version)
	switch in.Kind {
	case ZKSyncGet:
		if out.Code == jute.CodeNoNode {
			return !s.Exists, s
		}
		return s.Exists && out.Got == s.Data && out.Version == s.Version && out.Mzxid == s.Mzxid, s
	case ZKCreate:
		if out.Code == jute.CodeNodeExists {
			return s.Exists, s
		}
		return !s.Exists && newer, zkState{Exists: true, Data: in.Data, Mzxid: out.Zxid, Rev: out.Zxid}
	case ZKSetData, ZKMulti:
		switch out.Code {
		case jute.CodeOK:
			ok := match && newer && out.Version == s.Version+1 && out.Mzxid == out.Zxid
			return ok, zkState{Exists: true, Data: in.Data, Version: s.Version + 1, Mzxid: out.Zxid, Rev: out.Zxid}
		case jute.CodeBadVersion:
			return s.Exists && !match, s
		case jute.CodeNoNode:
			return !s.Exists, s
		}
	case ZKDelete:
		if out.Unknown {
			// It may be linearized last, where its effect does not matter,
			// so taking effect whenever it can is no false alarm.
			if match {
				return true, zkState{Rev: s.Rev}
			}
			return true, s
		}
		switch out.Code {
		case jute.CodeOK:
			return match && newer, zkState{Rev: out.Zxid}
		case jute.CodeBadVersion:
			return s.Exists && !match, s
		case jute.CodeNoNode:
			return !s.Exists, s
		}
	}
	return false, s
}

func newZKModel() porcupine.Model {
	return porcupine.Model{
		Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
			byPath := map[string][]porcupine.Operation{}
			var paths []string
			for _, op := range history {
				p := op.Input.(zkInput).Path
				if _, ok := byPath[p]; !ok {
					paths = append(paths, p)
				}
				byPath[p] = append(byPath[p], op)
			}
			sort.Strings(paths)
			out := make([][]porcupine.Operation, 0, len(paths))
			for _, p := range paths {
				out = append(out, byPath[p])
			}
			return out
		},
		Init: func() any { return zkState{} },
		Step: func(state, input, output any) (bool, any) {
			return zkStep(state.(zkState), input.(zkInput), output.(zkOutput))
		},
		DescribeOperation: func(input, output any) string {
			in, out := input.(zkInput), output.(zkOutput)
			res := fmt.Sprintf("%v@%d", out.Code, out.Zxid)
			if out.Unknown && out.Zxid == 0 {
				res = "?"
			}
			if in.Kind == ZKSyncGet && out.Code == jute.CodeOK {
				res = fmt.Sprintf("%s v%d mzxid=%d @%d", out.Got, out.Version, out.Mzxid, out.Zxid)
			}
			switch in.Kind {
			case ZKSyncGet:
				return fmt.Sprintf("get(%s) -> %s", in.Path, res)
			case ZKDelete:
				return fmt.Sprintf("delete(%s v%d) -> %s", in.Path, in.Version, res)
			case ZKCreate:
				return fmt.Sprintf("create(%s=%s) -> %s", in.Path, in.Data, res)
			default:
				return fmt.Sprintf("%v(%s=%s if v%d) -> %s", in.Kind, in.Path, in.Data, in.Version, res)
			}
		},
		DescribeState: func(state any) string {
			s := state.(zkState)
			if !s.Exists {
				return fmt.Sprintf("absent (last change %d)", s.Rev)
			}
			return fmt.Sprintf("%s v%d mzxid=%d", s.Data, s.Version, s.Mzxid)
		},
	}
}

// patchZKHistory turns the data znodes' operations into porcupine's.
// Creates and writes of unknown outcome are resolved by their unique data:
// found in the final history they took effect there, else they did not
// and are left out. Plain getData is served by one member, possibly stale,
// so only sync-then-get is in the model (plain reads are checked against
// the history at their zxid). Answers that carry no information about the
// node (a session error, say) are left out.
func patchZKHistory(h *ZKHistory, z *zkStore) []porcupine.Operation {
	var ops []porcupine.Operation
	for i := range h.Ops {
		o := &h.Ops[i]
		if !isZKModelPath(o.Path) {
			continue
		}
		in := zkInput{Kind: o.Kind, Path: o.Path, Data: o.Data, Version: o.Version}
		out := zkOutput{Unknown: o.Unknown(), Code: o.Code, Zxid: o.Zxid, Got: o.Got, Version: o.Stat.Version, Mzxid: o.Stat.Mzxid}
		switch o.Kind {
		case ZKSyncGet, ZKCreate, ZKSetData, ZKMulti, ZKDelete:
		default:
			continue
		}
		if o.Unknown() {
			switch o.Kind {
			case ZKSyncGet:
				continue
			case ZKCreate, ZKSetData, ZKMulti:
				c, ok := z.written(o.Path, o.Data)
				if !ok {
					continue
				}
				out.Code, out.Zxid, out.Version, out.Mzxid = jute.CodeOK, c.Rev, c.Version, c.Mzxid
			}
		} else {
			switch o.Code {
			case jute.CodeOK, jute.CodeNoNode, jute.CodeNodeExists, jute.CodeBadVersion:
			default:
				continue
			}
		}
		ops = append(ops, porcupine.Operation{ClientId: o.Client, Input: in, Output: out,
			Call: o.Call, Return: o.Return, Metadata: i})
	}
	return ops
}

// written returns the create or data change of path that wrote data.
func (z *zkStore) written(path, data string) (zkChange, bool) {
	for _, i := range z.byData[data] {
		if z.changes[i].Path == path {
			return z.changes[i], true
		}
	}
	return zkChange{}, false
}

func checkZKLinearizable(h *ZKHistory, z *zkStore, timeout time.Duration, htmlPath string) []Violation {
	ops := patchZKHistory(h, z)
	model := newZKModel()
	res, info := porcupine.CheckOperationsVerbose(model, ops, timeout)
	switch res {
	case porcupine.Ok:
		return nil
	case porcupine.Unknown:
		return []Violation{{Checker: "zk-linearizability", Detail: fmt.Sprintf("porcupine timed out after %v on %d operations (not a proof of a violation)", timeout, len(ops))}}
	}
	v := Violation{Checker: "zk-linearizability", Detail: fmt.Sprintf("history of %d znode operations is not linearizable", len(ops))}
	if htmlPath != "" {
		if err := os.MkdirAll(filepath.Dir(htmlPath), 0o755); err == nil {
			if err := porcupine.VisualizePath(model, info, htmlPath); err == nil {
				v.Detail += "; visualisation: " + htmlPath
			}
		}
	}
	for _, part := range model.Partition(ops) {
		if porcupine.CheckOperations(model, part) {
			continue
		}
		path := part[0].Input.(zkInput).Path
		v.Detail += fmt.Sprintf("; znode %s fails", path)
		var maxCall int64
		for _, lin := range info.PartialLinearizationsOperations() {
			for _, seq := range lin {
				for _, op := range seq {
					if op.Input.(zkInput).Path == path && op.Call > maxCall {
						maxCall = op.Call
					}
				}
			}
		}
		v.Context = h.Around(path, maxCall, int64(500*time.Millisecond))
		for _, c := range z.byPath[path] {
			if ch := z.changes[c]; ch.Kind != zkMetaChanged && len(v.Context) < 120 {
				v.Context = append(v.Context, "store: "+ch.String())
			}
		}
		break
	}
	return []Violation{v}
}

func checkZKWrites(h *ZKHistory, z *zkStore, store *StoreHistory) []Violation {
	var vs []Violation
	lost := func(o *ZKOp, there any) {
		vs = append(vs, Violation{Checker: "zk-lost-write",
			Detail:  fmt.Sprintf("acknowledged %s is not in the final history (there: %v)", o.String(), there),
			Context: h.Around(o.Path, o.Call, aroundWindow)})
	}
	attempted := map[string]bool{}
	for i := range h.Ops {
		o := &h.Ops[i]
		switch o.Kind {
		case ZKCreate, ZKSetData, ZKMulti, ZKLockMulti, ZKLockPut:
			attempted[o.Data] = true
		default:
			continue
		}
		if o.Unknown() {
			continue
		}
		failed := o.Code != jute.CodeOK || (o.Kind == ZKLockPut && !o.Succeeded)
		if failed {
			if o.Data == "" {
				continue
			}
			if idx := z.byData[o.Data]; len(idx) > 0 {
				vs = append(vs, Violation{Checker: "zk-failed-write",
					Detail:  fmt.Sprintf("%s failed, yet took effect: %v", o.String(), z.changes[idx[0]]),
					Context: h.Around(o.Path, o.Call, aroundWindow)})
			}
			if o.Kind == ZKLockPut {
				for _, e := range store.Events {
					if e.Key == zkLockKey && !e.Delete && e.Value == o.Data {
						vs = append(vs, Violation{Checker: "zk-failed-write", Detail: fmt.Sprintf("%s failed, yet took effect: %v", o.String(), e)})
					}
				}
			}
			continue
		}
		switch o.Kind {
		case ZKCreate:
			c, ok := z.changeAt(o.Created, o.Zxid)
			if !ok || c.Kind != zkCreated || c.Data != o.Data || c.Czxid != o.Stat.Czxid ||
				(o.Mode.Ephemeral() && c.Owner != o.Session) || (!o.Mode.Ephemeral() && c.Owner != 0) {
				lost(o, c)
			}
		case ZKSetData, ZKMulti, ZKLockMulti:
			c, ok := z.changeAt(o.Path, o.Zxid)
			if !ok || c.Kind != zkDataChanged || c.Data != o.Data || (o.Kind != ZKLockMulti && c.Version != o.Stat.Version) {
				lost(o, c)
			}
		case ZKLockPut:
			if e, ok := store.At(zkLockKey, o.Zxid); !ok || e.Rev != o.Zxid || e.Delete || e.Value != o.Data {
				lost(o, e)
			}
		}
	}
	for i := range h.Ops {
		o := &h.Ops[i]
		if o.Kind != ZKDelete || o.Unknown() || o.Code != jute.CodeOK {
			continue
		}
		if c, ok := z.changeAt(o.Path, o.Zxid); !ok || c.Kind != zkDeleted {
			lost(o, c)
		}
	}
	// Every client's data is unique: data in the history that no client
	// wrote, or written twice, is a phantom or a request applied twice.
	for data, idx := range z.byData {
		if data == "" {
			continue
		}
		if !attempted[data] {
			vs = append(vs, Violation{Checker: "zk-phantom-write", Detail: fmt.Sprintf("the final history holds %v, which no client wrote", z.changes[idx[0]])})
		}
		if len(idx) > 1 {
			vs = append(vs, Violation{Checker: "zk-duplicate-write",
				Detail: fmt.Sprintf("%q, written once by its client, was applied at %v and %v", data, z.changes[idx[0]], z.changes[idx[1]])})
		}
	}
	puts := map[string]int64{}
	for _, e := range store.Events {
		if e.Key != zkLockKey || e.Delete {
			continue
		}
		if !attempted[e.Value] {
			vs = append(vs, Violation{Checker: "zk-phantom-write", Detail: fmt.Sprintf("the final history holds %v, which no client wrote", e)})
		}
		if r, ok := puts[e.Value]; ok {
			vs = append(vs, Violation{Checker: "zk-duplicate-write", Detail: fmt.Sprintf("%s=%s was applied at revisions %d and %d", e.Key, e.Value, r, e.Rev)})
		}
		puts[e.Value] = e.Rev
	}
	return vs
}

func checkZKReads(h *ZKHistory, z *zkStore) []Violation {
	var vs []Violation
	for i := range h.Ops {
		o := &h.Ops[i]
		if o.Unknown() || (o.Code != jute.CodeOK && o.Code != jute.CodeNoNode) {
			continue
		}
		switch o.Kind {
		case ZKGet, ZKSyncGet, ZKChildren:
		default:
			continue
		}
		if o.Zxid > z.last {
			vs = append(vs, Violation{Checker: "zk-read", Detail: fmt.Sprintf("%s: zxid beyond the final revision %d", o.String(), z.last)})
			continue
		}
		st, exists := z.at(o.Path, o.Zxid)
		var want string
		switch {
		case o.Code == jute.CodeNoNode:
			if exists {
				want = st.String()
			}
		case !exists:
			want = "absent"
		case o.Kind == ZKChildren:
			if got, ch := slices.Sorted(slices.Values(o.Children)), z.children(o.Path, o.Zxid); !slices.Equal(got, ch) {
				want = fmt.Sprintf("children %v", ch)
			}
		case st.Data != o.Got || st.Version != o.Stat.Version || st.Mzxid != o.Stat.Mzxid || st.Czxid != o.Stat.Czxid:
			want = st.String()
		}
		if want != "" {
			vs = append(vs, Violation{Checker: "zk-read",
				Detail:  fmt.Sprintf("%s; the history says %s at revision %d", o.String(), want, o.Zxid),
				Context: h.Around(o.Path, o.Call, aroundWindow)})
		}
	}
	// A session never sees the tree go back: not on one member, and not
	// when it moves, since a member refuses a client that has seen more.
	type sess struct {
		client int
		id     int64
	}
	last := map[sess]*ZKOp{}
	byCall := make([]*ZKOp, 0, len(h.Ops))
	for i := range h.Ops {
		byCall = append(byCall, &h.Ops[i])
	}
	sort.SliceStable(byCall, func(i, j int) bool { return byCall[i].Call < byCall[j].Call })
	for _, o := range byCall {
		if o.Unknown() || o.Zxid <= 0 || o.Session == 0 || o.Kind == ZKLockPut || o.Kind == ZKExpired {
			continue
		}
		k := sess{o.Client, o.Session}
		if p := last[k]; p != nil && o.Zxid < p.Zxid {
			vs = append(vs, Violation{Checker: "zk-session-order",
				Detail:  fmt.Sprintf("%s came after %s in the same session", o.String(), p.String()),
				Context: h.Around("", o.Call, aroundWindow/3)})
		}
		last[k] = o
	}
	return vs
}

func checkZKSessions(h *ZKHistory, z *zkStore) []Violation {
	var vs []Violation
	live := map[int64]map[string]bool{} // session -> its live ephemerals
	owner := map[string]int64{}         // live ephemeral -> its session
	for i := 0; i < len(z.changes); {
		rev := z.changes[i].Rev
		for ; i < len(z.changes) && z.changes[i].Rev == rev; i++ {
			c := z.changes[i]
			if s, ok := owner[c.Path]; ok && (c.Kind == zkDeleted || c.Kind == zkCreated) {
				delete(live[s], c.Path)
				delete(owner, c.Path)
			}
			if c.Kind != zkCreated || c.Owner == 0 {
				continue
			}
			start, started := z.sessionStart[c.Owner]
			end, ended := z.sessionEnd[c.Owner]
			switch {
			case !started || start > rev:
				vs = append(vs, Violation{Checker: "zk-session", Detail: fmt.Sprintf("%v belongs to session %x, which did not exist then", c, c.Owner)})
			case ended && end < rev:
				vs = append(vs, Violation{Checker: "zk-session", Detail: fmt.Sprintf("%v belongs to session %x, which ended at revision %d", c, c.Owner, end)})
			}
			if live[c.Owner] == nil {
				live[c.Owner] = map[string]bool{}
			}
			live[c.Owner][c.Path] = true
			owner[c.Path] = c.Owner
		}
		for s, paths := range live {
			if end, ended := z.sessionEnd[s]; ended && end <= rev && len(paths) > 0 {
				vs = append(vs, Violation{Checker: "zk-session",
					Detail: fmt.Sprintf("session %x ended at revision %d, yet its ephemerals %v are live at revision %d", s, end, slices.Sorted(mapKeys(paths)), rev)})
				delete(live, s)
			}
		}
	}
	for i := range h.Ops {
		o := &h.Ops[i]
		switch {
		case o.Kind == ZKClose && !o.Unknown() && o.Code == jute.CodeOK:
			if end, ok := z.sessionEnd[o.Session]; !ok || end > o.Zxid {
				vs = append(vs, Violation{Checker: "zk-session", Detail: fmt.Sprintf("%s: the session is live at that zxid (ended: %v at %d)", o.String(), ok, end)})
			}
		case o.Kind == ZKExpired:
			if _, ok := z.sessionEnd[o.Session]; !ok {
				vs = append(vs, Violation{Checker: "zk-session", Detail: fmt.Sprintf("%s: the session was never ended in the history", o.String())})
			}
		}
	}
	return vs
}

func mapKeys(m map[string]bool) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// zkLockWrite is a write made under the ZooKeeper lock, as the history
// holds it: the value names the writer's lock node and its token.
type zkLockWrite struct {
	rev   int64
	where string
	value string
}

// checkZKLock judges the ZooKeeper lock by fencing tokens: every write made
// under it, to the znode or to the etcd key, must have been made at its
// revision by the owner, the live lock node with the lowest czxid, with
// that node's czxid as its token; and tokens never go back.
func checkZKLock(z *zkStore, store *StoreHistory) []Violation {
	var ws []zkLockWrite
	for _, i := range z.byPath[zkLockData] {
		if c := z.changes[i]; c.Kind == zkDataChanged {
			ws = append(ws, zkLockWrite{c.Rev, zkLockData, c.Data})
		}
	}
	for _, e := range store.Events {
		if e.Key == zkLockKey && !e.Delete {
			ws = append(ws, zkLockWrite{e.Rev, zkLockKey, e.Value})
		}
	}
	sort.SliceStable(ws, func(i, j int) bool { return ws[i].rev < ws[j].rev })
	var lockNodes []string
	for p := range z.byPath {
		if parent, _, ok := cutLast(p); ok && parent == zkLockDir {
			lockNodes = append(lockNodes, p)
		}
	}
	sort.Strings(lockNodes)
	var vs []Violation
	var lastToken int64
	for _, w := range ws {
		name, rest, ok := strings.Cut(w.value, "@")
		tok, _, _ := strings.Cut(rest, "#")
		token, err := strconv.ParseInt(tok, 10, 64)
		if !ok || err != nil {
			vs = append(vs, Violation{Checker: "zk-lock", Detail: fmt.Sprintf("%s at revision %d holds %q, not a tagged value", w.where, w.rev, w.value)})
			continue
		}
		var own zkChange
		var live []string
		for _, p := range lockNodes {
			c, exists := z.at(p, w.rev)
			if !exists {
				continue
			}
			live = append(live, c.String())
			if own.Path == "" || c.Czxid < own.Czxid {
				own = c
			}
		}
		if own.Path != zkLockDir+"/"+name || own.Czxid != token {
			vs = append(vs, Violation{Checker: "zk-lock",
				Detail: fmt.Sprintf("%s=%s was written at revision %d by %s (token %d) while the owner was %q (czxid %d)",
					w.where, w.value, w.rev, name, token, own.Path, own.Czxid),
				Context: live})
			continue
		}
		if token < lastToken {
			vs = append(vs, Violation{Checker: "zk-lock",
				Detail: fmt.Sprintf("%s=%s was written at revision %d with fencing token %d after one with %d", w.where, w.value, w.rev, token, lastToken)})
		}
		lastToken = token
	}
	return vs
}

// checkZKWatches checks every data watch: it fires at most once, for the
// node's first change after the read that set it (the event's zxid is that
// change's revision, its type that change's), and before any reply that
// shows the change; no data event comes without a watch.
func checkZKWatches(h *ZKHistory, z *zkStore) []Violation {
	var vs []Violation
	for _, w := range h.Watches {
		desc := fmt.Sprintf("data watch of c%d session %x on %s set by a read at %d", w.Client, w.Session, w.Path, w.Rev)
		fail := func(format string, args ...any) {
			ctx := h.Around(w.Path, w.Set, aroundWindow)
			for _, e := range w.Events {
				ctx = append(ctx, e.String())
			}
			vs = append(vs, Violation{Checker: "zk-watch", Detail: desc + ": " + fmt.Sprintf(format, args...), Context: ctx})
		}
		if len(w.Events) > 1 {
			fail("fired %d times", len(w.Events))
		}
		first, changed := z.firstChangeAfter(w.Path, w.Rev)
		if len(w.Events) == 0 {
			if changed && w.Seen >= first.Rev {
				fail("no event for %v, yet a reply at zxid %d came", first, w.Seen)
			}
			continue
		}
		ev := w.Events[0]
		want := jute.EventNodeDataChanged
		if first.Kind == zkDeleted {
			want = jute.EventNodeDeleted
		}
		switch {
		case !changed:
			fail("event %v, but the node never changed after %d", ev, w.Rev)
		case ev.Zxid > 0 && (ev.Zxid != first.Rev || ev.Type != want):
			fail("event %v, but the first change after the read is %v", ev, first)
		case ev.Zxid <= 0 && ev.Type == jute.EventNodeDeleted && !z.deletedAfter(w.Path, w.Rev):
			fail("event %v, but the node was not deleted after %d", ev, w.Rev)
		case ev.Type != jute.EventNodeDataChanged && ev.Type != jute.EventNodeDeleted:
			fail("event %v of a type a data watch does not fire", ev)
		}
		if changed && w.Seen >= first.Rev {
			fail("its event came after a reply at zxid %d, which shows %v", w.Seen, first)
		}
	}
	for _, e := range h.Stray {
		vs = append(vs, Violation{Checker: "zk-watch",
			Detail:  fmt.Sprintf("%v came with no data watch outstanding on its path (a watch fired twice?)", e),
			Context: h.Around(e.Path, e.At, aroundWindow)})
	}
	return vs
}

func (z *zkStore) deletedAfter(path string, rev int64) bool {
	for _, i := range z.byPath[path] {
		if c := z.changes[i]; c.Rev > rev && c.Kind == zkDeleted {
			return true
		}
	}
	return false
}
