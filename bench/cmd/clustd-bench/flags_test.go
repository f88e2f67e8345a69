package main

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestParseFlagsDefaults pins what a plain and a quick run measure:
// BENCHMARKS.md describes both.
func TestParseFlagsDefaults(t *testing.T) {
	all := map[string]bool{"transfer": true, "failover": true, "idle": true, "driver-idle": true, "sim": true, "micro": true}
	for _, tc := range []struct {
		args []string
		want options
	}{
		{nil, options{
			out: "bench/results.json", stages: all, nodes: []int{3, 5}, profiles: []string{"default", "fast"},
			failoverTrials: 30, transferTrials: 30, idle: 60 * time.Second, idleSettle: 5 * time.Second, idleBare: true,
			simRuns: 5, microCount: 5,
		}},
		{[]string{"-quick"}, options{
			quick: true, out: "bench/results.json", stages: all, nodes: []int{3, 5}, profiles: []string{"default", "fast"},
			failoverTrials: 8, transferTrials: 8, idle: 15 * time.Second, idleSettle: 5 * time.Second, idleBare: false,
			simRuns: 2, microCount: 1,
		}},
		{[]string{"-quick", "-stages", "failover, sim", "-nodes", "3", "-profiles", "fast", "-trials", "2", "-transfer-trials", "3",
			"-idle", "2s", "-idle-settle", "1s", "-idle-bare", "true", "-sim-runs", "1", "-micro-count", "4", "-out", "",
			"-clustd", "/bin/clustd", "-keep", "-daemon-env", "GOGC=50", "-daemon-env", "A=b=c", "-timing", "heartbeat=50ms",
			"-log-level", "debug", "-overlay", "o.json", "-pprof", "prof"}, options{
			quick: true, clustd: "/bin/clustd", stages: map[string]bool{"failover": true, "sim": true}, nodes: []int{3}, profiles: []string{"fast"},
			failoverTrials: 2, transferTrials: 3, idle: 2 * time.Second, idleSettle: time.Second, idleBare: true,
			simRuns: 1, microCount: 4, keep: true, pprofDir: "prof", env: []string{"GOGC=50", "A=b=c"}, overlay: "o.json",
			timing: []string{"heartbeat=50ms"}, logLevel: "debug",
		}},
	} {
		got, err := parseFlags(tc.args)
		if err != nil {
			t.Errorf("parseFlags(%q): %v", tc.args, err)
			continue
		}
		if !reflect.DeepEqual(*got, tc.want) {
			t.Errorf("parseFlags(%q) =\n%+v\nwant\n%+v", tc.args, *got, tc.want)
		}
	}
}

func TestParseFlagsRejects(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"-stages", "failover,bogus"}, `-stages: unknown stage "bogus"`},
		{[]string{"-nodes", "1"}, `-nodes: "1" is not a cluster size from 2 to 9`},
		{[]string{"-nodes", "3,x"}, `-nodes: "x"`},
		{[]string{"-profiles", "slow"}, `-profiles: "slow" is not a timing profile`},
		{[]string{"-idle-bare", "yes"}, `-idle-bare "yes": true or false`},
		{[]string{"-daemon-env", "novalue"}, "want KEY=VALUE"},
		{[]string{"-timing", "=1s"}, "want KEY=VALUE"},
	} {
		_, err := parseFlags(tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseFlags(%q) = %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}
