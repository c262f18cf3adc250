package http_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	sessiondhttp "github.com/sessiond/sessiond/http"
	"github.com/sessiond/sessiond/internal/adminkey"
	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/redis"
	"github.com/sessiond/sessiond/redis/redistest"
)

// adminEnv is a test Manager served on both listeners: the public API and
// the admin API, with one admin key in a real keys file.
type adminEnv struct {
	*sessiondtest.Server
	Admin    *httptest.Server
	AC       *sessiondtest.Client // the admin listener's client
	PC       *sessiondtest.Client // the public listener's client
	Key      string               // a valid admin key, named "app"
	KeysFile string
}

// startAdmin serves a Manager built as o says on both listeners, with a
// keys file holding one key named "app" that the server watches.
func startAdmin(t testing.TB, o sessiondtest.Options) *adminEnv {
	t.Helper()
	e := &adminEnv{Server: sessiondtest.StartServer(t, o, nil)}
	e.KeysFile = filepath.Join(t.TempDir(), "admin-keys")
	var err error
	if e.Key, err = adminkey.New(e.KeysFile, "app"); err != nil {
		t.Fatal(err)
	}
	keys, err := adminkey.Open(e.KeysFile, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go keys.Watch(ctx)
	e.Admin = e.StartAdmin(t, keys, nil)
	e.AC = sessiondtest.NewAdminClient(t, e.Admin.URL)
	e.PC = sessiondtest.NewClient(t, e.URL)
	return e
}

// adminSession is a session as the admin API shows it.
type adminSession struct {
	sessiondtest.Session
	Claims map[string]any `json:"claims"`
}

type adminGrant struct {
	AccessToken  string       `json:"access_token"`
	TokenType    string       `json:"token_type"`
	ExpiresIn    int          `json:"expires_in"`
	RefreshToken string       `json:"refresh_token"`
	Session      adminSession `json:"session"`
}

// userPath returns the admin API's path of userID's sessions, the id
// percent-encoded as one segment ("." and ".." too, which PathEscape
// leaves as they are and a mux would clean away).
func userPath(userID string, rest ...string) string {
	seg := url.PathEscape(userID)
	if strings.Trim(userID, ".") == "" {
		seg = strings.Repeat("%2E", len(userID))
	}
	return "/admin/v1/users/" + seg + "/sessions" + strings.Join(rest, "")
}

// start starts a session through the admin API and fails t unless it is
// 201.
func (e *adminEnv) start(t testing.TB, body map[string]any) adminGrant {
	t.Helper()
	var g adminGrant
	e.AC.Do("POST", "/admin/v1/sessions", e.Key, body).Expect(t, http.StatusCreated).Decode(t, &g)
	return g
}

// tokenClaims returns the claims of an access token, unverified.
func tokenClaims(t testing.TB, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a JWS", token)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// introspect posts token to the introspection endpoint, form-encoded, and
// returns the answer's members.
func (e *adminEnv) introspect(t testing.TB, token string) map[string]any {
	t.Helper()
	r := e.AC.Do("POST", "/admin/v1/introspect", e.Key, url.Values{"token": {token}}).Expect(t, http.StatusOK)
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("introspection Content-Type: got %q, want application/json", ct)
	}
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("introspection answer %s: %v", r.Body, err)
	}
	return m
}

func wantInactive(t testing.TB, what string, m map[string]any) {
	t.Helper()
	if len(m) != 1 || m["active"] != false {
		t.Fatalf("%s: got %v, want exactly {\"active\":false}", what, m)
	}
}

// storeBackends are the session stores the store-touching admin tests run
// on: SQLite, one Redis and a Redis Cluster.
func storeBackends() []struct {
	name string
	opts func(t *testing.T, o sessiondtest.Options) sessiondtest.Options
} {
	return []struct {
		name string
		opts func(t *testing.T, o sessiondtest.Options) sessiondtest.Options
	}{
		{"sqlite", func(t *testing.T, o sessiondtest.Options) sessiondtest.Options { return o }},
		{"redis", func(t *testing.T, o sessiondtest.Options) sessiondtest.Options {
			return sessiondtest.OnRedis(t, o, redis.Options{URL: redistest.Start(t).URL()})
		}},
		{"cluster", func(t *testing.T, o sessiondtest.Options) sessiondtest.Options {
			return sessiondtest.OnRedis(t, o, redis.Options{URL: redistest.StartCluster(t).URL()})
		}},
	}
}

// TestAdminSessionsOfTheAppsUsers walks every store-touching admin route
// for the app's own users, whose ids hold the characters a key layout or a
// path could trip on: start with claims, list and page, update the claims
// and see them in the next refresh and in introspection at once, end one
// session, end the rest with a reason.
func TestAdminSessionsOfTheAppsUsers(t *testing.T) {
	for _, b := range storeBackends() {
		t.Run(b.name, func(t *testing.T) {
			e := startAdmin(t, b.opts(t, sessiondtest.Options{ExternalUsers: true}))
			ids := []string{"auth0|abc", "a:b{c}", "x@y", "a/b"}
			if b.name == "sqlite" {
				ids = append(ids, "%", "..", ".", "a%2Fb", "{u:1}:idx", strings.Repeat("~", sessiond.MaxUserIDLen))
			}
			for _, id := range ids {
				adminFlow(t, e, id)
			}
		})
	}
}

func adminFlow(t *testing.T, e *adminEnv, userID string) {
	t.Helper()
	laptop := e.start(t, map[string]any{
		"user_id": userID, "device_id": "laptop-1", "device_name": "Work laptop",
		"user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"ip_address": "203.0.113.7",
		"claims":     map[string]any{"plan": "pro", "org": map[string]any{"id": 42}},
		"handoff":    false,
	})
	s := laptop.Session
	if laptop.TokenType != "Bearer" || laptop.AccessToken == "" || laptop.RefreshToken == "" || laptop.ExpiresIn < 890 {
		t.Fatalf("%s: start: got %+v", userID, laptop)
	}
	if s.Device != "Chrome on Windows" || s.DeviceClass != "desktop" || s.Name != "Work laptop" || s.IPAddress != "203.0.113.7" || !s.Current || s.Claims["plan"] != "pro" {
		t.Fatalf("%s: started session: got %+v", userID, s)
	}
	if c := tokenClaims(t, laptop.AccessToken); c["sub"] != userID || c["sid"] != s.ID || c["plan"] != "pro" {
		t.Fatalf("%s: access token claims: got %v", userID, c)
	}
	if r := e.PC.Do("GET", "/api/v1/auth/check", laptop.AccessToken, nil).Expect(t, 200); r.Header.Get("X-Sessiond-User") != userID || r.Header.Get("X-Sessiond-Session") != s.ID {
		t.Fatalf("%s: forward auth with the started session's token: got %v", userID, r.Header)
	}

	phone := e.start(t, map[string]any{"user_id": userID, "user_agent": "curl/8.5.0"})
	if phone.Session.IPAddress != "" || phone.Session.Device != "curl" || len(phone.Session.Claims) != 0 {
		t.Fatalf("%s: session without claims or address: got %+v", userID, phone.Session)
	}
	if !strings.Contains(string(e.AC.Do("GET", userPath(userID), e.Key, nil).Body), `"claims":{}`) {
		t.Fatalf("%s: a session without claims must show \"claims\":{}", userID)
	}

	// Paging: one session a page, each exactly once, none current.
	seen := map[string]bool{}
	next := userPath(userID) + "?limit=1"
	for pages := 0; next != ""; pages++ {
		if pages > 3 {
			t.Fatalf("%s: more pages than sessions", userID)
		}
		r := e.AC.Do("GET", next, e.Key, nil).Expect(t, 200)
		var list []adminSession
		r.Decode(t, &list)
		for _, x := range list {
			if x.Current || seen[x.ID] {
				t.Fatalf("%s: page %d: got %+v (current or seen before)", userID, pages, x)
			}
			seen[x.ID] = true
		}
		next = ""
		if l := r.Header.Get("Link"); l != "" {
			next = strings.TrimSuffix(strings.TrimPrefix(l, "<"), `>; rel="next"`)
			if !strings.HasPrefix(next, userPath(userID)+"?") {
				t.Fatalf("%s: Link %q does not name the user's escaped path", userID, l)
			}
		}
	}
	if len(seen) != 2 || !seen[s.ID] || !seen[phone.Session.ID] {
		t.Fatalf("%s: paged list: got %v", userID, seen)
	}

	// New claims: in introspection at once, in the next access token.
	var updated adminSession
	e.AC.Do("PATCH", userPath(userID, "/", s.ID), e.Key, map[string]any{"claims": map[string]any{"plan": "team", "seats": 5}}).Expect(t, 200).Decode(t, &updated)
	if updated.Claims["plan"] != "team" || updated.Claims["org"] != nil || updated.Name != "Work laptop" || updated.Current {
		t.Fatalf("%s: patched session: got %+v", userID, updated)
	}
	in := e.introspect(t, laptop.AccessToken)
	if in["active"] != true || in["token_type"] != "access_token" || in["sub"] != userID || in["sid"] != s.ID || in["plan"] != "team" || in["seats"] != 5.0 || in["org"] != nil || in["iss"] != "sessiond" || in["aud"] != "sessiond" || in["jti"] == "" || in["exp"] == nil || in["iat"] == nil {
		t.Fatalf("%s: introspection after the update: got %v", userID, in)
	}
	var g sessiondtest.Grant
	e.PC.PostRefresh(laptop.RefreshToken).Expect(t, 200).Decode(t, &g)
	if c := tokenClaims(t, g.AccessToken); c["plan"] != "team" || c["seats"] != 5.0 || c["org"] != nil {
		t.Fatalf("%s: refreshed token's claims: got %v", userID, c)
	}
	// A rename keeps the claims; {} clears them.
	e.AC.Do("PATCH", userPath(userID, "/", s.ID), e.Key, map[string]any{"name": "Old laptop"}).Expect(t, 200).Decode(t, &updated)
	if updated.Name != "Old laptop" || updated.Claims["plan"] != "team" {
		t.Fatalf("%s: renamed session: got %+v", userID, updated)
	}
	var cleared adminSession
	e.AC.Do("PATCH", userPath(userID, "/", s.ID), e.Key, map[string]any{"claims": map[string]any{}}).Expect(t, 200).Decode(t, &cleared)
	if cleared.Claims == nil || len(cleared.Claims) != 0 {
		t.Fatalf("%s: cleared claims: got %+v", userID, cleared)
	}
	if in := e.introspect(t, g.AccessToken); in["active"] != true || in["plan"] != nil {
		t.Fatalf("%s: introspection after clearing the claims: got %v", userID, in)
	}

	// End one session: its token is refused and inactive at once.
	e.AC.Do("DELETE", userPath(userID, "/", phone.Session.ID), e.Key, nil).Expect(t, 200)
	e.AC.Do("DELETE", userPath(userID, "/", phone.Session.ID), e.Key, nil).Expect(t, 404)
	e.AC.Do("PATCH", userPath(userID, "/", phone.Session.ID), e.Key, map[string]any{"name": "x"}).Expect(t, 404)
	e.PC.Do("GET", "/api/v1/auth/check", phone.AccessToken, nil).Expect(t, 401)
	wantInactive(t, userID+": revoked session's token", e.introspect(t, phone.AccessToken))

	// End the rest with a reason.
	var revoked struct{ Revoked int }
	e.AC.Do("DELETE", userPath(userID), e.Key, map[string]any{"reason": "account_deleted"}).Expect(t, 200).Decode(t, &revoked)
	if revoked.Revoked != 1 {
		t.Fatalf("%s: revoke all: got %d, want 1", userID, revoked.Revoked)
	}
	e.PC.Do("GET", "/api/v1/auth/check", g.AccessToken, nil).Expect(t, 401)
	wantInactive(t, userID+": token after revoke all", e.introspect(t, g.AccessToken))
	var list []adminSession
	e.AC.Do("GET", userPath(userID), e.Key, nil).Expect(t, 200).Decode(t, &list)
	if len(list) != 0 {
		t.Fatalf("%s: list after revoke all: got %+v", userID, list)
	}
	e.AC.Do("DELETE", userPath(userID), e.Key, nil).Expect(t, 200).Decode(t, &revoked)
	if revoked.Revoked != 0 {
		t.Fatalf("%s: second revoke all: got %d", userID, revoked.Revoked)
	}
	if !strings.Contains(e.Logs.String(), `"reason":"account_deleted"`) {
		t.Fatalf("%s: no session ended with reason account_deleted in the log", userID)
	}
}

// TestAdminIntrospectInactive checks that whatever is not an access token
// of a live session is {"active":false}: a refresh token, a forged one,
// an expired one, garbage, an admin key; and that JSON bodies work too.
func TestAdminIntrospectInactive(t *testing.T) {
	for _, b := range storeBackends() {
		t.Run(b.name, func(t *testing.T) {
			now := time.Now()
			var clock = func() time.Time { return now }
			o := b.opts(t, sessiondtest.Options{ExternalUsers: true, Now: func() time.Time { return clock() }})
			e := startAdmin(t, o)
			g := e.start(t, map[string]any{"user_id": "auth0|intro", "claims": map[string]any{"role": "admin"}})
			var in map[string]any
			r := e.AC.Do("POST", "/admin/v1/introspect", e.Key, map[string]string{"token": g.AccessToken}).Expect(t, 200)
			if err := json.Unmarshal(r.Body, &in); err != nil || in["active"] != true || in["role"] != "admin" {
				t.Fatalf("JSON introspection: got %s", r.Body)
			}
			parts := strings.Split(g.AccessToken, ".")
			forgedSig := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
			otherSub := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"someone else"}`)) + "." + parts[2]
			for what, tok := range map[string]string{
				"refresh token": g.RefreshToken, "forged signature": forgedSig, "changed claims": otherSub,
				"garbage": "not a token at all", "admin key": e.Key, "too large": strings.Repeat("a", 9000),
			} {
				wantInactive(t, what, e.introspect(t, tok))
			}
			clock = func() time.Time { return now.Add(16 * time.Minute) }
			wantInactive(t, "expired", e.introspect(t, g.AccessToken))
		})
	}
}

// TestAdminIntrospectStoreDown checks that a store that does not answer is
// a 503 in the envelope, never an inactive token.
func TestAdminIntrospectStoreDown(t *testing.T) {
	r := redistest.Start(t)
	e := startAdmin(t, sessiondtest.OnRedis(t, sessiondtest.Options{ExternalUsers: true}, redis.Options{URL: r.URL(), Timeout: 200 * time.Millisecond}))
	g := e.start(t, map[string]any{"user_id": "down"})
	r.Kill()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp := e.AC.Do("POST", "/admin/v1/introspect", e.Key, url.Values{"token": {g.AccessToken}})
		if resp.StatusCode == http.StatusServiceUnavailable {
			if resp.Header.Get("Retry-After") == "" {
				t.Fatal("503 without Retry-After")
			}
			return
		}
		if resp.StatusCode != 200 || !strings.Contains(string(resp.Body), `"active":true`) {
			t.Fatalf("with Redis down: got %d %s, want 503 (or a cached active answer before it)", resp.StatusCode, resp.Body)
		}
		if time.Now().After(deadline) {
			t.Fatal("no 503 within 10 s of Redis going down")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestAdminOwnUsers checks the admin API with sessiond's own users: an
// unknown user id is 404 on every route, a locked user cannot get a
// session (403), and a known one can.
func TestAdminOwnUsers(t *testing.T) {
	e := startAdmin(t, sessiondtest.Options{CheapHashing: true})
	u := e.PC.Register("zoe")
	g := e.start(t, map[string]any{"user_id": u.ID})
	e.PC.Do("GET", "/api/v1/me", g.AccessToken, nil).Expect(t, 200)
	var list []adminSession
	e.AC.Do("GET", userPath(u.ID), e.Key, nil).Expect(t, 200).Decode(t, &list)
	if len(list) != 1 || list[0].ID != g.Session.ID || list[0].Current {
		t.Fatalf("list: got %+v", list)
	}

	for _, call := range []struct {
		method, path string
		body         any
	}{
		{"POST", "/admin/v1/sessions", map[string]any{"user_id": "nobody"}},
		{"GET", userPath("nobody"), nil},
		{"DELETE", userPath("nobody"), nil},
		{"PATCH", userPath("nobody", "/", g.Session.ID), map[string]any{"name": "x"}},
		{"DELETE", userPath("nobody", "/", g.Session.ID), nil},
	} {
		r := e.AC.Do(call.method, call.path, e.Key, call.body).Expect(t, 404)
		if r.Env.Message != "user not found" {
			t.Fatalf("%s %s: message %q, want user not found", call.method, call.path, r.Env.Message)
		}
	}
	// Another user's session id under this user's path is not found.
	other := e.PC.Register("yann")
	e.AC.Do("DELETE", userPath(other.ID, "/", g.Session.ID), e.Key, nil).Expect(t, 404)
	e.PC.Do("GET", "/api/v1/me", g.AccessToken, nil).Expect(t, 200)

	if _, err := e.Manager.SetLocked(context.Background(), u.ID, true); err != nil {
		t.Fatal(err)
	}
	r := e.AC.Do("POST", "/admin/v1/sessions", e.Key, map[string]any{"user_id": u.ID}).Expect(t, 403)
	var d struct{ Code string }
	r.Decode(t, &d)
	if d.Code != "account_locked" {
		t.Fatalf("locked user: code %q", d.Code)
	}
}

// TestAdminBadInput checks that every malformed admin request is a 400
// naming its field (or 415, 413), never a 5xx.
func TestAdminBadInput(t *testing.T) {
	e := startAdmin(t, sessiondtest.Options{ExternalUsers: true})
	g := e.start(t, map[string]any{"user_id": "u1"})
	sess := userPath("u1", "/", g.Session.ID)
	big := map[string]any{"blob": strings.Repeat("x", sessiond.ClaimsLimit)}
	for _, tt := range []struct {
		name, method, path string
		body               any
		status             int
		field              string
	}{
		{"no user id", "POST", "/admin/v1/sessions", map[string]any{"device_id": "d"}, 400, "user_id"},
		{"user id with a space", "POST", "/admin/v1/sessions", map[string]any{"user_id": "a b"}, 400, "user_id"},
		{"user id not ASCII", "POST", "/admin/v1/sessions", map[string]any{"user_id": "zoë"}, 400, "user_id"},
		{"user id too long", "POST", "/admin/v1/sessions", map[string]any{"user_id": strings.Repeat("a", 129)}, 400, "user_id"},
		{"user id a number", "POST", "/admin/v1/sessions", map[string]any{"user_id": 42}, 400, "user_id"},
		{"user id too long in the path", "GET", userPath(strings.Repeat("a", 129)), nil, 400, "user_id"},
		{"user id with a space in the path", "GET", userPath("a b"), nil, 400, "user_id"},
		{"bad address", "POST", "/admin/v1/sessions", map[string]any{"user_id": "u1", "ip_address": "203.0.113"}, 400, "ip_address"},
		{"claims not an object", "POST", "/admin/v1/sessions", map[string]any{"user_id": "u1", "claims": []int{1}}, 400, "claims"},
		{"claims null", "POST", "/admin/v1/sessions", []byte(`{"user_id":"u1","claims":null}`), 400, "claims"},
		{"reserved claim", "POST", "/admin/v1/sessions", map[string]any{"user_id": "u1", "claims": map[string]any{"sub": "root"}}, 400, "claims"},
		{"sd_ claim", "POST", "/admin/v1/sessions", map[string]any{"user_id": "u1", "claims": map[string]any{"sd_x": 1}}, 400, "claims"},
		{"introspection claim", "POST", "/admin/v1/sessions", map[string]any{"user_id": "u1", "claims": map[string]any{"active": false}}, 400, "claims"},
		{"claims too large", "POST", "/admin/v1/sessions", map[string]any{"user_id": "u1", "claims": big}, 400, "claims"},
		{"handoff not a boolean", "POST", "/admin/v1/sessions", map[string]any{"user_id": "u1", "handoff": "yes"}, 400, "handoff"},
		{"unknown field", "POST", "/admin/v1/sessions", map[string]any{"user_id": "u1", "claim": map[string]any{"a": 1}}, 400, "claim"},
		{"device name with a control character", "POST", "/admin/v1/sessions", map[string]any{"user_id": "u1", "device_name": "a\u202eb"}, 400, "device_name"},
		{"device id too long", "POST", "/admin/v1/sessions", map[string]any{"user_id": "u1", "device_id": strings.Repeat("d", 257)}, 400, "device_id"},
		{"not JSON", "POST", "/admin/v1/sessions", []byte(`{"user_id":`), 400, ""},
		{"lone surrogate", "POST", "/admin/v1/sessions", []byte(`{"user_id":"u1","device_name":"\ud800"}`), 400, ""},
		{"no body", "POST", "/admin/v1/sessions", nil, 400, ""},
		{"name too long", "PATCH", sess, map[string]any{"name": strings.Repeat("n", 65)}, 400, "name"},
		{"nothing to update", "PATCH", sess, map[string]any{}, 400, ""},
		{"update with an unknown field", "PATCH", sess, map[string]any{"name": "a", "device": "b"}, 400, "device"},
		{"reserved claim in an update", "PATCH", sess, map[string]any{"claims": map[string]any{"exp": 1}}, 400, "claims"},
		{"unknown reason", "DELETE", userPath("u1"), map[string]any{"reason": "logout"}, 400, "reason"},
		{"bad limit", "GET", userPath("u1") + "?limit=0", nil, 400, "limit"},
		{"bad cursor", "GET", userPath("u1") + "?cursor=zzz", nil, 400, "cursor"},
		{"no token", "POST", "/admin/v1/introspect", url.Values{"token_type_hint": {"access_token"}}, 400, "token"},
		{"token twice", "POST", "/admin/v1/introspect", url.Values{"token": {"a", "b"}}, 400, "token"},
		{"token not a string", "POST", "/admin/v1/introspect", map[string]any{"token": 1}, 400, "token"},
		{"unknown session", "DELETE", userPath("u1", "/nope"), nil, 404, ""},
		{"unknown path", "GET", "/admin/v1/nope", nil, 404, ""},
		{"unclean path", "GET", "/admin/v1/users/../sessions", nil, 404, ""},
		{"wrong method", "PUT", userPath("u1"), nil, 405, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e.AC.Headers = nil
			if _, raw := tt.body.([]byte); raw {
				e.AC.Headers = map[string]string{"Content-Type": "application/json"}
			}
			r := e.AC.Do(tt.method, tt.path, e.Key, tt.body).Expect(t, tt.status)
			d := checkErrorData(t, tt.name, tt.status, r.Header, r.Env.Data)
			if d.Field != tt.field {
				t.Fatalf("field: got %q, want %q (%s)", d.Field, tt.field, r.Body)
			}
			if tt.field != "" {
				r.WantField(t, tt.field)
			}
		})
	}
	// Media types: 415 for a body that is not JSON (or a form, for
	// introspection).
	for _, path := range []string{"/admin/v1/sessions", "/admin/v1/introspect"} {
		req, _ := http.NewRequest("POST", e.Admin.URL+path, strings.NewReader("token=x"))
		req.Header.Set("Content-Type", "text/plain")
		req.Header.Set("Authorization", "Bearer "+e.Key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Fatalf("POST %s as text/plain: got %d, want 415", path, resp.StatusCode)
		}
	}
	// A User-Agent as long as the body allows is taken (only its start
	// is parsed); a body over 64 KiB is 413.
	e.AC.Headers = nil
	var long adminGrant
	e.AC.Do("POST", "/admin/v1/sessions", e.Key, map[string]any{"user_id": "u2", "user_agent": "curl/8.5.0 " + strings.Repeat("x", 60<<10)}).Expect(t, 201).Decode(t, &long)
	if long.Session.Device != "curl" {
		t.Fatalf("long User-Agent: device %q", long.Session.Device)
	}
	e.AC.Do("POST", "/admin/v1/sessions", e.Key, map[string]any{"user_id": "u1", "user_agent": strings.Repeat("x", 64<<10)}).Expect(t, 413)
	// Nothing was started by the refused requests.
	var list []adminSession
	e.AC.Do("GET", userPath("u1"), e.Key, nil).Expect(t, 200).Decode(t, &list)
	if len(list) != 1 {
		t.Fatalf("sessions after refused starts: got %d, want 1", len(list))
	}
}

// TestAdminAuth checks the admin key: a missing key, a wrong key and an
// access token get one and the same 401; two Authorization headers are a
// 400; past 20 such requests from one address a minute they get 429 while
// the valid key goes on working; an admin key is nothing on the public
// listener.
func TestAdminAuth(t *testing.T) {
	e := startAdmin(t, sessiondtest.Options{ExternalUsers: true})
	g := e.start(t, map[string]any{"user_id": "u1"})
	path := userPath("u1")

	var first string
	for i, key := range []string{"", "sdk_" + strings.Repeat("A", 43), g.AccessToken, e.Key + "x", strings.ToUpper(e.Key)} {
		r := e.AC.Do("GET", path, key, nil).Expect(t, 401)
		if r.Header.Get("WWW-Authenticate") == "" || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("key %d: WWW-Authenticate %q", i, r.Header.Get("WWW-Authenticate"))
		}
		if first == "" {
			first = string(r.Body)
		} else if string(r.Body) != first {
			t.Fatalf("key %d: body %s differs from %s: it must not tell which was wrong", i, r.Body, first)
		}
		var d struct{ Code string }
		r.Decode(t, &d)
		if d.Code != "admin_key_invalid" {
			t.Fatalf("key %d: code %q", i, d.Code)
		}
	}
	// Not a Bearer scheme.
	req, _ := http.NewRequest("GET", e.Admin.URL+path, nil)
	req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("app:"+e.Key)))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Fatalf("Basic auth: got %v %v, want 401", resp, err)
	}
	// Two Authorization headers, even both valid.
	req, _ = http.NewRequest("GET", e.Admin.URL+path, nil)
	req.Header.Add("Authorization", "Bearer "+e.Key)
	req.Header.Add("Authorization", "Bearer "+e.Key)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 400 {
		t.Fatalf("two Authorization headers: got %v %v, want 400", resp, err)
	}

	// 6 failures so far (5 above and Basic); the 21st gets 429.
	for i := 7; i <= 20; i++ {
		e.AC.Do("POST", "/admin/v1/introspect", "wrong", url.Values{"token": {g.AccessToken}}).Expect(t, 401)
	}
	r := e.AC.Do("GET", path, "", nil).Expect(t, 429)
	if r.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	for range 25 {
		e.AC.Do("GET", path, e.Key, nil).Expect(t, 200)
	}
	e.AC.Do("GET", path, "sdk_wrong", nil).Expect(t, 429)

	// Operations endpoints need no key.
	e.AC.Do("GET", "/healthz", "", nil).Expect(t, 200)
	e.AC.Do("GET", "/readyz", "", nil).Expect(t, 200)

	// On the public listener an admin key is an invalid access token.
	pr := e.PC.Do("GET", "/api/v1/me", e.Key, nil).Expect(t, 401)
	if pr.Header.Get("WWW-Authenticate") != `Bearer error="invalid_token"` {
		t.Fatalf("admin key on the public listener: WWW-Authenticate %q", pr.Header.Get("WWW-Authenticate"))
	}
	e.PC.Do("GET", "/api/v1/auth/check", e.Key, nil).Expect(t, 401)
	// And the admin API is not there.
	e.PC.Do("POST", "/api/v1/admin/v1/sessions", e.Key, map[string]any{"user_id": "u1"}).Expect(t, 404)

	// Audit lines name the key and the call, never a key or a token.
	logs := e.Logs.String()
	var list, start bool
	for line := range strings.SplitSeq(logs, "\n") {
		var l struct {
			Msg, Key, Action string
			UserID           string   `json:"user_id"`
			SessionIDs       []string `json:"session_ids"`
		}
		if json.Unmarshal([]byte(line), &l) != nil || l.Msg != "admin" {
			continue
		}
		if l.Key != "app" || l.UserID != "u1" {
			t.Fatalf("audit line %s: want key app, user u1", line)
		}
		list = list || l.Action == "list_sessions"
		start = start || l.Action == "start_session" && len(l.SessionIDs) == 1 && l.SessionIDs[0] == g.Session.ID
	}
	if !list || !start {
		t.Fatalf("audit lines of the list (%v) and the start (%v) missing:\n%s", list, start, logs)
	}
	for _, secret := range []string{e.Key, strings.ToUpper(e.Key), g.AccessToken, g.RefreshToken} {
		if strings.Contains(logs, secret) {
			t.Fatal("a key or a token is in the log")
		}
	}
}

// TestAdminKeyRevokedStopsWorking revokes a key in the real keys file the
// server watches: it is refused within 5 s, and a new key works as soon.
func TestAdminKeyRevokedStopsWorking(t *testing.T) {
	e := startAdmin(t, sessiondtest.Options{ExternalUsers: true})
	e.AC.Do("GET", userPath("u1"), e.Key, nil).Expect(t, 200)
	second, err := adminkey.New(e.KeysFile, "ops")
	if err != nil {
		t.Fatal(err)
	}
	if err := adminkey.Revoke(e.KeysFile, "app"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.AC.Do("GET", userPath("u1"), e.Key, nil).StatusCode != 401 {
		if time.Now().After(deadline) {
			t.Fatal("a revoked key still works 5 s later")
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.AC.Do("GET", userPath("u1"), second, nil).Expect(t, 200)
	// A keys file that goes away leaves no keys.
	if err := os.Remove(e.KeysFile); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for e.AC.Do("GET", userPath("u1"), second, nil).StatusCode != 401 {
		if time.Now().After(deadline) {
			t.Fatal("a key still works 5 s after its file was removed")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestAdminListenerOperations checks /metrics on the admin listener and
// its absence on the public one.
func TestAdminListenerOperations(t *testing.T) {
	e := &adminEnv{Server: sessiondtest.StartServer(t, sessiondtest.Options{}, nil)}
	admin := e.StartAdmin(t, nil, func(a *sessiondhttp.AdminServer) {
		a.MetricsHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
			w.Write([]byte("sessiond_up 1\n"))
		})
	})
	ac := sessiondtest.NewAdminClient(t, admin.URL)
	if r := ac.Do("GET", "/metrics", "", nil).Expect(t, 200); string(r.Body) != "sessiond_up 1\n" {
		t.Fatalf("/metrics: got %q", r.Body)
	}
	sessiondtest.NewClient(t, e.URL).Do("GET", "/metrics", "", nil).Expect(t, 404)
	// Without keys, no key is valid.
	ac.Do("GET", userPath("u1"), "anything", nil).Expect(t, 401)
	ac.Do("GET", "/", "", nil).Expect(t, 404)
}
