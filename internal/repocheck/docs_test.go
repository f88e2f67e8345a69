package repocheck

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestPackageDocs: every package says what it is, in a package comment on
// one of its files (a doc.go where it needs a page).
func TestPackageDocs(t *testing.T) {
	for _, d := range undocumented(loadRepo(t)) {
		t.Errorf("package %s has no package comment: say what it is, in a doc.go or on the file that names the package", d)
	}
}

func undocumented(r *repo) []string {
	var out []string
	for d, p := range r.pkgs {
		if p.goFiles > 0 && !p.doc {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out
}

func TestUndocumentedCatches(t *testing.T) {
	r := &repo{pkgs: map[string]*pkg{
		"a":     {dir: "a", goFiles: 2, doc: true},
		"b":     {dir: "b", goFiles: 1},
		"tests": {dir: "tests"}, // only _test.go files: nothing to document
	}}
	if got := undocumented(r); !slices.Equal(got, []string{"b"}) {
		t.Errorf("undocumented = %q, want [b]", got)
	}
}

// TestCitedDocumentsExist: no Go comment and no Markdown file cites a .md
// file that the repository does not have. A citation is resolved against
// the citing file's directory, then against the module root.
func TestCitedDocumentsExist(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	missing, err := missingCitations(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range missing {
		t.Error(m)
	}
}

// mdCitation matches a file name ending in .md, with any directories
// before it; urlPattern matches what is left alone, since a link to
// another site is not a file of this repository.
var (
	mdCitation = regexp.MustCompile(`[A-Za-z0-9_.\-/]*[A-Za-z0-9_\-]\.md\b`)
	urlPattern = regexp.MustCompile(`[a-z][a-z0-9+.\-]*://[^\s)>\]"'` + "`" + `]+`)
)

// missingCitations lists, as "file:line: cites X, which is not in the
// repository", every citation under root that resolves to no file.
func missingCitations(root string) ([]string, error) {
	var out []string
	fset := token.NewFileSet()
	check := func(path, text string, line int) {
		text = urlPattern.ReplaceAllString(text, "")
		for _, cite := range mdCitation.FindAllString(text, -1) {
			if !cited(root, filepath.Dir(path), cite) {
				rel, _ := filepath.Rel(root, path)
				out = append(out, rel+":"+strconv.Itoa(line)+": cites "+cite+", which is not in the repository")
			}
		}
	}
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
		switch {
		case strings.HasSuffix(path, ".md"):
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for i, line := range strings.Split(string(b), "\n") {
				check(path, line, i+1)
			}
		case strings.HasSuffix(path, ".go"):
			f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
			if err != nil {
				return err
			}
			for _, g := range f.Comments {
				for _, c := range g.List {
					check(path, c.Text, fset.Position(c.Slash).Line)
				}
			}
		}
		return nil
	})
	return out, err
}

// cited reports whether cite names a file, relative to dir or to root.
func cited(root, dir, cite string) bool {
	for _, base := range []string{dir, root} {
		p := filepath.Join(base, filepath.FromSlash(cite))
		if rel, err := filepath.Rel(root, p); err != nil || strings.HasPrefix(rel, "..") {
			continue // outside the repository
		}
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return true
		}
	}
	return false
}

// TestMissingCitationsCatches runs the check on a small made-up tree.
func TestMissingCitationsCatches(t *testing.T) {
	root := t.TempDir()
	// The names the made-up tree cites are put together here, so that
	// this file does not itself cite documents the repository lacks.
	const md = ".md"
	files := map[string]string{
		"README.md":       "See docs/design.md and [the index](docs/README.md), and BENCHMARKS.md.\nhttps://example.com/GONE" + md + " is elsewhere.\n",
		"docs/README.md":  "[design](design.md), [up](../README.md), [nowhere](nowhere.md)\n",
		"docs/design.md":  "The old DESIGN" + md + " is gone.\n",
		"a/a.go":          "// Package a follows docs/design.md and README.md.\npackage a\n\n// f keeps MISSING" + md + "'s rule.\nfunc f() { _ = \"strings.md are not comments\" }\n",
		"a/testdata/x.md": "testdata is not checked: gone.md\n",
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
	got, err := missingCitations(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"README.md:1: cites BENCHMARKS.md, which is not in the repository",
		"a/a.go:4: cites MISSING" + md + ", which is not in the repository",
		"docs/README.md:1: cites nowhere.md, which is not in the repository",
		"docs/design.md:1: cites DESIGN" + md + ", which is not in the repository",
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("missing citations:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}
