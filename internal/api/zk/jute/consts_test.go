package jute

import (
	"errors"
	"fmt"
	"testing"
)

func TestCodeValuesAndNames(t *testing.T) {
	cases := []struct {
		code Code
		val  int32
		name string
		msg  string
	}{
		{CodeOK, 0, "OK", "ok"},
		{CodeSystemError, -1, "SYSTEMERROR", "SystemError"},
		{CodeRuntimeInconsistency, -2, "RUNTIMEINCONSISTENCY", "RuntimeInconsistency"},
		{CodeDataInconsistency, -3, "DATAINCONSISTENCY", "DataInconsistency"},
		{CodeConnectionLoss, -4, "CONNECTIONLOSS", "ConnectionLoss"},
		{CodeMarshallingError, -5, "MARSHALLINGERROR", "MarshallingError"},
		{CodeUnimplemented, -6, "UNIMPLEMENTED", "Unimplemented"},
		{CodeOperationTimeout, -7, "OPERATIONTIMEOUT", "OperationTimeout"},
		{CodeBadArguments, -8, "BADARGUMENTS", "BadArguments"},
		{CodeUnknownSession, -12, "UNKNOWNSESSION", "Unknown error UNKNOWNSESSION"},
		{CodeNewConfigNoQuorum, -13, "NEWCONFIGNOQUORUM", "NewConfigNoQuorum"},
		{CodeReconfigInProgress, -14, "RECONFIGINPROGRESS", "ReconfigInProgress"},
		{CodeAPIError, -100, "APIERROR", "APIError"},
		{CodeNoNode, -101, "NONODE", "NoNode"},
		{CodeNoAuth, -102, "NOAUTH", "NoAuth"},
		{CodeBadVersion, -103, "BADVERSION", "BadVersion"},
		{CodeNoChildrenForEphemerals, -108, "NOCHILDRENFOREPHEMERALS", "NoChildrenForEphemerals"},
		{CodeNodeExists, -110, "NODEEXISTS", "NodeExists"},
		{CodeNotEmpty, -111, "NOTEMPTY", "Directory not empty"},
		{CodeSessionExpired, -112, "SESSIONEXPIRED", "Session expired"},
		{CodeInvalidCallback, -113, "INVALIDCALLBACK", "Invalid callback"},
		{CodeInvalidACL, -114, "INVALIDACL", "InvalidACL"},
		{CodeAuthFailed, -115, "AUTHFAILED", "AuthFailed"},
		{CodeSessionMoved, -118, "SESSIONMOVED", "Session moved"},
		{CodeNotReadOnly, -119, "NOTREADONLY", "Not a read-only call"},
		{CodeEphemeralOnLocalSession, -120, "EPHEMERALONLOCALSESSION", "Ephemeral node on local session"},
		{CodeNoWatcher, -121, "NOWATCHER", "No such watcher"},
		{CodeRequestTimeout, -122, "REQUESTTIMEOUT", "Unknown error REQUESTTIMEOUT"},
		{CodeReconfigDisabled, -123, "RECONFIGDISABLED", "Reconfig is disabled"},
		{CodeSessionClosedRequireSASLAuth, -124, "SESSIONCLOSEDREQUIRESASLAUTH", "Session closed because client failed to authenticate"},
		{CodeQuotaExceeded, -125, "QUOTAEXCEEDED", "Quota has exceeded"},
		{CodeThrottledOp, -127, "THROTTLEDOP", "Op throttled due to high load"},
	}
	known := 0
	for c := Code(-1000); c <= 1000; c++ {
		if c.Known() {
			known++
		}
	}
	if len(cases) != known {
		t.Fatalf("%d codes tested, %d defined", len(cases), known)
	}
	for _, c := range cases {
		if int32(c.code) != c.val || c.code.String() != c.name || c.code.Error() != "KeeperErrorCode = "+c.msg || !c.code.Known() {
			t.Errorf("%d: got %d %q %q", c.val, int32(c.code), c.code.String(), c.code.Error())
		}
	}
	if Code(-999).Known() || Code(-999).Error() != "KeeperErrorCode = Unknown error -999" || Code(-999).String() != "Code(-999)" {
		t.Errorf("unknown code: %q %q", Code(-999).Error(), Code(-999).String())
	}
	// A Code is an error that survives wrapping.
	err := fmt.Errorf("delete /a: %w", CodeNotEmpty)
	if !errors.Is(err, CodeNotEmpty) || errors.Is(err, CodeNoNode) {
		t.Error("errors.Is does not match a wrapped Code")
	}
	var c Code
	if !errors.As(err, &c) || c != CodeNotEmpty {
		t.Error("errors.As does not find the Code")
	}
}

func TestOpCodeValues(t *testing.T) {
	want := map[OpCode]int32{
		OpNotification: 0, OpCreate: 1, OpDelete: 2, OpExists: 3, OpGetData: 4, OpSetData: 5,
		OpGetACL: 6, OpSetACL: 7, OpGetChildren: 8, OpSync: 9, OpPing: 11, OpGetChildren2: 12,
		OpCheck: 13, OpMulti: 14, OpCreate2: 15, OpReconfig: 16, OpCheckWatches: 17,
		OpRemoveWatches: 18, OpCreateContainer: 19, OpDeleteContainer: 20, OpCreateTTL: 21,
		OpMultiRead: 22, OpAuth: 100, OpSetWatches: 101, OpSASL: 102, OpGetEphemerals: 103,
		OpGetAllChildrenNumber: 104, OpSetWatches2: 105, OpAddWatch: 106, OpWhoAmI: 107,
		OpCreateSession: -10, OpCloseSession: -11, OpError: -1,
	}
	for op, v := range want {
		if int32(op) != v {
			t.Errorf("%v = %d, want %d", op, int32(op), v)
		}
		if _, ok := opName(op); !ok {
			t.Errorf("%d has no name", v)
		}
	}
	if OpGetChildren2.String() != "getChildren2" || OpCode(77).String() != "op(77)" {
		t.Errorf("names: %v %v", OpGetChildren2, OpCode(77))
	}
	if XidNotification != -1 || XidPing != -2 || XidAuth != -4 || XidSetWatches != -8 {
		t.Error("special xids")
	}
}

func TestCreateModes(t *testing.T) {
	cases := []struct {
		m                                  CreateMode
		flag                               int32
		ephemeral, sequential, cont, isTTL bool
	}{
		{ModePersistent, 0, false, false, false, false},
		{ModeEphemeral, 1, true, false, false, false},
		{ModePersistentSequential, 2, false, true, false, false},
		{ModeEphemeralSequential, 3, true, true, false, false},
		{ModeContainer, 4, false, false, true, false},
		{ModePersistentWithTTL, 5, false, false, false, true},
		{ModePersistentSequentialWithTTL, 6, false, true, false, true},
	}
	for _, c := range cases {
		if int32(c.m) != c.flag || !c.m.Valid() || c.m.Ephemeral() != c.ephemeral || c.m.Sequential() != c.sequential ||
			c.m.Container() != c.cont || c.m.TTL() != c.isTTL {
			t.Errorf("mode %d wrong", c.flag)
		}
	}
	if CreateMode(7).Valid() || CreateMode(-1).Valid() {
		t.Error("invalid flags accepted")
	}
}

func TestOtherConstants(t *testing.T) {
	if PermRead != 1 || PermWrite != 2 || PermCreate != 4 || PermDelete != 8 || PermAdmin != 16 || PermAll != 31 {
		t.Error("perms")
	}
	if EventNone != -1 || EventNodeCreated != 1 || EventNodeDeleted != 2 || EventNodeDataChanged != 3 ||
		EventNodeChildrenChanged != 4 || EventDataWatchRemoved != 5 || EventChildWatchRemoved != 6 || EventPersistentWatchRemoved != 7 {
		t.Error("event types")
	}
	if StateUnknown != -1 || StateDisconnected != 0 || StateNoSyncConnected != 1 || StateSyncConnected != 3 || StateAuthFailed != 4 ||
		StateConnectedReadOnly != 5 || StateSASLAuthenticated != 6 || StateClosed != 7 || StateExpired != -112 {
		t.Error("keeper states")
	}
	if AddWatchPersistent != 0 || AddWatchPersistentRecursive != 1 {
		t.Error("addWatch modes")
	}
	if WatcherChildren != 1 || WatcherData != 2 || WatcherAny != 3 || WatcherPersistent != 4 || WatcherPersistentRecursive != 5 {
		t.Error("watcher types")
	}
	if DefaultMaxBuffer != 1048575 || PasswordLen != 16 || ProtocolVersion != 0 {
		t.Error("limits")
	}
}
