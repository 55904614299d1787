package jute

// Minimum encoded sizes, used to bound vector counts by the bytes left.
const (
	minIDLen         = 4 + 4        // two empty ustrings
	minACLLen        = 4 + minIDLen // perms + Id
	minClientInfoLen = 4 + 4
)

// Id is an authentication identity: a scheme and an id within it.
type Id struct {
	Scheme string
	ID     string
}

// Encode implements Record.
func (x *Id) Encode(w *Writer) {
	w.UString(x.Scheme)
	w.UString(x.ID)
}

// Decode implements Record.
func (x *Id) Decode(r *Reader) error {
	x.Scheme = r.UString()
	x.ID = r.UString()
	return r.Err()
}

// ACL grants permissions to an identity.
type ACL struct {
	Perms Perm
	ID    Id
}

// Encode implements Record.
func (x *ACL) Encode(w *Writer) {
	w.Int32(int32(x.Perms))
	x.ID.Encode(w)
}

// Decode implements Record.
func (x *ACL) Decode(r *Reader) error {
	x.Perms = Perm(r.Int32())
	return x.ID.Decode(r)
}

func encodeACLs(w *Writer, acl []ACL) {
	w.VectorLen(len(acl))
	for i := range acl {
		acl[i].Encode(w)
	}
}

func decodeACLs(r *Reader) []ACL {
	n := r.VectorLen(minACLLen)
	if n == 0 {
		return nil
	}
	acl := make([]ACL, n)
	for i := range acl {
		acl[i].Decode(r)
	}
	if r.Err() != nil {
		return nil
	}
	return acl
}

// Stat is the metadata of a znode, as clients see it.
type Stat struct {
	Czxid          int64 // zxid of the create
	Mzxid          int64 // zxid of the last data change
	Ctime          int64 // create time, ms since the epoch
	Mtime          int64 // last data change time, ms since the epoch
	Version        int32 // number of data changes
	Cversion       int32 // number of child changes
	Aversion       int32 // number of ACL changes
	EphemeralOwner int64 // owning session of an ephemeral, 0 otherwise
	DataLength     int32
	NumChildren    int32
	Pzxid          int64 // zxid of the last child change
}

// Encode implements Record.
func (x *Stat) Encode(w *Writer) {
	w.Int64(x.Czxid)
	w.Int64(x.Mzxid)
	w.Int64(x.Ctime)
	w.Int64(x.Mtime)
	w.Int32(x.Version)
	w.Int32(x.Cversion)
	w.Int32(x.Aversion)
	w.Int64(x.EphemeralOwner)
	w.Int32(x.DataLength)
	w.Int32(x.NumChildren)
	w.Int64(x.Pzxid)
}

// Decode implements Record.
func (x *Stat) Decode(r *Reader) error {
	x.Czxid = r.Int64()
	x.Mzxid = r.Int64()
	x.Ctime = r.Int64()
	x.Mtime = r.Int64()
	x.Version = r.Int32()
	x.Cversion = r.Int32()
	x.Aversion = r.Int32()
	x.EphemeralOwner = r.Int64()
	x.DataLength = r.Int32()
	x.NumChildren = r.Int32()
	x.Pzxid = r.Int64()
	return r.Err()
}

// StatPersisted is the part of Stat a server stores; DataLength and
// NumChildren are derived.
type StatPersisted struct {
	Czxid          int64
	Mzxid          int64
	Ctime          int64
	Mtime          int64
	Version        int32
	Cversion       int32
	Aversion       int32
	EphemeralOwner int64
	Pzxid          int64
}

// Encode implements Record.
func (x *StatPersisted) Encode(w *Writer) {
	w.Int64(x.Czxid)
	w.Int64(x.Mzxid)
	w.Int64(x.Ctime)
	w.Int64(x.Mtime)
	w.Int32(x.Version)
	w.Int32(x.Cversion)
	w.Int32(x.Aversion)
	w.Int64(x.EphemeralOwner)
	w.Int64(x.Pzxid)
}

// Decode implements Record.
func (x *StatPersisted) Decode(r *Reader) error {
	x.Czxid = r.Int64()
	x.Mzxid = r.Int64()
	x.Ctime = r.Int64()
	x.Mtime = r.Int64()
	x.Version = r.Int32()
	x.Cversion = r.Int32()
	x.Aversion = r.Int32()
	x.EphemeralOwner = r.Int64()
	x.Pzxid = r.Int64()
	return r.Err()
}

// ClientInfo is one identity of a session, as whoAmI reports it.
type ClientInfo struct {
	AuthScheme string
	User       string
}

// Encode implements Record.
func (x *ClientInfo) Encode(w *Writer) {
	w.UString(x.AuthScheme)
	w.UString(x.User)
}

// Decode implements Record.
func (x *ClientInfo) Decode(r *Reader) error {
	x.AuthScheme = r.UString()
	x.User = r.UString()
	return r.Err()
}

// ConnectRequest opens or resumes a session; it is the first frame of a
// connection and has no RequestHeader.
type ConnectRequest struct {
	ProtocolVersion int32
	LastZxidSeen    int64
	TimeOut         int32 // requested session timeout, ms
	SessionID       int64 // 0 for a new session
	Passwd          []byte
	// ReadOnly is sent by 3.4+ clients after the record; older clients
	// omit it and it then decodes as false.
	ReadOnly bool
}

// Encode implements Record; it always writes the readOnly flag.
func (x *ConnectRequest) Encode(w *Writer) {
	w.Int32(x.ProtocolVersion)
	w.Int64(x.LastZxidSeen)
	w.Int32(x.TimeOut)
	w.Int64(x.SessionID)
	w.Buffer(x.Passwd)
	w.Bool(x.ReadOnly)
}

// Decode implements Record.
func (x *ConnectRequest) Decode(r *Reader) error {
	x.ProtocolVersion = r.Int32()
	x.LastZxidSeen = r.Int64()
	x.TimeOut = r.Int32()
	x.SessionID = r.Int64()
	x.Passwd = r.Buffer()
	x.ReadOnly = false
	if r.Err() == nil && r.Len() > 0 {
		x.ReadOnly = r.Bool()
	}
	return r.Err()
}

// ConnectResponse answers a ConnectRequest. A TimeOut of 0 tells the client
// its session expired.
type ConnectResponse struct {
	ProtocolVersion int32
	TimeOut         int32 // negotiated session timeout, ms
	SessionID       int64
	Passwd          []byte
	// ReadOnly follows the record, as for ConnectRequest; servers before 3.4
	// did not send it.
	ReadOnly bool
}

// Encode implements Record; it always writes the readOnly flag.
func (x *ConnectResponse) Encode(w *Writer) {
	w.Int32(x.ProtocolVersion)
	w.Int32(x.TimeOut)
	w.Int64(x.SessionID)
	w.Buffer(x.Passwd)
	w.Bool(x.ReadOnly)
}

// Decode implements Record.
func (x *ConnectResponse) Decode(r *Reader) error {
	x.ProtocolVersion = r.Int32()
	x.TimeOut = r.Int32()
	x.SessionID = r.Int64()
	x.Passwd = r.Buffer()
	x.ReadOnly = false
	if r.Err() == nil && r.Len() > 0 {
		x.ReadOnly = r.Bool()
	}
	return r.Err()
}

// RequestHeader starts every request frame after the connect.
type RequestHeader struct {
	Xid  int32
	Type OpCode
}

// Encode implements Record.
func (x *RequestHeader) Encode(w *Writer) {
	w.Int32(x.Xid)
	w.Int32(int32(x.Type))
}

// Decode implements Record.
func (x *RequestHeader) Decode(r *Reader) error {
	x.Xid = r.Int32()
	x.Type = OpCode(r.Int32())
	return r.Err()
}

// ReplyHeader starts every reply frame after the connect. When Err is not
// CodeOK the reply has no body.
type ReplyHeader struct {
	Xid  int32
	Zxid int64
	Err  Code
}

// Encode implements Record.
func (x *ReplyHeader) Encode(w *Writer) {
	w.Int32(x.Xid)
	w.Int64(x.Zxid)
	w.Int32(int32(x.Err))
}

// Decode implements Record.
func (x *ReplyHeader) Decode(r *Reader) error {
	x.Xid = r.Int32()
	x.Zxid = r.Int64()
	x.Err = Code(r.Int32())
	return r.Err()
}

// MultiHeader precedes each op of a multi request or result; one with Done
// set (type -1, err -1) ends the list.
type MultiHeader struct {
	Type OpCode
	Done bool
	Err  Code
}

// Encode implements Record.
func (x *MultiHeader) Encode(w *Writer) {
	w.Int32(int32(x.Type))
	w.Bool(x.Done)
	w.Int32(int32(x.Err))
}

// Decode implements Record.
func (x *MultiHeader) Decode(r *Reader) error {
	x.Type = OpCode(r.Int32())
	x.Done = r.Bool()
	x.Err = Code(r.Int32())
	return r.Err()
}

// encodeMultiEnd appends the header that ends a multi request or response.
func encodeMultiEnd(w *Writer) {
	end := MultiHeader{Type: OpError, Done: true, Err: -1}
	end.Encode(w)
}

// AuthPacket adds an identity to the session (opcode auth, xid XidAuth).
type AuthPacket struct {
	Type   int32 // always 0 in practice
	Scheme string
	Auth   []byte
}

// Encode implements Record.
func (x *AuthPacket) Encode(w *Writer) {
	w.Int32(x.Type)
	w.UString(x.Scheme)
	w.Buffer(x.Auth)
}

// Decode implements Record.
func (x *AuthPacket) Decode(r *Reader) error {
	x.Type = r.Int32()
	x.Scheme = r.UString()
	x.Auth = r.Buffer()
	return r.Err()
}

// WatcherEvent is the body of a notification (xid XidNotification).
type WatcherEvent struct {
	Type  EventType
	State KeeperState
	Path  string
}

// Encode implements Record.
func (x *WatcherEvent) Encode(w *Writer) {
	w.Int32(int32(x.Type))
	w.Int32(int32(x.State))
	w.UString(x.Path)
}

// Decode implements Record.
func (x *WatcherEvent) Decode(r *Reader) error {
	x.Type = EventType(r.Int32())
	x.State = KeeperState(r.Int32())
	x.Path = r.UString()
	return r.Err()
}

// ErrorResponse carries an error code: the body of a failed op in a multi
// response, and of a successful addWatch reply.
type ErrorResponse struct {
	Err Code
}

// Encode implements Record.
func (x *ErrorResponse) Encode(w *Writer) { w.Int32(int32(x.Err)) }

// Decode implements Record.
func (x *ErrorResponse) Decode(r *Reader) error {
	x.Err = Code(r.Int32())
	return r.Err()
}

// CreateRequest is the body of create, create2 and createContainer.
type CreateRequest struct {
	Path  string
	Data  []byte
	ACL   []ACL
	Flags CreateMode
}

// Encode implements Record.
func (x *CreateRequest) Encode(w *Writer) {
	w.UString(x.Path)
	w.Buffer(x.Data)
	encodeACLs(w, x.ACL)
	w.Int32(int32(x.Flags))
}

// Decode implements Record.
func (x *CreateRequest) Decode(r *Reader) error {
	x.Path = r.UString()
	x.Data = r.Buffer()
	x.ACL = decodeACLs(r)
	x.Flags = CreateMode(r.Int32())
	return r.Err()
}

// CreateTTLRequest is the body of createTTL.
type CreateTTLRequest struct {
	Path  string
	Data  []byte
	ACL   []ACL
	Flags CreateMode
	TTL   int64 // ms
}

// Encode implements Record.
func (x *CreateTTLRequest) Encode(w *Writer) {
	w.UString(x.Path)
	w.Buffer(x.Data)
	encodeACLs(w, x.ACL)
	w.Int32(int32(x.Flags))
	w.Int64(x.TTL)
}

// Decode implements Record.
func (x *CreateTTLRequest) Decode(r *Reader) error {
	x.Path = r.UString()
	x.Data = r.Buffer()
	x.ACL = decodeACLs(r)
	x.Flags = CreateMode(r.Int32())
	x.TTL = r.Int64()
	return r.Err()
}

// CreateResponse answers create.
type CreateResponse struct {
	Path string
}

// Encode implements Record.
func (x *CreateResponse) Encode(w *Writer) { w.UString(x.Path) }

// Decode implements Record.
func (x *CreateResponse) Decode(r *Reader) error {
	x.Path = r.UString()
	return r.Err()
}

// Create2Response answers create2, createContainer and createTTL.
type Create2Response struct {
	Path string
	Stat Stat
}

// Encode implements Record.
func (x *Create2Response) Encode(w *Writer) {
	w.UString(x.Path)
	x.Stat.Encode(w)
}

// Decode implements Record.
func (x *Create2Response) Decode(r *Reader) error {
	x.Path = r.UString()
	return x.Stat.Decode(r)
}

// DeleteRequest is the body of delete.
type DeleteRequest struct {
	Path    string
	Version int32 // -1 matches any version
}

// Encode implements Record.
func (x *DeleteRequest) Encode(w *Writer) {
	w.UString(x.Path)
	w.Int32(x.Version)
}

// Decode implements Record.
func (x *DeleteRequest) Decode(r *Reader) error {
	x.Path = r.UString()
	x.Version = r.Int32()
	return r.Err()
}

// ExistsRequest is the body of exists.
type ExistsRequest struct {
	Path  string
	Watch bool
}

// Encode implements Record.
func (x *ExistsRequest) Encode(w *Writer) {
	w.UString(x.Path)
	w.Bool(x.Watch)
}

// Decode implements Record.
func (x *ExistsRequest) Decode(r *Reader) error {
	x.Path = r.UString()
	x.Watch = r.Bool()
	return r.Err()
}

// ExistsResponse answers exists when the node exists (NONODE otherwise).
type ExistsResponse struct {
	Stat Stat
}

// Encode implements Record.
func (x *ExistsResponse) Encode(w *Writer) { x.Stat.Encode(w) }

// Decode implements Record.
func (x *ExistsResponse) Decode(r *Reader) error { return x.Stat.Decode(r) }

// GetDataRequest is the body of getData.
type GetDataRequest struct {
	Path  string
	Watch bool
}

// Encode implements Record.
func (x *GetDataRequest) Encode(w *Writer) {
	w.UString(x.Path)
	w.Bool(x.Watch)
}

// Decode implements Record.
func (x *GetDataRequest) Decode(r *Reader) error {
	x.Path = r.UString()
	x.Watch = r.Bool()
	return r.Err()
}

// GetDataResponse answers getData.
type GetDataResponse struct {
	Data []byte
	Stat Stat
}

// Encode implements Record.
func (x *GetDataResponse) Encode(w *Writer) {
	w.Buffer(x.Data)
	x.Stat.Encode(w)
}

// Decode implements Record.
func (x *GetDataResponse) Decode(r *Reader) error {
	x.Data = r.Buffer()
	return x.Stat.Decode(r)
}

// SetDataRequest is the body of setData.
type SetDataRequest struct {
	Path    string
	Data    []byte
	Version int32 // -1 matches any version
}

// Encode implements Record.
func (x *SetDataRequest) Encode(w *Writer) {
	w.UString(x.Path)
	w.Buffer(x.Data)
	w.Int32(x.Version)
}

// Decode implements Record.
func (x *SetDataRequest) Decode(r *Reader) error {
	x.Path = r.UString()
	x.Data = r.Buffer()
	x.Version = r.Int32()
	return r.Err()
}

// SetDataResponse answers setData, and also a stand-alone check (ZooKeeper's
// server answers OpCheck with this record).
type SetDataResponse struct {
	Stat Stat
}

// Encode implements Record.
func (x *SetDataResponse) Encode(w *Writer) { x.Stat.Encode(w) }

// Decode implements Record.
func (x *SetDataResponse) Decode(r *Reader) error { return x.Stat.Decode(r) }

// GetACLRequest is the body of getACL.
type GetACLRequest struct {
	Path string
}

// Encode implements Record.
func (x *GetACLRequest) Encode(w *Writer) { w.UString(x.Path) }

// Decode implements Record.
func (x *GetACLRequest) Decode(r *Reader) error {
	x.Path = r.UString()
	return r.Err()
}

// GetACLResponse answers getACL.
type GetACLResponse struct {
	ACL  []ACL
	Stat Stat
}

// Encode implements Record.
func (x *GetACLResponse) Encode(w *Writer) {
	encodeACLs(w, x.ACL)
	x.Stat.Encode(w)
}

// Decode implements Record.
func (x *GetACLResponse) Decode(r *Reader) error {
	x.ACL = decodeACLs(r)
	return x.Stat.Decode(r)
}

// SetACLRequest is the body of setACL.
type SetACLRequest struct {
	Path    string
	ACL     []ACL
	Version int32 // expected aversion, -1 matches any
}

// Encode implements Record.
func (x *SetACLRequest) Encode(w *Writer) {
	w.UString(x.Path)
	encodeACLs(w, x.ACL)
	w.Int32(x.Version)
}

// Decode implements Record.
func (x *SetACLRequest) Decode(r *Reader) error {
	x.Path = r.UString()
	x.ACL = decodeACLs(r)
	x.Version = r.Int32()
	return r.Err()
}

// SetACLResponse answers setACL.
type SetACLResponse struct {
	Stat Stat
}

// Encode implements Record.
func (x *SetACLResponse) Encode(w *Writer) { x.Stat.Encode(w) }

// Decode implements Record.
func (x *SetACLResponse) Decode(r *Reader) error { return x.Stat.Decode(r) }

// GetChildrenRequest is the body of getChildren.
type GetChildrenRequest struct {
	Path  string
	Watch bool
}

// Encode implements Record.
func (x *GetChildrenRequest) Encode(w *Writer) {
	w.UString(x.Path)
	w.Bool(x.Watch)
}

// Decode implements Record.
func (x *GetChildrenRequest) Decode(r *Reader) error {
	x.Path = r.UString()
	x.Watch = r.Bool()
	return r.Err()
}

// GetChildrenResponse answers getChildren.
type GetChildrenResponse struct {
	Children []string
}

// Encode implements Record.
func (x *GetChildrenResponse) Encode(w *Writer) { w.StringVector(x.Children) }

// Decode implements Record.
func (x *GetChildrenResponse) Decode(r *Reader) error {
	x.Children = r.StringVector()
	return r.Err()
}

// GetChildren2Request is the body of getChildren2.
type GetChildren2Request struct {
	Path  string
	Watch bool
}

// Encode implements Record.
func (x *GetChildren2Request) Encode(w *Writer) {
	w.UString(x.Path)
	w.Bool(x.Watch)
}

// Decode implements Record.
func (x *GetChildren2Request) Decode(r *Reader) error {
	x.Path = r.UString()
	x.Watch = r.Bool()
	return r.Err()
}

// GetChildren2Response answers getChildren2.
type GetChildren2Response struct {
	Children []string
	Stat     Stat
}

// Encode implements Record.
func (x *GetChildren2Response) Encode(w *Writer) {
	w.StringVector(x.Children)
	x.Stat.Encode(w)
}

// Decode implements Record.
func (x *GetChildren2Response) Decode(r *Reader) error {
	x.Children = r.StringVector()
	return x.Stat.Decode(r)
}

// GetAllChildrenNumberRequest is the body of getAllChildrenNumber.
type GetAllChildrenNumberRequest struct {
	Path string
}

// Encode implements Record.
func (x *GetAllChildrenNumberRequest) Encode(w *Writer) { w.UString(x.Path) }

// Decode implements Record.
func (x *GetAllChildrenNumberRequest) Decode(r *Reader) error {
	x.Path = r.UString()
	return r.Err()
}

// GetAllChildrenNumberResponse answers getAllChildrenNumber: the number of
// descendants, not counting the node itself.
type GetAllChildrenNumberResponse struct {
	TotalNumber int32
}

// Encode implements Record.
func (x *GetAllChildrenNumberResponse) Encode(w *Writer) { w.Int32(x.TotalNumber) }

// Decode implements Record.
func (x *GetAllChildrenNumberResponse) Decode(r *Reader) error {
	x.TotalNumber = r.Int32()
	return r.Err()
}

// GetEphemeralsRequest is the body of getEphemerals.
type GetEphemeralsRequest struct {
	PrefixPath string
}

// Encode implements Record.
func (x *GetEphemeralsRequest) Encode(w *Writer) { w.UString(x.PrefixPath) }

// Decode implements Record.
func (x *GetEphemeralsRequest) Decode(r *Reader) error {
	x.PrefixPath = r.UString()
	return r.Err()
}

// GetEphemeralsResponse answers getEphemerals.
type GetEphemeralsResponse struct {
	Ephemerals []string
}

// Encode implements Record.
func (x *GetEphemeralsResponse) Encode(w *Writer) { w.StringVector(x.Ephemerals) }

// Decode implements Record.
func (x *GetEphemeralsResponse) Decode(r *Reader) error {
	x.Ephemerals = r.StringVector()
	return r.Err()
}

// CheckVersionRequest is the body of check, alone or inside a multi.
type CheckVersionRequest struct {
	Path    string
	Version int32
}

// Encode implements Record.
func (x *CheckVersionRequest) Encode(w *Writer) {
	w.UString(x.Path)
	w.Int32(x.Version)
}

// Decode implements Record.
func (x *CheckVersionRequest) Decode(r *Reader) error {
	x.Path = r.UString()
	x.Version = r.Int32()
	return r.Err()
}

// SyncRequest is the body of sync.
type SyncRequest struct {
	Path string
}

// Encode implements Record.
func (x *SyncRequest) Encode(w *Writer) { w.UString(x.Path) }

// Decode implements Record.
func (x *SyncRequest) Decode(r *Reader) error {
	x.Path = r.UString()
	return r.Err()
}

// SyncResponse answers sync with the path it was asked for.
type SyncResponse struct {
	Path string
}

// Encode implements Record.
func (x *SyncResponse) Encode(w *Writer) { w.UString(x.Path) }

// Decode implements Record.
func (x *SyncResponse) Decode(r *Reader) error {
	x.Path = r.UString()
	return r.Err()
}

// SetWatches re-registers a reconnecting client's watches (opcode
// setWatches, xid XidSetWatches). RelativeZxid is the last zxid the client
// saw: the server fires every watch whose node changed after it.
type SetWatches struct {
	RelativeZxid int64
	DataWatches  []string
	ExistWatches []string
	ChildWatches []string
}

// Encode implements Record.
func (x *SetWatches) Encode(w *Writer) {
	w.Int64(x.RelativeZxid)
	w.StringVector(x.DataWatches)
	w.StringVector(x.ExistWatches)
	w.StringVector(x.ChildWatches)
}

// Decode implements Record.
func (x *SetWatches) Decode(r *Reader) error {
	x.RelativeZxid = r.Int64()
	x.DataWatches = r.StringVector()
	x.ExistWatches = r.StringVector()
	x.ChildWatches = r.StringVector()
	return r.Err()
}

// SetWatches2 is SetWatches with persistent watches (opcode setWatches2).
type SetWatches2 struct {
	RelativeZxid               int64
	DataWatches                []string
	ExistWatches               []string
	ChildWatches               []string
	PersistentWatches          []string
	PersistentRecursiveWatches []string
}

// Encode implements Record.
func (x *SetWatches2) Encode(w *Writer) {
	w.Int64(x.RelativeZxid)
	w.StringVector(x.DataWatches)
	w.StringVector(x.ExistWatches)
	w.StringVector(x.ChildWatches)
	w.StringVector(x.PersistentWatches)
	w.StringVector(x.PersistentRecursiveWatches)
}

// Decode implements Record.
func (x *SetWatches2) Decode(r *Reader) error {
	x.RelativeZxid = r.Int64()
	x.DataWatches = r.StringVector()
	x.ExistWatches = r.StringVector()
	x.ChildWatches = r.StringVector()
	x.PersistentWatches = r.StringVector()
	x.PersistentRecursiveWatches = r.StringVector()
	return r.Err()
}

// AddWatchRequest is the body of addWatch.
type AddWatchRequest struct {
	Path string
	Mode AddWatchMode
}

// Encode implements Record.
func (x *AddWatchRequest) Encode(w *Writer) {
	w.UString(x.Path)
	w.Int32(int32(x.Mode))
}

// Decode implements Record.
func (x *AddWatchRequest) Decode(r *Reader) error {
	x.Path = r.UString()
	x.Mode = AddWatchMode(r.Int32())
	return r.Err()
}

// CheckWatchesRequest is the body of checkWatches.
type CheckWatchesRequest struct {
	Path string
	Type WatcherType
}

// Encode implements Record.
func (x *CheckWatchesRequest) Encode(w *Writer) {
	w.UString(x.Path)
	w.Int32(int32(x.Type))
}

// Decode implements Record.
func (x *CheckWatchesRequest) Decode(r *Reader) error {
	x.Path = r.UString()
	x.Type = WatcherType(r.Int32())
	return r.Err()
}

// RemoveWatchesRequest is the body of removeWatches.
type RemoveWatchesRequest struct {
	Path string
	Type WatcherType
}

// Encode implements Record.
func (x *RemoveWatchesRequest) Encode(w *Writer) {
	w.UString(x.Path)
	w.Int32(int32(x.Type))
}

// Decode implements Record.
func (x *RemoveWatchesRequest) Decode(r *Reader) error {
	x.Path = r.UString()
	x.Type = WatcherType(r.Int32())
	return r.Err()
}

// WhoAmIResponse answers whoAmI with the session's identities.
type WhoAmIResponse struct {
	ClientInfo []ClientInfo
}

// Encode implements Record.
func (x *WhoAmIResponse) Encode(w *Writer) {
	w.VectorLen(len(x.ClientInfo))
	for i := range x.ClientInfo {
		x.ClientInfo[i].Encode(w)
	}
}

// Decode implements Record.
func (x *WhoAmIResponse) Decode(r *Reader) error {
	x.ClientInfo = nil
	n := r.VectorLen(minClientInfoLen)
	if n == 0 {
		return r.Err()
	}
	v := make([]ClientInfo, n)
	for i := range v {
		v[i].Decode(r)
	}
	if r.Err() == nil {
		x.ClientInfo = v
	}
	return r.Err()
}

// PingRequest is the empty body of ping (xid XidPing).
type PingRequest struct{}

// Encode implements Record.
func (*PingRequest) Encode(*Writer) {}

// Decode implements Record.
func (*PingRequest) Decode(r *Reader) error { return r.Err() }

// CloseSessionRequest is the empty body of closeSession.
type CloseSessionRequest struct{}

// Encode implements Record.
func (*CloseSessionRequest) Encode(*Writer) {}

// Decode implements Record.
func (*CloseSessionRequest) Decode(r *Reader) error { return r.Err() }

// WhoAmIRequest is the empty body of whoAmI.
type WhoAmIRequest struct{}

// Encode implements Record.
func (*WhoAmIRequest) Encode(*Writer) {}

// Decode implements Record.
func (*WhoAmIRequest) Decode(r *Reader) error { return r.Err() }

// EmptyResponse is the body of replies that carry only a ReplyHeader:
// delete, ping, auth, setWatches, setWatches2, checkWatches, removeWatches
// and closeSession.
type EmptyResponse struct{}

// Encode implements Record.
func (*EmptyResponse) Encode(*Writer) {}

// Decode implements Record.
func (*EmptyResponse) Decode(r *Reader) error { return r.Err() }
