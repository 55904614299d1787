package jute

import "fmt"

// Request is the body of a client request, after its RequestHeader.
type Request interface {
	Record
}

// Response is the body of a successful reply, after its ReplyHeader.
type Response interface {
	Record
}

// NewRequest returns an empty request record for op. Opcodes a client may
// not send (notification, createSession, deleteContainer, error) and the ones
// Ensemble does not serve (reconfig, sasl) fail with ErrUnknownOp.
func NewRequest(op OpCode) (Request, error) {
	switch op {
	case OpCreate, OpCreate2, OpCreateContainer:
		return &CreateRequest{}, nil
	case OpCreateTTL:
		return &CreateTTLRequest{}, nil
	case OpDelete:
		return &DeleteRequest{}, nil
	case OpExists:
		return &ExistsRequest{}, nil
	case OpGetData:
		return &GetDataRequest{}, nil
	case OpSetData:
		return &SetDataRequest{}, nil
	case OpGetACL:
		return &GetACLRequest{}, nil
	case OpSetACL:
		return &SetACLRequest{}, nil
	case OpGetChildren:
		return &GetChildrenRequest{}, nil
	case OpGetChildren2:
		return &GetChildren2Request{}, nil
	case OpGetAllChildrenNumber:
		return &GetAllChildrenNumberRequest{}, nil
	case OpGetEphemerals:
		return &GetEphemeralsRequest{}, nil
	case OpCheck:
		return &CheckVersionRequest{}, nil
	case OpMulti, OpMultiRead:
		return &MultiRequest{}, nil
	case OpSync:
		return &SyncRequest{}, nil
	case OpSetWatches:
		return &SetWatches{}, nil
	case OpSetWatches2:
		return &SetWatches2{}, nil
	case OpAddWatch:
		return &AddWatchRequest{}, nil
	case OpRemoveWatches:
		return &RemoveWatchesRequest{}, nil
	case OpCheckWatches:
		return &CheckWatchesRequest{}, nil
	case OpWhoAmI:
		return &WhoAmIRequest{}, nil
	case OpAuth:
		return &AuthPacket{}, nil
	case OpCloseSession:
		return &CloseSessionRequest{}, nil
	case OpPing:
		return &PingRequest{}, nil
	}
	return nil, fmt.Errorf("%w: request %v", ErrUnknownOp, op)
}

// DecodeRequest decodes the body of a request of type op from r, which is
// positioned just after the RequestHeader. The concrete type is the pointer
// NewRequest gives for op. A multi must hold only write ops and a multiRead
// only read ops.
func DecodeRequest(op OpCode, r *Reader) (Request, error) {
	req, err := NewRequest(op)
	if err != nil {
		return nil, err
	}
	if err := req.Decode(r); err != nil {
		return nil, err
	}
	if m, ok := req.(*MultiRequest); ok {
		for _, o := range m.Ops {
			if op == OpMulti && !IsMultiWriteOp(o.Type) || op == OpMultiRead && !IsMultiReadOp(o.Type) {
				return nil, fmt.Errorf("%w: %v inside %v", ErrMalformed, o.Type, op)
			}
		}
	}
	return req, nil
}

// NewResponse returns an empty response record for a successful reply to
// op: ZooKeeper's server sends Create2Response for create2, createContainer
// and createTTL, SetDataResponse for a stand-alone check, ErrorResponse{OK}
// for addWatch, and an empty body for delete, ping, auth, setWatches,
// setWatches2, checkWatches, removeWatches and closeSession.
func NewResponse(op OpCode) (Response, error) {
	switch op {
	case OpCreate:
		return &CreateResponse{}, nil
	case OpCreate2, OpCreateContainer, OpCreateTTL:
		return &Create2Response{}, nil
	case OpExists:
		return &ExistsResponse{}, nil
	case OpGetData:
		return &GetDataResponse{}, nil
	case OpSetData, OpCheck:
		return &SetDataResponse{}, nil
	case OpGetACL:
		return &GetACLResponse{}, nil
	case OpSetACL:
		return &SetACLResponse{}, nil
	case OpGetChildren:
		return &GetChildrenResponse{}, nil
	case OpGetChildren2:
		return &GetChildren2Response{}, nil
	case OpGetAllChildrenNumber:
		return &GetAllChildrenNumberResponse{}, nil
	case OpGetEphemerals:
		return &GetEphemeralsResponse{}, nil
	case OpMulti, OpMultiRead:
		return &MultiResponse{}, nil
	case OpSync:
		return &SyncResponse{}, nil
	case OpAddWatch:
		return &ErrorResponse{}, nil
	case OpWhoAmI:
		return &WhoAmIResponse{}, nil
	case OpDelete, OpPing, OpAuth, OpSetWatches, OpSetWatches2, OpCheckWatches, OpRemoveWatches, OpCloseSession:
		return &EmptyResponse{}, nil
	}
	return nil, fmt.Errorf("%w: response %v", ErrUnknownOp, op)
}

// DecodeResponse decodes the body of a successful reply to op from r, which
// is positioned just after the ReplyHeader. A reply whose header carries an
// error has no body and must not be decoded.
func DecodeResponse(op OpCode, r *Reader) (Response, error) {
	rsp, err := NewResponse(op)
	if err != nil {
		return nil, err
	}
	if err := rsp.Decode(r); err != nil {
		return nil, err
	}
	return rsp, nil
}
