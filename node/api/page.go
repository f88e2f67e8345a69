package api

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"time"
)

// pageRefreshSeconds is how often the status page reloads itself. Failover
// takes about a second; a couple of seconds shows it happen without loading
// the daemon.
const pageRefreshSeconds = 2

// pageTemplate is the status page. html/template escapes every value, which
// matters because member ids, addresses and reasons come from configuration
// and peers, not from this package.
var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"yesno":    yesNo,
	"lastSeen": formatLastSeen,
	"rtt":      formatRTT,
	"since":    formatLastSeen,
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="{{.Refresh}}">
<title>clustd {{.S.Node}}: {{.S.Role}}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { text-align: left; padding: 0.25em 0.8em; border-bottom: 1px solid #ddd; }
th { background: #f4f4f4; }
.master { color: #080; font-weight: bold; }
.candidate { color: #b60; font-weight: bold; }
.bad { color: #c00; }
</style>
</head>
<body>
<h1>clustd: node {{.S.Node}}</h1>
<table>
<tr><th>role</th><td class="{{.S.Role}}">{{.S.Role}}</td></tr>
<tr><th>term</th><td>{{.S.Term}}</td></tr>
<tr><th>master</th><td>{{if .S.Master}}{{.S.Master}}{{else}}<span class="bad">none known</span>{{end}}</td></tr>
<tr><th>lease</th><td>{{.Lease}}</td></tr>
<tr><th>eligible</th><td>{{yesno .S.Eligible}}</td></tr>
<tr><th>maintenance</th><td>{{yesno .S.Maintenance}}{{if .S.Maintenance}}{{if .S.MaintenanceReason}}: {{.S.MaintenanceReason}}{{end}}{{if .S.MaintenanceUntil}} (ends {{.S.MaintenanceUntil}}){{end}}{{end}}</td></tr>
<tr><th>healthy</th><td>{{if .S.Healthy}}yes{{else}}<span class="bad">no</span>{{end}}</td></tr>
<tr><th>witness</th><td>{{yesno .S.Witness}}</td></tr>
<tr><th>role since</th><td>{{.Since}}{{if .S.Reason}} ({{.S.Reason}}){{end}}</td></tr>
</table>
<h2>Members</h2>
<table>
<tr><th>id</th><th>address</th><th>reachable</th><th>last seen</th><th>rtt</th><th>witness</th><th>priority</th></tr>
{{range .S.Members}}<tr>
<td>{{.ID}}{{if .Self}} (this node){{end}}</td>
<td>{{.Address}}</td>
<td>{{if .Self}}&ndash;{{else if .Reachable}}yes{{else}}<span class="bad">no</span>{{end}}</td>
<td>{{if .Self}}&ndash;{{else}}{{lastSeen .LastSeenMS}}{{end}}</td>
<td>{{rtt .RTTMS}}</td>
<td>{{yesno .Witness}}</td>
<td>{{.Priority}}</td>
</tr>
{{end}}</table>
{{if .S.SeedDrivers}}<h2>Legacy 2018 drivers</h2>
<p class="bad">{{.SeedWarning}}</p>
<table>
<tr><th>id</th><th>remote</th><th>told master</th><th>holding</th><th>connected</th></tr>
{{range .S.SeedDrivers}}<tr>
<td>{{.ID}}</td>
<td>{{.Remote}}</td>
<td>{{yesno .ToldMaster}}</td>
<td>{{yesno .Holding}}</td>
<td>{{since .SinceMS}}</td>
</tr>
{{end}}</table>
{{end}}<p>Refreshes every {{.Refresh}} s. As JSON: <a href="/v1/status">/v1/status</a>.</p>
</body>
</html>
`))

type pageData struct {
	S           Status
	Refresh     int
	Lease       string
	Since       string
	SeedWarning string
}

func (h *handler) page(w http.ResponseWriter, r *http.Request) {
	s := h.snapshot()
	d := pageData{S: s, Refresh: pageRefreshSeconds, Lease: "–", Since: formatMS(s.SinceMS) + " ago", SeedWarning: SeedDriversWarning}
	if s.Role == "master" {
		d.Lease = formatMS(s.LeaseMS)
	}
	// Rendered into a buffer first, so that a template failure becomes a
	// clean 500 instead of half a page.
	var b bytes.Buffer
	if err := pageTemplate.Execute(&b, d); err != nil {
		h.log.Error("rendering the status page", "error", err)
		writeError(w, http.StatusInternalServerError, "cannot render the status page: "+err.Error())
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Content-Type-Options", "nosniff")
	// The page needs nothing but its own inline style; forbidding the rest
	// is a second line of defence behind the template's escaping.
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	hd.Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(http.StatusOK)
	w.Write(b.Bytes())
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func formatMS(ms int64) string {
	return (time.Duration(ms) * time.Millisecond).String()
}

func formatLastSeen(ms int64) string {
	if ms < 0 {
		return "never"
	}
	return formatMS(ms) + " ago"
}

func formatRTT(ms float64) string {
	if ms <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f ms", ms)
}
