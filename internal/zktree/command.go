package zktree

import (
	"errors"
	"fmt"

	"ensemble/internal/api/zk/jute"
)

var (
	// ErrMalformed marks bytes that are not a command Marshal wrote.
	ErrMalformed = errors.New("zktree: malformed command")
	// ErrInvalidCommand marks a command that cannot be encoded: an unknown
	// op, or a request of the wrong type for its op.
	ErrInvalidCommand = errors.New("zktree: invalid command")
)

// commandVersion starts every encoded command, so that the layout can change
// while old log entries stay readable.
const commandVersion = 1

// minIDLen is the least an encoded jute.Id takes: two empty ustrings.
const minIDLen = 8

// Encoded command (jute primitives, big-endian):
//
//	int    version (1)
//	int    op
//	long   session
//	long   time
//	vector<Id> auth
//	the op's request record (nothing for closeSession)

// Marshal encodes c for the log.
func (c *Command) Marshal() ([]byte, error) {
	if err := checkReq(c.Op, c.Req); err != nil {
		return nil, err
	}
	w := jute.NewWriter(make([]byte, 0, 64))
	w.Int32(commandVersion)
	w.Int32(int32(c.Op))
	w.Int64(c.Session)
	w.Int64(c.Time)
	w.VectorLen(len(c.Auth))
	for i := range c.Auth {
		c.Auth[i].Encode(w)
	}
	if c.Req != nil {
		c.Req.Encode(w)
	}
	if err := w.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCommand, err)
	}
	return w.Bytes(), nil
}

// checkReq reports whether req is the request type of op.
func checkReq(op jute.OpCode, req jute.Record) error {
	ok := false
	switch op {
	case jute.OpCreate, jute.OpCreate2, jute.OpCreateContainer:
		_, ok = req.(*jute.CreateRequest)
	case jute.OpCreateTTL:
		_, ok = req.(*jute.CreateTTLRequest)
	case jute.OpDelete:
		_, ok = req.(*jute.DeleteRequest)
	case jute.OpSetData:
		_, ok = req.(*jute.SetDataRequest)
	case jute.OpSetACL:
		_, ok = req.(*jute.SetACLRequest)
	case jute.OpCheck:
		_, ok = req.(*jute.CheckVersionRequest)
	case jute.OpMulti:
		var m *jute.MultiRequest
		if m, ok = req.(*jute.MultiRequest); ok {
			for i := range m.Ops {
				if !jute.IsMultiWriteOp(m.Ops[i].Type) {
					return fmt.Errorf("%w: %v inside a multi", ErrInvalidCommand, m.Ops[i].Type)
				}
			}
		}
	case jute.OpCreateSession:
		_, ok = req.(*SessionRequest)
	case jute.OpCloseSession:
		_, isClose := req.(*jute.CloseSessionRequest)
		ok = req == nil || isClose
	case OpExpireTTL:
		_, ok = req.(*ExpireTTL)
	default:
		return fmt.Errorf("%w: op %v", ErrInvalidCommand, op)
	}
	if !ok {
		return fmt.Errorf("%w: %T for op %v", ErrInvalidCommand, req, op)
	}
	return nil
}

// UnmarshalCommand decodes what Marshal wrote; malformed input is an error,
// never a panic. Buffers in the result alias b.
func UnmarshalCommand(b []byte) (*Command, error) {
	r := jute.NewReader(b, 0)
	v := r.Int32()
	if r.Err() == nil && v != commandVersion {
		return nil, fmt.Errorf("%w: version %d", ErrMalformed, v)
	}
	c := &Command{Op: jute.OpCode(r.Int32()), Session: r.Int64(), Time: r.Int64()}
	if n := r.VectorLen(minIDLen); n > 0 {
		c.Auth = make([]jute.Id, n)
		for i := range c.Auth {
			c.Auth[i].Decode(r)
		}
	}
	if r.Err() != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, r.Err())
	}
	switch c.Op {
	case jute.OpCreate, jute.OpCreate2, jute.OpCreateContainer:
		c.Req = &jute.CreateRequest{}
	case jute.OpCreateTTL:
		c.Req = &jute.CreateTTLRequest{}
	case jute.OpDelete:
		c.Req = &jute.DeleteRequest{}
	case jute.OpSetData:
		c.Req = &jute.SetDataRequest{}
	case jute.OpSetACL:
		c.Req = &jute.SetACLRequest{}
	case jute.OpCheck:
		c.Req = &jute.CheckVersionRequest{}
	case jute.OpMulti:
		c.Req = &jute.MultiRequest{}
	case jute.OpCreateSession:
		c.Req = &SessionRequest{}
	case jute.OpCloseSession:
	case OpExpireTTL:
		c.Req = &ExpireTTL{}
	default:
		return nil, fmt.Errorf("%w: op %v", ErrMalformed, c.Op)
	}
	if c.Req != nil {
		if err := c.Req.Decode(r); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the request", ErrMalformed, r.Len())
	}
	if m, ok := c.Req.(*jute.MultiRequest); ok {
		for i := range m.Ops {
			if !jute.IsMultiWriteOp(m.Ops[i].Type) {
				return nil, fmt.Errorf("%w: %v inside a multi", ErrMalformed, m.Ops[i].Type)
			}
		}
	}
	return c, nil
}

// Encode implements jute.Record.
func (x *SessionRequest) Encode(w *jute.Writer) {
	w.Int32(x.Timeout)
	w.Buffer(x.Passwd)
}

// Decode implements jute.Record.
func (x *SessionRequest) Decode(r *jute.Reader) error {
	x.Timeout = r.Int32()
	x.Passwd = r.Buffer()
	return r.Err()
}

// Encode implements jute.Record.
func (x *ExpireTTL) Encode(w *jute.Writer) {
	w.UString(x.Path)
	w.Int64(x.Mzxid)
}

// Decode implements jute.Record.
func (x *ExpireTTL) Decode(r *jute.Reader) error {
	x.Path = r.UString()
	x.Mzxid = r.Int64()
	return r.Err()
}
