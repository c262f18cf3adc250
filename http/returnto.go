package http

import (
	"fmt"
	"net/url"
	"strings"
)

// MaxReturnTo is the longest return_to value considered; longer ones are
// ignored.
const MaxReturnTo = 2048

// ReturnRules decide where a browser may be sent after signing in
// (docs/design.md, "Return addresses"): a relative path of this origin, or
// an absolute URL under one of the allowed origins or prefixes. Anything
// else is ignored, never followed: the rules are what keeps a sign-in link
// from being an open redirect.
type ReturnRules struct {
	allowed []allowedURL
}

// allowedURL is one origin, or one origin with a path prefix.
type allowedURL struct {
	origin string // "https://app.example.com"
	prefix string // "" for the whole origin, else a path ending in "/" or not
}

// ParseReturnRules returns the rules of a comma-separated list of origins
// or URL prefixes (SESSIOND_RETURN_URLS), with the origin of publicURL
// (SESSIOND_PUBLIC_URL) allowed too when it is set. Entries must be
// absolute http or https URLs without user information, query or
// fragment.
func ParseReturnRules(list, publicURL string) (*ReturnRules, error) {
	r := &ReturnRules{}
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		a, err := parseAllowed(item)
		if err != nil {
			return nil, fmt.Errorf("return URL %q: %w", item, err)
		}
		r.allowed = append(r.allowed, a)
	}
	if publicURL != "" {
		a, err := parseAllowed(publicURL)
		if err != nil {
			return nil, fmt.Errorf("public URL %q: %w", publicURL, err)
		}
		a.prefix = ""
		r.allowed = append(r.allowed, a)
	}
	return r, nil
}

func parseAllowed(s string) (allowedURL, error) {
	u, ok := parseAbsolute(s)
	if !ok || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(s, "?") || strings.HasSuffix(s, "#") {
		return allowedURL{}, fmt.Errorf("must be an absolute http or https URL without user information, query or fragment")
	}
	a := allowedURL{origin: u.Scheme + "://" + u.Host}
	if p := u.EscapedPath(); p != "" && p != "/" {
		a.prefix = p
	}
	return a, nil
}

// parseAbsolute parses s as an absolute http(s) URL that every parser
// reads the same way: nothing but printable ASCII, no backslash, no user
// information, a plain host. The scheme and host come back lowercased.
func parseAbsolute(s string) (*url.URL, bool) {
	if !plainURLText(s) {
		return nil, false
	}
	u, err := url.Parse(s)
	if err != nil || u.Opaque != "" || u.User != nil || u.Host == "" {
		return nil, false
	}
	u.Scheme, u.Host = strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	if u.Scheme != "http" && u.Scheme != "https" || !plainHost(u.Host) {
		return nil, false
	}
	// The text must start with exactly "scheme://host": "https:/evil" or
	// "https:\\evil" are read differently by browsers.
	if !strings.HasPrefix(strings.ToLower(s), u.Scheme+"://"+u.Host) {
		return nil, false
	}
	// The default port is the origin without it, as browsers write it.
	if u.Scheme == "https" {
		u.Host = strings.TrimSuffix(u.Host, ":443")
	} else {
		u.Host = strings.TrimSuffix(u.Host, ":80")
	}
	return u, true
}

// plainURLText reports whether s holds only printable ASCII without a
// backslash or a space: browsers drop tabs and newlines from URLs and
// read "\" as "/", so "/\tevil" and "/\evil" would become "//evil".
func plainURLText(s string) bool {
	if s == "" || len(s) > MaxReturnTo {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c > '~' || c == '\\' {
			return false
		}
	}
	return true
}

// plainHost reports whether h is a host name or address with an optional
// port, with no escapes.
func plainHost(h string) bool {
	if strings.ContainsAny(h, "%@") {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == ':' || c == '[' || c == ']') {
			return false
		}
	}
	return true
}

// Check returns raw if a browser may be sent there, and whether it may.
// A relative path is returned as it is; an absolute URL as it was given,
// once its origin (and path prefix) is one of the allowed.
func (r *ReturnRules) Check(raw string) (string, bool) {
	if !plainURLText(raw) {
		return "", false
	}
	if raw[0] == '/' {
		// One slash, then not a second one: "//evil" is another host.
		if len(raw) > 1 && raw[1] == '/' {
			return "", false
		}
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
			return "", false
		}
		return raw, true
	}
	if r == nil {
		return "", false
	}
	u, ok := parseAbsolute(raw)
	if !ok {
		return "", false
	}
	origin := u.Scheme + "://" + u.Host
	path := u.EscapedPath()
	for _, a := range r.allowed {
		if a.origin != origin {
			continue
		}
		if a.prefix == "" || underPrefix(path, a.prefix) {
			return raw, true
		}
	}
	return "", false
}

// underPrefix reports whether path is prefix or below it: "/app" allows
// "/app" and "/app/x", not "/application".
func underPrefix(path, prefix string) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	return len(path) == len(prefix) || strings.HasSuffix(prefix, "/") || path[len(prefix)] == '/'
}
