// Command vip-bench measures client-observed failover of a floating
// address on the vipnet rig: clustd with clustd driver vip in both timing
// profiles, and keepalived (VRRPv3, unicast peers) with 0.1 s and 1 s
// adverts, through the same rig and the same client in one run. Needs root
// and keepalived.
//
//	go run ./vipnet/cmd/vip-bench -trials 10 -out vipnet/results.json
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/clustd/clustd/vipnet"
)

type setup struct {
	Name string
	Cfg  vipnet.Config
}

type summary struct {
	Setup     string
	Fault     vipnet.Fault
	Trials    int
	OutageMed float64 `json:"outage_median_ms"`
	OutageP99 float64 `json:"outage_p99_ms"`
	OutageMax float64 `json:"outage_max_ms"`
	NeighMed  float64 `json:"neigh_median_ms"`
	NeighMax  float64 `json:"neigh_max_ms"`
	NoNeigh   int     `json:"neigh_missing"`
	Overlaps  int     `json:"overlap_polls"`
	TwoNodes  int     `json:"trials_on_two_nodes"`
	Interleav int     `json:"interleaved_answers"`
	GapMin    float64 `json:"gap_min_ms"`
	GapMed    float64 `json:"gap_median_ms"`
	Gaps      int     `json:"gaps_known"`
	Errors    []string
}

func main() {
	vipnet.MaybeResponder()
	trials := flag.Int("trials", 10, "trials per fault and setup")
	out := flag.String("out", "", "write the results as JSON here")
	only := flag.String("only", "", "run only the setups whose name contains this")
	faultList := flag.String("faults", "", "only these faults, comma-separated (kill, sigstop, isolate, transfer)")
	keep := flag.Bool("keep", false, "keep the configurations and logs (their directory is printed)")
	flag.Parse()
	if err := vipnet.Available(); err != nil {
		fmt.Fprintln(os.Stderr, "vip-bench:", err)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "vip-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if *keep {
		fmt.Println("# logs in", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	clustd := filepath.Join(dir, "clustd")
	if b, err := exec.Command("go", "build", "-o", clustd, "./cmd/clustd").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building clustd: %v\n%s", err, b)
		os.Exit(1)
	}
	setups := []setup{
		{"clustd default", vipnet.Config{Kind: vipnet.Clustd, Profile: "default"}},
		{"clustd fast", vipnet.Config{Kind: vipnet.Clustd, Profile: "fast"}},
		{"keepalived advert 1s", vipnet.Config{Kind: vipnet.Keepalived, Advert: time.Second}},
		{"keepalived advert 0.1s", vipnet.Config{Kind: vipnet.Keepalived, Advert: 100 * time.Millisecond}},
	}
	var sums []summary
	for _, s := range setups {
		if *only != "" && !strings.Contains(s.Name, *only) {
			continue
		}
		if s.Cfg.Kind == vipnet.Keepalived {
			if _, err := exec.LookPath("keepalived"); err != nil {
				fmt.Fprintln(os.Stderr, "vip-bench: keepalived is not installed (apt-get install keepalived); skipping", s.Name)
				continue
			}
		}
		s.Cfg.Clustd = clustd
		s.Cfg.Dir = filepath.Join(dir, strings.ReplaceAll(s.Name, " ", "-"))
		os.MkdirAll(s.Cfg.Dir, 0o755)
		sums = append(sums, runSetup(s, *trials, *faultList)...)
	}
	fmt.Println()
	fmt.Printf("%-24s %-9s %6s %12s %12s %12s %14s %16s %9s %11s\n", "setup", "fault", "trials", "outage p50", "outage p99", "outage max", "neigh p50/max", "gap min/p50", "two nodes", "interleaved")
	for _, s := range sums {
		gap := "-"
		if s.Gaps > 0 {
			gap = fmt.Sprintf("%.1f/%.1f ms", s.GapMin, s.GapMed)
		}
		fmt.Printf("%-24s %-9s %6d %9.1f ms %9.1f ms %9.1f ms %6.1f/%5.1f ms %16s %9d %11d\n", s.Setup, s.Fault, s.Trials, s.OutageMed, s.OutageP99, s.OutageMax, s.NeighMed, s.NeighMax, gap, s.TwoNodes, s.Interleav)
		for _, e := range s.Errors {
			fmt.Printf("    error: %s\n", e)
		}
	}
	if *out != "" {
		b, _ := json.MarshalIndent(sums, "", "  ")
		if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}

func runSetup(s setup, trials int, only string) []summary {
	faults := []vipnet.Fault{vipnet.Kill, vipnet.Stop, vipnet.Isolate, vipnet.Transfer}
	if s.Cfg.Kind == vipnet.Keepalived {
		faults = faults[:3]
	}
	if only != "" {
		faults = slices.DeleteFunc(faults, func(f vipnet.Fault) bool { return !slices.Contains(strings.Split(only, ","), string(f)) })
	}
	results := map[vipnet.Fault][]vipnet.Result{}
	errs := map[vipnet.Fault][]string{}
	r, err := vipnet.New(s.Cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", s.Name, err)
		return []summary{{Setup: s.Name, Errors: []string{err.Error()}}}
	}
	defer r.Close()
	fmt.Println("#", s.Name+":", r.Describe())
	for i := range trials {
		for _, f := range faults {
			res, err := r.Apply(f)
			if err != nil {
				fmt.Printf("%s trial %d %s: %v\n", s.Name, i, f, err)
				errs[f] = append(errs[f], err.Error())
				if res.Fault == "" {
					continue
				}
			}
			fmt.Printf("%s trial %d: %v\n", s.Name, i, res)
			results[f] = append(results[f], res)
		}
	}
	var sums []summary
	for _, f := range faults {
		rs := results[f]
		sm := summary{Setup: s.Name, Fault: f, Trials: len(rs), Errors: errs[f]}
		var out, nb, gaps []float64
		for _, x := range rs {
			if x.GapKnown {
				gaps = append(gaps, ms(x.Gap))
			}
			out = append(out, ms(x.Outage))
			if x.Neigh >= 0 {
				nb = append(nb, ms(x.Neigh))
			} else {
				sm.NoNeigh++
			}
			sm.Overlaps += x.Overlaps
			if x.Overlaps > 0 {
				sm.TwoNodes++
			}
			sm.Interleav += x.Interleaved
		}
		sm.OutageMed, sm.OutageP99, sm.OutageMax = quantile(out, 0.5), quantile(out, 0.99), quantile(out, 1)
		sm.NeighMed, sm.NeighMax = quantile(nb, 0.5), quantile(nb, 1)
		sm.Gaps, sm.GapMin, sm.GapMed = len(gaps), quantile(gaps, 0), quantile(gaps, 0.5)
		sums = append(sums, sm)
	}
	return sums
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// quantile is the nearest-rank quantile; with a few dozen trials p99 is
// the largest but one or the largest.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}
