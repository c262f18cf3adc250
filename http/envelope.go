package http

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/sessiond/sessiond"
)

// envelope is the shape of every /api/v1 JSON response.
type envelope struct {
	Status     string `json:"status"`
	StatusCode int    `json:"status_code"`
	Message    string `json:"message"`
	Data       any    `json:"data"`
}

// okEmpty is what writeJSON(w, 200, "ok", struct{}{}) writes, the answer of
// the forward-auth check on every request it lets through.
var okEmpty = []byte(`{"status":"success","status_code":200,"message":"ok","data":{}}` + "\n")

func writeJSON(w http.ResponseWriter, status int, msg string, data any) {
	if _, empty := data.(struct{}); empty && status == http.StatusOK && msg == "ok" {
		setJSONHeaders(w.Header())
		w.WriteHeader(status)
		w.Write(okEmpty)
		return
	}
	e := envelope{Status: "success", StatusCode: status, Message: msg, Data: data}
	if status >= 400 {
		e.Status = "error"
	}
	b, err := json.Marshal(e)
	if err != nil {
		status = http.StatusServiceUnavailable
		b = []byte(`{"status":"error","status_code":503,"message":"response could not be encoded","data":{"code":"unavailable"}}`)
	}
	setJSONHeaders(w.Header())
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// The header values of every envelope. setJSONHeaders assigns these
// one-element slices instead of calling Header.Set, which allocates a
// slice per value per response: nothing writes into a header's slice in
// place (Set replaces it, Add appends to it, and a full slice is copied).
var (
	jsonContentType = []string{"application/json; charset=utf-8"}
	noStore         = []string{"no-store"}
)

func setJSONHeaders(h http.Header) {
	h["Content-Type"] = jsonContentType[:1:1]
	h["Cache-Control"] = noStore[:1:1]
}

// timeFormat renders times as RFC 3339 UTC with milliseconds.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

func formatTime(t time.Time) string { return t.UTC().Format(timeFormat) }

// userJSON is a user as clients see it.
type userJSON struct {
	ID        string `json:"id"`
	Username  string `json:"username"`
	Email     string `json:"email"`
	CreatedAt string `json:"created_at"`
}

// appUserJSON is a user of the app's own (a Manager without a user store)
// as clients see it: sessiond knows only the id.
type appUserJSON struct {
	ID string `json:"id"`
}

func newUserJSON(u *sessiond.User) userJSON {
	return userJSON{ID: u.ID, Username: u.Username, Email: u.Email, CreatedAt: formatTime(u.CreatedAt)}
}

// sessionJSON is a session as clients see it.
type sessionJSON struct {
	ID          string `json:"id"`
	Device      string `json:"device"`
	DeviceClass string `json:"device_class"`
	Name        string `json:"name"`
	IPAddress   string `json:"ip_address"`
	Location    string `json:"location"`
	LoginTime   string `json:"login_time"`
	LastActive  string `json:"last_active"`
	ExpiresAt   string `json:"expires_at"`
	Current     bool   `json:"current"`
	// Claims are the session's claims, {} when it has none
	// (docs/design.md, "Sessions and users").
	Claims json.RawMessage `json:"claims"`
}

// noClaims is how a session without claims shows them.
var noClaims = json.RawMessage("{}")

// claimsOf returns the claims of s as clients see them.
func claimsOf(s *sessiond.Session) json.RawMessage {
	if len(s.Claims) == 0 {
		return noClaims
	}
	return s.Claims
}

func newSessionJSON(s *sessiond.Session, currentID string) sessionJSON {
	return sessionJSON{
		ID:          s.ID,
		Device:      s.Device,
		DeviceClass: s.Class(),
		Name:        s.Name,
		IPAddress:   s.IPAddress,
		Location:    s.Location,
		LoginTime:   formatTime(s.CreatedAt),
		LastActive:  formatTime(s.LastActive),
		ExpiresAt:   formatTime(s.ExpiresAt),
		Current:     s.ID == currentID,
		Claims:      claimsOf(s),
	}
}

// grantJSON is the data of a login or refresh.
type grantJSON struct {
	AccessToken  string      `json:"access_token,omitempty"`
	TokenType    string      `json:"token_type"`
	ExpiresIn    int64       `json:"expires_in"`
	RefreshToken string      `json:"refresh_token,omitempty"`
	Session      sessionJSON `json:"session"`
	// Redirect is the login's return_to when it passed the rules.
	Redirect string `json:"redirect,omitempty"`
}

// newGrantJSON is the data of a login, a refresh or a started session:
// the tokens of g and its session, current.
func newGrantJSON(g *sessiond.Grant) grantJSON {
	return grantJSON{
		AccessToken:  g.AccessToken,
		TokenType:    "Bearer",
		ExpiresIn:    max(int64(g.ExpiresIn/time.Second), 0),
		RefreshToken: g.RefreshToken,
		Session:      newSessionJSON(g.Session, g.Session.ID),
	}
}

// mediaType returns the lowercased media type of a Content-Type value.
func mediaType(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.ToLower(strings.TrimSpace(ct))
}
