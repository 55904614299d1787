//go:build linux

package vfs

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

func (f osFile) Sync() error {
	fd := int(f.Fd())
	for {
		err := unix.Fdatasync(fd)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
		}
		return nil
	}
}

func (f osFile) Preallocate(size int64) error {
	fi, err := f.File.Stat()
	if err != nil {
		return err
	}
	if fi.Size() >= size {
		return nil
	}
	// Mode 0 extends the file size too, so later appends inside the
	// reserved range change no size metadata and fdatasync stays cheap.
	for {
		err = unix.Fallocate(int(f.Fd()), 0, 0, size)
		if err != unix.EINTR {
			break
		}
	}
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) {
		// The file system cannot reserve blocks; a sparse extension still
		// reads back as zeros, which is all callers rely on.
		return f.File.Truncate(size)
	}
	return &os.PathError{Op: "fallocate", Path: f.Name(), Err: err}
}
