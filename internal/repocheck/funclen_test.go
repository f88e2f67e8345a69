package repocheck

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// maxFuncLines is the most lines a function outside tests may take, from
// its func keyword to its closing brace: past it, a reader can no longer
// hold the whole function in view, and it should be split into named steps.
const maxFuncLines = 80

// tooLongPending lists the functions longer than maxFuncLines, by
// file and name, that are still to be split. The list must only
// shrink: an entry whose function is gone or short enough fails the test
// until it is removed, and no entry may be added.
var tooLongPending = []string{}

// TestFunctionLength: no function outside tests is longer than
// maxFuncLines, apart from those tooLongPending still lists.
func TestFunctionLength(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	long, err := longFuncs(root, maxFuncLines)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, f := range long {
		found[f.key()] = true
		if !slices.Contains(tooLongPending, f.key()) {
			t.Errorf("%s:%d: %s is %d lines, more than %d: split it into named steps", f.file, f.line, f.name, f.lines, maxFuncLines)
		}
	}
	for _, k := range tooLongPending {
		if !found[k] {
			t.Errorf("tooLongPending lists %q, which is now gone or at most %d lines long: remove it from the list", k, maxFuncLines)
		}
	}
}

// longFunc is a function longer than the limit.
type longFunc struct {
	file  string // relative to the module root, slash-separated
	name  string // Recv.Name for a method
	line  int    // of its func keyword
	lines int
}

func (f longFunc) key() string { return f.file + " " + f.name }

// longFuncs lists, in file order, the functions declared outside _test.go
// files under root that are longer than limit lines.
func longFuncs(root string, limit int) ([]longFunc, error) {
	var out []longFunc
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if skipDir(root, path, d) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			start, end := fset.Position(fd.Pos()).Line, fset.Position(fd.End()).Line
			if n := end - start + 1; n > limit {
				out = append(out, longFunc{file: filepath.ToSlash(rel), name: funcName(fd), line: start, lines: n})
			}
		}
		return nil
	})
	return out, err
}

// funcName is a function's name, with its receiver's type for a method.
func funcName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	t := fd.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	switch x := t.(type) {
	case *ast.IndexExpr: // a generic type's method
		t = x.X
	case *ast.IndexListExpr:
		t = x.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name + "." + fd.Name.Name
	}
	return fd.Name.Name
}

// TestLongFuncsCatches runs the check on a small made-up tree.
func TestLongFuncsCatches(t *testing.T) {
	root := t.TempDir()
	body := func(name string, lines int) string {
		return fmt.Sprintf("func %s {\n%s}\n", name, strings.Repeat("\t_ = 0\n", lines-2))
	}
	files := map[string]string{
		"a/a.go":          "package a\n\n" + body("short()", 80) + body("long()", 81) + "type T[X any] struct{}\n\n" + body("(t *T[X]) m()", 90),
		"a/a_test.go":     "package a\n\n" + body("longTest()", 200),
		"a/testdata/x.go": "package x\n\n" + body("ignored()", 200),
	}
	for name, text := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := longFuncs(root, 80)
	if err != nil {
		t.Fatal(err)
	}
	want := []longFunc{
		{file: "a/a.go", name: "long", line: 83, lines: 81},
		{file: "a/a.go", name: "T.m", line: 166, lines: 90},
	}
	if !slices.Equal(got, want) {
		t.Errorf("long functions = %+v, want %+v", got, want)
	}
}
