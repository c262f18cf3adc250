// Package http serves the sessiond REST API, the JWKS, health checks and
// the devices page, and provides Middleware for Go services that embed
// sessiond. Import it as sessiondhttp.
//
// Server.Handler is the public HTTP surface of the sessiond binary; mount it
// (or its /api/v1/ and /.well-known/ paths) on a mux of your own.
// AdminServer.Handler is the admin listener's: the admin API for the app's
// backend, behind admin keys, and /metrics; never serve the two on one
// listener. Middleware
// protects any other handler: it lets a request through only with a valid
// access token of a live session (Authorization: Bearer, or the devices
// page's cookie with the API's CSRF rule) and puts the session in the
// request context, where sessiond.FromContext finds it.
package http

import (
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/sessiond/sessiond"
)

// Limits of requests.
const (
	// MaxBodyBytes is the largest request body accepted (413 beyond).
	MaxBodyBytes = 64 << 10
	// MaxHeaderBytes is the largest request header block accepted.
	MaxHeaderBytes = 1 << 20
)

// Metrics receives request-level measurements; optional.
type Metrics interface {
	Validation(d time.Duration, ok bool)
	StoreError()
	// Request is told of every answered request: the route pattern that
	// served it ("" when none matched), its status and its duration.
	Request(route string, status int, d time.Duration)
	// Throttled is told of every 429, with the throttle's rule.
	Throttled(rule string)
}

// Server is the HTTP face of a Manager. Create it with NewServer, set the
// optional fields, then serve Handler().
type Server struct {
	Manager *sessiond.Manager

	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// PublicURL is the origin users see ("https://auth.example.com"),
	// used for CSRF checks behind a proxy that rewrites Host.
	PublicURL string
	// Page serves the devices page at "/"; nil: 404 there.
	Page http.Handler
	// MetricsHandler serves /metrics; nil: 404 there.
	MetricsHandler http.Handler
	// Metrics receives validation timings; optional.
	Metrics Metrics
	// Logger receives one line per request; default slog.Default().
	Logger *slog.Logger
	// MaxStreams caps the event streams this Server holds open at once,
	// whoever opened them (default DefaultMaxStreams when <= 0); beyond it,
	// and beyond MaxStreamsPerSession and MaxStreamsPerUser, a stream is
	// refused with 429 too_many_streams. Each open stream holds a file
	// descriptor: keep it well below the process's limit.
	MaxStreams int
	// BasePath is the path prefix of everything this Server serves, "/"
	// or e.g. "/auth/" (see ParseBasePath); "" is "/".
	BasePath string
	// ReturnTo decides where a browser may be sent after signing in
	// (see ParseReturnRules); nil: relative paths only.
	ReturnTo *ReturnRules
	// LoginURL is where browsers sign in (SESSIOND_LOGIN_URL); "": the
	// page under BasePath.
	LoginURL string
	// CORSOrigins are the exact origins whose pages may call the API with
	// a Bearer token (see ParseCORSOrigins); none: no CORS.
	CORSOrigins []string
	// HeartbeatInterval is how often an event stream sends a comment line,
	// which keeps proxies from closing it and tells a stream whose session
	// ended (default DefaultHeartbeatInterval when <= 0).
	HeartbeatInterval time.Duration

	users   userCache    // what /me shows of users (usercache.go)
	streams streamCounts // open event streams (events.go)

	stopOnce sync.Once
	stop     chan struct{} // closed by StopStreams; made by Handler
}

// StopStreams ends every open event stream, for a graceful shutdown: give
// it to http.Server.RegisterOnShutdown so Shutdown need not wait for them.
func (s *Server) StopStreams() {
	s.stopOnce.Do(func() {
		if s.stop != nil {
			close(s.stop)
		}
	})
}

// NewServer returns a Server for m.
func NewServer(m *sessiond.Manager) *Server {
	return &Server{Manager: m}
}

func (s *Server) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

// Handler returns the whole HTTP surface: /api/v1, the JWKS, health,
// metrics and the page.
func (s *Server) Handler() http.Handler {
	if s.stop == nil {
		s.stop = make(chan struct{})
	}
	mux := http.NewServeMux()
	api := func(pattern string, h func(http.ResponseWriter, *http.Request) error) {
		mux.Handle(pattern, s.apiHandler(h))
	}
	auth := func(pattern string, h sessionHandler) {
		mux.Handle(pattern, s.apiHandler(s.authenticated(h)))
	}
	// authCtx is auth for handlers that read the session or the token's
	// claims from the request's context.
	authCtx := func(pattern string, h sessionHandler) {
		mux.Handle(pattern, s.apiHandler(s.authenticatedInContext(h)))
	}
	if s.Manager.ExternalUsers() {
		// The app signs its users in (docs/design.md, "The app's own
		// users"): these paths do not exist, whatever the method or
		// body, and nothing reads the request first.
		for _, p := range []string{"/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/auth/password"} {
			mux.Handle(p, s.apiHandler(func(http.ResponseWriter, *http.Request) error { return errNoEndpoint }))
		}
	} else {
		api("POST /api/v1/auth/register", s.register)
		api("POST /api/v1/auth/login", s.login)
		auth("POST /api/v1/auth/password", s.changePassword)
	}
	api("POST /api/v1/auth/refresh", s.refresh)
	auth("POST /api/v1/auth/logout", s.logout)
	checkAuth := s.authenticated(s.check)
	api("GET /api/v1/auth/check", func(w http.ResponseWriter, r *http.Request) error {
		err := checkAuth(w, r)
		if err != nil && errorStatus(err).status == http.StatusUnauthorized {
			if loc, ok := s.signInRedirect(r); ok {
				http.Redirect(w, r, loc, http.StatusFound)
				return nil
			}
		}
		return err
	})
	auth("GET /api/v1/me", s.me)
	auth("GET /api/v1/sessions", s.listSessions)
	auth("DELETE /api/v1/sessions", s.revokeOthers)
	auth("DELETE /api/v1/sessions/{id}", s.revokeSession)
	auth("PATCH /api/v1/sessions/{id}", s.renameSession)
	authCtx("GET /api/v1/sessions/events", s.events)
	auth("GET /api/v1/activity", s.activity)
	mux.Handle("GET /"+HandoffPath, http.HandlerFunc(s.handoff))
	mux.Handle("GET /"+ReportPath, http.HandlerFunc(s.report))
	mux.Handle("POST /"+ReportPath, http.HandlerFunc(s.report))
	mux.Handle("GET /api/v1/openapi.json", http.HandlerFunc(serveOpenAPI))
	mux.Handle("GET /.well-known/jwks.json", http.HandlerFunc(s.jwks))
	mux.Handle("GET /healthz", s.apiHandler(func(w http.ResponseWriter, r *http.Request) error {
		writeJSON(w, http.StatusOK, "ok", struct{}{})
		return nil
	}))
	mux.Handle("GET /readyz", s.apiHandler(s.readyz))
	if s.MetricsHandler != nil {
		mux.Handle("GET /metrics", s.MetricsHandler)
	}
	fallback := s.apiFallback(mux)
	for _, p := range []string{"/api/", "/.well-known/", "/healthz", "/readyz", "/metrics", "/" + HandoffPath, "/" + ReportPath} {
		mux.Handle(p, fallback)
	}
	if s.Page != nil {
		mux.Handle("/", s.Page)
	}
	return s.withRequestID(s.withLog(s.withBasePath(s.withCORS(s.routeErrors(mux)))))
}

// routeErrors answers the API paths that the mux would redirect
// ("//api/v1/me", "/api") with a 404 in the envelope; every other request
// goes to the mux, whose API fallbacks (apiFallback) answer unknown paths
// and methods in the envelope too. A matched route costs one lookup.
func (s *Server) routeErrors(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p == "/api" || path.Clean(p) != p && (isAPIPath(p) || isAPIPath(path.Clean(p))) {
			s.writeError(w, r, errNoEndpoint)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// apiFallback answers requests under the API's paths that no route
// matched: 405 with Allow when another method has a route there, else 404,
// both in the envelope rather than Go's plain text or the page.
func (s *Server) apiFallback(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if allow := allowedMethods(mux, r); len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			s.writeError(w, r, &methodError{method: r.Method})
			return
		}
		s.writeError(w, r, errNoEndpoint)
	})
}

// allowedMethods lists the methods that have a route for r's path. Routes
// are the patterns with a method; fallbacks and the page have none.
func allowedMethods(mux *http.ServeMux, r *http.Request) []string {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := *r
		probe.Method = m
		if _, pattern := mux.Handler(&probe); strings.Contains(pattern, " ") {
			allow = append(allow, m)
		}
	}
	return allow
}

func isAPIPath(p string) bool {
	return strings.HasPrefix(p, "/api/") || p == "/api" || strings.HasPrefix(p, "/.well-known/") ||
		p == "/healthz" || p == "/readyz" || p == "/metrics"
}

// apiHandler adapts a handler that returns an error: the error is
// answered through the error table.
func (s *Server) apiHandler(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// clientIP returns the client's address as a string ("" if unknown).
func (s *Server) clientIP(r *http.Request) (netip.Addr, string) {
	ip := ClientIP(r, s.TrustedProxies)
	if !ip.IsValid() {
		return ip, ""
	}
	return ip, ip.String()
}

// origin returns the server's own origin as the browser sees it.
func (s *Server) origin(r *http.Request) string {
	if s.PublicURL != "" {
		if u, err := url.Parse(s.PublicURL); err == nil && u.Host != "" {
			return canonicalOrigin(u.Scheme, u.Host)
		}
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return canonicalOrigin(scheme, r.Host)
}

// canonicalOrigin lowercases an origin and drops its scheme's default
// port, as browsers write the Origin header.
func canonicalOrigin(scheme, host string) string {
	scheme, host = strings.ToLower(scheme), strings.ToLower(host)
	if scheme == "https" {
		host = strings.TrimSuffix(host, ":443")
	} else if scheme == "http" {
		host = strings.TrimSuffix(host, ":80")
	}
	return scheme + "://" + host
}
