package vfs

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// memFS keeps a whole file tree in memory. Sync is a no-op: everything
// written is immediately "durable", which is what unit tests want.
type memFS struct {
	mu    sync.Mutex // guards files and dirs, never held while a node's lock is taken
	files map[string]*memNode
	dirs  map[string]time.Time
}

type memNode struct {
	mu      sync.RWMutex
	data    []byte
	perm    os.FileMode
	modTime time.Time
}

// NewMem returns an empty in-memory file system, safe for concurrent use.
// Relative and absolute paths name different files, as they would if the
// working directory were the root.
func NewMem() FS {
	return &memFS{files: make(map[string]*memNode), dirs: make(map[string]time.Time)}
}

func isRoot(p string) bool { return p == "." || p == "/" || p == string(filepath.Separator) }

// unsafeDirExists needs m.mu held.
func (m *memFS) unsafeDirExists(p string) bool {
	if isRoot(p) {
		return true
	}
	_, ok := m.dirs[p]
	return ok
}

func pathErr(op, name string, err error) error { return &os.PathError{Op: op, Path: name, Err: err} }

func (m *memFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	p := filepath.Clean(name)
	m.mu.Lock()
	if m.unsafeDirExists(p) {
		m.mu.Unlock()
		return nil, pathErr("open", name, syscall.EISDIR)
	}
	n, ok := m.files[p]
	switch {
	case ok && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		m.mu.Unlock()
		return nil, pathErr("open", name, fs.ErrExist)
	case !ok && flag&os.O_CREATE == 0:
		m.mu.Unlock()
		return nil, pathErr("open", name, fs.ErrNotExist)
	case !ok:
		if !m.unsafeDirExists(filepath.Dir(p)) {
			m.mu.Unlock()
			return nil, pathErr("open", name, fs.ErrNotExist)
		}
		n = &memNode{perm: perm.Perm(), modTime: time.Now()}
		m.files[p] = n
	}
	m.mu.Unlock()
	acc := flag & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR)
	f := &memFile{
		node:     n,
		name:     name,
		readable: acc == os.O_RDONLY || acc == os.O_RDWR,
		writable: acc == os.O_WRONLY || acc == os.O_RDWR,
		append:   flag&os.O_APPEND != 0,
	}
	if flag&os.O_TRUNC != 0 && f.writable {
		n.mu.Lock()
		n.data = n.data[:0]
		n.modTime = time.Now()
		n.mu.Unlock()
	}
	return f, nil
}

func (m *memFS) Remove(name string) error {
	p := filepath.Clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.files[p]; ok {
		delete(m.files, p)
		return nil
	}
	if _, ok := m.dirs[p]; !ok {
		return pathErr("remove", name, fs.ErrNotExist)
	}
	prefix := p + "/"
	for q := range m.files {
		if strings.HasPrefix(q, prefix) {
			return pathErr("remove", name, syscall.ENOTEMPTY)
		}
	}
	for q := range m.dirs {
		if strings.HasPrefix(q, prefix) {
			return pathErr("remove", name, syscall.ENOTEMPTY)
		}
	}
	delete(m.dirs, p)
	return nil
}

func (m *memFS) RemoveAll(name string) error {
	p := filepath.Clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.files, p)
	delete(m.dirs, p)
	prefix := p + "/"
	for q := range m.files {
		if strings.HasPrefix(q, prefix) {
			delete(m.files, q)
		}
	}
	for q := range m.dirs {
		if strings.HasPrefix(q, prefix) {
			delete(m.dirs, q)
		}
	}
	return nil
}

func (m *memFS) Rename(oldname, newname string) error {
	op, np := filepath.Clean(oldname), filepath.Clean(newname)
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.unsafeDirExists(filepath.Dir(np)) {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: fs.ErrNotExist}
	}
	if n, ok := m.files[op]; ok {
		if _, isDir := m.dirs[np]; isDir {
			return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: syscall.EISDIR}
		}
		delete(m.files, op)
		m.files[np] = n
		return nil
	}
	t, ok := m.dirs[op]
	if !ok {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: fs.ErrNotExist}
	}
	if _, isFile := m.files[np]; isFile {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: syscall.ENOTDIR}
	}
	if np == op || strings.HasPrefix(np, op+"/") {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: syscall.EINVAL}
	}
	prefix := op + "/"
	moved := make(map[string]*memNode)
	for q, n := range m.files {
		if strings.HasPrefix(q, prefix) {
			moved[np+"/"+q[len(prefix):]] = n
			delete(m.files, q)
		}
	}
	movedDirs := make(map[string]time.Time)
	for q, dt := range m.dirs {
		if strings.HasPrefix(q, prefix) {
			movedDirs[np+"/"+q[len(prefix):]] = dt
			delete(m.dirs, q)
		}
	}
	delete(m.dirs, op)
	m.dirs[np] = t
	for q, n := range moved {
		m.files[q] = n
	}
	for q, dt := range movedDirs {
		m.dirs[q] = dt
	}
	return nil
}

func (m *memFS) MkdirAll(dir string, perm os.FileMode) error {
	p := filepath.Clean(dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	for q := p; !isRoot(q); q = filepath.Dir(q) {
		if _, ok := m.files[q]; ok {
			return pathErr("mkdir", dir, syscall.ENOTDIR)
		}
	}
	now := time.Now()
	for q := p; !isRoot(q); q = filepath.Dir(q) {
		if _, ok := m.dirs[q]; !ok {
			m.dirs[q] = now
		}
	}
	return nil
}

func (m *memFS) ReadDir(dir string) ([]os.DirEntry, error) {
	p := filepath.Clean(dir)
	m.mu.Lock()
	if !m.unsafeDirExists(p) {
		_, isFile := m.files[p]
		m.mu.Unlock()
		if isFile {
			return nil, pathErr("readdir", dir, syscall.ENOTDIR)
		}
		return nil, pathErr("open", dir, fs.ErrNotExist)
	}
	var infos []memInfo
	for q, n := range m.files {
		if filepath.Dir(q) == p && q != p {
			infos = append(infos, memInfo{name: filepath.Base(q), node: n})
		}
	}
	for q, t := range m.dirs {
		if filepath.Dir(q) == p && q != p {
			infos = append(infos, memInfo{name: filepath.Base(q), dir: true, modTime: t})
		}
	}
	m.mu.Unlock()
	slices.SortFunc(infos, func(a, b memInfo) int { return strings.Compare(a.name, b.name) })
	out := make([]os.DirEntry, len(infos))
	for i := range infos {
		out[i] = fs.FileInfoToDirEntry(infos[i].snapshot())
	}
	return out, nil
}

func (m *memFS) Stat(name string) (os.FileInfo, error) {
	p := filepath.Clean(name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if n, ok := m.files[p]; ok {
		return memInfo{name: filepath.Base(p), node: n}.snapshot(), nil
	}
	if isRoot(p) {
		return memInfo{name: p, dir: true}, nil
	}
	if t, ok := m.dirs[p]; ok {
		return memInfo{name: filepath.Base(p), dir: true, modTime: t}, nil
	}
	return nil, pathErr("stat", name, fs.ErrNotExist)
}

func (m *memFS) SyncDir(dir string) error {
	p := filepath.Clean(dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.unsafeDirExists(p) {
		return pathErr("open", dir, fs.ErrNotExist)
	}
	return nil
}

// memInfo is an os.FileInfo. With node set, snapshot copies the node's
// current size and time, so the value does not change under the caller.
type memInfo struct {
	name    string
	dir     bool
	size    int64
	perm    os.FileMode
	modTime time.Time
	node    *memNode
}

func (i memInfo) snapshot() memInfo {
	if n := i.node; n != nil {
		n.mu.RLock()
		i.size, i.perm, i.modTime = int64(len(n.data)), n.perm, n.modTime
		n.mu.RUnlock()
		i.node = nil
	}
	return i
}

func (i memInfo) Name() string { return i.name }
func (i memInfo) Size() int64  { return i.size }
func (i memInfo) Mode() os.FileMode {
	if i.dir {
		return fs.ModeDir | 0o755
	}
	return i.perm
}
func (i memInfo) ModTime() time.Time { return i.modTime }
func (i memInfo) IsDir() bool        { return i.dir }
func (i memInfo) Sys() any           { return nil }

type memFile struct {
	node     *memNode
	name     string
	readable bool
	writable bool
	append   bool

	mu     sync.Mutex // guards off and closed
	off    int64
	closed bool
}

func (f *memFile) Name() string { return f.name }

func (f *memFile) check(op string, write bool) error {
	if f.closed {
		return pathErr(op, f.name, fs.ErrClosed)
	}
	if write && !f.writable || !write && !f.readable {
		return pathErr(op, f.name, syscall.EBADF)
	}
	return nil
}

func (f *memFile) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("read", false); err != nil {
		return 0, err
	}
	n, err := f.node.readAt(p, f.off)
	f.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	err := f.check("read", false)
	f.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, pathErr("readat", f.name, syscall.EINVAL)
	}
	return f.node.readAt(p, off)
}

func (n *memNode) readAt(p []byte, off int64) (int, error) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if off >= int64(len(n.data)) {
		return 0, io.EOF
	}
	c := copy(p, n.data[off:])
	if c < len(p) {
		return c, io.EOF
	}
	return c, nil
}

func (f *memFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("write", true); err != nil {
		return 0, err
	}
	n := f.node
	n.mu.Lock()
	if f.append {
		f.off = int64(len(n.data))
	}
	end := f.off + int64(len(p))
	n.grow(end)
	copy(n.data[f.off:end], p)
	n.modTime = time.Now()
	n.mu.Unlock()
	f.off = end
	return len(p), nil
}

// grow extends data with zeros to at least size bytes; n.mu must be held.
func (n *memNode) grow(size int64) {
	if size <= int64(len(n.data)) {
		return
	}
	if size <= int64(cap(n.data)) {
		old := len(n.data)
		n.data = n.data[:size]
		clear(n.data[old:])
		return
	}
	n.data = append(n.data, make([]byte, size-int64(len(n.data)))...)
}

func (f *memFile) Seek(offset int64, whence int) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, pathErr("seek", f.name, fs.ErrClosed)
	}
	var base int64
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		base = f.off
	case io.SeekEnd:
		f.node.mu.RLock()
		base = int64(len(f.node.data))
		f.node.mu.RUnlock()
	default:
		return 0, pathErr("seek", f.name, syscall.EINVAL)
	}
	if base+offset < 0 {
		return 0, pathErr("seek", f.name, syscall.EINVAL)
	}
	f.off = base + offset
	return f.off, nil
}

func (f *memFile) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return pathErr("close", f.name, fs.ErrClosed)
	}
	f.closed = true
	return nil
}

func (f *memFile) Stat() (os.FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, pathErr("stat", f.name, fs.ErrClosed)
	}
	return memInfo{name: filepath.Base(f.name), node: f.node}.snapshot(), nil
}

func (f *memFile) Truncate(size int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("truncate", true); err != nil {
		return err
	}
	if size < 0 {
		return pathErr("truncate", f.name, syscall.EINVAL)
	}
	n := f.node
	n.mu.Lock()
	if size < int64(len(n.data)) {
		n.data = n.data[:size]
	} else {
		n.grow(size)
	}
	n.modTime = time.Now()
	n.mu.Unlock()
	return nil
}

func (f *memFile) Sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return pathErr("sync", f.name, fs.ErrClosed)
	}
	return nil
}

func (f *memFile) Preallocate(size int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("preallocate", true); err != nil {
		return err
	}
	f.node.mu.Lock()
	f.node.grow(size)
	f.node.mu.Unlock()
	return nil
}
