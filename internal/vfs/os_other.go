//go:build !linux

package vfs

// Sync falls back to a full fsync where fdatasync is not available.
func (f osFile) Sync() error { return f.File.Sync() }

func (f osFile) Preallocate(size int64) error {
	fi, err := f.File.Stat()
	if err != nil {
		return err
	}
	if fi.Size() >= size {
		return nil
	}
	return f.File.Truncate(size)
}
