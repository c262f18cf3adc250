package http

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/internal/english"
)

const jsonType = "application/json"
const formType = "application/x-www-form-urlencoded"

func (s *Server) register(w http.ResponseWriter, r *http.Request) error {
	body, _, err := readBody(w, r, jsonType)
	if err != nil {
		return err
	}
	var in struct {
		Username string `json:"username"`
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if err := decodeJSON(body, &in); err != nil {
		return err
	}
	_, ip := s.clientIP(r)
	u, err := s.Manager.Register(r.Context(), sessiond.RegisterRequest{
		Username: in.Username, Email: in.Email, Password: in.Password, ClientIP: ip,
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, "account created", newUserJSON(u))
	return nil
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	cookies := r.Header.Get(CookiesHeader) == "1"
	if cookies {
		if err := s.checkOrigin(r); err != nil {
			return err
		}
	}
	body, mt, err := readBody(w, r, jsonType, formType)
	if err != nil {
		return err
	}
	var in struct {
		Username   string `json:"username"`
		Password   string `json:"password"`
		DeviceID   string `json:"device_id"`
		DeviceName string `json:"device_name"`
		ReturnTo   string `json:"return_to"`
	}
	if mt == formType {
		err = decodeForm(body, map[string]*string{
			"username": &in.Username, "password": &in.Password,
			"device_id": &in.DeviceID, "device_name": &in.DeviceName,
			"return_to": &in.ReturnTo,
		})
	} else {
		err = decodeJSON(body, &in)
	}
	if err != nil {
		return err
	}
	if cookies && in.DeviceID == "" {
		if c, err := r.Cookie(DeviceCookie); err == nil && c.Value != "" && len(c.Value) <= sessiond.MaxDeviceIDLen {
			in.DeviceID = c.Value
		} else {
			in.DeviceID = newDeviceID()
			http.SetCookie(w, &http.Cookie{
				Name: DeviceCookie, Value: in.DeviceID, Path: "/", MaxAge: 365 * 24 * 3600,
				Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode,
			})
		}
	}
	_, ip := s.clientIP(r)
	g, err := s.Manager.Login(r.Context(), sessiond.LoginRequest{
		Login: in.Username, Password: in.Password,
		DeviceID: in.DeviceID, DeviceName: in.DeviceName,
		UserAgent: r.UserAgent(), ClientIP: ip,
	})
	if err != nil {
		return err
	}
	s.writeGrant(w, g, cookies, "signed in", s.returnTo(in.ReturnTo))
	return nil
}

func newDeviceID() string {
	b := make([]byte, 18)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *Server) refresh(w http.ResponseWriter, r *http.Request) error {
	cookies := r.Header.Get(CookiesHeader) == "1"
	if cookies {
		if err := s.checkOrigin(r); err != nil {
			return err
		}
	}
	body, _, err := readBody(w, r, jsonType)
	if err != nil {
		return err
	}
	var token string
	if body == nil && cookies {
		c, err := singleCookie(r, RefreshCookie)
		if err != nil {
			return err
		}
		if c == nil || c.Value == "" {
			return fmt.Errorf("%w: no refresh cookie", sessiond.ErrInvalidToken)
		}
		token = c.Value
	} else {
		var in struct {
			RefreshToken string `json:"refresh_token"`
		}
		if err := decodeJSON(body, &in); err != nil {
			return err
		}
		if in.RefreshToken == "" {
			return &sessiond.InputError{Field: "refresh_token", Message: "is required"}
		}
		token = in.RefreshToken
	}
	_, ip := s.clientIP(r)
	g, err := s.Manager.RefreshSession(r.Context(), token, ip)
	if err != nil {
		return err
	}
	// A page that finds itself signed in by its refresh cookie (an
	// expired access token sent it to sign in) goes back where it came
	// from, under the same rules as a login.
	s.writeGrant(w, g, cookies, "tokens refreshed", s.returnTo(r.URL.Query().Get("return_to")))
	return nil
}

// writeGrant answers a login or refresh, with the tokens in the body or,
// when the client asked for cookies, in cookies only.
func (s *Server) writeGrant(w http.ResponseWriter, g *sessiond.Grant, cookies bool, msg, redirect string) {
	out := newGrantJSON(g)
	out.Redirect = redirect
	if cookies {
		out.AccessToken, out.RefreshToken = "", ""
		setTokenCookies(w, g)
	}
	writeJSON(w, http.StatusOK, msg, out)
}

// clearCookies ends the browser's copy of the tokens.
func clearCookies(w http.ResponseWriter) {
	for _, name := range []string{AccessCookie, RefreshCookie} {
		http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", MaxAge: -1, Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
	w.Header().Set("Clear-Site-Data", `"cache"`)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, sess *sessiond.Session) error {
	if err := noBody(w, r); err != nil {
		return err
	}
	if err := s.Manager.Logout(r.Context(), sess); err != nil {
		return err
	}
	clearCookies(w)
	writeJSON(w, http.StatusOK, "signed out", struct{}{})
	return nil
}

func (s *Server) changePassword(w http.ResponseWriter, r *http.Request, sess *sessiond.Session) error {
	body, _, err := readBody(w, r, jsonType)
	if err != nil {
		return err
	}
	var in struct {
		Current     string `json:"current_password"`
		New         string `json:"new_password"`
		RevokeOther *bool  `json:"revoke_other_sessions"`
	}
	if err := decodeJSON(body, &in); err != nil {
		return err
	}
	if in.New == "" {
		return &sessiond.InputError{Field: "new_password", Message: "is required"}
	}
	_, ip := s.clientIP(r)
	n, err := s.Manager.ChangePassword(r.Context(), sess, sessiond.ChangePasswordRequest{
		Current: in.Current, New: in.New, RevokeOther: in.RevokeOther == nil || *in.RevokeOther, ClientIP: ip,
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, "password changed", map[string]int{"revoked": n})
	return nil
}

func (s *Server) check(w http.ResponseWriter, r *http.Request, sess *sessiond.Session) error {
	w.Header().Set("X-Sessiond-User", sess.UserID)
	w.Header().Set("X-Sessiond-Session", sess.ID)
	writeJSON(w, http.StatusOK, "ok", struct{}{})
	return nil
}

func (s *Server) me(w http.ResponseWriter, r *http.Request, sess *sessiond.Session) error {
	if s.Manager.ExternalUsers() {
		// The app's own user: sessiond knows nothing of it but the id.
		writeMe(w, nil, sess)
		return nil
	}
	u, err := s.users.get(r.Context(), s.Manager, sess.UserID)
	if err != nil {
		if errors.Is(err, sessiond.ErrNotFound) {
			return fmt.Errorf("%w: user deleted", sessiond.ErrInvalidToken)
		}
		return err
	}
	writeMe(w, &u, sess)
	return nil
}

// listSessions answers one page of the list: query limit (1-1000,
// default 1000) and cursor; when more remain, a Link header (RFC 8288)
// names the next page with the same limit.
func (s *Server) listSessions(w http.ResponseWriter, r *http.Request, sess *sessiond.Session) error {
	limit, cursor, err := listQuery(r)
	if err != nil {
		return err
	}
	page, err := s.Manager.ListPage(r.Context(), sess.UserID, sess.ID, limit, cursor)
	if err != nil {
		return err
	}
	out := make([]sessionJSON, len(page.Sessions))
	for i, x := range page.Sessions {
		out[i] = newSessionJSON(x, sess.ID)
	}
	if page.Next != "" {
		next := url.Values{"limit": {strconv.Itoa(limit)}, "cursor": {page.Next}}
		w.Header().Set("Link", "<"+strings.TrimSuffix(s.base(), "/")+r.URL.EscapedPath()+"?"+next.Encode()+`>; rel="next"`)
	}
	writeJSON(w, http.StatusOK, english.Plural(len(out), "signed-in device"), out)
	return nil
}

// activity answers the user's security history (docs/design.md,
// "Security activity"): newest first, [] when there is none.
func (s *Server) activity(w http.ResponseWriter, r *http.Request, sess *sessiond.Session) error {
	entries, err := s.Manager.Activity(r.Context(), sess.UserID)
	if err != nil {
		return err
	}
	if entries == nil {
		entries = []json.RawMessage{}
	}
	writeJSON(w, http.StatusOK, english.Plural(len(entries), "security event"), entries)
	return nil
}

// listQuery reads the limit and cursor of a list request.
func listQuery(r *http.Request) (limit int, cursor string, err error) {
	q := r.URL.Query()
	limit = sessiond.DefaultListLimit
	if v, ok := q["limit"]; ok {
		n, err := strconv.Atoi(v[0])
		if len(v) != 1 || err != nil || n < 1 || n > sessiond.MaxListLimit {
			return 0, "", &sessiond.InputError{Field: "limit", Message: fmt.Sprintf("must be one whole number from 1 to %d", sessiond.MaxListLimit)}
		}
		limit = n
	}
	if v, ok := q["cursor"]; ok {
		if len(v) != 1 || v[0] == "" {
			return 0, "", &sessiond.InputError{Field: "cursor", Message: "must be one cursor of a Link header"}
		}
		cursor = v[0]
	}
	return limit, cursor, nil
}

func (s *Server) revokeOthers(w http.ResponseWriter, r *http.Request, sess *sessiond.Session) error {
	if err := noBody(w, r); err != nil {
		return err
	}
	// The context names the session that does it: the history says which
	// device signed the others out.
	n, err := s.Manager.RevokeOthers(sessiond.NewContext(r.Context(), sess), sess.UserID, sess.ID, sessiond.ReasonRevokedOthers)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, "signed out "+english.Plural(n, "other device"), map[string]int{"revoked": n})
	return nil
}

func (s *Server) revokeSession(w http.ResponseWriter, r *http.Request, sess *sessiond.Session) error {
	if err := noBody(w, r); err != nil {
		return err
	}
	id := r.PathValue("id")
	if id == sess.ID {
		return s.logout(w, r, sess)
	}
	if err := s.Manager.Revoke(sessiond.NewContext(r.Context(), sess), sess.UserID, id, sessiond.ReasonRevoked); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, "device signed out", struct{}{})
	return nil
}

func (s *Server) renameSession(w http.ResponseWriter, r *http.Request, sess *sessiond.Session) error {
	body, _, err := readBody(w, r, jsonType)
	if err != nil {
		return err
	}
	var in struct {
		Name *string `json:"name"`
	}
	if err := decodeJSON(body, &in); err != nil {
		return err
	}
	if in.Name == nil {
		return &sessiond.InputError{Field: "name", Message: "is required (\"\" clears it)"}
	}
	updated, err := s.Manager.Rename(r.Context(), sess.UserID, r.PathValue("id"), *in.Name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, "device renamed", newSessionJSON(updated, sess.ID))
	return nil
}

func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=300")
	// Public keys, for any page's verifier: open to every origin.
	h.Set("Access-Control-Allow-Origin", "*")
	w.Write(s.Manager.JWKS())
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.Manager.Ready(ctx); err != nil {
		s.logger().WarnContext(ctx, "not ready", "err", err)
		writeAPIError(w, apiError{status: http.StatusServiceUnavailable, code: codeUnavailable, msg: "a store is unreachable or refuses writes", retryAfter: time.Second})
		return nil
	}
	writeJSON(w, http.StatusOK, "ready", struct{}{})
	return nil
}

func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=300")
	w.Write(OpenAPIJSON)
}

// noBody refuses a body these endpoints do not take unless it is JSON
// (415 otherwise, as for every request with a body), and ignores it.
func noBody(w http.ResponseWriter, r *http.Request) error {
	_, _, err := readBody(w, r, jsonType)
	return err
}
