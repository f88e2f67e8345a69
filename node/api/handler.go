package api

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/clustd/clustd/node/journal"
)

// MaxBodyBytes bounds the body of every request. The real ones are a few
// dozen bytes; the bound keeps a confused or hostile local client from
// making the daemon buffer without limit.
const MaxBodyBytes = 64 << 10

// Daemon is what the handler needs from the running daemon.
type Daemon interface {
	// Status returns a snapshot of this node's view of the cluster. It is
	// called for every status request and page refresh, and after every
	// mutation, so it must be cheap and must not wait on the network.
	Status() Status
	// Transfer hands the master role to the member target, or to the best
	// eligible member when target is empty. The handler only passes a
	// target that satisfies ValidID; whether it is a member is the
	// daemon's to check (ErrUnknownTarget). ctx is the request's context:
	// it ends when the client gives up waiting.
	Transfer(ctx context.Context, target string) error
	// SetMaintenance turns this node's maintenance mode on or off. A node
	// in maintenance never becomes master; a master entering it hands its
	// role over first.
	SetMaintenance(ctx context.Context, on bool) error
}

// RoleTransferer is implemented by a Daemon that elects several roles:
// a transfer request naming a role goes to TransferRole.
type RoleTransferer interface {
	// TransferRole is Transfer of the role named role (roles[].name).
	TransferRole(ctx context.Context, role, target string) error
}

// MaintenanceWindow is implemented by a Daemon whose maintenance ends by
// itself. The handler then passes it every maintenance request whole.
type MaintenanceWindow interface {
	// SetMaintenanceFor turns maintenance on for d (DefaultMaintenance
	// when 0), with a reason, or off.
	SetMaintenanceFor(ctx context.Context, on bool, d time.Duration, reason string) error
}

// HandlerOptions configure NewHandler.
type HandlerOptions struct {
	// Daemon answers the requests. It is required.
	Daemon Daemon
	// Token is the bearer token that mutations must carry, normally
	// AdminToken(secret). When it is empty every mutation is refused:
	// failing closed is the safe reading of a missing credential.
	Token string
	// Gatherer is served at /metrics in the Prometheus exposition format.
	// When nil, /metrics does not exist.
	Gatherer prometheus.Gatherer
	// Driver serves the driver websocket. It receives every request whose
	// path is /v1/driver or lies below /v1/driver/, with the path as sent,
	// and does its own method checks and authentication. When nil, those
	// paths do not exist.
	Driver http.Handler
	// Seed serves the 2018 drivers: it receives every request for / that
	// carries their metadata header. When nil, such requests are refused.
	Seed http.Handler
	// Logger receives one line per mutation with its outcome, and one per
	// refused request. When nil, nothing is logged.
	Logger *slog.Logger
	// AuthFailed, when set, is called for every request refused for a
	// missing or wrong token, so that the daemon can count them
	// (metrics.Metrics.AuthFailure): a stream of them means something on
	// this machine is guessing.
	AuthFailed func()
	// LogRefused, when set, decides whether a refused request from remote
	// (a RemoteAddr) is logged; the daemon logs one per burst per source,
	// so that a client retrying in a loop cannot flood the log. When nil,
	// every refused request is logged.
	LogRefused func(remote string) bool
	// Journal serves GET /v1/events and GET /v1/events/stream
	// (events.go). When nil, they answer 503.
	Journal *journal.Journal
}

// NewHandler returns the local listener's HTTP handler:
//
//	GET  /                status page, kept current over /v1/events/stream
//	GET  /v1/status       Status as JSON
//	GET  /v1/events       the journal as JSON: ?since=SEQ|DURATION|TIME&limit=N&failovers=1
//	GET  /v1/events/stream  the journal and the status as Server-Sent Events
//	POST /v1/transfer     TransferRequest as JSON, or ?to=ID; needs the token
//	POST /v1/maintenance  MaintenanceRequest as JSON, or ?on=on|off; needs the token
//	GET  /metrics         Prometheus metrics, if opts.Gatherer is set
//	     /v1/driver       opts.Driver, if set
//	     / with a metadata header: opts.Seed (the 2018 drivers)
//
// A successful mutation is answered with the Status that follows it. Every
// error is answered with an Error body and a fitting status code: 400 for a
// malformed request, 401 without the right token, 404 for an unknown path,
// 405 for a wrong method, 413 for a body over MaxBodyBytes, and the code of
// the daemon's error as StatusCode maps it.
func NewHandler(opts HandlerOptions) http.Handler {
	if opts.Daemon == nil {
		panic("api.NewHandler: HandlerOptions.Daemon is nil")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &handler{d: opts.Daemon, token: opts.Token, log: log, authFailed: opts.AuthFailed, logRefused: opts.LogRefused, journal: opts.Journal}
	mux := http.NewServeMux()
	// Patterns carry no method, because the mux would answer a wrong method
	// with a plain-text 405 and scripts expect every error as JSON.
	mux.Handle("/v1/status", allow(http.HandlerFunc(h.status), http.MethodGet, http.MethodHead))
	mux.Handle("/v1/transfer", allow(http.HandlerFunc(h.transfer), http.MethodPost))
	mux.Handle("/v1/maintenance", allow(http.HandlerFunc(h.maintenance), http.MethodPost))
	mux.Handle("/v1/events", allow(http.HandlerFunc(h.events), http.MethodGet, http.MethodHead))
	mux.Handle("/v1/events/stream", allow(http.HandlerFunc(h.eventStream), http.MethodGet))
	if opts.Gatherer != nil {
		m := promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{
			ErrorLog: promLogger{log},
			// A failing collector should not blank out every other metric.
			ErrorHandling: promhttp.ContinueOnError,
		})
		mux.Handle("/metrics", allow(m, http.MethodGet, http.MethodHead))
	}
	if opts.Driver != nil {
		mux.Handle("/v1/driver", opts.Driver)
		mux.Handle("/v1/driver/", opts.Driver)
	}
	mux.Handle("/{$}", seedOrPage(opts.Seed, allow(http.HandlerFunc(h.page), http.MethodGet, http.MethodHead)))
	mux.HandleFunc("/", notFound)
	return mux
}

type handler struct {
	d          Daemon
	token      string
	log        *slog.Logger
	authFailed func()                   // may be nil
	logRefused func(remote string) bool // may be nil
	journal    *journal.Journal
}

// allow answers methods other than the given ones with 405 and an Allow
// header, as RFC 9110 §15.5.6 asks.
func allow(next http.Handler, methods ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slices.Contains(methods, r.Method) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Allow", strings.Join(methods, ", "))
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed on %s; use %s", r.Method, r.URL.Path, methods[0]))
	})
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint %s; the admin API has GET /v1/status, POST /v1/transfer and POST /v1/maintenance", quoteShort(r.URL.Path)))
}

func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, h.snapshot())
}

// snapshot returns the daemon's status with an empty member list rather
// than a missing one, so that scripts iterating over members need no special
// case.
func (h *handler) snapshot() Status {
	s := h.d.Status()
	if s.Members == nil {
		s.Members = []MemberStatus{}
	}
	return s
}

func (h *handler) transfer(w http.ResponseWriter, r *http.Request) {
	if !h.authorized(w, r, "transfer") {
		return
	}
	req, rerr := decodeTransferRequest(w, r)
	if rerr != nil {
		h.reject(w, r, "transfer", rerr)
		return
	}
	to := req.To
	target := to
	if target == "" {
		target = "(best eligible)"
	}
	start := time.Now()
	if req.Role != "" {
		err := fmt.Errorf("%w: this daemon has no roles to choose from", ErrBadRequest)
		if rt, ok := h.d.(RoleTransferer); ok {
			err = rt.TransferRole(r.Context(), req.Role, to)
		}
		h.finish(w, r, "transfer", start, err, "to", target, "role_name", req.Role)
		return
	}
	err := h.d.Transfer(r.Context(), to)
	h.finish(w, r, "transfer", start, err, "to", target)
}

func (h *handler) maintenance(w http.ResponseWriter, r *http.Request) {
	if !h.authorized(w, r, "maintenance") {
		return
	}
	req, rerr := decodeMaintenance(w, r)
	if rerr != nil {
		h.reject(w, r, "maintenance", rerr)
		return
	}
	start := time.Now()
	var err error
	if mw, ok := h.d.(MaintenanceWindow); ok {
		d, _ := time.ParseDuration(req.For) // checked by decodeMaintenance
		err = mw.SetMaintenanceFor(r.Context(), req.On, d, req.Reason)
	} else {
		err = h.d.SetMaintenance(r.Context(), req.On)
	}
	h.finish(w, r, "maintenance", start, err, "on", req.On)
}

// authorized checks the bearer token and answers 401 when it is missing or
// wrong. The answer says how to obtain the token, since an operator who
// meets it usually just forgot a flag.
func (h *handler) authorized(w http.ResponseWriter, r *http.Request, op string) bool {
	tok, ok := bearerToken(r)
	if ok && tokenEqual(tok, h.token) {
		return true
	}
	var reason, msg string
	switch {
	case h.token == "":
		reason = "no admin token configured"
		msg = "this daemon has no admin token configured, so it refuses every change"
	case !ok:
		reason = "missing token"
		msg = `this request needs the admin token: send "Authorization: Bearer TOKEN"`
	default:
		reason = "wrong token"
		msg = "wrong admin token"
	}
	if h.token != "" {
		msg += "; TOKEN is derived from the cluster secret, and clustd transfer and clustd maintenance derive it themselves when given --config FILE or --secret-file FILE"
	}
	if h.shouldLog(r) {
		h.log.Warn("admin request refused", "op", op, "remote", r.RemoteAddr, "status", http.StatusUnauthorized, "reason", reason)
	}
	if h.authFailed != nil {
		h.authFailed()
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="clustd"`)
	writeError(w, http.StatusUnauthorized, msg)
	return false
}

func (h *handler) reject(w http.ResponseWriter, r *http.Request, op string, rerr *requestError) {
	if h.shouldLog(r) {
		h.log.Warn("admin request refused", "op", op, "remote", r.RemoteAddr, "status", rerr.code, "error", rerr.msg)
	}
	writeError(w, rerr.code, rerr.msg)
}

// shouldLog reports whether a refusal of r is to be logged.
func (h *handler) shouldLog(r *http.Request) bool {
	return h.logRefused == nil || h.logRefused(r.RemoteAddr)
}

// finish logs a mutation's outcome and answers it.
func (h *handler) finish(w http.ResponseWriter, r *http.Request, op string, start time.Time, err error, args ...any) {
	args = append(args, "remote", r.RemoteAddr, "took", time.Since(start).Round(time.Microsecond))
	if err != nil {
		code := StatusCode(err)
		level := slog.LevelWarn
		if code >= 500 {
			level = slog.LevelError
		}
		h.log.Log(r.Context(), level, "admin "+op+" failed", append(args, "status", code, "error", err.Error())...)
		writeError(w, code, err.Error())
		return
	}
	h.log.Info("admin "+op+" done", args...)
	writeJSON(w, http.StatusOK, h.snapshot())
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		// Only a programming error gets here: every type written is plain.
		code = http.StatusInternalServerError
		b, _ = json.Marshal(Error{Error: "cannot encode the answer: " + err.Error()})
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("X-Content-Type-Options", "nosniff")
	// Status changes by the millisecond; a cached copy is a wrong one.
	hd.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, Error{Error: msg})
}

// promLogger passes promhttp's error messages on to slog.
type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) {
	l.log.Error("serving metrics", "error", strings.TrimSpace(fmt.Sprintln(v...)))
}
