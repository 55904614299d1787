// Package arch holds tests that keep the code base's shape: every package
// states its job in a doc comment, and imports only point down the layers of
// ../shared/DESIGN.md.
package arch

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "ensemble"

// rank orders the packages as in DESIGN.md: a package may import only
// packages of a strictly lower rank.
var rank = map[string]int{
	"internal/types":       0,
	"internal/vfs":         1,
	"internal/backend":     1,
	"internal/config":      1,
	"internal/api/zk/jute": 1,
	"internal/wal":         2,
	"internal/snap":        2,
	"internal/mvcc":        2,
	"internal/transport":   2,
	"internal/raftnode":    3,
	"internal/watch":       3,
	"internal/lease":       3,
	"internal/auth":        3,
	"internal/zktree":      4,
	"internal/apply":       5,
	"internal/server":      6,
	"internal/restore":     6,
	"internal/api/etcd":    7,
	"internal/api/zk":      7,
	"internal/embed":       8,
	"internal/cli":         8,
}

// onlyImportedBy lists packages that only one layer may use.
var onlyImportedBy = map[string][]string{
	"internal/raftnode":  {"internal/server"},
	"internal/transport": {"internal/server"},
}

func root(t *testing.T) string {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(wd, "..", "..")
}

type pkg struct {
	dir     string
	hasDoc  bool
	imports map[string]bool
}

func loadPackages(t *testing.T) map[string]*pkg {
	r := root(t)
	pkgs := map[string]*pkg{}
	err := filepath.WalkDir(r, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") && path != r {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		rel, _ := filepath.Rel(r, filepath.Dir(path))
		rel = filepath.ToSlash(rel)
		p := pkgs[rel]
		if p == nil {
			p = &pkg{dir: rel, imports: map[string]bool{}}
			pkgs[rel] = p
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		isTest := strings.HasSuffix(path, "_test.go")
		if !isTest && f.Doc != nil && strings.TrimSpace(f.Doc.Text()) != "" {
			p.hasDoc = true
		}
		if isTest && f.Doc != nil && strings.HasPrefix(p.dir, "tests/") {
			p.hasDoc = true
		}
		if isTest {
			return nil
		}
		for _, imp := range f.Imports {
			ip, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(ip, module+"/") {
				p.imports[strings.TrimPrefix(ip, module+"/")] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

func TestEveryPackageHasADocComment(t *testing.T) {
	for dir, p := range loadPackages(t) {
		if dir == "." {
			continue
		}
		if !p.hasDoc {
			t.Errorf("package %s has no doc comment stating its job", dir)
		}
	}
}

func TestImportsPointDown(t *testing.T) {
	pkgs := loadPackages(t)
	for dir, p := range pkgs {
		if !strings.HasPrefix(dir, "internal/") {
			continue
		}
		r, ok := rank[dir]
		if !ok {
			t.Errorf("package %s has no place in the layer map of this test; add it as DESIGN.md places it", dir)
			continue
		}
		for imp := range p.imports {
			ir, ok := rank[imp]
			if !ok {
				continue
			}
			if ir >= r {
				t.Errorf("%s imports %s, which is not below it", dir, imp)
			}
		}
	}
	for dep, allowed := range onlyImportedBy {
		for dir, p := range pkgs {
			if !p.imports[dep] {
				continue
			}
			ok := false
			for _, a := range allowed {
				ok = ok || a == dir
			}
			if !ok && !strings.HasPrefix(dir, "tests/") {
				t.Errorf("%s imports %s, which only %v may import", dir, dep, allowed)
			}
		}
	}
}
