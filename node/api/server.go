// Package api is a node's HTTP API: the published aggregates for everyone
// (catalog, releases with proofs, series, CSV export, checkpoint, budget,
// cluster), the operator's writes (import, plan, publish) and the
// coordinator's membership changes, with token auth, Prometheus metrics and
// the web dashboard at /. See DESIGN.md in this directory.
package api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"roundtable/listener"
	"roundtable/node/web"
)

// Access is who may call a route.
type Access int

// Access levels of routes.
const (
	// AccessAsset is the dashboard's static files: always public, they hold
	// no data.
	AccessAsset Access = iota
	// AccessRead is published aggregates: public when Config.PublicReads,
	// else any valid token.
	AccessRead
	// AccessOperator is this node's partner staff only.
	AccessOperator
	// AccessSigned is governance: the request carries its own authority
	// (a statement signed by k coordinators, checked by the node and again
	// by every node's state machine), so it needs no token and no token
	// can stand in for it.
	AccessSigned
)

func (a Access) String() string {
	return [...]string{"asset", "read", "operator", "signed"}[a]
}

// Route is one entry of the server's route table.
type Route struct {
	Method  string
	Pattern string // path pattern, net/http ServeMux syntax
	Access  Access
	handler func(w http.ResponseWriter, r *http.Request) error
}

// Config configures a Server.
type Config struct {
	Backend Backend
	Tokens  *TokenStore
	// PublicReads makes published aggregates readable without a token.
	PublicReads bool
	Logger      *slog.Logger
	// MaxImportBytes limits an import upload (default 256 MiB).
	MaxImportBytes int64
	// MaxJSONBytes limits JSON request bodies (default 64 KiB).
	MaxJSONBytes int64
	// UI serves the dashboard at /; nil uses node/web's embedded files.
	UI http.Handler
	// TLS, if set, makes Serve speak HTTPS only (ServeLocal's socket stays
	// plain: it never leaves the machine).
	TLS *tls.Config
	// Limits bound every connection; zero fields take DefaultLimits.
	Limits Limits
	// Local serves paths under /local/ on the operator socket only (the
	// node's own maintenance, such as backups); nil serves none.
	Local http.Handler
	// CacheDir holds files derived from the ledger that the server keeps
	// between requests and restarts, and rebuilds if they are lost: the
	// CSV export (export_cache.go). "" keeps none: each export is
	// rendered from the ledger as it is sent.
	CacheDir string
}

// Limits bound what one client can hold of a node's HTTP server. Without
// them (issue 10) an anonymous client trickling a request body held a
// connection with no answer for as long as it liked.
type Limits struct {
	// ReadHeaderTimeout bounds reading a request's headers (and the TLS
	// handshake).
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included.
	ReadTimeout time.Duration
	// WriteTimeout bounds handling a request and writing the answer, from
	// the end of its headers.
	WriteTimeout time.Duration
	// IdleTimeout closes a kept-alive connection with no request.
	IdleTimeout time.Duration
	// OperatorTimeout replaces ReadTimeout and WriteTimeout for a request
	// whose operator token (or local socket) has been checked: an import
	// of hundreds of megabytes over an office uplink, a publish waiting for
	// the ledger. Anonymous clients never get it.
	OperatorTimeout time.Duration
	// MaxHeaderBytes caps a request's headers; more is answered 431.
	MaxHeaderBytes int
	// MaxConns caps connections open at once on each listener; more wait
	// in the kernel's backlog until one closes.
	MaxConns int
}

// DefaultLimits are sized for a dashboard, scripts and a few operators
// on links of a few megabits: no honest request needs more, and a
// connection held by a client that stops sending or reading is freed
// within a minute.
var DefaultLimits = Limits{
	ReadHeaderTimeout: 10 * time.Second,
	ReadTimeout:       30 * time.Second,
	WriteTimeout:      60 * time.Second,
	IdleTimeout:       60 * time.Second,
	OperatorTimeout:   30 * time.Minute,
	MaxHeaderBytes:    32 << 10,
	MaxConns:          256,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	pick := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	pick(&l.ReadHeaderTimeout, d.ReadHeaderTimeout)
	pick(&l.ReadTimeout, d.ReadTimeout)
	pick(&l.WriteTimeout, d.WriteTimeout)
	pick(&l.IdleTimeout, d.IdleTimeout)
	pick(&l.OperatorTimeout, d.OperatorTimeout)
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if l.MaxConns <= 0 {
		l.MaxConns = d.MaxConns
	}
	return l
}

// Server is the HTTP API of one node.
type Server struct {
	cfg     Config
	log     *slog.Logger
	routes  []Route
	mux     *http.ServeMux
	metrics *metrics
	views   *viewCache
	export  *exportCache // nil without Config.CacheDir
}

// New validates cfg and builds the server.
func New(cfg Config) (*Server, error) {
	if cfg.Backend == nil {
		return nil, errors.New("api: no backend")
	}
	if cfg.Tokens == nil {
		return nil, errors.New("api: no token store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxImportBytes <= 0 {
		cfg.MaxImportBytes = 256 << 20
	}
	if cfg.MaxJSONBytes <= 0 {
		cfg.MaxJSONBytes = 64 << 10
	}
	if cfg.UI == nil {
		cfg.UI = web.Handler()
	}
	cfg.Limits = cfg.Limits.withDefaults()
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), views: newViewCache()}
	s.metrics = newMetrics(cfg.Backend)
	if cfg.CacheDir != "" {
		s.export = newExportCache(cfg.CacheDir, cfg.Logger)
	}
	s.routes = s.routeTable()
	for _, rt := range s.routes {
		s.mux.Handle(rt.Method+" "+rt.Pattern, s.wrap(rt))
	}
	return s, nil
}

func (s *Server) routeTable() []Route {
	ui := func(w http.ResponseWriter, r *http.Request) error {
		s.cfg.UI.ServeHTTP(w, r)
		return nil
	}
	return []Route{
		{"GET", "/{$}", AccessAsset, ui},
		{"GET", "/static/", AccessAsset, ui},
		{"GET", "/favicon.ico", AccessAsset, ui},
		{"GET", "/metrics", AccessRead, s.handleMetrics},
		{"GET", "/v1/health", AccessRead, s.handleHealth},
		{"GET", "/v1/catalog", AccessRead, s.handleCatalog},
		{"GET", "/v1/releases", AccessRead, s.handleReleases},
		{"GET", "/v1/releases/{id}", AccessRead, s.handleRelease},
		{"GET", "/v1/series", AccessRead, s.handleSeries},
		{"GET", "/v1/export.csv", AccessRead, s.handleExport},
		{"GET", "/v1/checkpoint", AccessRead, s.handleCheckpoint},
		{"GET", "/v1/consistency", AccessRead, s.handleConsistency},
		{"GET", "/v1/budget", AccessRead, s.handleBudget},
		{"GET", "/v1/cluster", AccessRead, s.handleCluster},
		{"GET", "/v1/whoami", AccessRead, s.handleWhoami},
		{"GET", "/v1/brief", AccessRead, s.handleBrief},
		{"POST", "/v1/cases/import", AccessOperator, s.handleImport},
		{"POST", "/v1/plan", AccessOperator, s.handlePlan},
		{"POST", "/v1/releases", AccessOperator, s.handlePublish},
		{"GET", "/v1/releases/pending", AccessOperator, s.handlePending},
		{"GET", "/v1/governance", AccessRead, s.handleGovernance},
		{"POST", "/v1/governance", AccessSigned, s.handleGovern},
	}
}

// Routes returns the route table (method, pattern, access), for tests and
// documentation checks.
func (s *Server) Routes() []Route {
	out := make([]Route, len(s.routes))
	for i, r := range s.routes {
		out[i] = Route{Method: r.Method, Pattern: r.Pattern, Access: r.Access}
	}
	return out
}

// ServeHTTP dispatches to the route table. Requests no route matches get
// the same JSON error model as everything else.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := s.mux.Handler(r); pattern == "" {
		start := time.Now()
		ew := &errorRewriter{ResponseWriter: w}
		s.mux.ServeHTTP(ew, r)
		s.metrics.observeHTTP("unmatched", r.Method, ew.code, time.Since(start))
		s.log.Debug("http", "method", r.Method, "path", r.URL.Path, "status", ew.code)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// ObserveCommit records how long a ledger write took to commit; the node
// calls it after each raft Apply.
func (s *Server) ObserveCommit(d time.Duration) { s.metrics.commit.Observe(d.Seconds()) }

// Serve serves on ln (HTTPS if Config.TLS is set) until ctx is done, then
// shuts down gracefully: it stops accepting, waits up to 10 s for
// requests in flight, and returns. It starts building the series view at
// once, in the background (see viewCache.warm).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.views.warm(ctx, s.cfg.Backend)
	return s.serve(ctx, ln, s, s.cfg.TLS)
}

// ServeLocal serves on ln, a Unix socket in the node's data directory that
// only the node's own OS user can open, treating every request as the
// node's operator. It is how 'roundtable publish --data-dir' reaches a
// running node without a token lying around in a file.
func (s *Server) ServeLocal(ctx context.Context, ln net.Listener) error {
	local := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Local != nil && strings.HasPrefix(r.URL.Path, "/local/") {
			s.cfg.Local.ServeHTTP(w, r)
			return
		}
		s.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), localKey, true)))
	})
	return s.serve(ctx, ln, local, nil)
}

func (s *Server) serve(ctx context.Context, ln net.Listener, h http.Handler, tlsConf *tls.Config) error {
	lim := s.cfg.Limits
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		WriteTimeout:      lim.WriteTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
		TLSConfig:         tlsConf,
		ErrorLog:          log.New(serverErrorLog{s.log}, "", 0),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	// net/http returns from Serve on an accept error it does not consider
	// temporary; the guard retries them all, so the API never goes dark
	// while the process lives.
	ln = listener.Guard(ln, listener.Config{MaxConns: lim.MaxConns, Name: "http", Logger: s.log})
	errc := make(chan error, 1)
	go func() {
		if tlsConf != nil {
			errc <- hs.ServeTLS(ln, "", "")
			return
		}
		errc <- hs.Serve(ln)
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("api: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("api: shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("api: serve: %w", err)
	}
	return nil
}

// serverErrorLog takes net/http's own log lines: a failed TLS handshake
// is a client's trouble (a scanner, plain HTTP sent to the HTTPS port),
// logged at DEBUG; anything else, such as a handler's panic, at WARN.
type serverErrorLog struct{ log *slog.Logger }

func (l serverErrorLog) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	lvl := slog.LevelWarn
	if strings.Contains(msg, "TLS handshake error") {
		lvl = slog.LevelDebug
	}
	l.log.Log(context.Background(), lvl, msg)
	return len(p), nil
}

type ctxKey int

const (
	callerKey ctxKey = iota
	localKey         // set on requests from ServeLocal's socket
)

// Caller is who made a request, as auth found it.
type Caller struct {
	Role Role   // "" if anonymous
	Name string // token name
}

func callerOf(ctx context.Context) Caller {
	c, _ := ctx.Value(callerKey).(Caller)
	return c
}

// wrap adds auth, body limits, the JSON error model, metrics and a log
// line around a route's handler.
func (s *Server) wrap(rt Route) http.Handler {
	label := rt.Method + " " + rt.Pattern
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		caller, err := s.authorize(r, rt.Access)
		if err == nil {
			if caller.Role == RoleOperator {
				s.extendDeadlines(w)
			}
			r = r.WithContext(context.WithValue(r.Context(), callerKey, caller))
			err = rt.handler(sw, r)
		}
		if err != nil {
			s.writeError(sw, r, err)
		}
		d := time.Since(start)
		s.metrics.observeHTTP(label, r.Method, sw.code, d)
		// One line per request is for debugging; an operator's log at INFO
		// holds what changed, and a server error is an ERROR.
		lvl := slog.LevelDebug
		if sw.code >= 500 {
			lvl = slog.LevelError
		}
		s.log.Log(r.Context(), lvl, "http", "method", r.Method, "route", rt.Pattern, "path", r.URL.Path,
			"status", sw.code, "dur", d, "role", string(caller.Role), "token", caller.Name)
	})
}

// extendDeadlines gives an operator's request Limits.OperatorTimeout to
// send its body and get its answer, in place of the anonymous limits.
func (s *Server) extendDeadlines(w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	t := time.Now().Add(s.cfg.Limits.OperatorTimeout)
	if err := errors.Join(rc.SetReadDeadline(t), rc.SetWriteDeadline(t)); err != nil {
		s.log.Debug("cannot extend the deadlines of an operator's request", "error", err)
	}
}

// authorize checks the bearer token against the route's access level.
func (s *Server) authorize(r *http.Request, a Access) (Caller, error) {
	var c Caller
	if local, _ := r.Context().Value(localKey).(bool); local {
		c = Caller{Role: RoleOperator, Name: "local socket"}
	} else if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := bearer(h)
		if !ok {
			return c, errUnauthorized("Authorization header must be \"Bearer rt_...\"")
		}
		role, name, err := s.cfg.Tokens.Check(tok)
		if err != nil {
			return c, errUnauthorized(err.Error()) // unknown, expired or revoked, and when
		}
		c = Caller{Role: role, Name: name}
	}
	switch a {
	case AccessAsset:
		return c, nil
	case AccessRead:
		if c.Role == "" && !s.cfg.PublicReads {
			return c, errUnauthorized("this node requires a token to read; send Authorization: Bearer rt_...")
		}
		return c, nil
	case AccessOperator:
		return c, requireRole(c, RoleOperator)
	case AccessSigned:
		return c, nil
	}
	return c, fmt.Errorf("route has unknown access level %d", a)
}

func requireRole(c Caller, want Role) error {
	if c.Role == "" {
		return errUnauthorized(fmt.Sprintf("this endpoint needs a %s token", want))
	}
	if c.Role != want {
		return &httpError{Status: http.StatusForbidden, Msg: "forbidden",
			Detail: fmt.Sprintf("this endpoint needs the %s role; the token has %s", want, c.Role)}
	}
	return nil
}

// statusWriter remembers the status for logs and metrics.
type statusWriter struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.code, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wroteHeader = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (the export
// moves its write deadline).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// errorRewriter turns the mux's plain-text 404 and 405 into the JSON error
// model, keeping its Allow header.
type errorRewriter struct {
	http.ResponseWriter
	code int
}

func (w *errorRewriter) WriteHeader(code int) {
	w.code = code
	h := w.Header()
	h.Set("Content-Type", "application/json")
	w.ResponseWriter.WriteHeader(code)
	msg, detail := "not found", "no such endpoint; see /v1/ and docs/api.yaml"
	if code == http.StatusMethodNotAllowed {
		msg, detail = "method not allowed", "allowed: "+strings.Join(h.Values("Allow"), ", ")
	}
	_, _ = w.ResponseWriter.Write(errorBody(msg, detail))
}

func (w *errorRewriter) Write(b []byte) (int, error) { return len(b), nil } // drop the mux's text
