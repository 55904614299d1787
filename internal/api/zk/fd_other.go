//go:build !unix

package zk

// fileDescriptors is not known on this platform.
func fileDescriptors() (open, limit int64, ok bool) { return 0, 0, false }
