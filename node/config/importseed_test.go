package config

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite the import-seed golden files under testdata/import-seed")

// TestImportSeedGolden converts each sample 2018 configuration under
// testdata/import-seed/CASE (every *.yml there, as repeated --config) and
// compares the files written and the report with CASE.golden.
func TestImportSeedGolden(t *testing.T) {
	cases, err := filepath.Glob(filepath.Join("testdata", "import-seed", "*"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, dir := range cases {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			continue
		}
		n++
		t.Run(filepath.Base(dir), func(t *testing.T) {
			inputs, _ := filepath.Glob(filepath.Join(dir, "*.yml"))
			out := t.TempDir()
			got := renderImport(t, inputs, out)
			golden := dir + ".golden"
			if *updateGolden {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./node/config -run ImportSeedGolden -update-golden to write it)", err)
			}
			if got != string(want) {
				t.Errorf("%s differs; got:\n%s", golden, got)
			}
		})
	}
	if n == 0 {
		t.Fatal("no cases under testdata/import-seed")
	}
}

var hexSecret = regexp.MustCompile(`^[0-9a-f]{96}\n$`)

// renderImport runs ImportSeed and describes its outcome as text, with the
// output directory written as DIR and a generated secret masked.
func renderImport(t *testing.T, inputs []string, out string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "$ clustd import-seed")
	for _, in := range inputs {
		fmt.Fprintf(&b, " --config %s", filepath.ToSlash(in))
	}
	b.WriteString(" --dir DIR\n")
	res, err := ImportSeed(ImportSeedOptions{Configs: inputs, Dir: out})
	if err != nil {
		fmt.Fprintf(&b, "error: %s\n", strings.ReplaceAll(err.Error(), out, "DIR"))
		if res != nil && len(res.Files) > 0 {
			t.Errorf("a failed import wrote %v", res.Files)
		}
		return b.String()
	}
	for _, f := range res.Files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text := string(data)
		if f == res.SecretFile && res.NewSecret {
			if !hexSecret.MatchString(text) {
				t.Errorf("generated secret %q is not 96 hex digits", text)
			}
			text = "(a new random secret: 96 hex digits)\n"
		}
		fmt.Fprintf(&b, "--- %s\n%s", strings.Replace(f, out, "DIR", 1), text)
	}
	for _, nd := range res.Nodes {
		fmt.Fprintf(&b, "--- node %s: %s (local listener %s)\n", nd.ID, strings.ReplaceAll(nd.Command, out, "DIR"), nd.HTTPListen)
		// What was written loads, as the daemon would load it.
		if _, err := Load(nd.ConfigFile); err != nil {
			t.Errorf("converted %s does not load: %v", nd.ConfigFile, err)
		}
	}
	b.WriteString("--- not carried over\n")
	if len(res.NotCarried) == 0 {
		b.WriteString("(nothing)\n")
	}
	for _, l := range res.NotCarried {
		b.WriteString(strings.ReplaceAll(l, out, "DIR") + "\n")
	}
	return b.String()
}

func TestImportSeedRefusesToOverwrite(t *testing.T) {
	in := []string{filepath.Join("testdata", "import-seed", "readme", "config.yml")}
	dir := t.TempDir()
	if _, err := ImportSeed(ImportSeedOptions{Configs: in, Dir: dir}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "secret"))
	_, err := ImportSeed(ImportSeedOptions{Configs: in, Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "already exists; pass --force") {
		t.Fatalf("second import: %v", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "secret")); string(after) != string(before) {
		t.Fatal("a refused import changed the secret")
	}
	if _, err := ImportSeed(ImportSeedOptions{Configs: in, Dir: dir, Force: true}); err != nil {
		t.Fatalf("with Force: %v", err)
	}
}

func TestImportSeedNeedsFlags(t *testing.T) {
	if _, err := ImportSeed(ImportSeedOptions{Dir: t.TempDir()}); err == nil || !strings.HasPrefix(err.Error(), "--config: required") {
		t.Errorf("no config: %v", err)
	}
	if _, err := ImportSeed(ImportSeedOptions{Configs: []string{"x.yml"}}); err == nil || !strings.HasPrefix(err.Error(), "--dir: required") {
		t.Errorf("no dir: %v", err)
	}
	_, err := ImportSeed(ImportSeedOptions{Configs: []string{filepath.Join(t.TempDir(), "none.yml")}, Dir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "cannot read the 2018 configuration") {
		t.Errorf("missing file: %v", err)
	}
}
