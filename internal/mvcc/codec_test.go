package mvcc

import (
	"bytes"
	"math"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

func sameKV(a, b *mvccpb.KeyValue) bool {
	return bytes.Equal(a.Key, b.Key) && bytes.Equal(a.Value, b.Value) && a.CreateRevision == b.CreateRevision &&
		a.ModRevision == b.ModRevision && a.Version == b.Version && a.Lease == b.Lease
}

func TestDecodeKVMatchesUnmarshal(t *testing.T) {
	cases := []mvccpb.KeyValue{
		{},
		{Key: []byte("k")},
		{Key: []byte{0, 0xff}, Value: []byte{0xff, 0}, CreateRevision: 2, ModRevision: 3, Version: 2, Lease: 7},
		{Key: bytes.Repeat([]byte("x"), 300), Value: bytes.Repeat([]byte("y"), 70000), ModRevision: math.MaxInt64, Lease: -1},
	}
	for _, want := range cases {
		data, err := want.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		var got mvccpb.KeyValue
		if err := decodeKV(&got, data, false); err != nil {
			t.Fatal(err)
		}
		if !sameKV(&got, &want) {
			t.Fatalf("got %+v want %+v", got, want)
		}
		if err := decodeKV(&got, data, true); err != nil || got.Value != nil || !bytes.Equal(got.Key, want.Key) {
			t.Fatalf("keys only: %+v %v", got, err)
		}
		// The result must not alias the input.
		if len(data) > 0 {
			decodeKV(&got, data, false)
			clear(data)
			if !sameKV(&got, &want) {
				t.Fatal("decoded KV aliases its input")
			}
		}
	}
}

func FuzzDecodeKV(f *testing.F) {
	kv := mvccpb.KeyValue{Key: []byte("key"), Value: []byte("value"), CreateRevision: 5, ModRevision: 9, Version: 3, Lease: 1}
	data, _ := kv.Marshal()
	f.Add(data)
	f.Add([]byte{0x0a, 0xff})
	f.Add([]byte{0x08})
	f.Fuzz(func(t *testing.T, data []byte) {
		var got, want mvccpb.KeyValue
		err := decodeKV(&got, data, false)
		if werr := want.Unmarshal(data); werr == nil && err == nil && !sameKV(&got, &want) {
			t.Fatalf("decodeKV %+v, Unmarshal %+v", got, want)
		}
	})
}
