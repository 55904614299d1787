//go:build unix

package zk

import (
	"os"
	"syscall"
)

// fileDescriptors reports the process's open file descriptors and their
// limit, for mntr.
func fileDescriptors() (open, limit int64, ok bool) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, 0, false
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		fds, err = os.ReadDir("/dev/fd")
		if err != nil {
			return 0, 0, false
		}
	}
	return int64(len(fds)), int64(rl.Cur), true
}
