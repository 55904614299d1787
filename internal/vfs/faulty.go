package vfs

import (
	"errors"
	"os"
	"strings"
	"sync"
)

// ErrInjected is the error a Faulty fault returns unless the fault names its own.
var ErrInjected = errors.New("vfs: injected fault")

// Op is a kind of operation that Faulty counts and can fail.
type Op int

// The operations Faulty counts. File operations are counted per call on any
// file opened through the Faulty.
const (
	OpOpen Op = iota
	OpWrite
	OpSync
	OpTruncate
	OpPreallocate
	OpRename
	OpRemove
	OpSyncDir
	numOps
)

var opNames = [numOps]string{"open", "write", "sync", "truncate", "preallocate", "rename", "remove", "syncdir"}

func (o Op) String() string {
	if o < 0 || o >= numOps {
		return "op?"
	}
	return opNames[o]
}

// Fault describes one injected failure.
type Fault struct {
	Op Op
	// After is how many matching operations succeed, counted from when the
	// fault is armed, before one fails: 0 fails the very next one.
	After int
	// Sticky keeps failing every later matching operation once triggered,
	// like a disk that stays full or a device that went away.
	Sticky bool
	// Short, for OpWrite, is how many bytes of the failing write reach the
	// file before the error: a torn write. Zero writes nothing.
	Short int
	// Path, if set, limits the fault to operations on names containing it
	// (for OpRename, the new name).
	Path string
	// Err is returned by the failing operation; nil means ErrInjected.
	Err error
}

type armed struct {
	Fault
	seen      int
	triggered bool
}

// Faulty wraps an FS, counts operations and injects the faults armed with
// Arm. It lets tests simulate a full disk, a failing fsync or a crash in the
// middle of a write. It is safe for concurrent use.
type Faulty struct {
	inner FS

	mu     sync.Mutex
	counts [numOps]int64
	faults []*armed
}

// NewFaulty wraps inner; no faults are armed.
func NewFaulty(inner FS) *Faulty { return &Faulty{inner: inner} }

// Arm adds a fault. Faults are checked in the order they were armed; a
// non-sticky fault fires once and is then spent.
func (f *Faulty) Arm(ft Fault) {
	f.mu.Lock()
	f.faults = append(f.faults, &armed{Fault: ft})
	f.mu.Unlock()
}

// Disarm removes every fault; counts are kept.
func (f *Faulty) Disarm() {
	f.mu.Lock()
	f.faults = nil
	f.mu.Unlock()
}

// Count is how many operations of kind op were attempted, failed or not.
func (f *Faulty) Count(op Op) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[op]
}

// check counts an operation and returns the fault that fails it, if any.
func (f *Faulty) check(op Op, name string) *Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counts[op]++
	for i, a := range f.faults {
		if a.Op != op || (a.Path != "" && !strings.Contains(name, a.Path)) {
			continue
		}
		if a.triggered {
			// Only sticky faults stay in the list once triggered.
			ft := a.Fault
			return &ft
		}
		if a.seen < a.After {
			a.seen++
			continue
		}
		ft := a.Fault
		if a.Sticky {
			a.triggered = true
		} else {
			f.faults = append(f.faults[:i:i], f.faults[i+1:]...)
		}
		return &ft
	}
	return nil
}

func (ft *Fault) err(op, name string) error {
	err := ft.Err
	if err == nil {
		err = ErrInjected
	}
	return &os.PathError{Op: op, Path: name, Err: err}
}

func (f *Faulty) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	if ft := f.check(OpOpen, name); ft != nil {
		return nil, ft.err("open", name)
	}
	file, err := f.inner.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultyFile{File: file, fs: f}, nil
}

func (f *Faulty) Remove(name string) error {
	if ft := f.check(OpRemove, name); ft != nil {
		return ft.err("remove", name)
	}
	return f.inner.Remove(name)
}

func (f *Faulty) RemoveAll(name string) error {
	if ft := f.check(OpRemove, name); ft != nil {
		return ft.err("remove", name)
	}
	return f.inner.RemoveAll(name)
}

func (f *Faulty) Rename(oldname, newname string) error {
	if ft := f.check(OpRename, newname); ft != nil {
		return ft.err("rename", newname)
	}
	return f.inner.Rename(oldname, newname)
}

func (f *Faulty) MkdirAll(dir string, perm os.FileMode) error { return f.inner.MkdirAll(dir, perm) }
func (f *Faulty) ReadDir(dir string) ([]os.DirEntry, error)   { return f.inner.ReadDir(dir) }
func (f *Faulty) Stat(name string) (os.FileInfo, error)       { return f.inner.Stat(name) }

func (f *Faulty) SyncDir(dir string) error {
	if ft := f.check(OpSyncDir, dir); ft != nil {
		return ft.err("syncdir", dir)
	}
	return f.inner.SyncDir(dir)
}

type faultyFile struct {
	File
	fs *Faulty
}

func (ff *faultyFile) Write(p []byte) (int, error) {
	ft := ff.fs.check(OpWrite, ff.Name())
	if ft == nil {
		return ff.File.Write(p)
	}
	n := min(max(ft.Short, 0), len(p))
	if n > 0 {
		// The error of the torn write itself does not matter: the caller
		// sees the injected one.
		n, _ = ff.File.Write(p[:n])
	}
	return n, ft.err("write", ff.Name())
}

func (ff *faultyFile) Sync() error {
	if ft := ff.fs.check(OpSync, ff.Name()); ft != nil {
		return ft.err("sync", ff.Name())
	}
	return ff.File.Sync()
}

func (ff *faultyFile) Truncate(size int64) error {
	if ft := ff.fs.check(OpTruncate, ff.Name()); ft != nil {
		return ft.err("truncate", ff.Name())
	}
	return ff.File.Truncate(size)
}

func (ff *faultyFile) Preallocate(size int64) error {
	if ft := ff.fs.check(OpPreallocate, ff.Name()); ft != nil {
		return ft.err("preallocate", ff.Name())
	}
	return ff.File.Preallocate(size)
}
