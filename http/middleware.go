package http

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/sessiond/sessiond"
)

type requestIDKey struct{}

// requestState is what withRequestID and withLog keep of one request, in
// one allocation: it is the request's context (answering requestIDKey with
// itself, so that reading the id allocates nothing), the id, the value of
// its X-Request-Id header and the response writer that records the
// status. A CPU and allocation profile of the binary under a /me load
// showed the separate context value, id string, header slice and writer
// (and the interface conversions between them) among the largest
// per-request costs outside the session check.
type requestState struct {
	context.Context
	id  string
	hdr [1]string
	lw  logWriter
}

// Value implements context.Context.
func (st *requestState) Value(key any) any {
	if key == (requestIDKey{}) {
		return st
	}
	return st.Context.Value(key)
}

func requestID(ctx context.Context) string {
	if st, ok := ctx.Value(requestIDKey{}).(*requestState); ok && st.id != "" {
		return st.id
	}
	return ""
}

// newRequestID returns 24 hex digits of 96 random bits. The id names a
// request in the logs and to the client; it is no secret, so it comes from
// math/rand/v2's generator (seeded at random, no system call) rather than
// crypto/rand.
func newRequestID() string {
	var b [24]byte
	x, y := rand.Uint64(), rand.Uint32()
	const digits = "0123456789abcdef"
	for i := range 16 {
		b[i] = digits[x>>(60-4*i)&0xf]
	}
	for i := range 8 {
		b[16+i] = digits[y>>(28-4*i)&0xf]
	}
	return string(b[:])
}

// withRequestID gives every request an id, answered in X-Request-Id.
func (s *Server) withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requestID(r.Context()) != "" {
			next.ServeHTTP(w, r)
			return
		}
		st := &requestState{Context: r.Context(), id: newRequestID()}
		st.hdr[0] = st.id
		// The canonical key, assigned: Header.Set would allocate the
		// slice that st holds.
		w.Header()["X-Request-Id"] = st.hdr[:]
		next.ServeHTTP(w, r.WithContext(st))
	})
}

// logWriter records the status of a response.
type logWriter struct {
	http.ResponseWriter
	status int
}

func (w *logWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *logWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *logWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// withLog writes one log line per request and turns a panic into a 503 in
// the envelope.
func (s *Server) withLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		// The request's state, when withRequestID made it, also holds
		// the writer: no allocation of its own.
		var lw *logWriter
		if st, ok := r.Context().Value(requestIDKey{}).(*requestState); ok && st.lw.ResponseWriter == nil {
			lw = &st.lw
			lw.ResponseWriter = w
		} else {
			lw = &logWriter{ResponseWriter: w}
		}
		defer s.logRequest(lw, r, start)
		next.ServeHTTP(lw, r)
	})
}

// logRequest is withLog's deferred part: the panic, the metrics, the line.
func (s *Server) logRequest(lw *logWriter, r *http.Request, start time.Time) {
	if v := recover(); v != nil {
		if v == http.ErrAbortHandler {
			panic(v)
		}
		s.logger().LogAttrs(r.Context(), slog.LevelError, "panic", slog.String("request_id", requestID(r.Context())), slog.Any("panic", v))
		if lw.status == 0 {
			writeAPIError(lw, errUnavailable)
		}
	}
	d := time.Since(start)
	if s.Metrics != nil {
		s.Metrics.Request(r.Pattern, lw.status, d)
	}
	if r.URL.Path == "/metrics" || r.URL.Path == "/healthz" {
		return
	}
	// The record goes to the handler directly: Logger.LogAttrs would read
	// the clock again and walk the stack for the caller's address, a
	// third of the line's cost in the binary's CPU profile under load,
	// for a source that would always be this function.
	ctx := r.Context()
	h := s.logger().Handler()
	if !h.Enabled(ctx, slog.LevelInfo) {
		return
	}
	rec := slog.NewRecord(start.Add(d), slog.LevelInfo, "request", 0)
	rec.AddAttrs(
		slog.String("request_id", requestID(ctx)),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.Int("status", lw.status),
		slog.Float64("duration_ms", float64(d.Microseconds())/1000))
	_ = h.Handle(ctx, rec)
}

// Cookie names of the web page (docs/design.md, "Cookies and CSRF").
const (
	AccessCookie  = "__Host-sessiond_at"
	RefreshCookie = "__Host-sessiond_rt"
	DeviceCookie  = "__Host-sessiond_device"
	// CookiesHeader asks a login or refresh to answer with cookies.
	CookiesHeader = "X-Sessiond-Cookies"
)

// errTwoAuthorizations refuses a request that carries more than one
// Authorization header, and singleCookie one with two cookies of a token's
// name: which one a proxy, a log or another service in front of the same
// request reads is anyone's guess, so no single one of them is believed.
var errTwoAuthorizations = &sessiond.InputError{Message: "the request carries more than one Authorization header"}

// singleCookie returns r's cookie called name, nil when it has none, and an
// error when it has more than one.
func singleCookie(r *http.Request, name string) (*http.Cookie, error) {
	var cookie *http.Cookie
	for _, c := range r.CookiesNamed(name) {
		if cookie != nil {
			return nil, &sessiond.InputError{Message: "the request carries more than one " + name + " cookie"}
		}
		cookie = c
	}
	return cookie, nil
}

// bearer returns the access token of r and whether it came from the
// cookie; an error when r carries two of either.
func bearer(r *http.Request) (token string, fromCookie bool, err error) {
	auth := r.Header.Values("Authorization")
	if len(auth) > 1 {
		return "", false, errTwoAuthorizations
	}
	cookie, err := singleCookie(r, AccessCookie)
	if err != nil {
		return "", false, err
	}
	if len(auth) == 1 && auth[0] != "" {
		scheme, tok, ok := strings.Cut(auth[0], " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok), false, nil
		}
		return "", false, nil
	}
	if cookie != nil {
		return cookie.Value, true, nil
	}
	return "", false, nil
}

type authKey struct{}

// sessionHandler is an API handler that runs for an authenticated session.
type sessionHandler func(http.ResponseWriter, *http.Request, *sessiond.Session) error

// authenticated runs h with the session of the request's access token
// (see authenticate). The API's handlers take the session as an argument
// and skip the copy of the request that a new context costs.
func (s *Server) authenticated(h sessionHandler) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		sess, _, err := s.authenticate(w, r)
		if err != nil {
			return err
		}
		return h(w, r, sess)
	}
}

// authenticatedInContext is authenticated that also puts the session and
// the token's claims in the request's context, for Middleware's handlers
// and the event stream.
func (s *Server) authenticatedInContext(h sessionHandler) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		sess, claims, err := s.authenticate(w, r)
		if err != nil {
			return err
		}
		ctx := sessiond.NewContext(r.Context(), sess)
		ctx = context.WithValue(ctx, authKey{}, claims)
		return h(w, r.WithContext(ctx), sess)
	}
}

// authenticate checks the access token (header or cookie) and, for cookie
// requests that change state, the CSRF rule, and returns the token's live
// session and claims.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (*sessiond.Session, *sessiond.AccessClaims, error) {
	token, fromCookie, err := bearer(r)
	if err != nil {
		return nil, nil, err
	}
	if token == "" {
		return nil, nil, sessiond.ErrInvalidToken
	}
	if fromCookie && !safeMethod(r.Method) {
		if err := s.checkOrigin(r); err != nil {
			return nil, nil, err
		}
	}
	start := time.Now()
	sess, claims, err := s.Manager.Authenticate(r.Context(), token)
	if s.Metrics != nil {
		s.Metrics.Validation(time.Since(start), err == nil)
	}
	if err != nil {
		return nil, nil, err
	}
	if fromCookie {
		w.Header().Set("Cache-Control", "no-store")
	}
	return sess, claims, nil
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// checkOrigin is the CSRF check of cookie-authenticated state changes:
// Sec-Fetch-Site must say same-origin, or else Origin must be the server's
// own origin.
func (s *Server) checkOrigin(r *http.Request) error {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin":
		return nil
	case "":
	default:
		return errCSRF
	}
	o := r.Header.Get("Origin")
	if o == "" || o == "null" || !strings.EqualFold(o, s.origin(r)) {
		return errCSRF
	}
	return nil
}

// readBody reads a request body of at most MaxBodyBytes, checking its
// media type against allowed; it returns nil for an empty body.
func readBody(w http.ResponseWriter, r *http.Request, allowed ...string) (body []byte, mt string, err error) {
	if r.ContentLength == 0 && len(r.TransferEncoding) == 0 {
		return nil, "", nil
	}
	ct := r.Header.Get("Content-Type")
	mt = mediaType(ct)
	if !slices.Contains(allowed, mt) {
		if ct == "" {
			return nil, "", fmt.Errorf("%w: Content-Type is required for a request with a body", errMediaType)
		}
		return nil, "", fmt.Errorf("%w: Content-Type must be %s", errMediaType, strings.Join(allowed, " or "))
	}
	body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, "", err
		}
		return nil, "", &sessiond.InputError{Message: "request body could not be read"}
	}
	return body, mt, nil
}
