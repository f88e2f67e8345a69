package repocheck

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// importRule is one rule of docs/packages.md. Package patterns are
// directories relative to the module root; "x/..." means x and everything
// below it, "..." every package.
type importRule struct {
	// rule names the rule in docs/packages.md, for the failure message.
	rule string
	pkgs []string
	// except lists packages the rule does not apply to.
	except []string
	// only, when not nil, lists every package of this module the package
	// may depend on, directly or through others.
	only []string
	// never lists packages of this module it must not depend on, directly
	// or through others.
	never []string
	// thirdParty, when not nil, lists the module paths outside the
	// standard library that the package may import directly.
	thirdParty []string
}

// importRules are docs/packages.md's rules, in its order.
var importRules = []importRule{
	{rule: "rule 1: election and driverproto import only the standard library",
		pkgs: []string{"election", "driverproto"}, only: []string{}, thirdParty: []string{}},
	{rule: "rule 2: sim depends only on election and internal/…",
		pkgs: []string{"sim"}, only: []string{"election", "internal/..."}},
	{rule: "rule 3: a driver never links the daemon, the core or the simulator",
		pkgs: []string{"driverclient", "drivers/...", "examples/..."},
		only: []string{"driverproto", "driverclient", "drivers/...", "internal/..."}},
	{rule: "rule 4: the daemon carries no test machinery and no driver side",
		pkgs:  []string{"node/..."},
		never: []string{"sim", "driverclient", "drivers/...", "examples/...", "chaos/...", "bench/...", "e2e/...", "cmd/..."}},
	{rule: "rule 5: chaos and bench run the built binary and never import the daemon",
		pkgs: []string{"chaos/...", "bench/..."}, except: []string{"bench/cmd/clustd-prof"},
		never: []string{"node"}},
	{rule: "rule 6: nothing outside chaos and bench imports them, nothing imports e2e",
		pkgs: []string{"..."}, except: []string{"chaos/...", "bench/..."},
		never: []string{"chaos/...", "bench/...", "e2e/..."}},
	{rule: "rule 7: internal/tcptest is for tests only",
		pkgs: []string{"..."}, never: []string{"internal/tcptest"}},
	{rule: "table: internal/boottime imports the standard library and golang.org/x/sys only",
		pkgs: []string{"internal/boottime"}, only: []string{}, thirdParty: []string{"golang.org/x/sys"}},
	{rule: "table: internal/localcluster runs the built binary and never imports the daemon",
		pkgs: []string{"internal/localcluster"}, never: []string{"node"}},
	{rule: "table: internal/percentile imports only the standard library",
		pkgs: []string{"internal/percentile"}, only: []string{}, thirdParty: []string{}},
}

func TestImportRules(t *testing.T) {
	r := loadRepo(t)
	for _, v := range checkImports(r, importRules) {
		t.Error(v)
	}
}

// match reports whether the package in dir matches pattern.
func match(pattern, dir string) bool {
	if pattern == "..." {
		return true
	}
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return dir == base || strings.HasPrefix(dir, base+"/")
	}
	return dir == pattern
}

func matchAny(patterns []string, dir string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return match(p, dir) })
}

// deps returns every package of the module that the package in dir
// depends on through non-test imports, each with the chain that reaches
// it ("chaos → sim → election").
func (r *repo) deps(dir string) map[string]string {
	out := map[string]string{}
	var walk func(d, chain string)
	walk = func(d, chain string) {
		p := r.pkgs[d]
		if p == nil {
			return
		}
		for _, ip := range p.imports {
			l, ok := r.local(ip)
			if !ok {
				continue
			}
			if _, seen := out[l]; seen {
				continue
			}
			c := chain + " → " + l
			out[l] = c
			walk(l, c)
		}
	}
	walk(dir, dir)
	return out
}

// checkImports applies the rules and describes every violation. A rule
// whose patterns match no package is a violation too: a renamed package
// must not leave a rule checking nothing.
func checkImports(r *repo, rules []importRule) []string {
	var out []string
	dirs := make([]string, 0, len(r.pkgs))
	for d, p := range r.pkgs {
		if p.goFiles > 0 {
			dirs = append(dirs, d)
		}
	}
	slices.Sort(dirs)
	for _, rule := range rules {
		for _, pat := range slices.Concat(rule.pkgs, rule.except, rule.only, rule.never) {
			if !slices.ContainsFunc(dirs, func(d string) bool { return match(pat, d) }) {
				out = append(out, fmt.Sprintf("%s: no package matches %q; update docs/packages.md and this rule together", rule.rule, pat))
			}
		}
		for _, d := range dirs {
			if !matchAny(rule.pkgs, d) || matchAny(rule.except, d) {
				continue
			}
			deps := r.deps(d)
			names := make([]string, 0, len(deps))
			for l := range deps {
				names = append(names, l)
			}
			slices.Sort(names)
			for _, l := range names {
				if rule.only != nil && !matchAny(rule.only, l) || matchAny(rule.never, l) {
					out = append(out, fmt.Sprintf("%s: %s depends on %s (%s)", rule.rule, d, l, deps[l]))
				}
			}
			if rule.thirdParty == nil {
				continue
			}
			for _, ip := range r.pkgs[d].imports {
				if _, ok := r.local(ip); ok || isStd(ip) {
					continue
				}
				if !slices.ContainsFunc(rule.thirdParty, func(m string) bool { return ip == m || strings.HasPrefix(ip, m+"/") }) {
					out = append(out, fmt.Sprintf("%s: %s imports %s", rule.rule, d, ip))
				}
			}
		}
	}
	return out
}

// TestCheckImportsCatches runs the checker on a made-up module with one
// violation of each kind, so that a checker that passes everything fails
// here.
func TestCheckImportsCatches(t *testing.T) {
	const mod = "example.com/m"
	r := &repo{module: mod, pkgs: map[string]*pkg{
		"election":     {dir: "election", goFiles: 1, imports: []string{"fmt", "github.com/some/lib"}},
		"sim":          {dir: "sim", goFiles: 1, imports: []string{mod + "/election", mod + "/relay"}},
		"relay":        {dir: "relay", goFiles: 1, imports: []string{mod + "/node"}},
		"node":         {dir: "node", goFiles: 1, imports: []string{mod + "/election"}},
		"chaos":        {dir: "chaos", goFiles: 1, imports: []string{mod + "/relay"}},
		"bench/cmd/ok": {dir: "bench/cmd/ok", goFiles: 1, imports: []string{mod + "/node"}},
	}}
	rules := []importRule{
		{rule: "std", pkgs: []string{"election"}, only: []string{}, thirdParty: []string{}},
		{rule: "sim", pkgs: []string{"sim"}, only: []string{"election"}},
		{rule: "chaos", pkgs: []string{"chaos/...", "bench/..."}, except: []string{"bench/cmd/ok"}, never: []string{"node"}},
		{rule: "gone", pkgs: []string{"vanished/..."}},
	}
	got := checkImports(r, rules)
	want := []string{
		"std: election imports github.com/some/lib",
		"sim: sim depends on node (sim → relay → node)",
		"sim: sim depends on relay (sim → relay)",
		"chaos: chaos depends on node (chaos → relay → node)",
		`gone: no package matches "vanished/..."; update docs/packages.md and this rule together`,
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("violations:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}
