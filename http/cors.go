package http

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/rs/cors"
)

// ParseCORSOrigins parses a comma-separated list of exact origins
// (SESSIOND_CORS_ORIGINS): "https://app.example.com", with a port when
// it is not the scheme's default, and nothing after the host.
func ParseCORSOrigins(list string) ([]string, error) {
	var out []string
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		u, err := url.Parse(item)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			u.Path != "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(item, "?") || strings.HasSuffix(item, "#") || strings.Contains(item, "*") {
			return nil, fmt.Errorf("CORS origin %q: must be an exact origin such as https://app.example.com (no path, no wildcard)", item)
		}
		out = append(out, canonicalOrigin(u.Scheme, u.Host))
	}
	return out, nil
}

// withCORS lets the pages of s.CORSOrigins call the API from a browser
// with a Bearer token (docs/design.md, "CORS"): rs/cors answers their
// preflights and adds Access-Control-Allow-Origin to their requests;
// other origins get no CORS header, and credentials (cookies) are never
// allowed, so cookie requests stay same-site. Only the API is opened this
// way; the JWKS is open to every origin by itself.
func (s *Server) withCORS(next http.Handler) http.Handler {
	if len(s.CORSOrigins) == 0 {
		return next
	}
	c := cors.New(cors.Options{
		AllowedOrigins:   s.CORSOrigins,
		AllowedMethods:   []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete},
		AllowedHeaders:   []string{"Authorization", "Content-Type"},
		ExposedHeaders:   []string{"Link", "Retry-After", "X-Request-Id"},
		AllowCredentials: false,
		MaxAge:           600,
	})
	api := c.Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/v1/") {
			api.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}
