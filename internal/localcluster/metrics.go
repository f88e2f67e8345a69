package localcluster

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
// the node ids, peer ids and reasons clustd uses as label values. (The
// module has no direct dependency on prometheus/common's expfmt, and this
// much is enough for reading our own daemon.)
func ParseMetrics(text string) []Metric {
	var out []Metric
	for line := range strings.Lines(text) {
		if s, ok := parseSample(strings.TrimSpace(line)); ok {
			out = append(out, s)
		}
	}
	return out
}

// parseSample reads one line: name, optional {labels}, value, optional
// timestamp.
func parseSample(line string) (Metric, bool) {
	if line == "" || line[0] == '#' {
		return Metric{}, false
	}
	var s Metric
	var rest string
	if i := strings.IndexByte(line, '{'); i >= 0 {
		j := strings.LastIndexByte(line, '}')
		if j < i {
			return Metric{}, false
		}
		s.Name = strings.TrimSpace(line[:i])
		s.Labels = parseLabels(line[i+1 : j])
		rest = strings.TrimSpace(line[j+1:])
	} else {
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			return Metric{}, false
		}
		s.Name, rest = name, strings.TrimSpace(value)
	}
	if s.Name == "" {
		return Metric{}, false
	}
	value, _, _ := strings.Cut(rest, " ")
	v, err := strconv.ParseFloat(value, 64)
	if err != nil {
		return Metric{}, false
	}
	s.Value = v
	return s, true
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
	for _, s := range samples {
		if s.matches(name, labels) {
			return s.Value, true
		}
	}
	return 0, false
}

// Sum returns the sum of every sample named name whose labels include every
// pair of labels (key, value, key, value…), and whether there was one.
func Sum(samples []Metric, name string, labels ...string) (float64, bool) {
	var sum float64
	found := false
	for _, s := range samples {
		if s.matches(name, labels) {
			sum += s.Value
			found = true
		}
	}
	return sum, found
}

func (s Metric) matches(name string, labels []string) bool {
	if s.Name != name {
		return false
	}
	for i := 0; i+1 < len(labels); i += 2 {
		if s.Labels[labels[i]] != labels[i+1] {
			return false
		}
	}
	return true
}
