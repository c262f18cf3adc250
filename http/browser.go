package http

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// ParseBasePath returns the path prefix under which the public listener
// serves everything (SESSIOND_BASE_PATH): "/" or "/auth/", always with a
// leading and a trailing slash. Only plain path segments are allowed.
func ParseBasePath(p string) (string, error) {
	if p == "" || p == "/" {
		return "/", nil
	}
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("base path %q must start with /", p)
	}
	p = strings.TrimSuffix(p, "/") + "/"
	for _, seg := range strings.Split(strings.Trim(p, "/"), "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", fmt.Errorf("base path %q has an empty, . or .. segment", p)
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~') {
				return "", fmt.Errorf("base path %q may hold only letters, digits and - _ . ~ between slashes", p)
			}
		}
	}
	return p, nil
}

// base returns the server's base path, "/" when unset.
func (s *Server) base() string {
	if s.BasePath == "" {
		return "/"
	}
	return s.BasePath
}

// withBasePath serves everything under the base path (docs/design.md,
// "Base path"): a request under it reaches next with the prefix taken off
// its path, so routes, the page and its files are the same under any
// prefix. /healthz and /readyz also answer at the root, for load
// balancers that probe the instance directly; the prefix without its
// trailing slash redirects to it; anything else is a 404 in the envelope.
func (s *Server) withBasePath(next http.Handler) http.Handler {
	base := s.base()
	if base == "/" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		switch {
		case strings.HasPrefix(p, base):
			r2 := new(http.Request)
			*r2 = *r
			u := *r.URL
			u.Path = "/" + p[len(base):]
			if u.RawPath != "" {
				if rest, ok := strings.CutPrefix(u.RawPath, base); ok {
					u.RawPath = "/" + rest
				} else {
					u.RawPath = ""
				}
			}
			r2.URL = &u
			next.ServeHTTP(w, r2)
		case p == "/healthz" || p == "/readyz":
			next.ServeHTTP(w, r)
		case p == strings.TrimSuffix(base, "/") && (r.Method == http.MethodGet || r.Method == http.MethodHead):
			http.Redirect(w, r, base, http.StatusMovedPermanently)
		default:
			s.writeError(w, r, errNoEndpoint)
		}
	})
}

// signInURL is where a browser is sent to sign in: SESSIOND_LOGIN_URL, or
// the page under the base path, on the public URL's origin when one is
// set.
func (s *Server) signInURL() string {
	if s.LoginURL != "" {
		return s.LoginURL
	}
	if s.PublicURL != "" {
		if u, err := url.Parse(s.PublicURL); err == nil && u.Host != "" {
			return canonicalOrigin(u.Scheme, u.Host) + s.base()
		}
	}
	return s.base()
}

// signInRedirect returns where a browser that failed the forward-auth
// check goes instead of a 401 (docs/design.md, "Forward-auth for
// browsers"): the sign-in URL with return_to set to the URL it asked for.
// That URL comes from an rd query parameter, or from a trusted proxy's
// X-Forwarded-Proto, -Host and -Uri (Traefik, Caddy), and must pass the
// return_to rules; a request that does not accept HTML (an API client)
// keeps its 401.
func (s *Server) signInRedirect(r *http.Request) (string, bool) {
	if !strings.Contains(r.Header.Get("Accept"), "text/html") {
		return "", false
	}
	original := r.URL.Query().Get("rd")
	if original == "" {
		peer, ok := parseForwardedAddr(r.RemoteAddr)
		proto, host, uri := r.Header.Get("X-Forwarded-Proto"), r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Forwarded-Uri")
		if !ok || !trustedAddr(peer, s.TrustedProxies) || proto == "" || host == "" || !strings.HasPrefix(uri, "/") {
			return "", false
		}
		original = proto + "://" + host + uri
	}
	original, ok := s.ReturnTo.Check(original)
	if !ok {
		return "", false
	}
	login := s.signInURL()
	sep := "?"
	if strings.Contains(login, "?") {
		sep = "&"
	}
	return login + sep + "return_to=" + url.QueryEscape(original), true
}

// returnTo answers a login's return_to: the value when it passes the
// rules, else "".
func (s *Server) returnTo(raw string) string {
	if raw == "" {
		return ""
	}
	v, _ := s.ReturnTo.Check(raw)
	return v
}
