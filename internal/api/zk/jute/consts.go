package jute

import "strconv"

// ProtocolVersion is the only ZooKeeper client protocol version there is.
const ProtocolVersion = 0

// PasswordLen is the length of a session password.
const PasswordLen = 16

// Special xids: replies and requests that do not answer a numbered request.
const (
	XidNotification int32 = -1 // server to client: a watch event
	XidPing         int32 = -2 // a ping and its reply
	XidAuth         int32 = -4 // an auth packet and its reply
	XidSetWatches   int32 = -8 // setWatches/setWatches2 after a reconnect
)

// OpCode is a request type (ZooDefs.OpCode).
type OpCode int32

// Opcodes of ZooKeeper 3.9. OpError is also the type of a failed op inside a
// multi response and of a multi's end marker.
const (
	OpNotification         OpCode = 0
	OpCreate               OpCode = 1
	OpDelete               OpCode = 2
	OpExists               OpCode = 3
	OpGetData              OpCode = 4
	OpSetData              OpCode = 5
	OpGetACL               OpCode = 6
	OpSetACL               OpCode = 7
	OpGetChildren          OpCode = 8
	OpSync                 OpCode = 9
	OpPing                 OpCode = 11
	OpGetChildren2         OpCode = 12
	OpCheck                OpCode = 13
	OpMulti                OpCode = 14
	OpCreate2              OpCode = 15
	OpReconfig             OpCode = 16
	OpCheckWatches         OpCode = 17
	OpRemoveWatches        OpCode = 18
	OpCreateContainer      OpCode = 19
	OpDeleteContainer      OpCode = 20
	OpCreateTTL            OpCode = 21
	OpMultiRead            OpCode = 22
	OpAuth                 OpCode = 100
	OpSetWatches           OpCode = 101
	OpSASL                 OpCode = 102
	OpGetEphemerals        OpCode = 103
	OpGetAllChildrenNumber OpCode = 104
	OpSetWatches2          OpCode = 105
	OpAddWatch             OpCode = 106
	OpWhoAmI               OpCode = 107
	OpCreateSession        OpCode = -10
	OpCloseSession         OpCode = -11
	OpError                OpCode = -1
)

// opName returns ZooKeeper's name for a known opcode. A switch rather than
// a map keeps the table immutable.
func opName(op OpCode) (string, bool) {
	switch op {
	case OpNotification:
		return "notification", true
	case OpCreate:
		return "create", true
	case OpDelete:
		return "delete", true
	case OpExists:
		return "exists", true
	case OpGetData:
		return "getData", true
	case OpSetData:
		return "setData", true
	case OpGetACL:
		return "getACL", true
	case OpSetACL:
		return "setACL", true
	case OpGetChildren:
		return "getChildren", true
	case OpSync:
		return "sync", true
	case OpPing:
		return "ping", true
	case OpGetChildren2:
		return "getChildren2", true
	case OpCheck:
		return "check", true
	case OpMulti:
		return "multi", true
	case OpCreate2:
		return "create2", true
	case OpReconfig:
		return "reconfig", true
	case OpCheckWatches:
		return "checkWatches", true
	case OpRemoveWatches:
		return "removeWatches", true
	case OpCreateContainer:
		return "createContainer", true
	case OpDeleteContainer:
		return "deleteContainer", true
	case OpCreateTTL:
		return "createTTL", true
	case OpMultiRead:
		return "multiRead", true
	case OpAuth:
		return "auth", true
	case OpSetWatches:
		return "setWatches", true
	case OpSASL:
		return "sasl", true
	case OpGetEphemerals:
		return "getEphemerals", true
	case OpGetAllChildrenNumber:
		return "getAllChildrenNumber", true
	case OpSetWatches2:
		return "setWatches2", true
	case OpAddWatch:
		return "addWatch", true
	case OpWhoAmI:
		return "whoAmI", true
	case OpCreateSession:
		return "createSession", true
	case OpCloseSession:
		return "closeSession", true
	case OpError:
		return "error", true
	}
	return "", false
}

// String returns ZooKeeper's name for the opcode.
func (op OpCode) String() string {
	if s, ok := opName(op); ok {
		return s
	}
	return "op(" + strconv.Itoa(int(op)) + ")"
}

// Code is a ZooKeeper error code (KeeperException.Code). It implements error,
// so a handler can return a Code and the connection can put it into the reply
// header; errors.Is matches a Code by value.
type Code int32

// Error codes, with ZooKeeper's exact values.
const (
	CodeOK                           Code = 0
	CodeSystemError                  Code = -1
	CodeRuntimeInconsistency         Code = -2
	CodeDataInconsistency            Code = -3
	CodeConnectionLoss               Code = -4
	CodeMarshallingError             Code = -5
	CodeUnimplemented                Code = -6
	CodeOperationTimeout             Code = -7
	CodeBadArguments                 Code = -8
	CodeUnknownSession               Code = -12
	CodeNewConfigNoQuorum            Code = -13
	CodeReconfigInProgress           Code = -14
	CodeAPIError                     Code = -100
	CodeNoNode                       Code = -101
	CodeNoAuth                       Code = -102
	CodeBadVersion                   Code = -103
	CodeNoChildrenForEphemerals      Code = -108
	CodeNodeExists                   Code = -110
	CodeNotEmpty                     Code = -111
	CodeSessionExpired               Code = -112
	CodeInvalidCallback              Code = -113
	CodeInvalidACL                   Code = -114
	CodeAuthFailed                   Code = -115
	CodeSessionMoved                 Code = -118
	CodeNotReadOnly                  Code = -119
	CodeEphemeralOnLocalSession      Code = -120
	CodeNoWatcher                    Code = -121
	CodeRequestTimeout               Code = -122
	CodeReconfigDisabled             Code = -123
	CodeSessionClosedRequireSASLAuth Code = -124
	CodeQuotaExceeded                Code = -125
	CodeThrottledOp                  Code = -127
)

type codeInfo struct{ name, msg string }

// codeInfoOf returns each code's enum name and the message ZooKeeper's
// KeeperException prints for it, including the two codes it has no message
// for and prints as "Unknown error NAME".
func codeInfoOf(c Code) (codeInfo, bool) {
	switch c {
	case CodeOK:
		return codeInfo{"OK", "ok"}, true
	case CodeSystemError:
		return codeInfo{"SYSTEMERROR", "SystemError"}, true
	case CodeRuntimeInconsistency:
		return codeInfo{"RUNTIMEINCONSISTENCY", "RuntimeInconsistency"}, true
	case CodeDataInconsistency:
		return codeInfo{"DATAINCONSISTENCY", "DataInconsistency"}, true
	case CodeConnectionLoss:
		return codeInfo{"CONNECTIONLOSS", "ConnectionLoss"}, true
	case CodeMarshallingError:
		return codeInfo{"MARSHALLINGERROR", "MarshallingError"}, true
	case CodeUnimplemented:
		return codeInfo{"UNIMPLEMENTED", "Unimplemented"}, true
	case CodeOperationTimeout:
		return codeInfo{"OPERATIONTIMEOUT", "OperationTimeout"}, true
	case CodeBadArguments:
		return codeInfo{"BADARGUMENTS", "BadArguments"}, true
	case CodeUnknownSession:
		return codeInfo{"UNKNOWNSESSION", "Unknown error UNKNOWNSESSION"}, true
	case CodeNewConfigNoQuorum:
		return codeInfo{"NEWCONFIGNOQUORUM", "NewConfigNoQuorum"}, true
	case CodeReconfigInProgress:
		return codeInfo{"RECONFIGINPROGRESS", "ReconfigInProgress"}, true
	case CodeAPIError:
		return codeInfo{"APIERROR", "APIError"}, true
	case CodeNoNode:
		return codeInfo{"NONODE", "NoNode"}, true
	case CodeNoAuth:
		return codeInfo{"NOAUTH", "NoAuth"}, true
	case CodeBadVersion:
		return codeInfo{"BADVERSION", "BadVersion"}, true
	case CodeNoChildrenForEphemerals:
		return codeInfo{"NOCHILDRENFOREPHEMERALS", "NoChildrenForEphemerals"}, true
	case CodeNodeExists:
		return codeInfo{"NODEEXISTS", "NodeExists"}, true
	case CodeNotEmpty:
		return codeInfo{"NOTEMPTY", "Directory not empty"}, true
	case CodeSessionExpired:
		return codeInfo{"SESSIONEXPIRED", "Session expired"}, true
	case CodeInvalidCallback:
		return codeInfo{"INVALIDCALLBACK", "Invalid callback"}, true
	case CodeInvalidACL:
		return codeInfo{"INVALIDACL", "InvalidACL"}, true
	case CodeAuthFailed:
		return codeInfo{"AUTHFAILED", "AuthFailed"}, true
	case CodeSessionMoved:
		return codeInfo{"SESSIONMOVED", "Session moved"}, true
	case CodeNotReadOnly:
		return codeInfo{"NOTREADONLY", "Not a read-only call"}, true
	case CodeEphemeralOnLocalSession:
		return codeInfo{"EPHEMERALONLOCALSESSION", "Ephemeral node on local session"}, true
	case CodeNoWatcher:
		return codeInfo{"NOWATCHER", "No such watcher"}, true
	case CodeRequestTimeout:
		return codeInfo{"REQUESTTIMEOUT", "Unknown error REQUESTTIMEOUT"}, true
	case CodeReconfigDisabled:
		return codeInfo{"RECONFIGDISABLED", "Reconfig is disabled"}, true
	case CodeSessionClosedRequireSASLAuth:
		return codeInfo{"SESSIONCLOSEDREQUIRESASLAUTH", "Session closed because client failed to authenticate"}, true
	case CodeQuotaExceeded:
		return codeInfo{"QUOTAEXCEEDED", "Quota has exceeded"}, true
	case CodeThrottledOp:
		return codeInfo{"THROTTLEDOP", "Op throttled due to high load"}, true
	}
	return codeInfo{}, false
}

// Known reports whether c is one of ZooKeeper's codes.
func (c Code) Known() bool {
	_, ok := codeInfoOf(c)
	return ok
}

// String returns the code's enum name, as in KeeperException.Code (NONODE).
func (c Code) String() string {
	if i, ok := codeInfoOf(c); ok {
		return i.name
	}
	return "Code(" + strconv.Itoa(int(c)) + ")"
}

// Error returns the message ZooKeeper's clients print for the code, such as
// "KeeperErrorCode = NoNode".
func (c Code) Error() string {
	if i, ok := codeInfoOf(c); ok {
		return "KeeperErrorCode = " + i.msg
	}
	return "KeeperErrorCode = Unknown error " + strconv.Itoa(int(c))
}

// CreateMode is the flags field of a create request (CreateMode.toFlag).
type CreateMode int32

// Create modes with their wire flags.
const (
	ModePersistent                  CreateMode = 0
	ModeEphemeral                   CreateMode = 1
	ModePersistentSequential        CreateMode = 2
	ModeEphemeralSequential         CreateMode = 3
	ModeContainer                   CreateMode = 4
	ModePersistentWithTTL           CreateMode = 5
	ModePersistentSequentialWithTTL CreateMode = 6
)

// Valid reports whether m is one of ZooKeeper's create modes; ZooKeeper
// answers any other flag with BADARGUMENTS.
func (m CreateMode) Valid() bool { return m >= ModePersistent && m <= ModePersistentSequentialWithTTL }

// Ephemeral reports whether nodes of this mode die with their session.
func (m CreateMode) Ephemeral() bool { return m == ModeEphemeral || m == ModeEphemeralSequential }

// Sequential reports whether the server appends a 10-digit sequence number.
func (m CreateMode) Sequential() bool {
	return m == ModePersistentSequential || m == ModeEphemeralSequential || m == ModePersistentSequentialWithTTL
}

// Container reports whether m is the container mode.
func (m CreateMode) Container() bool { return m == ModeContainer }

// TTL reports whether m is one of the TTL modes.
func (m CreateMode) TTL() bool {
	return m == ModePersistentWithTTL || m == ModePersistentSequentialWithTTL
}

// Perm is a set of ACL permission bits (ZooDefs.Perms).
type Perm int32

// Permission bits.
const (
	PermRead   Perm = 1 << 0
	PermWrite  Perm = 1 << 1
	PermCreate Perm = 1 << 2
	PermDelete Perm = 1 << 3
	PermAdmin  Perm = 1 << 4
	PermAll    Perm = PermRead | PermWrite | PermCreate | PermDelete | PermAdmin
)

// EventType is the type of a watch event (Watcher.Event.EventType).
type EventType int32

// Watch event types.
const (
	EventNone                   EventType = -1
	EventNodeCreated            EventType = 1
	EventNodeDeleted            EventType = 2
	EventNodeDataChanged        EventType = 3
	EventNodeChildrenChanged    EventType = 4
	EventDataWatchRemoved       EventType = 5
	EventChildWatchRemoved      EventType = 6
	EventPersistentWatchRemoved EventType = 7
)

// KeeperState is the session state carried by a watch event
// (Watcher.Event.KeeperState).
type KeeperState int32

// Keeper states. Unknown and NoSyncConnected are deprecated in ZooKeeper and
// never sent by its servers.
const (
	StateUnknown           KeeperState = -1
	StateDisconnected      KeeperState = 0
	StateNoSyncConnected   KeeperState = 1
	StateSyncConnected     KeeperState = 3
	StateAuthFailed        KeeperState = 4
	StateConnectedReadOnly KeeperState = 5
	StateSASLAuthenticated KeeperState = 6
	StateClosed            KeeperState = 7
	StateExpired           KeeperState = -112
)

// AddWatchMode is the mode of an addWatch request (ZooDefs.AddWatchModes).
type AddWatchMode int32

// addWatch modes.
const (
	AddWatchPersistent          AddWatchMode = 0
	AddWatchPersistentRecursive AddWatchMode = 1
)

// WatcherType selects the watches of a checkWatches or removeWatches request
// (Watcher.WatcherType).
type WatcherType int32

// Watcher types.
const (
	WatcherChildren            WatcherType = 1
	WatcherData                WatcherType = 2
	WatcherAny                 WatcherType = 3
	WatcherPersistent          WatcherType = 4
	WatcherPersistentRecursive WatcherType = 5
)
