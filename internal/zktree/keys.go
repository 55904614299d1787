package zktree

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"unicode/utf8"
)

// Key spaces under Prefix. A node's key carries its depth before its path,
// so that the children of a node are one contiguous range of keys that holds
// nothing else: no grandchildren, no siblings that merely share a prefix.
const (
	nodePrefix    = Prefix + "n/"
	sessionPrefix = Prefix + "s/"
	ttlPrefix     = Prefix + "t/"
)

// maxDepth is the deepest node the three depth digits of a key can hold.
const maxDepth = 999

// Paths of the nodes every ZooKeeper server has from the start.
const (
	rootPath   = "/"
	procPath   = "/zookeeper"
	quotaPath  = "/zookeeper/quota"
	configPath = "/zookeeper/config"
)

// depth is the number of segments of path: 0 for "/", 1 for "/a". For
// strings that are not valid paths it is still a deterministic number, so
// that a lookup of a malformed parent path simply finds nothing.
func depth(path string) int {
	if path == rootPath {
		return 0
	}
	return strings.Count(path, "/")
}

// appendDepth appends d as three decimal digits.
func appendDepth(dst []byte, d int) []byte {
	return append(dst, byte('0'+d/100), byte('0'+d/10%10), byte('0'+d%10))
}

// appendNodeKey appends the store key of path; ok is false if the path is
// deeper than a key can say.
func appendNodeKey(dst []byte, path string) (_ []byte, ok bool) {
	d := depth(path)
	if d > maxDepth {
		return dst, false
	}
	dst = append(dst, nodePrefix...)
	dst = appendDepth(dst, d)
	if d == 0 {
		return append(dst, '/'), true
	}
	return append(dst, path...), true
}

// nodeKeyLen is the length of the key appendNodeKey makes for path.
func nodeKeyLen(path string) int {
	if path == rootPath {
		return len(nodePrefix) + 4
	}
	return len(nodePrefix) + 3 + len(path)
}

// childrenRange returns the key range [start, end) that holds exactly the
// children of path; ok is false if they would be too deep for a key.
func childrenRange(path string) (start, end []byte, ok bool) {
	return descendantsRange(path, depth(path)+1)
}

// descendantsRange returns the key range of path's descendants at depth d.
func descendantsRange(path string, d int) (start, end []byte, ok bool) {
	if d > maxDepth {
		return nil, nil, false
	}
	start = make([]byte, 0, len(nodePrefix)+3+len(path)+1)
	start = append(start, nodePrefix...)
	start = appendDepth(start, d)
	if path != rootPath {
		start = append(start, path...)
	}
	start = append(start, '/')
	return start, prefixEnd(start), true
}

// prefixEnd returns the first key after every key that starts with p.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	// Every byte is 0xff: the range runs to the end of the key space.
	return []byte{0}
}

// nodePath returns the path of a node key; ok is false for other keys.
func nodePath(key []byte) (string, bool) {
	if !bytes.HasPrefix(key, []byte(nodePrefix)) {
		return "", false
	}
	rest := key[len(nodePrefix):]
	if len(rest) < 4 || rest[3] != '/' {
		return "", false
	}
	for _, c := range rest[:3] {
		if c < '0' || c > '9' {
			return "", false
		}
	}
	return string(rest[3:]), true
}

// sessionKey is the key of session id's record.
func sessionKey(id int64) []byte {
	k := make([]byte, len(sessionPrefix), len(sessionPrefix)+16)
	copy(k, sessionPrefix)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(id))
	return hex.AppendEncode(k, b[:])
}

// parentPath returns the path of the parent of path, which has a '/' at
// lastSlash. ZooKeeper's root is both "" and "/".
func parentPath(path string, lastSlash int) string {
	if lastSlash <= 0 {
		return rootPath
	}
	return path[:lastSlash]
}

// isSpecial reports whether path is one of the nodes that cannot be deleted
// (DataTree.isSpecialPath).
func isSpecial(path string) bool {
	return path == rootPath || path == procPath || path == quotaPath || path == configPath
}

// validPath reports whether path is a valid znode path, with the rules of
// ZooKeeper's PathUtils.validatePath. Java checks UTF-16 code units; a rune
// outside the BMP is a surrogate pair there and so invalid, and bytes that
// are not UTF-8 decode to U+FFFD, which is invalid too.
func validPath(path string) bool {
	if len(path) == 0 || path[0] != '/' {
		return false
	}
	if len(path) == 1 {
		return true
	}
	if path[len(path)-1] == '/' {
		return false
	}
	last := byte('/')
	for i := 1; i < len(path); {
		c := path[i]
		switch {
		case c == 0:
			return false
		case c == '/' && last == '/':
			return false
		case c == '.' && (i+1 == len(path) || path[i+1] == '/'):
			// A segment "." or ".." (the bytes before are '/' or "/.").
			if last == '/' || last == '.' && path[i-2] == '/' {
				return false
			}
		}
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return false
			}
			last = c
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(path[i:])
		if r == utf8.RuneError || invalidRune(r) {
			return false
		}
		last = 0x80 // neither '/' nor '.'
		i += size
	}
	return true
}

// invalidRune reports the non-ASCII characters PathUtils refuses.
func invalidRune(r rune) bool {
	return r >= 0x7f && r <= 0x9f ||
		r >= 0xd800 && r <= 0xf8ff ||
		r >= 0xfff0 ||
		r > 0xffff
}
