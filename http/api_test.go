package http_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// TestDevicesFlow is the README's transcript: register, log in from two
// devices, list, revoke the other device, its token refused, refresh, log
// out.
func TestDevicesFlow(t *testing.T) {
	ts := startServer(t, nil)
	c := sessiondtest.NewClient(t, ts.URL)
	u := c.Register("alice")
	if u.Username != "alice" || u.Email != "alice@example.com" || u.ID == "" {
		t.Fatalf("register: got %+v", u)
	}
	if _, err := time.Parse("2006-01-02T15:04:05.000Z", u.CreatedAt); err != nil {
		t.Fatalf("created_at %q is not RFC 3339 UTC with milliseconds", u.CreatedAt)
	}

	c.UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	laptop := c.Login("alice", nil)
	if laptop.TokenType != "Bearer" || laptop.ExpiresIn < 890 || laptop.ExpiresIn > 900 || laptop.AccessToken == "" || laptop.RefreshToken == "" {
		t.Fatalf("login data: got %+v", laptop)
	}
	if laptop.Session.Device != "Chrome on Windows" || laptop.Session.DeviceClass != "desktop" || !laptop.Session.Current || laptop.Session.IPAddress != "127.0.0.1" {
		t.Fatalf("login session: got %+v", laptop.Session)
	}
	c.UA = "curl/8.5.0"
	phone := c.Login("alice@EXAMPLE.com", nil) // by email, any case
	if phone.Session.Device != "curl" || phone.Session.DeviceClass != "cli" {
		t.Fatalf("second device: got %+v", phone.Session)
	}

	var list []sessiondtest.Session
	c.Do("GET", "/api/v1/sessions", laptop.AccessToken, nil).Expect(t, 200).Decode(t, &list)
	if len(list) != 2 || list[0].ID != laptop.Session.ID || !list[0].Current || list[1].ID != phone.Session.ID || list[1].Current {
		t.Fatalf("list from laptop: got %+v", list)
	}

	var me struct {
		User    sessiondtest.User    `json:"user"`
		Session sessiondtest.Session `json:"session"`
	}
	c.Do("GET", "/api/v1/me", phone.AccessToken, nil).Expect(t, 200).Decode(t, &me)
	if me.User.ID != u.ID || me.Session.ID != phone.Session.ID || !me.Session.Current {
		t.Fatalf("me: got %+v", me)
	}

	c.Do("DELETE", "/api/v1/sessions/"+phone.Session.ID, laptop.AccessToken, nil).Expect(t, 200)
	r := c.Do("GET", "/api/v1/me", phone.AccessToken, nil).Expect(t, 401)
	if got := r.Header.Get("WWW-Authenticate"); got != `Bearer error="invalid_token"` {
		t.Fatalf("WWW-Authenticate: got %q", got)
	}
	// The README shows this answer byte for byte.
	if got, want := string(r.Body), `{"status":"error","status_code":401,"message":"missing, invalid, expired or revoked token","data":{"code":"invalid_token"}}`+"\n"; got != want {
		t.Fatalf("revoked token's answer: got %s, want %s", got, want)
	}
	c.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": phone.RefreshToken}).Expect(t, 401)

	var next sessiondtest.Grant
	c.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": laptop.RefreshToken}).Expect(t, 200).Decode(t, &next)
	if next.RefreshToken == laptop.RefreshToken || next.Session.ID != laptop.Session.ID || next.AccessToken == "" {
		t.Fatalf("refresh did not rotate: %+v", next)
	}
	c.Do("GET", "/api/v1/me", next.AccessToken, nil).Expect(t, 200)

	c.Do("POST", "/api/v1/auth/logout", next.AccessToken, nil).Expect(t, 200)
	c.Do("GET", "/api/v1/me", next.AccessToken, nil).Expect(t, 401)
	c.Do("GET", "/api/v1/me", laptop.AccessToken, nil).Expect(t, 401)
	c.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": next.RefreshToken}).Expect(t, 401)
}

func TestRefreshGraceAndReuse(t *testing.T) {
	ts := startServer(t, nil)
	c := sessiondtest.NewClient(t, ts.URL)
	c.Register("bob")
	g := c.Login("bob", nil)

	refresh := func(tok string, status int) sessiondtest.Grant {
		t.Helper()
		var out sessiondtest.Grant
		r := c.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": tok}).Expect(t, status)
		if status == 200 {
			r.Decode(t, &out)
		}
		return out
	}
	g2 := refresh(g.RefreshToken, 200)
	// A replay of generation 1 inside the grace window gets the same
	// successor, never a second child.
	again := refresh(g.RefreshToken, 200)
	if again.RefreshToken != g2.RefreshToken {
		t.Fatalf("replay in grace: got a different successor")
	}
	g3 := refresh(g2.RefreshToken, 200)
	// Generation 1 is now two behind: reuse, the session is revoked.
	refresh(g.RefreshToken, 401)
	c.Do("GET", "/api/v1/me", g3.AccessToken, nil).Expect(t, 401)
	refresh(g3.RefreshToken, 401)
	if !strings.Contains(ts.Logs.String(), `"reason":"reuse_detected"`) {
		t.Fatalf("reuse was not logged with its reason")
	}
}

func TestForgedRefreshChangesNothing(t *testing.T) {
	ts := startServer(t, nil)
	c := sessiondtest.NewClient(t, ts.URL)
	c.Register("carol")
	g := c.Login("carol", nil)
	forged := g.RefreshToken[:len(g.RefreshToken)-4] + "AAAA"
	if forged == g.RefreshToken {
		forged = g.RefreshToken[:len(g.RefreshToken)-4] + "BBBB"
	}
	for _, tok := range []string{forged, "garbage", g.AccessToken, strings.ToUpper(g.RefreshToken)} {
		c.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": tok}).Expect(t, 401)
	}
	c.Do("GET", "/api/v1/me", g.AccessToken, nil).Expect(t, 200)
	c.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": g.RefreshToken}).Expect(t, 200)
}

func TestForeignSessionLooksUnknown(t *testing.T) {
	ts := startServer(t, nil)
	c := sessiondtest.NewClient(t, ts.URL)
	c.Register("dave")
	c.Register("erin")
	d := c.Login("dave", nil)
	e := c.Login("erin", nil)
	foreign := c.Do("DELETE", "/api/v1/sessions/"+e.Session.ID, d.AccessToken, nil).Expect(t, 404)
	unknown := c.Do("DELETE", "/api/v1/sessions/AAAAAAAAAAAAAAAAAAAAAA", d.AccessToken, nil).Expect(t, 404)
	if !bytes.Equal(foreign.Body, unknown.Body) {
		t.Fatalf("foreign and unknown ids answer differently:\n%s\n%s", foreign.Body, unknown.Body)
	}
	c.Do("PATCH", "/api/v1/sessions/"+e.Session.ID, d.AccessToken, map[string]string{"name": "mine"}).Expect(t, 404)
	c.Do("GET", "/api/v1/me", e.AccessToken, nil).Expect(t, 200)
	// Deleting one's own current session is a logout.
	c.Do("DELETE", "/api/v1/sessions/"+d.Session.ID, d.AccessToken, nil).Expect(t, 200)
	c.Do("GET", "/api/v1/me", d.AccessToken, nil).Expect(t, 401)
}

func TestUnknownUserAndWrongPasswordLookAlike(t *testing.T) {
	ts := startServer(t, nil)
	c := sessiondtest.NewClient(t, ts.URL)
	c.Register("frank")
	wrong := c.Do("POST", "/api/v1/auth/login", "", map[string]string{"username": "frank", "password": "wrong password!"}).Expect(t, 401)
	unknown := c.Do("POST", "/api/v1/auth/login", "", map[string]string{"username": "nobody", "password": "wrong password!"}).Expect(t, 401)
	if !bytes.Equal(wrong.Body, unknown.Body) {
		t.Fatalf("bodies differ:\n%s\n%s", wrong.Body, unknown.Body)
	}
	// Timing: both run one argon2id hash. Compare medians of a few tries
	// loosely; the hash dominates both. The tries alternate, so that a
	// burst of load from other tests on the shared cores slows both sides
	// alike instead of one side's every try.
	timed := func(user string) time.Duration {
		start := time.Now()
		c.Do("POST", "/api/v1/auth/login", "", map[string]string{"username": user, "password": "wrong password!"})
		return time.Since(start)
	}
	var da, db []time.Duration
	for i := 0; i < 9; i++ {
		da = append(da, timed("frank"))
		db = append(db, timed("nobody"))
	}
	slicesSort(da)
	slicesSort(db)
	a, b := da[4], db[4]
	if a > 3*b || b > 3*a {
		t.Fatalf("wrong password took %v, unknown user %v: not the same work", a, b)
	}
}

func slicesSort(ds []time.Duration) {
	for i := range ds {
		for j := i + 1; j < len(ds); j++ {
			if ds[j] < ds[i] {
				ds[i], ds[j] = ds[j], ds[i]
			}
		}
	}
}

func TestRegisterValidation(t *testing.T) {
	ts := startServer(t, nil)
	c := sessiondtest.NewClient(t, ts.URL)
	c.Register("grace")
	long := strings.Repeat("é", 1025)
	for _, tc := range []struct {
		name   string
		body   map[string]string
		status int
		field  string
	}{
		{"missing username", map[string]string{"email": "a@example.com", "password": sessiondtest.Password}, 400, "username"},
		{"bad username", map[string]string{"username": "a b", "email": "a@example.com", "password": sessiondtest.Password}, 400, "username"},
		{"long username", map[string]string{"username": strings.Repeat("a", 65), "email": "a@example.com", "password": sessiondtest.Password}, 400, "username"},
		{"bad email", map[string]string{"username": "hank", "email": "not-an-email", "password": sessiondtest.Password}, 400, "email"},
		{"short password", map[string]string{"username": "hank", "email": "h@example.com", "password": "1234567"}, 400, "password"},
		{"password over 1024 characters", map[string]string{"username": "hank", "email": "h@example.com", "password": long}, 400, "password"},
		{"username taken, other case", map[string]string{"username": "GRACE", "email": "g2@example.com", "password": sessiondtest.Password}, 409, "username"},
		{"email taken, other case", map[string]string{"username": "grace2", "email": "Grace@Example.com", "password": sessiondtest.Password}, 409, "email"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := c.Do("POST", "/api/v1/auth/register", "", tc.body).Expect(t, tc.status)
			if !strings.Contains(r.Env.Message, tc.field) {
				t.Fatalf("message %q does not name %q", r.Env.Message, tc.field)
			}
		})
	}
	// 1024 characters (2048 bytes) are accepted and not truncated.
	pw := strings.Repeat("é", 1024)
	c.Do("POST", "/api/v1/auth/register", "", map[string]string{"username": "ivan", "email": "ivan@example.com", "password": pw}).Expect(t, 201)
	c.Do("POST", "/api/v1/auth/login", "", map[string]string{"username": "ivan", "password": pw}).Expect(t, 200)
	c.Do("POST", "/api/v1/auth/login", "", map[string]string{"username": "ivan", "password": pw[:len(pw)-2]}).Expect(t, 401)
}

func TestErrorStatuses(t *testing.T) {
	ts := startServer(t, nil)
	c := sessiondtest.NewClient(t, ts.URL)
	c.Register("judy")
	g := c.Login("judy", nil)

	t.Run("405 in the envelope with Allow", func(t *testing.T) {
		r := c.Do("GET", "/api/v1/auth/login", "", nil).Expect(t, 405)
		if !strings.Contains(r.Header.Get("Allow"), "POST") {
			t.Fatalf("Allow: got %q", r.Header.Get("Allow"))
		}
		c.Do("PUT", "/api/v1/sessions", g.AccessToken, nil).Expect(t, 405)
	})
	t.Run("404 for unknown endpoints", func(t *testing.T) {
		c.Do("GET", "/api/v1/nothing", "", nil).Expect(t, 404)
		c.Do("GET", "/api/v1//me", g.AccessToken, nil).Expect(t, 404)
	})
	t.Run("413 over 64 KiB", func(t *testing.T) {
		big := []byte(`{"username":"` + strings.Repeat("a", 70<<10) + `"}`)
		bodyRequest(t, c, "POST", "/api/v1/auth/login", "application/json", big).Expect(t, 413)
	})
	t.Run("415 wrong or missing media type", func(t *testing.T) {
		bodyRequest(t, c, "POST", "/api/v1/auth/login", "text/plain", []byte(`{}`)).Expect(t, 415)
		bodyRequest(t, c, "POST", "/api/v1/auth/login", "", []byte(`{}`)).Expect(t, 415)
		bodyRequest(t, c, "POST", "/api/v1/auth/register", "application/x-www-form-urlencoded", []byte(`a=b`)).Expect(t, 415)
	})
	t.Run("400 malformed JSON names the problem", func(t *testing.T) {
		for _, b := range []string{`{`, `[]`, `{"username": 5, "password": "x"}`, `{"username":"judy","password":"x"} trailing`, "\xff\xfe"} {
			r := bodyRequest(t, c, "POST", "/api/v1/auth/login", "application/json", []byte(b)).Expect(t, 400)
			if r.Env.Message == "" {
				t.Fatalf("no message for %q", b)
			}
		}
		r := bodyRequest(t, c, "POST", "/api/v1/auth/login", "application/json", []byte(`{"password":"x"}`)).Expect(t, 400)
		if !strings.Contains(r.Env.Message, "username") {
			t.Fatalf("missing username: message %q", r.Env.Message)
		}
	})
	t.Run("401 without or with a broken token", func(t *testing.T) {
		c.Do("GET", "/api/v1/sessions", "", nil).Expect(t, 401)
		c.Do("GET", "/api/v1/sessions", "not.a.token", nil).Expect(t, 401)
		c.Do("GET", "/api/v1/sessions", g.RefreshToken, nil).Expect(t, 401)
	})
	t.Run("409 duplicate", func(t *testing.T) {
		c.Do("POST", "/api/v1/auth/register", "", map[string]string{"username": "Judy", "email": "x@example.com", "password": sessiondtest.Password}).Expect(t, 409)
	})
	t.Run("login with a form", func(t *testing.T) {
		c.Do("POST", "/api/v1/auth/login", "", url.Values{"username": {"judy"}, "password": {sessiondtest.Password}}).Expect(t, 200)
	})
	t.Run("rename", func(t *testing.T) {
		var s sessiondtest.Session
		c.Do("PATCH", "/api/v1/sessions/"+g.Session.ID, g.AccessToken, map[string]string{"name": "Work laptop"}).Expect(t, 200).Decode(t, &s)
		if s.Name != "Work laptop" || !s.Current {
			t.Fatalf("rename: got %+v", s)
		}
		c.Do("PATCH", "/api/v1/sessions/"+g.Session.ID, g.AccessToken, map[string]string{"name": strings.Repeat("x", 65)}).Expect(t, 400)
		c.Do("PATCH", "/api/v1/sessions/"+g.Session.ID, g.AccessToken, map[string]string{"name": "a\nb"}).Expect(t, 400)
		c.Do("PATCH", "/api/v1/sessions/"+g.Session.ID, g.AccessToken, map[string]any{}).Expect(t, 400)
		c.Do("PATCH", "/api/v1/sessions/"+g.Session.ID, g.AccessToken, map[string]string{"name": ""}).Expect(t, 200).Decode(t, &s)
		if s.Name != "" {
			t.Fatalf("clear name: got %q", s.Name)
		}
	})
}

func bodyRequest(t *testing.T, c *sessiondtest.Client, method, path, ct string, body []byte) *sessiondtest.Response {
	t.Helper()
	saved := c.Headers
	c.Headers = map[string]string{}
	if ct != "" {
		c.Headers["Content-Type"] = ct
	}
	defer func() { c.Headers = saved }()
	r := c.Do(method, path, "", body)
	return r
}

func TestPasswordChangeRevokesOthers(t *testing.T) {
	ts := startServer(t, nil)
	c := sessiondtest.NewClient(t, ts.URL)
	c.Register("kim")
	a := c.Login("kim", nil)
	b := c.Login("kim", nil)
	r := c.Do("POST", "/api/v1/auth/password", a.AccessToken, map[string]any{"current_password": "wrong password", "new_password": "a new password"}).Expect(t, 400)
	if !strings.Contains(r.Env.Message, "current_password") {
		t.Fatalf("message %q", r.Env.Message)
	}
	var out struct {
		Revoked int `json:"revoked"`
	}
	c.Do("POST", "/api/v1/auth/password", a.AccessToken, map[string]any{"current_password": sessiondtest.Password, "new_password": "a new password"}).Expect(t, 200).Decode(t, &out)
	if out.Revoked != 1 {
		t.Fatalf("revoked: got %d, want 1", out.Revoked)
	}
	c.Do("GET", "/api/v1/me", b.AccessToken, nil).Expect(t, 401)
	c.Do("GET", "/api/v1/me", a.AccessToken, nil).Expect(t, 200)
	c.Do("POST", "/api/v1/auth/login", "", map[string]string{"username": "kim", "password": sessiondtest.Password}).Expect(t, 401)
	c.Do("POST", "/api/v1/auth/login", "", map[string]string{"username": "kim", "password": "a new password"}).Expect(t, 200)

	// revoke_other_sessions false keeps the others.
	d := c.Do("POST", "/api/v1/auth/login", "", map[string]string{"username": "kim", "password": "a new password"})
	var dg sessiondtest.Grant
	d.Decode(t, &dg)
	c.Do("POST", "/api/v1/auth/password", a.AccessToken, map[string]any{"current_password": "a new password", "new_password": "third password", "revoke_other_sessions": false}).Expect(t, 200)
	c.Do("GET", "/api/v1/me", dg.AccessToken, nil).Expect(t, 200)
}

func TestRevokeOthers(t *testing.T) {
	ts := startServer(t, nil)
	c := sessiondtest.NewClient(t, ts.URL)
	c.Register("leo")
	var gs []sessiondtest.Grant
	for i := 0; i < 4; i++ {
		gs = append(gs, c.Login("leo", nil))
	}
	var out struct {
		Revoked int `json:"revoked"`
	}
	c.Do("DELETE", "/api/v1/sessions", gs[1].AccessToken, nil).Expect(t, 200).Decode(t, &out)
	if out.Revoked != 3 {
		t.Fatalf("revoked: got %d, want 3", out.Revoked)
	}
	for i, g := range gs {
		want := 401
		if i == 1 {
			want = 200
		}
		c.Do("GET", "/api/v1/me", g.AccessToken, nil).Expect(t, want)
	}
	var list []sessiondtest.Session
	c.Do("GET", "/api/v1/sessions", gs[1].AccessToken, nil).Expect(t, 200).Decode(t, &list)
	if len(list) != 1 || list[0].ID != gs[1].Session.ID {
		t.Fatalf("list: got %+v", list)
	}
}

func TestPublicEndpoints(t *testing.T) {
	ts := startServer(t, nil)
	c := sessiondtest.NewClient(t, ts.URL)
	r := c.Do("GET", "/.well-known/jwks.json", "", nil).Expect(t, 200)
	var jwks struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(r.Body, &jwks); err != nil || len(jwks.Keys) != 1 || jwks.Keys[0]["kty"] != "OKP" || jwks.Keys[0]["d"] != nil {
		t.Fatalf("jwks: %s (%v)", r.Body, err)
	}
	c.Do("GET", "/healthz", "", nil).Expect(t, 200)
	c.Do("GET", "/readyz", "", nil).Expect(t, 200)
	r = c.Do("GET", "/api/v1/openapi.json", "", nil).Expect(t, 200)
	var spec map[string]any
	if err := json.Unmarshal(r.Body, &spec); err != nil || !strings.HasPrefix(spec["openapi"].(string), "3.1") {
		t.Fatalf("openapi.json: %v", err)
	}
}

var _ = http.StatusOK

func TestBodyOnBodilessEndpoints(t *testing.T) {
	ts := startServer(t, nil)
	c := sessiondtest.NewClient(t, ts.URL)
	c.Register("xavi")
	g := c.Login("xavi", nil)
	other := c.Login("xavi", nil)
	c.Headers = map[string]string{"Content-Type": "text/plain"}
	c.Do("POST", "/api/v1/auth/logout", g.AccessToken, []byte("hello")).Expect(t, 415)
	c.Do("DELETE", "/api/v1/sessions", g.AccessToken, []byte("hello")).Expect(t, 415)
	c.Do("DELETE", "/api/v1/sessions/"+other.Session.ID, g.AccessToken, []byte("hello")).Expect(t, 415)
	c.Do("GET", "/api/v1/me", other.AccessToken, nil).Expect(t, 200)
	c.Headers = nil
	c.Do("POST", "/api/v1/auth/logout", g.AccessToken, map[string]any{}).Expect(t, 200)
}
