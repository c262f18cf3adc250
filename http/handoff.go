package http

import (
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sessiond/sessiond"
)

// HandoffPath is the path, under the base path, where a browser redeems a
// handoff code (docs/design.md, "Handoff").
const HandoffPath = "auth/handoff"

// HandoffURL returns the URL the app sends a browser to with code:
// publicURL's origin, then basePath, HandoffPath and the code; with no
// publicURL, the path and query alone.
func HandoffURL(publicURL, basePath, code string) string {
	origin := ""
	if publicURL != "" {
		if u, err := url.Parse(publicURL); err == nil && u.Host != "" {
			origin = canonicalOrigin(u.Scheme, u.Host)
		}
	}
	if basePath == "" {
		basePath = "/"
	}
	return origin + basePath + HandoffPath + "?code=" + url.QueryEscape(code)
}

// handoff is GET /auth/handoff: it redeems the one-time code, sets the
// token cookies as a cookie login does, and sends the browser on to
// return_to (after the return_to rules; default the page). The code is in
// the URL: the answer is never cached and sends no Referer onwards, and
// the request log line has the path only.
func (s *Server) handoff(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("Referrer-Policy", "no-referrer")
	if r.Method != http.MethodGet {
		// A HEAD (a link checker) must not use up the code.
		hdr.Set("Allow", http.MethodGet)
		s.writeError(w, r, &methodError{method: r.Method})
		return
	}
	q := r.URL.Query()
	g, err := s.Manager.RedeemHandoff(r.Context(), q.Get("code"))
	if err != nil {
		if !strings.Contains(r.Header.Get("Accept"), "text/html") {
			s.writeError(w, r, err)
			return
		}
		s.writeErrorPage(w, r, err)
		return
	}
	setTokenCookies(w, g)
	dest := s.returnTo(q.Get("return_to"))
	if dest == "" {
		dest = s.base()
	}
	hdr.Set("Location", dest)
	w.WriteHeader(http.StatusSeeOther)
}

// setTokenCookies sets the page's two token cookies of g.
func setTokenCookies(w http.ResponseWriter, g *sessiond.Grant) {
	http.SetCookie(w, &http.Cookie{
		Name: AccessCookie, Value: g.AccessToken, Path: "/", MaxAge: int(max(g.ExpiresIn/time.Second, 1)),
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
	http.SetCookie(w, &http.Cookie{
		Name: RefreshCookie, Value: g.RefreshToken, Path: "/", MaxAge: int(max(g.RefreshExpiresIn/time.Second, 1)),
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
}

// writeErrorPage answers err as a small HTML page for a browser, with the
// status, headers and log line writeError would give it.
func (s *Server) writeErrorPage(w http.ResponseWriter, r *http.Request, err error) {
	e := s.noteError(w, r, err)
	title, text := "Sign-in failed", "Something went wrong. Please try again in a moment."
	if e.code == codeHandoffInvalid {
		title = "This sign-in link does not work"
		text = "It has expired or was already used. Go back to the app and sign in again."
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	if e.status == http.StatusServiceUnavailable {
		hdr.Set("Retry-After", "1")
	}
	w.WriteHeader(e.status)
	fmt.Fprintf(w, `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>%[1]s</title></head>
<body><main><h1>%[1]s</h1><p>%[2]s</p><p><a href="%[3]s">Sign in</a></p><p><small>Error: %[4]s</small></p></main></body></html>
`, html.EscapeString(title), html.EscapeString(text), html.EscapeString(s.signInURL()), html.EscapeString(e.code))
}
