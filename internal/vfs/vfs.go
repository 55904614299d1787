// Package vfs abstracts the file system so that durable storage can run on
// the OS, in memory, or under injected faults.
package vfs

import (
	"io"
	"os"
)

// File is an open file. Implementations need not make a single File safe for
// concurrent use, except that ReadAt may run alongside other ReadAt calls.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.Seeker
	io.Closer
	Name() string
	Stat() (os.FileInfo, error)
	Truncate(size int64) error
	// Sync makes the file's data (and the metadata needed to read it back,
	// such as its size) durable: fdatasync on the OS implementation.
	Sync() error
	// Preallocate reserves space so that the file is at least size bytes
	// long; the new bytes read back as zeros. It never shrinks the file.
	Preallocate(size int64) error
}

// FS is a file system. Paths are interpreted as by package os.
type FS interface {
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	Remove(name string) error
	RemoveAll(name string) error
	Rename(oldname, newname string) error
	MkdirAll(dir string, perm os.FileMode) error
	// ReadDir returns the directory's entries sorted by name.
	ReadDir(dir string) ([]os.DirEntry, error)
	Stat(name string) (os.FileInfo, error)
	// SyncDir makes creates, renames and removes inside dir durable.
	SyncDir(dir string) error
}
