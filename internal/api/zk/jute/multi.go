package jute

import "fmt"

// minMultiHeaderLen bounds how many ops a multi can claim: every op costs at
// least its header, so decoding ends after at most len(input)/9 ops.
const minMultiHeaderLen = 4 + 1 + 4

// MultiOp is one op of a multi or multiRead request. Op is
// *CreateRequest for create, create2 and createContainer; *CreateTTLRequest
// for createTTL; *DeleteRequest, *SetDataRequest and *CheckVersionRequest
// for delete, setData and check; *GetDataRequest and *GetChildrenRequest for
// the read ops of multiRead.
type MultiOp struct {
	Type OpCode
	Op   Request
}

// MultiRequest is the body of multi (write ops) and of multiRead (read ops).
type MultiRequest struct {
	Ops []MultiOp
}

// IsMultiWriteOp reports whether op may appear in a multi request.
func IsMultiWriteOp(op OpCode) bool {
	switch op {
	case OpCreate, OpCreate2, OpCreateContainer, OpCreateTTL, OpDelete, OpSetData, OpCheck:
		return true
	}
	return false
}

// IsMultiReadOp reports whether op may appear in a multiRead request.
func IsMultiReadOp(op OpCode) bool { return op == OpGetData || op == OpGetChildren }

// Encode implements Record.
func (x *MultiRequest) Encode(w *Writer) {
	for i := range x.Ops {
		op := &x.Ops[i]
		if op.Op == nil || !(IsMultiWriteOp(op.Type) || IsMultiReadOp(op.Type)) {
			w.fail(fmt.Errorf("%w: multi op %d of type %v", ErrInvalid, i, op.Type))
			return
		}
		h := MultiHeader{Type: op.Type, Err: -1}
		h.Encode(w)
		op.Op.Encode(w)
	}
	encodeMultiEnd(w)
}

// Decode implements Record. Like ZooKeeper, it refuses a multi that mixes
// read and write ops, an op type that cannot be in a multi, and a create
// whose flags are not a create mode.
func (x *MultiRequest) Decode(r *Reader) error {
	x.Ops = nil
	var h MultiHeader
	reads, writes := false, false
	for {
		if h.Decode(r) != nil {
			x.Ops = nil
			return r.Err()
		}
		if h.Done {
			break
		}
		var op Request
		switch h.Type {
		case OpCreate, OpCreate2, OpCreateContainer:
			op = &CreateRequest{}
		case OpCreateTTL:
			op = &CreateTTLRequest{}
		case OpDelete:
			op = &DeleteRequest{}
		case OpSetData:
			op = &SetDataRequest{}
		case OpCheck:
			op = &CheckVersionRequest{}
		case OpGetData:
			op = &GetDataRequest{}
		case OpGetChildren:
			op = &GetChildrenRequest{}
		default:
			r.fail(fmt.Errorf("%w: op type %v in a multi", ErrMalformed, h.Type))
			x.Ops = nil
			return r.Err()
		}
		if IsMultiReadOp(h.Type) {
			reads = true
		} else {
			writes = true
		}
		if reads && writes {
			r.fail(fmt.Errorf("%w: multi mixes read and write ops", ErrMalformed))
		}
		if op.Decode(r) != nil {
			x.Ops = nil
			return r.Err()
		}
		// ZooKeeper turns the flags into a CreateMode while it decodes a
		// multi, so bad flags there are a decoding error, not BADARGUMENTS.
		if c, ok := op.(*CreateRequest); ok && !c.Flags.Valid() {
			r.fail(fmt.Errorf("%w: multi create with flags %d", ErrMalformed, c.Flags))
			x.Ops = nil
			return r.Err()
		}
		x.Ops = append(x.Ops, MultiOp{Type: h.Type, Op: op})
	}
	return r.Err()
}

// MultiResult is the result of one op of a multi or multiRead. Type is the
// op's type, or OpError with Err set for an op that failed (in a failed
// multi every op gets an error result). Only the fields of Type's result
// are on the wire: Path for create; Path and Stat for create2 (the type a
// server gives createContainer and createTTL results too); Stat for setData;
// Data and Stat for getData; Children for getChildren; nothing for delete
// and check.
type MultiResult struct {
	Type     OpCode
	Err      Code
	Path     string
	Stat     Stat
	Data     []byte
	Children []string
}

// MultiResponse answers multi and multiRead.
type MultiResponse struct {
	Results []MultiResult
}

// Encode implements Record.
func (x *MultiResponse) Encode(w *Writer) {
	for i := range x.Results {
		res := &x.Results[i]
		h := MultiHeader{Type: res.Type}
		if res.Type == OpError {
			h.Err = res.Err
		}
		switch res.Type {
		case OpError, OpCreate, OpCreate2, OpDelete, OpCheck, OpSetData, OpGetData, OpGetChildren:
		default:
			w.fail(fmt.Errorf("%w: multi result %d of type %v", ErrInvalid, i, res.Type))
			return
		}
		h.Encode(w)
		switch res.Type {
		case OpError:
			w.Int32(int32(res.Err))
		case OpCreate:
			w.UString(res.Path)
		case OpCreate2:
			w.UString(res.Path)
			res.Stat.Encode(w)
		case OpSetData:
			res.Stat.Encode(w)
		case OpGetData:
			w.Buffer(res.Data)
			res.Stat.Encode(w)
		case OpGetChildren:
			w.StringVector(res.Children)
		}
	}
	encodeMultiEnd(w)
}

// Decode implements Record. The error code of a failed op is taken from its
// ErrorResponse body, as ZooKeeper's clients do.
func (x *MultiResponse) Decode(r *Reader) error {
	x.Results = nil
	var h MultiHeader
	for {
		if h.Decode(r) != nil {
			x.Results = nil
			return r.Err()
		}
		if h.Done {
			break
		}
		res := MultiResult{Type: h.Type}
		switch h.Type {
		case OpError:
			res.Err = Code(r.Int32())
		case OpCreate:
			res.Path = r.UString()
		case OpCreate2:
			res.Path = r.UString()
			res.Stat.Decode(r)
		case OpDelete, OpCheck:
		case OpSetData:
			res.Stat.Decode(r)
		case OpGetData:
			res.Data = r.Buffer()
			res.Stat.Decode(r)
		case OpGetChildren:
			res.Children = r.StringVector()
		default:
			r.fail(fmt.Errorf("%w: result type %v in a multi response", ErrMalformed, h.Type))
		}
		if r.Err() != nil {
			x.Results = nil
			return r.Err()
		}
		x.Results = append(x.Results, res)
	}
	return nil
}
