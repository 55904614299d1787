package wal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// SyncedFile is the name, inside a log's directory, of the file where a
// binary built with the tag failpoints records after every sync how much of
// the last segment is durable: "<segment file name> <length>\n", rewritten
// in place and never synced itself. A test that kills such a process can
// cut the segment back to that length and so lose exactly the bytes that a
// power failure would have lost. Normal builds never write it.
const SyncedFile = "synced.failpoint"

// errNoSyncedRecord is returned by ReadSynced when dir holds no record.
var errNoSyncedRecord = errors.New("wal: no synced-length record (is the binary built with -tags failpoints?)")

// ReadSynced reads the record kept in dir by a failpoints build: the file
// name of the segment that was last when the log last synced, and how many
// of its bytes that sync made durable.
func ReadSynced(dir string) (segment string, length int64, err error) {
	b, err := os.ReadFile(filepath.Join(dir, SyncedFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", 0, errNoSyncedRecord
	}
	if err != nil {
		return "", 0, fmt.Errorf("wal: read synced-length record: %w", err)
	}
	name, n, ok := strings.Cut(strings.TrimSpace(string(b)), " ")
	length, perr := strconv.ParseInt(strings.TrimSpace(n), 10, 64)
	if _, _, segOK := parseSegmentName(name); !ok || !segOK || perr != nil || length < 0 {
		return "", 0, fmt.Errorf("wal: malformed synced-length record %q", b)
	}
	return name, length, nil
}

// encodeSynced formats a synced-length record with a fixed width, so that
// rewriting it in place never leaves a longer, older tail behind.
func encodeSynced(buf []byte, segment string, length int64) []byte {
	buf = append(buf[:0], segment...)
	buf = append(buf, ' ')
	buf = fmt.Appendf(buf, "%020d\n", length)
	return buf
}
