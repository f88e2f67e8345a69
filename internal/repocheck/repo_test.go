package repocheck

import (
	"bufio"
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// repo is the module as its source files describe it.
type repo struct {
	root   string // absolute path of the directory holding go.mod
	module string // the module path
	// pkgs maps a package's path relative to root ("." for the root,
	// "node/config") to what its files say.
	pkgs map[string]*pkg
}

// pkg is one package directory.
type pkg struct {
	dir string // relative to root, slash-separated
	// imports are the import paths of its non-test files, and testImports
	// those of its _test.go files.
	imports, testImports []string
	// doc says whether some non-test file carries a package comment.
	doc bool
	// goFiles counts its non-test files.
	goFiles int
}

// skipDir reports whether a directory holds no package of the module:
// hidden ones, testdata, build output, and nested modules.
func skipDir(root, path string, d fs.DirEntry) bool {
	name := d.Name()
	if path == root {
		return false
	}
	if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "bin" || name == "vendor" || name == "node_modules" {
		return true
	}
	_, err := os.Stat(filepath.Join(path, "go.mod"))
	return err == nil
}

var (
	loaded   *repo
	loadErr  error
	loadOnce sync.Once
)

// loadRepo parses the imports and package comments of every Go file of the
// module that holds this test, once per test binary. It reads the files
// directly, so that it needs neither the go command nor the network, and it
// reads every file whatever its build constraints: a rule holds in every
// build.
func loadRepo(t *testing.T) *repo {
	t.Helper()
	loadOnce.Do(func() { loaded, loadErr = parseRepo() })
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	return loaded
}

func parseRepo() (*repo, error) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return nil, err
	}
	module, err := modulePath(filepath.Join(root, "go.mod"))
	if err != nil {
		return nil, err
	}
	r := &repo{root: root, module: module, pkgs: map[string]*pkg{}}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if skipDir(root, path, d) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		p := r.pkgs[rel]
		if p == nil {
			p = &pkg{dir: rel}
			r.pkgs[rel] = p
		}
		test := strings.HasSuffix(path, "_test.go")
		for _, spec := range f.Imports {
			ip, err := strconv.Unquote(spec.Path.Value)
			if err != nil {
				return err
			}
			if test {
				p.testImports = append(p.testImports, ip)
			} else {
				p.imports = append(p.imports, ip)
			}
		}
		if !test {
			p.goFiles++
			if f.Doc != nil && strings.TrimSpace(f.Doc.Text()) != "" {
				p.doc = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, p := range r.pkgs {
		slices.Sort(p.imports)
		p.imports = slices.Compact(p.imports)
	}
	if len(r.pkgs) < 10 {
		return nil, fmt.Errorf("found only %d packages under %s: is this the clustd module?", len(r.pkgs), root)
	}
	return r, nil
}

// modulePath reads the module line of a go.mod file.
func modulePath(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`), nil
		}
	}
	return "", fmt.Errorf("%s: no module line", path)
}

// local returns an import path's directory relative to the module root,
// and whether it is in the module at all.
func (r *repo) local(importPath string) (string, bool) {
	if importPath == r.module {
		return ".", true
	}
	rel, ok := strings.CutPrefix(importPath, r.module+"/")
	return rel, ok
}

// isStd reports whether an import path names a standard-library package:
// its first element has no dot, as the go command decides.
func isStd(importPath string) bool {
	first, _, _ := strings.Cut(importPath, "/")
	return !strings.Contains(first, ".")
}
