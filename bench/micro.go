package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// RunMicro runs the Go benchmarks of pkgs (as `go test -bench . -benchmem
// -count N`) in the module at root, copying their output to out, and
// returns the median of each benchmark's runs.
func RunMicro(ctx context.Context, root string, count int, pkgs []string, out io.Writer) ([]MicroResult, error) {
	args := append([]string{"test", "-run", "^$", "-bench", ".", "-benchmem", "-count", strconv.Itoa(count)}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	var buf strings.Builder
	w := io.MultiWriter(&buf, out)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		return parseBenchOutput(buf.String()), fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return parseBenchOutput(buf.String()), nil
}

var benchLineRE = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)

// parseBenchOutput reads `go test -bench` output and returns one result
// per benchmark, in order of first appearance, with the median of its runs
// for each figure.
func parseBenchOutput(text string) []MicroResult {
	type acc struct {
		pkg, name         string
		ns, bytes, allocs []float64
	}
	var order []*acc
	byKey := map[string]*acc{}
	pkg := ""
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		m := benchLineRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		key := pkg + "." + m[1]
		a := byKey[key]
		if a == nil {
			a = &acc{pkg: pkg, name: m[1]}
			byKey[key] = a
			order = append(order, a)
		}
		fs := strings.Fields(m[2])
		for i := 0; i+1 < len(fs); i += 2 {
			v, err := strconv.ParseFloat(fs[i], 64)
			if err != nil {
				continue
			}
			switch fs[i+1] {
			case "ns/op":
				a.ns = append(a.ns, v)
			case "B/op":
				a.bytes = append(a.bytes, v)
			case "allocs/op":
				a.allocs = append(a.allocs, v)
			}
		}
	}
	med := func(v []float64) float64 {
		if len(v) == 0 {
			return 0
		}
		return median(v)
	}
	out := make([]MicroResult, 0, len(order))
	for _, a := range order {
		out = append(out, MicroResult{
			Package: a.pkg, Name: a.name, Runs: len(a.ns),
			NsPerOp: med(a.ns), BytesPerOp: med(a.bytes), AllocsPerOp: med(a.allocs),
		})
	}
	return out
}
