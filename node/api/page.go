package api

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"time"

	"github.com/clustd/clustd/driverproto"
)

// pageRefreshSeconds is how often the status page reloads itself in a
// browser without JavaScript. With JavaScript it never reloads: it follows
// the event stream (GET /v1/events/stream), which carries the status every
// second and each journal event as it is written.
const pageRefreshSeconds = 2

// pageTemplate is the status page. html/template escapes every value, which
// matters because member ids, addresses and reasons come from configuration
// and peers, not from this package; the script builds its elements with
// textContent for the same reason. Everything is inline: the page works on
// a machine with no network beyond this listener.
var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"yesno":    yesNo,
	"lastSeen": formatLastSeen,
	"rtt":      formatRTT,
	"since":    formatLastSeen,
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<noscript><meta http-equiv="refresh" content="{{.Refresh}}"></noscript>
<link rel="icon" href="data:,">
<title>clustd {{.S.Node}}: {{.S.Role}}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { text-align: left; padding: 0.25em 0.8em; border-bottom: 1px solid #ddd; }
th { background: #f4f4f4; }
.master { color: #080; font-weight: bold; }
.candidate { color: #b60; font-weight: bold; }
.bad { color: #c00; }
#live { font-size: 0.9em; color: #666; }
#live.down { color: #c00; }
#timeline { list-style: none; padding: 0; font-family: ui-monospace, monospace; font-size: 0.9em; }
#timeline li { padding: 0.2em 0.5em; border-bottom: 1px solid #eee; }
#timeline li.failover { background: #fff3cd; border-left: 4px solid #e0a800; font-weight: bold; }
#timeline .when { color: #666; margin-right: 1em; }
#timeline .kind { display: inline-block; min-width: 11em; }
#admin input { width: 30em; }
#admin-msg.bad { color: #c00; }
button { margin: 0 0.3em 0.3em 0; }
</style>
</head>
<body>
<h1 id="title">clustd: node {{.S.Node}}</h1>
<p id="live">Live updates need JavaScript; this page reloads every {{.Refresh}} s without it.</p>
<table id="summary">
<tr><th>role</th><td id="role" class="{{.S.Role}}">{{.S.Role}}</td></tr>
<tr><th>term</th><td id="term">{{.S.Term}}</td></tr>
<tr><th>master</th><td id="master">{{if .S.Master}}{{.S.Master}}{{else}}<span class="bad">none known</span>{{end}}</td></tr>
<tr><th>lease</th><td id="lease">{{.Lease}}</td></tr>
<tr><th>eligible</th><td id="eligible">{{yesno .S.Eligible}}</td></tr>
<tr><th>maintenance</th><td id="maintenance">{{yesno .S.Maintenance}}{{if .S.Maintenance}}{{if .S.MaintenanceReason}}: {{.S.MaintenanceReason}}{{end}}{{if .S.MaintenanceUntil}} (ends {{.S.MaintenanceUntil}}){{end}}{{end}}</td></tr>
<tr><th>healthy</th><td id="healthy">{{if .S.Healthy}}yes{{else}}<span class="bad">no</span>{{end}}</td></tr>
<tr><th>witness</th><td id="witness">{{yesno .S.Witness}}</td></tr>
<tr><th>role since</th><td id="since">{{.Since}}{{if .S.Reason}} ({{.S.Reason}}){{end}}</td></tr>
</table>
<h2>Members</h2>
<table>
<thead><tr><th>id</th><th>role</th><th>term</th><th>address</th><th>reachable</th><th>last seen</th><th>rtt</th><th>witness</th><th>priority</th><th></th></tr></thead>
<tbody id="members">
{{range .S.Members}}<tr>
<td>{{.ID}}{{if .Self}} (this node){{end}}</td>
<td>{{if eq .ID $.S.Master}}<span class="master">master</span>{{else if or .Self .Reachable}}follower{{else}}&ndash;{{end}}</td>
<td>{{if or .Self (eq .ID $.S.Master)}}{{$.S.Term}}{{else}}&ndash;{{end}}</td>
<td>{{.Address}}</td>
<td>{{if .Self}}&ndash;{{else if .Reachable}}yes{{else}}<span class="bad">no</span>{{end}}</td>
<td>{{if .Self}}&ndash;{{else}}{{lastSeen .LastSeenMS}}{{end}}</td>
<td>{{rtt .RTTMS}}</td>
<td>{{yesno .Witness}}</td>
<td>{{.Priority}}</td>
<td></td>
</tr>
{{end}}</tbody>
</table>
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
{{end}}<h2>Drivers</h2>
<table>
<thead><tr><th>id</th><th>required</th><th>health</th></tr></thead>
<tbody id="drivers"></tbody>
</table>
<div id="admin"></div>
<h2>What happened</h2>
<ol id="timeline"></ol>
<p>As JSON: <a href="/v1/status">/v1/status</a>, <a href="/v1/events">/v1/events</a>.</p>
<script nonce="{{.Nonce}}">
{{.Script}}
</script>
</body>
</html>
`))

// pageScript keeps the page current from the event stream. It is plain
// JavaScript, inline, with no library.
const pageScript = `"use strict";
(function () {
  var tokenKey = "clustd-admin-token";
  var st = null, statusAt = 0, maxEvents = 500;
  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function fmtMS(ms) {
    if (ms < 1000) return ms + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
    return Math.floor(ms / 60000) + " min " + Math.round((ms % 60000) / 1000) + " s";
  }
  function yesno(b) { return b ? "yes" : "no"; }
  function setText(id, text, cls) { var e = $(id); e.textContent = text; e.className = cls || ""; }
  function token() { try { return sessionStorage.getItem(tokenKey) || ""; } catch (e) { return ""; } }

  function renderLease() {
    if (!st) return;
    if (st.role === "master") {
      var left = Math.max(0, st.lease_ms - (performance.now() - statusAt));
      setText("lease", (left / 1000).toFixed(2) + " s", left > 0 ? "" : "bad");
    } else {
      setText("lease", st.master ? "held by " + st.master : "–");
    }
  }

  function render() {
    document.title = "clustd " + st.node + ": " + st.role;
    setText("title", "clustd: node " + st.node);
    setText("role", st.role, st.role);
    setText("term", String(st.term));
    if (st.master) setText("master", st.master); else setText("master", "none known", "bad");
    setText("eligible", yesno(st.eligible));
    setText("maintenance", yesno(st.maintenance));
    setText("healthy", yesno(st.healthy), st.healthy ? "" : "bad");
    setText("witness", yesno(st.witness));
    setText("since", fmtMS(st.since_ms) + " ago" + (st.reason ? " (" + st.reason + ")" : ""));
    renderLease();
    var tb = $("members");
    tb.textContent = "";
    (st.members || []).forEach(function (m) {
      var tr = el("tr");
      var isMaster = m.id === st.master;
      tr.appendChild(el("td", "", m.id + (m.self ? " (this node)" : "")));
      tr.appendChild(el("td", isMaster ? "master" : "", isMaster ? "master" : (m.self || m.reachable ? "follower" : "–")));
      tr.appendChild(el("td", "", (m.self || isMaster) ? String(st.term) : "–"));
      tr.appendChild(el("td", "", m.address));
      tr.appendChild(m.self ? el("td", "", "–") : el("td", m.reachable ? "" : "bad", yesno(m.reachable)));
      tr.appendChild(el("td", "", m.self ? "–" : (m.last_seen_ms < 0 ? "never" : fmtMS(m.last_seen_ms) + " ago")));
      tr.appendChild(el("td", "", m.rtt_ms > 0 ? m.rtt_ms.toFixed(2) + " ms" : "–"));
      tr.appendChild(el("td", "", yesno(m.witness)));
      tr.appendChild(el("td", "", String(m.priority)));
      var act = el("td");
      if (token() && st.role === "master" && !m.self && !m.witness) {
        var b = el("button", "admin transfer", "make master");
        b.setAttribute("data-to", m.id);
        b.onclick = function () { post("/v1/transfer", { to: m.id }, "transfer to " + m.id); };
        act.appendChild(b);
      }
      tr.appendChild(act);
      tb.appendChild(tr);
    });
    var db = $("drivers");
    db.textContent = "";
    var drivers = st.drivers || [];
    if (drivers.length === 0) {
      var tr = el("tr");
      var td = el("td", "", "no driver connected");
      td.colSpan = 3;
      tr.appendChild(td);
      db.appendChild(tr);
    }
    drivers.forEach(function (d) {
      var tr = el("tr");
      tr.appendChild(el("td", "", d.id));
      tr.appendChild(el("td", "", yesno(d.required)));
      tr.appendChild(el("td", d.healthy ? "" : "bad", d.healthy ? "healthy" : "unhealthy" + (d.reason ? ": " + d.reason : "")));
      db.appendChild(tr);
    });
    renderAdmin();
  }

  // The admin controls exist only while the page has the token: it is
  // pasted once and kept in this tab's session storage.
  var adminShown = null;
  function renderAdmin() {
    var key = (token() ? "t" : "") + "|" + (st ? st.role + st.maintenance : "");
    if (key === adminShown) return;
    adminShown = key;
    var box = $("admin");
    var msg = $("admin-msg");
    var keep = msg ? msg.textContent : "", keepCls = msg ? msg.className : "";
    box.textContent = "";
    box.appendChild(el("h2", "", "Admin"));
    if (!token()) {
      var input = el("input");
      input.id = "token-input";
      input.type = "password";
      input.placeholder = "admin token (64 hex digits): clustd token --config FILE prints it";
      input.autocomplete = "off";
      var use = el("button", "", "use token");
      use.id = "token-use";
      use.onclick = function () {
        var v = input.value.trim();
        if (!/^[0-9a-fA-F]{64}$/.test(v)) { say("an admin token is 64 hex digits", true); return; }
        sessionStorage.setItem(tokenKey, v);
        adminShown = null;
        if (st) render();
      };
      box.appendChild(input);
      box.appendChild(use);
    } else {
      if (st && st.role === "master") {
        var tb = el("button", "admin transfer", "transfer to the best node");
        tb.id = "transfer-best";
        tb.onclick = function () { post("/v1/transfer", {}, "transfer"); };
        box.appendChild(tb);
      }
      var on = st && st.maintenance;
      var mb = el("button", "admin maintenance", on ? "maintenance off" : "maintenance on");
      mb.id = on ? "maintenance-off" : "maintenance-on";
      mb.onclick = function () { post("/v1/maintenance", { on: !on }, "maintenance " + (on ? "off" : "on")); };
      box.appendChild(mb);
      var forget = el("button", "", "forget token");
      forget.id = "token-forget";
      forget.onclick = function () { sessionStorage.removeItem(tokenKey); adminShown = null; if (st) render(); };
      box.appendChild(forget);
    }
    var p = el("p", keepCls, keep);
    p.id = "admin-msg";
    box.appendChild(p);
  }
  function say(text, bad) { var m = $("admin-msg"); if (m) { m.textContent = text; m.className = bad ? "bad" : ""; } }
  function post(path, body, what) {
    say(what + "…");
    fetch(path, {
      method: "POST",
      headers: { "Authorization": "Bearer " + token(), "Content-Type": "application/json" },
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().then(function (j) { return { ok: r.ok, code: r.status, body: j }; });
    }).then(function (r) {
      if (r.ok) { say(what + ": done"); return; }
      if (r.code === 401) { sessionStorage.removeItem(tokenKey); adminShown = null; if (st) render(); }
      say(what + ": " + (r.body && r.body.error ? r.body.error : "failed with " + r.code), true);
    }, function (e) { say(what + ": " + e, true); });
  }

  function describe(ev) {
    switch (ev.kind) {
    case "failover":
      var s = "term " + ev.term + ": " + ev.from + " → " + ev.to + ", cause " + ev.cause +
        ", no master for " + fmtMS(ev.no_master_ms);
      if (ev.promoted) s += ", drivers promoted " + fmtMS(Math.max(0, Date.parse(ev.promoted) - Date.parse(ev.elected))) + " after the election";
      return s;
    case "role": return ev.role + " in term " + (ev.term || 0) + ", master " + (ev.master || "none known") + (ev.detail ? ": " + ev.detail : "");
    case "election": return "election for term " + ev.term + (ev.detail ? ": " + ev.detail : "");
    case "member_lost": return "lost contact with " + ev.peer;
    case "member_back": return ev.peer + " is reachable";
    case "driver_connected": return "driver " + ev.driver + " connected";
    case "driver_disconnected": return "driver " + ev.driver + " gone" + (ev.detail ? ": " + ev.detail : "");
    case "driver_health": return "driver " + ev.driver + (ev.ok ? " healthy" : " unhealthy") + (ev.detail ? ": " + ev.detail : "");
    }
    return ev.detail || "";
  }
  function addEvent(ev) {
    var li = el("li", ev.kind === "failover" ? "failover" : "");
    li.setAttribute("data-seq", String(ev.seq));
    li.setAttribute("data-kind", ev.kind);
    var t = new Date(ev.time);
    li.appendChild(el("span", "when", isNaN(t) ? "" : t.toLocaleString()));
    li.appendChild(el("span", "node", ev.node + " "));
    li.appendChild(el("span", "kind", ev.kind === "failover" ? "FAILOVER" : ev.kind));
    li.appendChild(el("span", "what", describe(ev)));
    var tl = $("timeline");
    tl.insertBefore(li, tl.firstChild);
    while (tl.children.length > maxEvents) tl.removeChild(tl.lastChild);
  }

  var live = $("live");
  live.textContent = "connecting…";
  var es = new EventSource("/v1/events/stream?limit=200");
  es.onopen = function () { live.textContent = "live"; live.className = ""; };
  es.onerror = function () { live.textContent = "connection lost: reconnecting…"; live.className = "down"; };
  es.onmessage = function (e) { addEvent(JSON.parse(e.data)); };
  es.addEventListener("status", function (e) {
    st = JSON.parse(e.data);
    statusAt = performance.now();
    render();
  });
  setInterval(renderLease, 100);
  renderAdmin();
})();
`

type pageData struct {
	S           Status
	Refresh     int
	Lease       string
	Since       string
	SeedWarning string
	Nonce       string
	Script      template.JS
}

func (h *handler) page(w http.ResponseWriter, r *http.Request) {
	s := h.snapshot()
	var nb [16]byte
	rand.Read(nb[:])
	// URL-safe letters: html/template leaves them as they are in the
	// attribute, and CSP accepts them.
	nonce := base64.RawURLEncoding.EncodeToString(nb[:])
	d := pageData{S: s, Refresh: pageRefreshSeconds, Lease: "–", Since: formatMS(s.SinceMS) + " ago", SeedWarning: SeedDriversWarning, Nonce: nonce, Script: template.JS(pageScript)}
	if s.Role == driverproto.RoleMaster {
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
	// The page needs its own inline style and script (this response's
	// nonce), the event stream and the admin API of this listener, and
	// nothing else: a second line of defence behind the escaping.
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-"+nonce+"'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
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
