package http

import (
	"net/http"

	"github.com/sessiond/sessiond"
)

// Middleware protects the routes of a Go service that embeds sessiond. A
// request passes to next only with a valid access token of a live session,
// in the Authorization header ("Bearer ...") or in the access cookie of the
// devices page; next reads the session with sessiond.FromContext.
//
// Otherwise the request is answered in the API's envelope: 401 with
// WWW-Authenticate: Bearer error="invalid_token" for a missing, forged,
// expired or revoked token, 400 (code invalid_request) for a request that
// carries two Authorization headers or two access cookies, even when both
// hold a valid token, 403 for a cookie-authenticated state change that
// fails the CSRF check (the API's rule, against the request's own Host), and
// 503 with Retry-After when the session store does not answer, never a 401
// while its answer is unknown.
//
// Middleware uses a Server with default settings; to check CSRF against a
// public URL behind a proxy, or to record metrics, use Server.Middleware.
func Middleware(m *sessiond.Manager) func(http.Handler) http.Handler {
	return NewServer(m).Middleware
}

// Middleware is the package's Middleware with s's settings: PublicURL for
// the CSRF check, Metrics for validation timings and store errors, Logger
// for failures.
func (s *Server) Middleware(next http.Handler) http.Handler {
	return s.apiHandler(s.authenticatedInContext(func(w http.ResponseWriter, r *http.Request, _ *sessiond.Session) error {
		next.ServeHTTP(w, r)
		return nil
	}))
}
