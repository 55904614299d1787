//go:build !failpoints

package wal

// syncedRecorder is empty in a normal build: nothing is recorded.
type syncedRecorder struct{}

func (w *WAL) recordSynced(int64) {}

func (w *WAL) closeSynced() {}
