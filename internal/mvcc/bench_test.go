package mvcc

import (
	"fmt"
	"testing"

	"ensemble/internal/backend"
)

func benchKeys(n int) [][]byte {
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "/registry/key/%08d", i)
	}
	return keys
}

// BenchmarkPut is one put of a 256-byte value per write transaction, as a
// raft entry with a single PutRequest applies, with the default batching.
func BenchmarkPut(b *testing.B) {
	e := newEnv(b, backend.Options{MmapSize: 1 << 30})
	keys := benchKeys(10000)
	val := make([]byte, 256)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		w := e.s.Write(uint64(i+1), 1)
		w.Put(keys[i%len(keys)], val, 0)
		w.End()
	}
}

// BenchmarkRange reads one key at the current revision.
func BenchmarkRange(b *testing.B) {
	e := newEnv(b, backend.Options{MmapSize: 1 << 30})
	keys := benchKeys(1000)
	val := make([]byte, 256)
	for i, k := range keys {
		w := e.s.Write(uint64(i+1), 1)
		w.Put(k, val, 0)
		w.End()
	}
	e.s.Commit()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		r, err := e.s.Range(keys[i%len(keys)], nil, RangeOptions{})
		if err != nil || len(r.KVs) != 1 {
			b.Fatal(r, err)
		}
	}
}

// BenchmarkRangeParallel reads single keys from all cores at once.
func BenchmarkRangeParallel(b *testing.B) {
	e := newEnv(b, backend.Options{MmapSize: 1 << 30})
	keys := benchKeys(1000)
	val := make([]byte, 256)
	for i, k := range keys {
		w := e.s.Write(uint64(i+1), 1)
		w.Put(k, val, 0)
		w.End()
	}
	e.s.Commit()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := e.s.Range(keys[i%len(keys)], nil, RangeOptions{}); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}
