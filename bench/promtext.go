package bench

import (
	"strconv"
	"strings"
)

// Metric is one sample line of the Prometheus text format.
type Metric struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// ParseMetrics reads the Prometheus text exposition format as the daemon
// serves it at /metrics. Comments and lines it cannot read are skipped;
// label values are taken verbatim between their quotes, which is exact for
// the node ids, peer ids and reasons clustd uses as label values.
func ParseMetrics(text string) []Metric {
	var out []Metric
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		var s Metric
		rest := line
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				continue
			}
			s.Name = line[:i]
			s.Labels = parseLabels(line[i+1 : j])
			rest = strings.TrimSpace(line[j+1:])
		} else {
			name, value, ok := strings.Cut(line, " ")
			if !ok {
				continue
			}
			s.Name, rest = name, strings.TrimSpace(value)
		}
		// A timestamp may follow the value.
		value, _, _ := strings.Cut(rest, " ")
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		s.Value = v
		out = append(out, s)
	}
	return out
}

func parseLabels(s string) map[string]string {
	m := map[string]string{}
	for s != "" {
		k, rest, ok := strings.Cut(s, `="`)
		if !ok {
			break
		}
		v, rest, ok := strings.Cut(rest, `"`)
		if !ok {
			break
		}
		m[strings.TrimSpace(strings.TrimPrefix(k, ","))] = v
		s = strings.TrimPrefix(rest, ",")
	}
	return m
}

// Find returns the value of the first sample named name whose labels
// include every pair of labels (key, value, key, value…), and whether there
// was one.
func Find(samples []Metric, name string, labels ...string) (float64, bool) {
next:
	for _, s := range samples {
		if s.Name != name {
			continue
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if s.Labels[labels[i]] != labels[i+1] {
				continue next
			}
		}
		return s.Value, true
	}
	return 0, false
}
