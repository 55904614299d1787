package etcd

import (
	"fmt"

	"github.com/golang/protobuf/proto" //nolint:staticcheck // etcd's messages are gogo-generated, so the v1 API is what fits them
)

// codec marshals etcd's gogo-generated messages with their own generated
// methods, which are several times faster than the reflection path that
// gRPC's default codec takes for them. Its name is "proto", so it is what
// every standard client speaks.
type codec struct{}

type gogoMessage interface {
	Size() int
	MarshalTo([]byte) (int, error)
	Unmarshal([]byte) error
}

func (codec) Marshal(v any) ([]byte, error) {
	if m, ok := v.(gogoMessage); ok {
		buf := make([]byte, m.Size())
		n, err := m.MarshalTo(buf)
		return buf[:n], err
	}
	if m, ok := v.(proto.Message); ok {
		return proto.Marshal(m)
	}
	return nil, fmt.Errorf("codec: cannot marshal %T", v)
}

func (codec) Unmarshal(data []byte, v any) error {
	if m, ok := v.(gogoMessage); ok {
		return m.Unmarshal(data)
	}
	if m, ok := v.(proto.Message); ok {
		return proto.Unmarshal(data, m)
	}
	return fmt.Errorf("codec: cannot unmarshal into %T", v)
}

func (codec) Name() string { return "proto" }
