package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/internal/english"
)

// AdminKeys finds admin API keys: Lookup returns the name of the key, and
// whether it is one. It must take the same time whatever key it is given
// (internal/adminkey's Set compares hashes in constant time).
type AdminKeys interface {
	Lookup(key string) (name string, ok bool)
}

// AdminServer is the admin listener's HTTP face of a Manager: the admin
// API under /admin/v1 for the app's own backend, /metrics, /healthz and
// /readyz (docs/design.md, "Admin API"). It must never share a listener
// with Server: an admin key is worth every session of every user. Create
// it with NewAdminServer, set the optional fields, then serve Handler().
type AdminServer struct {
	Manager *sessiond.Manager
	// Keys are the admin keys accepted in Authorization: Bearer.
	Keys AdminKeys

	// TrustedProxies are the peers whose X-Forwarded-For is believed, for
	// the per-address throttle of requests without a valid key.
	TrustedProxies []netip.Prefix
	// MetricsHandler serves /metrics; nil: 404 there.
	MetricsHandler http.Handler
	// Metrics is told of store errors; optional.
	Metrics Metrics
	// Logger receives one line per request and one audit line per admin
	// call; default slog.Default().
	Logger *slog.Logger
	// PublicURL and BasePath are the public listener's (Server's fields of
	// the same names): a handoff answers a URL there (see HandoffURL).
	PublicURL string
	BasePath  string
}

// NewAdminServer returns an AdminServer for m that accepts keys.
func NewAdminServer(m *sessiond.Manager, keys AdminKeys) *AdminServer {
	return &AdminServer{Manager: m, Keys: keys}
}

// Handler returns the admin listener's whole surface.
func (a *AdminServer) Handler() http.Handler {
	// The request plumbing (ids, log lines, the error table, readiness)
	// is the public Server's; the routes are not.
	s := &Server{Manager: a.Manager, TrustedProxies: a.TrustedProxies, Metrics: a.Metrics, Logger: a.Logger}
	mux := http.NewServeMux()
	admin := func(pattern, action string, h adminHandler) {
		mux.Handle(pattern, s.apiHandler(a.authorized(s, action, h)))
	}
	admin("POST /admin/v1/sessions", "start_session", a.startSession)
	admin("GET /admin/v1/users/{user_id}/sessions", "list_sessions", a.listSessions)
	admin("DELETE /admin/v1/users/{user_id}/sessions", "revoke_all", a.revokeAll)
	admin("PATCH /admin/v1/users/{user_id}/sessions/{id}", "update_session", a.updateSession)
	admin("DELETE /admin/v1/users/{user_id}/sessions/{id}", "revoke_session", a.revokeSession)
	admin("POST /admin/v1/introspect", "introspect", a.introspect)
	admin("POST /admin/v1/users", "create_user", a.createUser)
	mux.Handle("GET /healthz", s.apiHandler(func(w http.ResponseWriter, r *http.Request) error {
		writeJSON(w, http.StatusOK, "ok", struct{}{})
		return nil
	}))
	mux.Handle("GET /readyz", s.apiHandler(s.readyz))
	if a.MetricsHandler != nil {
		mux.Handle("GET /metrics", a.MetricsHandler)
	}
	// Nothing else is served here: every other path and method is
	// answered in the envelope.
	mux.Handle("/", s.apiFallback(mux))
	return s.withRequestID(s.withLog(adminRouteErrors(s, mux)))
}

// adminRouteErrors answers a path that the mux would redirect to its
// cleaned form ("/admin/v1//sessions", a user id "." or ".." written
// unescaped) with a 404 in the envelope: a redirect would name another
// user's path. User ids travel percent-encoded, so "/" in one is %2F and
// takes no part in the cleaning; the mux matches on the escaped path and
// PathValue returns the decoded id.
func adminRouteErrors(s *Server, mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.EscapedPath(); p == "" || p[0] != '/' || cleanURLPath(p) != p {
			s.writeError(w, r, errNoEndpoint)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// cleanURLPath is path.Clean keeping a trailing slash, as ServeMux cleans.
func cleanURLPath(p string) string {
	np := path.Clean(p)
	if strings.HasSuffix(p, "/") && np != "/" {
		np += "/"
	}
	return np
}

// adminCall is what the audit line of one admin call tells: the key's
// name, the action, the user and the sessions it touched. It never holds
// a key or a token.
type adminCall struct {
	key        string
	action     string
	userID     string
	sessionIDs []string
	// outcome adds to the audit line what the call found ("active" or
	// "inactive" for an introspection).
	outcome string
}

// adminHandler is an admin API handler that runs for a valid key.
type adminHandler func(http.ResponseWriter, *http.Request, *adminCall) error

// errAdminKey is a request to the admin API without a valid admin key.
// One message for a missing key, a wrong one and an access token: the
// answer does not tell which.
var errAdminKey = errors.New("missing or invalid admin key")

// authorized runs h for a request that carries a valid admin key, and
// writes the call's audit line. A request without one counts against its
// client address (Manager.FailedAdminAuth) and is refused with 401, or
// 429 past the throttle; a valid key is never throttled.
func (a *AdminServer) authorized(s *Server, action string, h adminHandler) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		auth := r.Header.Values("Authorization")
		if len(auth) > 1 {
			return errTwoAuthorizations
		}
		key := ""
		if len(auth) == 1 {
			if scheme, k, ok := strings.Cut(auth[0], " "); ok && strings.EqualFold(scheme, "Bearer") {
				key = strings.TrimSpace(k)
			}
		}
		name, ok := "", false
		if key != "" && a.Keys != nil {
			name, ok = a.Keys.Lookup(key)
		}
		if !ok {
			_, ip := s.clientIP(r)
			s.logger().LogAttrs(r.Context(), slog.LevelWarn, "admin key refused",
				slog.String("request_id", requestID(r.Context())), slog.String("client_ip", ip), slog.String("action", action))
			if err := a.Manager.FailedAdminAuth(r.Context(), ip); err != nil {
				return err
			}
			return errAdminKey
		}
		c := &adminCall{key: name, action: action}
		err := h(w, r, c)
		attrs := []slog.Attr{
			slog.String("request_id", requestID(r.Context())),
			slog.String("key", c.key),
			slog.String("action", c.action),
			slog.String("user_id", c.userID),
		}
		if len(c.sessionIDs) > 0 {
			attrs = append(attrs, slog.Any("session_ids", c.sessionIDs))
		}
		if c.outcome != "" {
			attrs = append(attrs, slog.String("outcome", c.outcome))
		}
		if err != nil {
			attrs = append(attrs, slog.String("error", errorStatus(err).code))
		}
		s.logger().LogAttrs(r.Context(), slog.LevelInfo, "admin", attrs...)
		return err
	}
}

// Answers of the admin API that differ from the public API's: the app
// asks about a user, so an unknown user is a 404 of its own, and a locked
// one is refused (403), not a failed sign-in (401).
var (
	errUserNotFound = fmt.Errorf("user %w", sessiond.ErrNotFound)
	errUserLocked   = fmt.Errorf("%w: the user is locked", sessiond.ErrAccountLocked)
)

// pathUser returns the user id of r's path: the app's own id, any 1 to
// sessiond.MaxUserIDLen printable ASCII characters without spaces
// (percent-encoded in the path). With sessiond's own users it must be one
// of them (404 otherwise).
func (a *AdminServer) pathUser(r *http.Request, c *adminCall) (string, error) {
	id := r.PathValue("user_id")
	if err := checkUserID(id); err != nil {
		return "", err
	}
	c.userID = id
	return id, a.userExists(r, id)
}

// userExists returns errUserNotFound when the Manager keeps its own users
// and id is not one of them.
func (a *AdminServer) userExists(r *http.Request, id string) error {
	if a.Manager.ExternalUsers() {
		return nil
	}
	_, err := a.Manager.User(r.Context(), id)
	if errors.Is(err, sessiond.ErrNotFound) {
		return errUserNotFound
	}
	return err
}

// checkUserID refuses a user id that is not 1 to sessiond.MaxUserIDLen
// printable ASCII characters without spaces, as StartSession does.
func checkUserID(id string) error {
	if id == "" {
		return &sessiond.InputError{Field: "user_id", Message: "is required"}
	}
	if len(id) > sessiond.MaxUserIDLen {
		return &sessiond.InputError{Field: "user_id", Message: fmt.Sprintf("must be at most %d characters", sessiond.MaxUserIDLen)}
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' {
			return &sessiond.InputError{Field: "user_id", Message: "must be printable ASCII without spaces"}
		}
	}
	return nil
}

// decodeAdminJSON decodes a JSON object body into v like decodeJSON, and
// refuses a member that v does not name: a misspelt "claim" silently
// ignored would start a session without the claims the app meant.
func decodeAdminJSON(body []byte, v any, fields ...string) error {
	if err := decodeJSON(body, v); err != nil {
		return err
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil {
		return &sessiond.InputError{Message: "request body must be a JSON object"}
	}
	for name := range members {
		if !slices.Contains(fields, name) {
			return &sessiond.InputError{Field: name, Message: "is not a field of this request"}
		}
	}
	return nil
}

// decodeClaims decodes the claims member: a JSON object (numbers kept as
// written), checked by sessiond.CheckClaims. Absent gives nil, {} an empty
// map.
func decodeClaims(raw json.RawMessage) (map[string]any, error) {
	if raw == nil {
		return nil, nil
	}
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		return nil, &sessiond.InputError{Field: "claims", Message: "must be a JSON object"}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	claims := map[string]any{}
	if err := dec.Decode(&claims); err != nil {
		return nil, &sessiond.InputError{Field: "claims", Message: "must be a JSON object"}
	}
	if _, err := sessiond.CheckClaims(claims); err != nil {
		return nil, err
	}
	return claims, nil
}

// startSession is POST /admin/v1/sessions: a session for a user the app
// signed in, answered like a login.
func (a *AdminServer) startSession(w http.ResponseWriter, r *http.Request, c *adminCall) error {
	body, _, err := readBody(w, r, jsonType)
	if err != nil {
		return err
	}
	var in struct {
		UserID     string          `json:"user_id"`
		DeviceID   string          `json:"device_id"`
		DeviceName string          `json:"device_name"`
		UserAgent  string          `json:"user_agent"`
		IPAddress  string          `json:"ip_address"`
		Claims     json.RawMessage `json:"claims"`
		Handoff    *bool           `json:"handoff"`
	}
	if err := decodeAdminJSON(body, &in, "user_id", "device_id", "device_name", "user_agent", "ip_address", "claims", "handoff"); err != nil {
		return err
	}
	if err := checkUserID(in.UserID); err != nil {
		return err
	}
	c.userID = in.UserID
	ip := ""
	if in.IPAddress != "" {
		addr, err := netip.ParseAddr(in.IPAddress)
		if err != nil {
			return &sessiond.InputError{Field: "ip_address", Message: "must be an IPv4 or IPv6 address"}
		}
		ip = addr.Unmap().WithZone("").String()
	}
	claims, err := decodeClaims(in.Claims)
	if err != nil {
		return err
	}
	req := sessiond.StartRequest{
		UserID: in.UserID, DeviceID: in.DeviceID, DeviceName: in.DeviceName,
		UserAgent: in.UserAgent, ClientIP: ip, Claims: claims,
	}
	startErr := func(err error) error {
		switch {
		case errors.Is(err, sessiond.ErrAccountLocked):
			return errUserLocked
		case errors.Is(err, sessiond.ErrNotFound):
			return errUserNotFound
		}
		return err
	}
	if in.Handoff != nil && *in.Handoff {
		// No tokens: a one-time URL that sets the browser's cookies
		// (docs/design.md, "Handoff").
		h, err := a.Manager.StartHandoff(r.Context(), req)
		if err != nil {
			return startErr(err)
		}
		c.sessionIDs, c.outcome = []string{h.Session.ID}, "handoff"
		writeJSON(w, http.StatusCreated, "session started", adminHandoffJSON{
			HandoffURL: HandoffURL(a.PublicURL, a.BasePath, h.Code),
			ExpiresIn:  max(int64(h.ExpiresIn/time.Second), 0),
			Session:    newSessionJSON(h.Session, h.Session.ID),
		})
		return nil
	}
	g, err := a.Manager.StartSession(r.Context(), req)
	if err != nil {
		return startErr(err)
	}
	c.sessionIDs = []string{g.Session.ID}
	writeJSON(w, http.StatusCreated, "session started", newGrantJSON(g))
	return nil
}

// createUser is POST /admin/v1/users: one of sessiond's own users, with a
// password, or with the hash of one brought from another system
// (docs/design.md, "Imported password hashes"), which the user's first
// sign-in replaces. Not throttled, whatever SESSIOND_SIGNUP says.
func (a *AdminServer) createUser(w http.ResponseWriter, r *http.Request, c *adminCall) error {
	body, _, err := readBody(w, r, jsonType)
	if err != nil {
		return err
	}
	var in struct {
		Username     string  `json:"username"`
		Email        string  `json:"email"`
		Password     *string `json:"password"`
		PasswordHash *string `json:"password_hash"`
	}
	if err := decodeAdminJSON(body, &in, "username", "email", "password", "password_hash"); err != nil {
		return err
	}
	if a.Manager.ExternalUsers() {
		// The app's own users are not made here.
		return errNoEndpoint
	}
	var u *sessiond.User
	switch {
	case in.Password != nil && in.PasswordHash != nil:
		return &sessiond.InputError{Field: "password_hash", Message: "give password or password_hash, not both"}
	case in.PasswordHash != nil:
		u, err = a.Manager.ImportUser(r.Context(), sessiond.ImportRequest{Username: in.Username, Email: in.Email, PasswordHash: *in.PasswordHash})
	case in.Password != nil:
		u, err = a.Manager.AddUser(r.Context(), sessiond.RegisterRequest{Username: in.Username, Email: in.Email, Password: *in.Password})
	default:
		return &sessiond.InputError{Field: "password", Message: "is required (or password_hash)"}
	}
	if err != nil {
		return err
	}
	c.userID = u.ID
	writeJSON(w, http.StatusCreated, "user created", newUserJSON(u))
	return nil
}

// adminHandoffJSON is the data of a session started for a browser: the
// URL that hands it over, instead of its tokens.
type adminHandoffJSON struct {
	HandoffURL string      `json:"handoff_url"`
	ExpiresIn  int64       `json:"expires_in"`
	Session    sessionJSON `json:"session"`
}

// listSessions is GET /admin/v1/users/{user_id}/sessions, paged as GET
// /api/v1/sessions is; no session is current.
func (a *AdminServer) listSessions(w http.ResponseWriter, r *http.Request, c *adminCall) error {
	userID, err := a.pathUser(r, c)
	if err != nil {
		return err
	}
	limit, cursor, err := listQuery(r)
	if err != nil {
		return err
	}
	page, err := a.Manager.ListPage(r.Context(), userID, "", limit, cursor)
	if err != nil {
		return err
	}
	out := make([]sessionJSON, len(page.Sessions))
	for i, x := range page.Sessions {
		out[i] = newSessionJSON(x, "")
	}
	if page.Next != "" {
		next := url.Values{"limit": {strconv.Itoa(limit)}, "cursor": {page.Next}}
		w.Header().Set("Link", "<"+r.URL.EscapedPath()+"?"+next.Encode()+`>; rel="next"`)
	}
	writeJSON(w, http.StatusOK, english.Plural(len(out), "session"), out)
	return nil
}

// updateSession is PATCH /admin/v1/users/{user_id}/sessions/{id}: a new
// name, new claims, or both.
func (a *AdminServer) updateSession(w http.ResponseWriter, r *http.Request, c *adminCall) error {
	userID, err := a.pathUser(r, c)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	c.sessionIDs = []string{id}
	body, _, err := readBody(w, r, jsonType)
	if err != nil {
		return err
	}
	var in struct {
		Name   *string         `json:"name"`
		Claims json.RawMessage `json:"claims"`
	}
	if err := decodeAdminJSON(body, &in, "name", "claims"); err != nil {
		return err
	}
	if in.Name == nil && in.Claims == nil {
		return &sessiond.InputError{Message: "give name, claims or both"}
	}
	claims, err := decodeClaims(in.Claims)
	if err != nil {
		return err
	}
	s, err := a.Manager.UpdateSession(r.Context(), userID, id, sessiond.SessionUpdate{Name: in.Name, Claims: claims})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, "session updated", newSessionJSON(s, ""))
	return nil
}

// revokeSession is DELETE /admin/v1/users/{user_id}/sessions/{id}.
func (a *AdminServer) revokeSession(w http.ResponseWriter, r *http.Request, c *adminCall) error {
	userID, err := a.pathUser(r, c)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	c.sessionIDs = []string{id}
	if err := noBody(w, r); err != nil {
		return err
	}
	if err := a.Manager.EndSession(r.Context(), userID, id); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, "session ended", struct{}{})
	return nil
}

// adminReasons are the reasons the app may give for ending every session
// of a user; the first is the default.
var adminReasons = []sessiond.Reason{sessiond.ReasonAdmin, sessiond.ReasonPasswordChanged, sessiond.ReasonAccountLocked, sessiond.ReasonAccountDeleted}

// revokeAll is DELETE /admin/v1/users/{user_id}/sessions, with an optional
// {reason}.
func (a *AdminServer) revokeAll(w http.ResponseWriter, r *http.Request, c *adminCall) error {
	userID, err := a.pathUser(r, c)
	if err != nil {
		return err
	}
	body, _, err := readBody(w, r, jsonType)
	if err != nil {
		return err
	}
	reason := adminReasons[0]
	if body != nil {
		var in struct {
			Reason *string `json:"reason"`
		}
		if err := decodeAdminJSON(body, &in, "reason"); err != nil {
			return err
		}
		if in.Reason != nil {
			reason = ""
			for _, x := range adminReasons {
				if string(x) == *in.Reason {
					reason = x
				}
			}
			if reason == "" {
				return &sessiond.InputError{Field: "reason", Message: "must be admin, password_changed, account_locked or account_deleted"}
			}
		}
	}
	n, err := a.Manager.RevokeAll(r.Context(), userID, reason)
	c.outcome = string(reason)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, "ended "+english.Plural(n, "session"), map[string]int{"revoked": n})
	return nil
}

// introspect is POST /admin/v1/introspect (RFC 7662): whether an access
// token is valid now and its session live, with the session's current
// claims. Anything that is not such a token is {"active": false}; a store
// that does not answer is a 503, never an inactive token.
func (a *AdminServer) introspect(w http.ResponseWriter, r *http.Request, c *adminCall) error {
	body, mt, err := readBody(w, r, formType, jsonType)
	if err != nil {
		return err
	}
	var token, hint string
	if mt == formType {
		err = decodeForm(body, map[string]*string{"token": &token, "token_type_hint": &hint})
	} else {
		var in struct {
			Token string `json:"token"`
			Hint  string `json:"token_type_hint"`
		}
		err = decodeAdminJSON(body, &in, "token", "token_type_hint")
		token = in.Token
	}
	if err != nil {
		return err
	}
	if token == "" {
		return &sessiond.InputError{Field: "token", Message: "is required"}
	}
	sess, claims, err := a.Manager.Authenticate(r.Context(), token)
	if errors.Is(err, sessiond.ErrInvalidToken) {
		c.outcome = "inactive"
		writeIntrospection(w, []byte(`{"active":false}`))
		return nil
	}
	if err != nil {
		return err
	}
	c.outcome, c.userID, c.sessionIDs = "active", sess.UserID, []string{sess.ID}
	b, err := introspection(sess, claims)
	if err != nil {
		return err
	}
	writeIntrospection(w, b)
	return nil
}

// introspection is the RFC 7662 answer for a valid token of a live
// session: the token's registered claims and the session's current
// claims beside them (CheckClaims keeps their names apart).
func introspection(sess *sessiond.Session, c *sessiond.AccessClaims) ([]byte, error) {
	var aud any = []string(c.Audience)
	if len(c.Audience) == 1 {
		aud = c.Audience[0]
	}
	out := struct {
		Active    bool   `json:"active"`
		TokenType string `json:"token_type"`
		Sub       string `json:"sub"`
		Sid       string `json:"sid"`
		Exp       int64  `json:"exp"`
		Iat       int64  `json:"iat"`
		Nbf       int64  `json:"nbf,omitempty"`
		Iss       string `json:"iss"`
		Aud       any    `json:"aud"`
		Jti       string `json:"jti"`
	}{Active: true, TokenType: "access_token", Sub: c.Subject, Sid: c.SessionID, Iss: c.Issuer, Aud: aud, Jti: c.ID}
	if c.ExpiresAt != nil {
		out.Exp = c.ExpiresAt.Unix()
	}
	if c.IssuedAt != nil {
		out.Iat = c.IssuedAt.Unix()
	}
	if c.NotBefore != nil {
		out.Nbf = c.NotBefore.Unix()
	}
	b, err := json.Marshal(out)
	if err != nil || len(sess.Claims) <= len("{}") {
		return b, err
	}
	b = append(b[:len(b)-1], ',')
	return append(b, sess.Claims[1:]...), nil
}

func writeIntrospection(w http.ResponseWriter, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	w.Write(append(b, '\n'))
}
