package vip

import (
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves the driver's state: GET /status as JSON (Status) and GET
// /metrics for Prometheus. The daemon's own status does not list drivers,
// so this is where an operator sees which addresses a node holds and when
// it last announced them.
func (d *Driver) Handler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&collector{d: d})
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(d.Status())
	})
	return mux
}

var (
	descHeld = prometheus.NewDesc("clustd_vip_address_held",
		"1 while this driver has the address on the interface, 0 otherwise.", []string{"address", "interface"}, nil)
	descMaster = prometheus.NewDesc("clustd_vip_master",
		"1 while the driver acts as master.", nil, nil)
	descLast = prometheus.NewDesc("clustd_vip_last_announce_timestamp_seconds",
		"When the addresses were last announced (gratuitous ARP, neighbour advertisement), 0 if never.", nil, nil)
	descCount = prometheus.NewDesc("clustd_vip_announcements_total",
		"Rounds of announcements sent.", nil, nil)
)

// collector reads the metrics from Status at each scrape, so they can
// never disagree with /status.
type collector struct{ d *Driver }

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descHeld
	ch <- descMaster
	ch <- descLast
	ch <- descCount
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.d.Status()
	held := map[string]bool{}
	for _, a := range s.Held {
		held[a] = true
	}
	for _, a := range s.Addresses {
		v := 0.0
		if held[a] {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descHeld, prometheus.GaugeValue, v, a, s.Interface)
	}
	m := 0.0
	if s.Master {
		m = 1
	}
	ch <- prometheus.MustNewConstMetric(descMaster, prometheus.GaugeValue, m)
	last := 0.0
	if !s.LastAnnounce.IsZero() {
		last = float64(s.LastAnnounce.UnixNano()) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(descLast, prometheus.GaugeValue, last)
	ch <- prometheus.MustNewConstMetric(descCount, prometheus.CounterValue, float64(s.Announcements))
}
