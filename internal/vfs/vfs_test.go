package vfs

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func impls() map[string]func(t *testing.T) (FS, string) {
	return map[string]func(t *testing.T) (FS, string){
		"os":     func(t *testing.T) (FS, string) { return OS(), t.TempDir() },
		"mem":    func(t *testing.T) (FS, string) { return NewMem(), "/root" },
		"faulty": func(t *testing.T) (FS, string) { return NewFaulty(NewMem()), "rel/root" },
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestFileOperations(t *testing.T) {
	for name, mk := range impls() {
		t.Run(name, func(t *testing.T) {
			fsys, root := mk(t)
			must(t, fsys.MkdirAll(filepath.Join(root, "d"), 0o755))
			p := filepath.Join(root, "d", "f")
			if _, err := fsys.OpenFile(p, os.O_RDONLY, 0); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("open missing: %v", err)
			}
			if _, err := fsys.OpenFile(filepath.Join(root, "nodir", "f"), os.O_CREATE|os.O_RDWR, 0o600); err == nil {
				t.Fatal("created a file in a missing directory")
			}
			f, err := fsys.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
			must(t, err)
			if _, err := fsys.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600); !errors.Is(err, os.ErrExist) {
				t.Fatalf("O_EXCL on an existing file: %v", err)
			}
			if _, err := f.Write([]byte("hello world")); err != nil {
				t.Fatal(err)
			}
			must(t, f.Sync())
			if off, err := f.Seek(6, io.SeekStart); err != nil || off != 6 {
				t.Fatalf("seek: %d %v", off, err)
			}
			buf := make([]byte, 5)
			if n, err := io.ReadFull(f, buf); err != nil || string(buf[:n]) != "world" {
				t.Fatalf("read %q %v", buf[:n], err)
			}
			if _, err := f.Read(buf); err != io.EOF {
				t.Fatalf("read at EOF: %v", err)
			}
			if n, err := f.ReadAt(buf, 8); n != 3 || err != io.EOF || string(buf[:3]) != "rld" {
				t.Fatalf("ReadAt past the end: %d %v", n, err)
			}
			// Writing past the end leaves a hole of zeros.
			if _, err := f.Seek(20, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write([]byte("!")); err != nil {
				t.Fatal(err)
			}
			fi, err := f.Stat()
			must(t, err)
			if fi.Size() != 21 || fi.Name() != "f" || fi.IsDir() {
				t.Fatalf("stat: size %d name %q", fi.Size(), fi.Name())
			}
			must(t, f.Preallocate(4096))
			must(t, f.Preallocate(100)) // never shrinks
			fi, err = fsys.Stat(p)
			must(t, err)
			if fi.Size() != 4096 {
				t.Fatalf("size after Preallocate: %d", fi.Size())
			}
			all := make([]byte, 4096)
			if _, err := f.ReadAt(all, 0); err != nil {
				t.Fatal(err)
			}
			want := append([]byte("hello world"), make([]byte, 4096-11)...)
			want[20] = '!'
			if !bytes.Equal(all, want) {
				t.Fatal("contents after Preallocate differ")
			}
			must(t, f.Truncate(5))
			fi, err = f.Stat()
			must(t, err)
			if fi.Size() != 5 {
				t.Fatalf("size after Truncate: %d", fi.Size())
			}
			must(t, f.Close())

			// O_TRUNC and O_APPEND.
			f, err = fsys.OpenFile(p, os.O_RDWR|os.O_APPEND, 0)
			must(t, err)
			f.Write([]byte("XY"))
			f.Close()
			f, err = fsys.OpenFile(p, os.O_RDONLY, 0)
			must(t, err)
			b, err := io.ReadAll(f)
			must(t, err)
			if string(b) != "helloXY" {
				t.Fatalf("after append: %q", b)
			}
			if _, err := f.Write([]byte("x")); err == nil {
				t.Fatal("wrote to a read-only file")
			}
			f.Close()
			f, err = fsys.OpenFile(p, os.O_RDWR|os.O_TRUNC, 0)
			must(t, err)
			fi, _ = f.Stat()
			f.Close()
			if fi.Size() != 0 {
				t.Fatalf("size after O_TRUNC: %d", fi.Size())
			}
		})
	}
}

func TestDirectoryOperations(t *testing.T) {
	for name, mk := range impls() {
		t.Run(name, func(t *testing.T) {
			fsys, root := mk(t)
			d := filepath.Join(root, "a", "b")
			must(t, fsys.MkdirAll(d, 0o755))
			must(t, fsys.MkdirAll(d, 0o755))
			for _, n := range []string{"c", "a", "b"} {
				f, err := fsys.OpenFile(filepath.Join(d, n), os.O_CREATE|os.O_WRONLY, 0o600)
				must(t, err)
				f.Write([]byte(n))
				f.Close()
			}
			must(t, fsys.MkdirAll(filepath.Join(d, "sub"), 0o755))
			des, err := fsys.ReadDir(d)
			must(t, err)
			var got []string
			for _, de := range des {
				got = append(got, de.Name())
			}
			if strings.Join(got, ",") != "a,b,c,sub" || !des[3].IsDir() || des[0].IsDir() {
				t.Fatalf("ReadDir: %v", got)
			}
			must(t, fsys.Rename(filepath.Join(d, "a"), filepath.Join(d, "z")))
			if _, err := fsys.Stat(filepath.Join(d, "a")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("old name after rename: %v", err)
			}
			// Rename replaces an existing file.
			must(t, fsys.Rename(filepath.Join(d, "z"), filepath.Join(d, "b")))
			f, err := fsys.OpenFile(filepath.Join(d, "b"), os.O_RDONLY, 0)
			must(t, err)
			b, _ := io.ReadAll(f)
			f.Close()
			if string(b) != "a" {
				t.Fatalf("renamed file holds %q", b)
			}
			must(t, fsys.SyncDir(d))
			must(t, fsys.Remove(filepath.Join(d, "c")))
			if err := fsys.Remove(filepath.Join(d, "c")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("second Remove: %v", err)
			}
			if err := fsys.Remove(d); err == nil {
				t.Fatal("removed a non-empty directory")
			}
			fi, err := fsys.Stat(d)
			must(t, err)
			if !fi.IsDir() {
				t.Fatal("directory is not a directory")
			}
			must(t, fsys.RemoveAll(filepath.Join(root, "a")))
			must(t, fsys.RemoveAll(filepath.Join(root, "a")))
			if _, err := fsys.Stat(d); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("after RemoveAll: %v", err)
			}
			if _, err := fsys.ReadDir(d); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("ReadDir after RemoveAll: %v", err)
			}
		})
	}
}

func TestMemRenameDirectory(t *testing.T) {
	fsys := NewMem()
	must(t, fsys.MkdirAll("/x/y", 0o755))
	f, err := fsys.OpenFile("/x/y/f", os.O_CREATE|os.O_WRONLY, 0o600)
	must(t, err)
	f.Close()
	must(t, fsys.Rename("/x", "/w"))
	if _, err := fsys.Stat("/w/y/f"); err != nil {
		t.Fatal(err)
	}
	if _, err := fsys.Stat("/x"); !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
}

func TestMemConcurrent(t *testing.T) {
	fsys := NewMem()
	must(t, fsys.MkdirAll("/c", 0o755))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := filepath.Join("/c", string(rune('a'+i)))
			for range 100 {
				f, err := fsys.OpenFile(p, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
				if err != nil {
					t.Error(err)
					return
				}
				f.Write([]byte("x"))
				f.ReadAt(make([]byte, 1), 0)
				f.Close()
				fsys.ReadDir("/c")
			}
		}()
	}
	wg.Wait()
	des, err := fsys.ReadDir("/c")
	must(t, err)
	for _, de := range des {
		fi, _ := de.Info()
		if fi.Size() != 100 {
			t.Fatalf("%s: %d bytes", de.Name(), fi.Size())
		}
	}
}

func TestFaultyFailsNthOperation(t *testing.T) {
	ffs := NewFaulty(NewMem())
	must(t, ffs.MkdirAll("/d", 0o755))
	f, err := ffs.OpenFile("/d/f", os.O_CREATE|os.O_RDWR, 0o600)
	must(t, err)
	ffs.Arm(Fault{Op: OpWrite, After: 2})
	for i := range 2 {
		if _, err := f.Write([]byte("ok")); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if _, err := f.Write([]byte("no")); !errors.Is(err, ErrInjected) {
		t.Fatalf("third write: %v", err)
	}
	if _, err := f.Write([]byte("ok")); err != nil {
		t.Fatalf("a one-shot fault fired twice: %v", err)
	}
	if got := ffs.Count(OpWrite); got != 4 {
		t.Fatalf("Count(OpWrite) = %d", got)
	}

	full := errors.New("disk full")
	ffs.Arm(Fault{Op: OpSync, Sticky: true, Err: full})
	for range 3 {
		if err := f.Sync(); !errors.Is(err, full) {
			t.Fatalf("sticky sync fault: %v", err)
		}
	}
	ffs.Disarm()
	must(t, f.Sync())

	ffs.Arm(Fault{Op: OpSyncDir})
	if err := ffs.SyncDir("/d"); !errors.Is(err, ErrInjected) {
		t.Fatalf("SyncDir: %v", err)
	}
	ffs.Arm(Fault{Op: OpRename, Path: "other"})
	must(t, ffs.Rename("/d/f", "/d/g"))
	ffs.Disarm()
	f.Close()
}

func TestFaultyShortWrite(t *testing.T) {
	mem := NewMem()
	ffs := NewFaulty(mem)
	must(t, ffs.MkdirAll("/d", 0o755))
	f, err := ffs.OpenFile("/d/f", os.O_CREATE|os.O_RDWR, 0o600)
	must(t, err)
	ffs.Arm(Fault{Op: OpWrite, Short: 3})
	n, err := f.Write([]byte("abcdef"))
	if n != 3 || !errors.Is(err, ErrInjected) {
		t.Fatalf("short write: %d %v", n, err)
	}
	f.Close()
	g, err := mem.OpenFile("/d/f", os.O_RDONLY, 0)
	must(t, err)
	b, _ := io.ReadAll(g)
	g.Close()
	if string(b) != "abc" {
		t.Fatalf("file holds %q", b)
	}
}

func TestFaultyOpenAndRemove(t *testing.T) {
	ffs := NewFaulty(NewMem())
	must(t, ffs.MkdirAll("/d", 0o755))
	ffs.Arm(Fault{Op: OpOpen})
	if _, err := ffs.OpenFile("/d/f", os.O_CREATE|os.O_RDWR, 0o600); !errors.Is(err, ErrInjected) {
		t.Fatalf("open: %v", err)
	}
	f, err := ffs.OpenFile("/d/f", os.O_CREATE|os.O_RDWR, 0o600)
	must(t, err)
	ffs.Arm(Fault{Op: OpTruncate})
	ffs.Arm(Fault{Op: OpPreallocate})
	if err := f.Truncate(0); !errors.Is(err, ErrInjected) {
		t.Fatalf("truncate: %v", err)
	}
	if err := f.Preallocate(10); !errors.Is(err, ErrInjected) {
		t.Fatalf("preallocate: %v", err)
	}
	f.Close()
	ffs.Arm(Fault{Op: OpRemove})
	if err := ffs.Remove("/d/f"); !errors.Is(err, ErrInjected) {
		t.Fatalf("remove: %v", err)
	}
	must(t, ffs.Remove("/d/f"))
}
