//go:build failpoints

package wal

import (
	"os"
	"path/filepath"

	"ensemble/internal/vfs"
)

// syncedRecorder keeps SyncedFile up to date in a failpoints build.
type syncedRecorder struct {
	f   *os.File
	buf []byte
}

// recordSynced notes that the first length bytes of the last segment are
// durable. It runs after the sync has returned and before the caller learns
// of it, so that a kill in between loses only what nobody was told was
// saved. Only a log on the operating system's file system is recorded
// (that is what a killed process leaves behind); one on another vfs.FS sees
// no extra I/O. Failing to record is logged, never fatal: the WAL must
// behave as in a normal build.
func (w *WAL) recordSynced(length int64) {
	if w.fs != vfs.OS() {
		return
	}
	r := &w.synced
	if r.f == nil {
		f, err := os.OpenFile(filepath.Join(w.dir, SyncedFile), os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			w.lg.Warn("wal: failpoint: cannot open synced-length record", "error", err)
			return
		}
		r.f = f
	}
	r.buf = encodeSynced(r.buf, filepath.Base(w.segs[len(w.segs)-1].path), length)
	if _, err := r.f.WriteAt(r.buf, 0); err != nil {
		w.lg.Warn("wal: failpoint: cannot write synced-length record", "error", err)
	}
}

func (w *WAL) closeSynced() {
	if w.synced.f != nil {
		w.synced.f.Close()
		w.synced.f = nil
	}
}
