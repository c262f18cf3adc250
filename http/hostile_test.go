package http_test

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/internal/apitest"
	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// hostileCase is one hostile or malformed request and the answer it must
// get.
type hostileCase struct {
	name   string
	method string
	// path is sent as written, escapes included.
	path string
	// token goes in "Authorization: Bearer".
	token  string
	header map[string]string
	// ct is the Content-Type of body; "" sends none.
	ct   string
	body []byte
	// raw, when set, is written as is on a new TCP connection instead of
	// the request above, for what net/http refuses to send.
	raw  func() []byte
	want int
	// goAnswer says the answer is Go's own (400 or 431 before any
	// handler runs), outside the envelope (docs/design.md, "Envelope").
	goAnswer bool
	// page says the answer is the web page's, outside /api.
	page bool
}

// maxHostileTime bounds the answer to any one hostile request.
const maxHostileTime = 2 * time.Second

// TestHostileRequests sends well over fifty hostile or malformed requests to
// every endpoint of the HTTP server: each must get its intended 4xx in the
// envelope (or Go's own 400/431 for what never reaches a handler), never a
// 5xx, within maxHostileTime. Afterwards the legitimate sessions, their
// names, refresh tokens and passwords are exactly as before: no forged
// request changed, half-wrote or revoked anything.
func TestHostileRequests(t *testing.T) {
	key, err := sessiond.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	ts := sessiondtest.StartServer(t, sessiondtest.Options{SigningKey: key}, func(s *sessiondtest.Server) {
		s.HTTP.TrustedProxies = proxies(t, "127.0.0.1/32")
	})
	addr := strings.TrimPrefix(ts.URL, "http://")

	c := sessiondtest.NewClient(t, ts.URL)
	ua, ub := c.Register("hostile-a"), c.Register("hostile-b")
	a1, a2 := c.Login("hostile-a", nil), c.Login("hostile-a", nil)
	b1 := c.Login("hostile-b", nil)
	c.Do("PATCH", "/api/v1/sessions/"+a2.Session.ID, a1.AccessToken, map[string]string{"name": "kept name"}).Expect(t, 200)
	c.Register("hostile-c") // signs in with a 64 KiB User-Agent below

	// Tokens signed with the server's own key: valid in every respect
	// but the one each case names.
	now := time.Now()
	header := func(kv ...any) map[string]any {
		return with(map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": key.ID}, kv...)
	}
	claims := func(kv ...any) map[string]any {
		return with(map[string]any{
			"iss": "sessiond", "aud": []string{"sessiond"}, "sub": ua.ID, "sid": a1.Session.ID,
			"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(), "jti": "hostile",
		}, kv...)
	}
	mint := func(h, c map[string]any) string {
		t.Helper()
		tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims(c))
		tok.Header = h
		s, err := tok.SignedString(key.Key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := mint(header(), claims())
	pub := key.Key.Public().(ed25519.PublicKey)
	attacker, err := sessiond.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	signWith := func(m jwt.SigningMethod, k any, h, c map[string]any) string {
		t.Helper()
		tok := jwt.NewWithClaims(m, jwt.MapClaims(c))
		tok.Header = h
		s, err := tok.SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, ".")
	b64 := base64.RawURLEncoding.EncodeToString
	jwkOf := func(k ed25519.PublicKey) map[string]any {
		return map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64(k)}
	}

	// Refresh tokens re-spelled: sdr1.<kid>.<b64 user>.<session>.<gen>.<mac>.
	rt := strings.Split(a1.RefreshToken, ".")
	brt := strings.Split(b1.RefreshToken, ".")
	respell := func(i int, v string) string {
		p := append([]string(nil), rt...)
		p[i] = v
		return strings.Join(p, ".")
	}
	forgedMAC := forgeRefresh(a1.RefreshToken)

	js := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	loginJSON := func(kv ...string) []byte {
		m := map[string]string{"username": "hostile-a", "password": wrongPassword}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return js(m)
	}
	const jsonCT = "application/json"
	const formCT = "application/x-www-form-urlencoded"
	big := func(n int) string { return strings.Repeat("a", n) }
	nested := func(depth int) []byte {
		return []byte(`{"username":"hostile-a","password":"x","extra":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}`)
	}
	cookie := func(tok string) map[string]string {
		return map[string]string{"Cookie": "__Host-sessiond_at=" + tok}
	}
	rawReq := func(lines ...string) func() []byte {
		return func() []byte { return []byte(strings.Join(lines, "\r\n")) }
	}
	host := "Host: " + addr

	cases := []hostileCase{
		// Broken, oversized and nested JSON.
		{name: "login: truncated JSON", method: "POST", path: "/api/v1/auth/login", ct: jsonCT, body: []byte(`{"username":"hostile-a","password":`), want: 400},
		{name: "login: lone brace", method: "POST", path: "/api/v1/auth/login", ct: jsonCT, body: []byte(`{`), want: 400},
		{name: "login: array", method: "POST", path: "/api/v1/auth/login", ct: jsonCT, body: []byte(`[{"username":"hostile-a"}]`), want: 400},
		{name: "login: null", method: "POST", path: "/api/v1/auth/login", ct: jsonCT, body: []byte(`null`), want: 400},
		{name: "login: a string", method: "POST", path: "/api/v1/auth/login", ct: jsonCT, body: []byte(`"hostile-a"`), want: 400},
		{name: "login: operator objects", method: "POST", path: "/api/v1/auth/login", ct: jsonCT, body: []byte(`{"username":{"$ne":null},"password":{"$gt":""}}`), want: 400},
		{name: "login: arrays for strings", method: "POST", path: "/api/v1/auth/login", ct: jsonCT, body: []byte(`{"username":["hostile-a"],"password":["x"]}`), want: 400},
		{name: "login: number overflow", method: "POST", path: "/api/v1/auth/login", ct: jsonCT, body: []byte(`{"username":1e999,"password":"x"}`), want: 400},
		{name: "login: two objects", method: "POST", path: "/api/v1/auth/login", ct: jsonCT, body: append(loginJSON(), loginJSON()...), want: 400},
		{name: "login: byte order mark", method: "POST", path: "/api/v1/auth/login", ct: jsonCT, body: append([]byte("\xef\xbb\xbf"), loginJSON()...), want: 400},
		{name: "login: raw NUL inside a string", method: "POST", path: "/api/v1/auth/login", ct: jsonCT, body: []byte("{\"username\":\"hostile\x00-a\",\"password\":\"x\"}"), want: 400},
		{name: "login: nested 20000 deep", method: "POST", path: "/api/v1/auth/login", ct: jsonCT, body: nested(20000), want: 400},
		{name: "login: body over 64 KiB", method: "POST", path: "/api/v1/auth/login", ct: jsonCT, body: loginJSON("password", big(70<<10)), want: 413},
		{name: "login: 1 MiB of whitespace", method: "POST", path: "/api/v1/auth/login", ct: jsonCT, body: bytes.Repeat([]byte(" "), 1<<20), want: 413},
		{name: "login: 1 MiB nested", method: "POST", path: "/api/v1/auth/login", ct: jsonCT, body: nested(512 << 10), want: 413},
		{name: "register: nested 20000 deep", method: "POST", path: "/api/v1/auth/register", ct: jsonCT, body: []byte(`{"username":"mallory","email":"m@example.com","password":` + strings.Repeat(`{"":`, 12000) + `1` + strings.Repeat(`}`, 12000) + `}`), want: 400},
		{name: "register: empty body", method: "POST", path: "/api/v1/auth/register", ct: jsonCT, want: 400},
		{name: "refresh: whitespace body", method: "POST", path: "/api/v1/auth/refresh", ct: jsonCT, body: []byte(" \n\t "), want: 400},

		// Wrong content types.
		{name: "login: text/plain", method: "POST", path: "/api/v1/auth/login", ct: "text/plain", body: loginJSON(), want: 415},
		{name: "login: no Content-Type", method: "POST", path: "/api/v1/auth/login", body: loginJSON(), want: 415},
		{name: "login: application/jsonx", method: "POST", path: "/api/v1/auth/login", ct: "application/jsonx", body: loginJSON(), want: 415},
		{name: "login: multipart", method: "POST", path: "/api/v1/auth/login", ct: "multipart/form-data; boundary=x", body: []byte("--x\r\nContent-Disposition: form-data; name=\"username\"\r\n\r\nhostile-a\r\n--x--\r\n"), want: 415},
		{name: "login: 8 KiB Content-Type", method: "POST", path: "/api/v1/auth/login", ct: big(8 << 10), body: loginJSON(), want: 415},
		{name: "login: UTF-16 body labelled JSON", method: "POST", path: "/api/v1/auth/login", ct: "application/json; charset=utf-16", body: utf16LE(string(loginJSON())), want: 400},
		{name: "register: form", method: "POST", path: "/api/v1/auth/register", ct: formCT, body: []byte("username=x&email=x@example.com&password=" + sessiondtest.Password), want: 415},
		{name: "refresh: form", method: "POST", path: "/api/v1/auth/refresh", ct: formCT, body: []byte("refresh_token=" + a1.RefreshToken), want: 415},
		{name: "password: text/xml", method: "POST", path: "/api/v1/auth/password", token: a1.AccessToken, ct: "text/xml", body: []byte(`<p/>`), want: 415},
		{name: "rename: no Content-Type", method: "PATCH", path: "/api/v1/sessions/" + a2.Session.ID, token: a1.AccessToken, body: js(map[string]string{"name": "x"}), want: 415},

		// Forms.
		{name: "login form: bad percent escape", method: "POST", path: "/api/v1/auth/login", ct: formCT, body: []byte("username=%zz&password=x"), want: 400},
		{name: "login form: field twice", method: "POST", path: "/api/v1/auth/login", ct: formCT, body: []byte("username=hostile-a&username=hostile-b&password=x"), want: 400},
		{name: "login form: escaped invalid UTF-8", method: "POST", path: "/api/v1/auth/login", ct: formCT, body: []byte("username=%ff%fe&password=x"), want: 400},
		{name: "login form: raw invalid UTF-8", method: "POST", path: "/api/v1/auth/login", ct: formCT, body: []byte("username=\xff&password=x"), want: 400},
		{name: "login form: NUL in the name", method: "POST", path: "/api/v1/auth/login", ct: formCT, body: []byte("username=hostile-a%00&password=" + sessiondtest.Password), want: 401},

		// NUL bytes, invalid UTF-8 and absurd lengths in fields.
		{name: "login: invalid UTF-8", method: "POST", path: "/api/v1/auth/login", ct: jsonCT, body: []byte("{\"username\":\"\xff\xfe\",\"password\":\"x\"}"), want: 400},
		{name: "login: escaped NUL in the name", method: "POST", path: "/api/v1/auth/login", ct: jsonCT, body: loginJSON("username", "hostile-a\x00", "password", sessiondtest.Password), want: 401},
		{name: "login: lone surrogate", method: "POST", path: "/api/v1/auth/login", ct: jsonCT, body: []byte(`{"username":"\ud800","password":"x"}`), want: 400},
		{name: "login: lone surrogate in the password", method: "POST", path: "/api/v1/auth/login", ct: jsonCT, body: []byte(`{"username":"hostile-a","password":"` + sessiondtest.Password + `\udc00"}`), want: 400},
		{name: "login: bidi override in device_name", method: "POST", path: "/api/v1/auth/login", ct: jsonCT, body: loginJSON("device_name", "\u202eexe.evil"), want: 400},
		{name: "login: 60 KiB username", method: "POST", path: "/api/v1/auth/login", ct: jsonCT, body: loginJSON("username", big(60<<10)), want: 400},
		{name: "login: 60 KiB password", method: "POST", path: "/api/v1/auth/login", ct: jsonCT, body: loginJSON("password", big(60<<10)), want: 400},
		{name: "login: 10 KiB device_id", method: "POST", path: "/api/v1/auth/login", ct: jsonCT, body: loginJSON("device_id", big(10<<10)), want: 400},
		{name: "login: device_name with an escape sequence", method: "POST", path: "/api/v1/auth/login", ct: jsonCT, body: loginJSON("device_name", "\x1b[31mred"), want: 400},
		{name: "login: 10 KiB device_name", method: "POST", path: "/api/v1/auth/login", ct: jsonCT, body: loginJSON("device_name", big(10<<10)), want: 400},
		{name: "register: NUL in the username", method: "POST", path: "/api/v1/auth/register", ct: jsonCT, body: js(map[string]string{"username": "mallory\x00", "email": "m@example.com", "password": sessiondtest.Password}), want: 400},
		{name: "register: Cyrillic look-alike username", method: "POST", path: "/api/v1/auth/register", ct: jsonCT, body: js(map[string]string{"username": "hostile-\u0430", "email": "m@example.com", "password": sessiondtest.Password}), want: 400},
		{name: "register: header injection in the email", method: "POST", path: "/api/v1/auth/register", ct: jsonCT, body: js(map[string]string{"username": "mallory", "email": "m@example.com\r\nBcc: all@example.com", "password": sessiondtest.Password}), want: 400},
		{name: "register: invalid UTF-8", method: "POST", path: "/api/v1/auth/register", ct: jsonCT, body: []byte("{\"username\":\"mallory\",\"email\":\"m@example.com\",\"password\":\"\xc3\x28aaaaaaaa\"}"), want: 400},
		{name: "register: 10 KiB username", method: "POST", path: "/api/v1/auth/register", ct: jsonCT, body: js(map[string]string{"username": big(10 << 10), "email": "m@example.com", "password": sessiondtest.Password}), want: 400},
		{name: "register: 60 KiB email", method: "POST", path: "/api/v1/auth/register", ct: jsonCT, body: js(map[string]string{"username": "mallory", "email": big(60<<10) + "@example.com", "password": sessiondtest.Password}), want: 400},
		{name: "register: 60 KiB password", method: "POST", path: "/api/v1/auth/register", ct: jsonCT, body: js(map[string]string{"username": "mallory", "email": "m@example.com", "password": big(60 << 10)}), want: 400},
		{name: "password: 60 KiB new password", method: "POST", path: "/api/v1/auth/password", token: a1.AccessToken, ct: jsonCT, body: js(map[string]string{"current_password": sessiondtest.Password, "new_password": big(60 << 10)}), want: 400},
		{name: "password: number for current", method: "POST", path: "/api/v1/auth/password", token: a1.AccessToken, ct: jsonCT, body: []byte(`{"current_password":5,"new_password":"a new password"}`), want: 400},
		{name: "password: string for the flag", method: "POST", path: "/api/v1/auth/password", token: a1.AccessToken, ct: jsonCT, body: []byte(`{"current_password":"x","new_password":"a new password","revoke_other_sessions":"yes"}`), want: 400},
		{name: "rename: 10 KiB name", method: "PATCH", path: "/api/v1/sessions/" + a2.Session.ID, token: a1.AccessToken, ct: jsonCT, body: js(map[string]string{"name": big(10 << 10)}), want: 400},
		{name: "rename: NUL in the name", method: "PATCH", path: "/api/v1/sessions/" + a2.Session.ID, token: a1.AccessToken, ct: jsonCT, body: js(map[string]string{"name": "a\x00b"}), want: 400},
		{name: "rename: line separator", method: "PATCH", path: "/api/v1/sessions/" + a2.Session.ID, token: a1.AccessToken, ct: jsonCT, body: js(map[string]string{"name": "a\u2028b"}), want: 400},
		{name: "rename: null name", method: "PATCH", path: "/api/v1/sessions/" + a2.Session.ID, token: a1.AccessToken, ct: jsonCT, body: []byte(`{"name":null}`), want: 400},
		{name: "rename: invalid UTF-8", method: "PATCH", path: "/api/v1/sessions/" + a2.Session.ID, token: a1.AccessToken, ct: jsonCT, body: []byte("{\"name\":\"\xed\xa0\x80\"}"), want: 400},
		{name: "rename: no body", method: "PATCH", path: "/api/v1/sessions/" + a2.Session.ID, token: a1.AccessToken, want: 400},

		// Hostile access tokens, each on an endpoint that would otherwise
		// answer 200 or change something.
		{name: "token: alg none", method: "GET", path: "/api/v1/me", token: signWith(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, header("alg", "none"), claims()), want: 401},
		{name: "token: alg none with the real signature", method: "GET", path: "/api/v1/me", token: b64(js(header("alg", "none"))) + "." + parts[1] + "." + parts[2], want: 401},
		{name: "token: HS256 keyed with the public key", method: "GET", path: "/api/v1/me", token: signWith(jwt.SigningMethodHS256, []byte(pub), header("alg", "HS256"), claims()), want: 401},
		{name: "token: RS256 of another key", method: "DELETE", path: "/api/v1/sessions", token: signWith(jwt.SigningMethodRS256, rsaKey, header("alg", "RS256"), claims()), want: 401},
		{name: "token: unknown kid", method: "GET", path: "/api/v1/me", token: mint(header("kid", "no-such-key"), claims()), want: 401},
		{name: "token: kid path traversal", method: "GET", path: "/api/v1/me", token: mint(header("kid", "../../../../etc/passwd"), claims()), want: 401},
		{name: "token: another key under the server's kid", method: "GET", path: "/api/v1/me", token: signWith(jwt.SigningMethodEdDSA, attacker.Key, header(), claims()), want: 401},
		{name: "token: embedded jwk of an attacker", method: "POST", path: "/api/v1/auth/logout", token: signWith(jwt.SigningMethodEdDSA, attacker.Key, header("kid", attacker.ID, "jwk", jwkOf(attacker.Key.Public().(ed25519.PublicKey))), claims()), want: 401},
		{name: "token: tampered payload", method: "GET", path: "/api/v1/me", token: parts[0] + "." + b64(js(claims("sub", ub.ID, "sid", b1.Session.ID))) + "." + parts[2], want: 401},
		{name: "token: over 8 KiB", method: "GET", path: "/api/v1/me", token: mint(header(), claims("pad", big(8<<10))), want: 401},
		{name: "token: 100 KiB of garbage", method: "GET", path: "/api/v1/me", token: big(100 << 10), want: 401},
		{name: "token: a refresh token", method: "GET", path: "/api/v1/me", token: a1.RefreshToken, want: 401},
		{name: "token: trailing dot", method: "GET", path: "/api/v1/me", token: good + ".", want: 401},
		{name: "token: Basic scheme", method: "GET", path: "/api/v1/me", header: map[string]string{"Authorization": "Basic aG9zdGlsZS1hOng="}, want: 401},
		{name: "token: Bearer and nothing", method: "GET", path: "/api/v1/me", header: map[string]string{"Authorization": "Bearer "}, want: 401},
		{name: "token: two tokens in one header", method: "GET", path: "/api/v1/me", header: map[string]string{"Authorization": "Bearer " + good + ", Bearer " + b1.AccessToken}, want: 401},
		{name: "token: 500 KiB cookie", method: "GET", path: "/api/v1/me", header: cookie(big(500 << 10)), want: 401},
		{name: "token: forged on the event stream", method: "GET", path: "/api/v1/sessions/events", token: mint(header("kid", "x"), claims()), want: 401},
		{name: "token: forged on forward-auth", method: "GET", path: "/api/v1/auth/check", token: signWith(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, header("alg", "none"), claims()), want: 401},

		// Correctly signed with the server's own key, refused for what
		// each carries. The control shows the tokens minted here are
		// otherwise accepted.
		{name: "signed: control, valid in every respect", method: "GET", path: "/api/v1/me", token: good, want: 200},
		{name: "signed: crit", method: "GET", path: "/api/v1/me", token: mint(header("crit", []string{"exp"}), claims()), want: 401},
		{name: "signed: jku", method: "GET", path: "/api/v1/me", token: mint(header("jku", "https://attacker.example/jwks.json"), claims()), want: 401},
		{name: "signed: x5u", method: "GET", path: "/api/v1/me", token: mint(header("x5u", "https://attacker.example/cert.pem"), claims()), want: 401},
		{name: "signed: x5c", method: "GET", path: "/api/v1/me", token: mint(header("x5c", []string{"MIIBszCCAVmgAwIBAgIU"}), claims()), want: 401},
		{name: "signed: embedded jwk of the real key", method: "GET", path: "/api/v1/me", token: mint(header("jwk", jwkOf(pub)), claims()), want: 401},
		{name: "signed: typ JWT", method: "GET", path: "/api/v1/me", token: mint(header("typ", "JWT"), claims()), want: 401},
		{name: "signed: no typ", method: "GET", path: "/api/v1/me", token: mint(header("typ", nil), claims()), want: 401},
		{name: "signed: wrong iss", method: "GET", path: "/api/v1/me", token: mint(header(), claims("iss", "https://attacker.example")), want: 401},
		{name: "signed: wrong aud", method: "DELETE", path: "/api/v1/sessions", token: mint(header(), claims("aud", []string{"another-service"})), want: 401},
		{name: "signed: no exp", method: "GET", path: "/api/v1/me", token: mint(header(), claims("exp", nil)), want: 401},
		{name: "signed: expired", method: "GET", path: "/api/v1/me", token: mint(header(), claims("exp", now.Add(-2*time.Minute).Unix())), want: 401},
		{name: "signed: nbf in the future", method: "GET", path: "/api/v1/me", token: mint(header(), claims("nbf", now.Add(5*time.Minute).Unix())), want: 401},
		{name: "signed: another user's sid", method: "GET", path: "/api/v1/me", token: mint(header(), claims("sid", b1.Session.ID)), want: 401},
		{name: "signed: another user's sid revoking their devices", method: "DELETE", path: "/api/v1/sessions", token: mint(header(), claims("sid", b1.Session.ID)), want: 401},
		{name: "signed: another user's sid ending their session", method: "DELETE", path: "/api/v1/sessions/" + b1.Session.ID, token: mint(header(), claims("sid", b1.Session.ID)), want: 401},
		{name: "signed: their sub with my sid", method: "POST", path: "/api/v1/auth/logout", token: mint(header(), claims("sub", ub.ID)), want: 401},
		{name: "signed: unknown sid", method: "GET", path: "/api/v1/me", token: mint(header(), claims("sid", randomSessionID())), want: 401},
		{name: "signed: no sid", method: "GET", path: "/api/v1/me", token: mint(header(), claims("sid", nil)), want: 401},
		{name: "signed: numeric sub", method: "GET", path: "/api/v1/me", token: mint(header(), claims("sub", 42)), want: 401},

		// Forged and swapped refresh tokens: none may end or advance the
		// session it names.
		{name: "refresh: forged MAC", method: "POST", path: "/api/v1/auth/refresh", ct: jsonCT, body: js(map[string]string{"refresh_token": forgedMAC}), want: 401},
		{name: "refresh: another user's session id with this MAC", method: "POST", path: "/api/v1/auth/refresh", ct: jsonCT, body: js(map[string]string{"refresh_token": respell(3, brt[3])}), want: 401},
		{name: "refresh: another user's id with this MAC", method: "POST", path: "/api/v1/auth/refresh", ct: jsonCT, body: js(map[string]string{"refresh_token": respell(2, brt[2])}), want: 401},
		{name: "refresh: another user's MAC on this token", method: "POST", path: "/api/v1/auth/refresh", ct: jsonCT, body: js(map[string]string{"refresh_token": respell(5, brt[5])}), want: 401},
		{name: "refresh: next generation, old MAC", method: "POST", path: "/api/v1/auth/refresh", ct: jsonCT, body: js(map[string]string{"refresh_token": respell(4, "2")}), want: 401},
		{name: "refresh: generation 0", method: "POST", path: "/api/v1/auth/refresh", ct: jsonCT, body: js(map[string]string{"refresh_token": respell(4, "0")}), want: 401},
		{name: "refresh: generation with a leading zero", method: "POST", path: "/api/v1/auth/refresh", ct: jsonCT, body: js(map[string]string{"refresh_token": respell(4, "01")}), want: 401},
		{name: "refresh: huge generation", method: "POST", path: "/api/v1/auth/refresh", ct: jsonCT, body: js(map[string]string{"refresh_token": respell(4, "99999999999999999999999")}), want: 401},
		{name: "refresh: unknown key id", method: "POST", path: "/api/v1/auth/refresh", ct: jsonCT, body: js(map[string]string{"refresh_token": respell(1, "AAAAAAAA")}), want: 401},
		{name: "refresh: newline inside", method: "POST", path: "/api/v1/auth/refresh", ct: jsonCT, body: js(map[string]string{"refresh_token": a1.RefreshToken[:20] + "\n" + a1.RefreshToken[20:]}), want: 401},
		{name: "refresh: an access token", method: "POST", path: "/api/v1/auth/refresh", ct: jsonCT, body: js(map[string]string{"refresh_token": a1.AccessToken}), want: 401},
		{name: "refresh: 60 KiB token", method: "POST", path: "/api/v1/auth/refresh", ct: jsonCT, body: js(map[string]string{"refresh_token": big(60 << 10)}), want: 401},
		{name: "refresh: number", method: "POST", path: "/api/v1/auth/refresh", ct: jsonCT, body: []byte(`{"refresh_token":1}`), want: 400},
		{name: "refresh: empty", method: "POST", path: "/api/v1/auth/refresh", ct: jsonCT, body: []byte(`{"refresh_token":""}`), want: 400},
		{name: "refresh: forged cookie", method: "POST", path: "/api/v1/auth/refresh", header: map[string]string{"X-Sessiond-Cookies": "1", "Sec-Fetch-Site": "same-origin", "Cookie": "__Host-sessiond_rt=" + forgedMAC}, want: 401},

		// Foreign and unknown session ids: the same 404, nothing touched.
		{name: "revoke another user's session", method: "DELETE", path: "/api/v1/sessions/" + b1.Session.ID, token: a1.AccessToken, want: 404},
		{name: "rename another user's session", method: "PATCH", path: "/api/v1/sessions/" + b1.Session.ID, token: a1.AccessToken, ct: jsonCT, body: js(map[string]string{"name": "pwned"}), want: 404},
		{name: "revoke a session id in another case", method: "DELETE", path: "/api/v1/sessions/" + swapCase(a2.Session.ID), token: a1.AccessToken, want: 404},
		{name: "revoke a Redis pattern", method: "DELETE", path: "/api/v1/sessions/*", token: a1.AccessToken, want: 404},
		{name: "revoke a hash-tag id", method: "DELETE", path: "/api/v1/sessions/%7Bu:" + ub.ID + "%7D:s:" + b1.Session.ID, token: a1.AccessToken, want: 404},
		{name: "revoke a 10 KiB id", method: "DELETE", path: "/api/v1/sessions/" + big(10<<10), token: a1.AccessToken, want: 404},
		{name: "rename the events path", method: "PATCH", path: "/api/v1/sessions/events", token: a1.AccessToken, ct: jsonCT, body: js(map[string]string{"name": "x"}), want: 404},

		// Path tricks.
		{name: "path: encoded dot-dot slashes", method: "DELETE", path: "/api/v1/sessions/..%2f..", token: a1.AccessToken, want: 404},
		{name: "path: encoded dot-dot", method: "DELETE", path: "/api/v1/sessions/%2e%2e", token: a1.AccessToken, want: 404},
		{name: "path: encoded slash in the id", method: "DELETE", path: "/api/v1/sessions/" + a2.Session.ID + "%2f..", token: a1.AccessToken, want: 404},
		{name: "path: dot-dot to another route", method: "DELETE", path: "/api/v1/sessions/" + a2.Session.ID + "/..", token: a1.AccessToken, want: 404},
		{name: "path: double slash inside", method: "DELETE", path: "/api/v1//sessions", token: a1.AccessToken, want: 404},
		{name: "path: double slash in front", method: "DELETE", path: "//api/v1/sessions", token: a1.AccessToken, want: 404},
		{name: "path: dot segment", method: "GET", path: "/api/v1/./me", token: a1.AccessToken, want: 404},
		{name: "path: trailing slash", method: "GET", path: "/api/v1/me/", token: a1.AccessToken, want: 404},
		{name: "path: encoded NUL", method: "GET", path: "/api/v1/me%00", token: a1.AccessToken, want: 404},
		{name: "path: matrix parameter", method: "GET", path: "/api/v1/me;x=1", token: a1.AccessToken, want: 404},
		{name: "path: upper case is the page's", method: "GET", path: "/API/V1/ME", token: a1.AccessToken, want: 404, page: true},
		{name: "path: dot-dot into the API", method: "DELETE", path: "/static/../api/v1/sessions", token: a1.AccessToken, want: 404},
		{name: "path: 64 KiB", method: "GET", path: "/api/v1/" + big(64<<10), want: 404},
		{name: "method: PUT on sessions", method: "PUT", path: "/api/v1/sessions/" + a2.Session.ID, token: a1.AccessToken, want: 405},
		{name: "method: TRACE", method: "TRACE", path: "/api/v1/me", token: a1.AccessToken, want: 405},
		{name: "method: made up", method: "PURGE", path: "/api/v1/sessions", token: a1.AccessToken, want: 405},

		// Cookies without the CSRF proof: refused before anything changes.
		{name: "csrf: logout by cookie without Origin", method: "POST", path: "/api/v1/auth/logout", header: cookie(a1.AccessToken), want: 403},
		{name: "csrf: revoke others from another site", method: "DELETE", path: "/api/v1/sessions", header: with2(cookie(a1.AccessToken), "Origin", "https://attacker.example"), want: 403},
		{name: "csrf: revoke one, cross-site fetch", method: "DELETE", path: "/api/v1/sessions/" + a2.Session.ID, header: with2(cookie(a1.AccessToken), "Sec-Fetch-Site", "cross-site"), want: 403},
		{name: "csrf: origin with our host as a prefix", method: "PATCH", path: "/api/v1/sessions/" + a2.Session.ID, ct: jsonCT, body: js(map[string]string{"name": "pwned"}), header: with2(cookie(a1.AccessToken), "Origin", ts.URL+".attacker.example"), want: 403},
		{name: "csrf: cookie login from another site", method: "POST", path: "/api/v1/auth/login", ct: jsonCT, body: loginJSON("password", sessiondtest.Password), header: map[string]string{"X-Sessiond-Cookies": "1", "Origin": "https://attacker.example"}, want: 403},
		{name: "csrf: cookie refresh from a null origin", method: "POST", path: "/api/v1/auth/refresh", header: map[string]string{"X-Sessiond-Cookies": "1", "Origin": "null", "Cookie": "__Host-sessiond_rt=" + a1.RefreshToken}, want: 403},

		// Headers.
		{name: "headers: 900 KiB of headers are accepted", method: "GET", path: "/api/v1/me", token: a1.AccessToken, header: manyHeaders(900, 1<<10), want: 200},
		{name: "headers: invalid UTF-8 User-Agent signs in", method: "POST", path: "/api/v1/auth/login", ct: jsonCT, body: js(map[string]string{"username": "hostile-c", "password": sessiondtest.Password}), header: map[string]string{"User-Agent": "Mozilla/5.0 \xff\xfe (\xc0\xaf)"}, want: 200},
		{name: "headers: 512 KiB X-Forwarded-For", method: "POST", path: "/api/v1/auth/login", ct: jsonCT, body: loginJSON(), header: map[string]string{"X-Forwarded-For": strings.Repeat("not-an-ip, ", 512<<10/11)}, want: 401},
		{name: "headers: over 1 MiB gets Go's 431", raw: func() []byte {
			return []byte("GET /api/v1/me HTTP/1.1\r\n" + host + "\r\n" + "X-Big: " + big(1100<<10) + "\r\n\r\n")
		}, want: 431, goAnswer: true},
		{name: "headers: many headers over 1 MiB get Go's 431", raw: func() []byte {
			var b strings.Builder
			b.WriteString("GET /api/v1/me HTTP/1.1\r\n" + host + "\r\n")
			for i := range 1100 {
				fmt.Fprintf(&b, "X-H%d: %s\r\n", i, big(1<<10))
			}
			b.WriteString("\r\n")
			return []byte(b.String())
		}, want: 431, goAnswer: true},
		{name: "headers: request line over 1 MiB gets Go's 431", raw: rawReq("GET /api/v1/"+big(1100<<10)+" HTTP/1.1", host, "", ""), want: 431, goAnswer: true},

		// Raw requests net/http would not send.
		{name: "raw: three words and more in the request line", raw: rawReq("GET /api/v1/me HTTP/1.1 extra", host, "", ""), want: 400, goAnswer: true},
		{name: "raw: NUL in the method", raw: rawReq("G\x00T /api/v1/me HTTP/1.1", host, "", ""), want: 400, goAnswer: true},
		{name: "raw: header without a colon", raw: rawReq("GET /api/v1/me HTTP/1.1", host, "Authorization Bearer x", "", ""), want: 400, goAnswer: true},
		{name: "raw: space in a header name", raw: rawReq("GET /api/v1/me HTTP/1.1", host, "Bad Header: x", "", ""), want: 400, goAnswer: true},
		{name: "raw: NUL in a header value", raw: rawReq("GET /api/v1/me HTTP/1.1", host, "Authorization: Bearer "+a1.AccessToken+"\x00", "", ""), want: 400, goAnswer: true},
		{name: "raw: no Host", raw: rawReq("GET /api/v1/me HTTP/1.1", "Authorization: Bearer "+a1.AccessToken, "", ""), want: 400, goAnswer: true},
		{name: "raw: two Hosts", raw: rawReq("GET /api/v1/me HTTP/1.1", host, "Host: attacker.example", "", ""), want: 400, goAnswer: true},
		{name: "raw: two Content-Lengths", raw: rawReq("POST /api/v1/auth/login HTTP/1.1", host, "Content-Type: application/json", "Content-Length: 2", "Content-Length: 40", "", "{}"), want: 400, goAnswer: true},
		{name: "raw: non-numeric Content-Length", raw: rawReq("POST /api/v1/auth/login HTTP/1.1", host, "Content-Type: application/json", "Content-Length: 1e3", "", "{}"), want: 400, goAnswer: true},
		{name: "raw: HTTP/0.9", raw: rawReq("GET /api/v1/me", "", ""), want: 400, goAnswer: true},
		{name: "raw: bad chunk size", raw: rawReq("POST /api/v1/auth/login HTTP/1.1", host, "Content-Type: application/json", "Transfer-Encoding: chunked", "", "zz", "{}", "0", "", ""), want: 400},
		{name: "raw: chunked body over 64 KiB", raw: func() []byte {
			chunk := fmt.Sprintf("%x\r\n%s\r\n", 16<<10, big(16<<10))
			return []byte("POST /api/v1/auth/login HTTP/1.1\r\n" + host + "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + strings.Repeat(chunk, 6) + "0\r\n\r\n")
		}, want: 413},
		// Go reads the chunked body and ignores Content-Length (RFC 9112
		// section 6.3); the handler sees "{}".
		{name: "raw: chunked and Content-Length", raw: rawReq("POST /api/v1/auth/refresh HTTP/1.1", host, "Content-Type: application/json", "Content-Length: 4", "Transfer-Encoding: chunked", "", "2", "{}", "0", "", ""), want: 400},
		{name: "raw: absolute URI for another host", raw: rawReq("DELETE http://attacker.example/api/v1/sessions HTTP/1.1", "Host: attacker.example", "", ""), want: 401},
		{name: "raw: unescaped space in the path", raw: rawReq("GET /api/v1/sessions/a b HTTP/1.1", host, "", ""), want: 400, goAnswer: true},
	}
	if len(cases) < 50 {
		t.Fatalf("only %d hostile cases", len(cases))
	}
	t.Logf("%d hostile requests", len(cases))

	v := apitest.NewValidator(t)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			var resp *http.Response
			var body []byte
			if tc.raw != nil {
				resp, body = sendRaw(t, addr, tc.raw())
			} else {
				resp, body = sendHostile(t, v, ts.URL, tc)
			}
			elapsed := time.Since(start)
			if elapsed > maxHostileTime {
				t.Errorf("answered in %v, more than %v", elapsed, maxHostileTime)
			}
			if resp.StatusCode >= 500 {
				t.Fatalf("got %d: %s", resp.StatusCode, clipBody(body))
			}
			if resp.StatusCode != tc.want {
				t.Fatalf("got %d, want %d: %s", resp.StatusCode, tc.want, clipBody(body))
			}
			if tc.goAnswer {
				if resp.Header.Get("X-Request-Id") != "" {
					t.Fatalf("a handler answered (X-Request-Id set), not Go's server: %s", clipBody(body))
				}
				return
			}
			if tc.page {
				if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
					t.Fatalf("Content-Type %q, want the page's HTML", ct)
				}
				return
			}
			var env sessiondtest.Envelope
			sessiondtest.CheckEnvelope(t, tc.name, resp, body, &env)
			if resp.StatusCode == 401 && tc.path != "/api/v1/auth/login" && resp.Header.Get("WWW-Authenticate") != `Bearer error="invalid_token"` {
				t.Fatalf("401 without WWW-Authenticate: %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 64<<20 {
		t.Errorf("the live heap grew by %d MiB over the hostile requests", grown>>20)
	}

	// A 64 KiB User-Agent still signs in, and names a device.
	t.Run("a 64 KiB User-Agent signs in", func(t *testing.T) {
		c := sessiondtest.NewClient(t, ts.URL)
		c.UA = "Mozilla/5.0 (X11; Linux x86_64) " + strings.Repeat("A", 64<<10)
		g := c.Login("hostile-c", nil)
		if g.Session.Device == "" || len(g.Session.Device) > 256 {
			t.Fatalf("device: got %q", g.Session.Device)
		}
	})

	// Nothing above changed the legitimate state.
	t.Run("legitimate sessions are untouched", func(t *testing.T) {
		c := sessiondtest.NewClient(t, ts.URL)
		c.Headers = map[string]string{"X-Forwarded-For": newIP()}
		for _, g := range []sessiondtest.Grant{a1, a2, b1} {
			c.Do("GET", "/api/v1/me", g.AccessToken, nil).Expect(t, 200)
		}
		var list []sessiondtest.Session
		c.Do("GET", "/api/v1/sessions", a1.AccessToken, nil).Expect(t, 200).Decode(t, &list)
		if len(list) != 2 || list[0].ID != a1.Session.ID || list[1].ID != a2.Session.ID || list[1].Name != "kept name" || list[0].Name != "" {
			t.Fatalf("sessions of A: got %+v", list)
		}
		c.Do("GET", "/api/v1/sessions", b1.AccessToken, nil).Expect(t, 200).Decode(t, &list)
		if len(list) != 1 || list[0].ID != b1.Session.ID || list[0].Name != "" {
			t.Fatalf("sessions of B: got %+v", list)
		}
		// The refresh tokens are still at their first generation: no
		// forgery advanced or ended them.
		for _, g := range []sessiondtest.Grant{a1, b1} {
			c.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": g.RefreshToken}).Expect(t, 200)
		}
		// Passwords are unchanged.
		for _, name := range []string{"hostile-a", "hostile-b"} {
			c.Attempt(name, sessiondtest.Password).Expect(t, 200)
		}
		if logs := ts.Logs.String(); strings.Contains(logs, `"msg":"panic"`) {
			t.Fatalf("the server logged a panic")
		}
	})
}

// sendHostile sends tc with net/http and returns the answer; every answer
// is also checked against the OpenAPI description.
func sendHostile(t *testing.T, v *apitest.Validator, base string, tc hostileCase) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if tc.body != nil {
		rd = bytes.NewReader(tc.body)
	}
	req, err := http.NewRequest(tc.method, base+tc.path, rd)
	if err != nil {
		t.Fatalf("build request: %v", err)
	}
	if tc.ct != "" {
		req.Header.Set("Content-Type", tc.ct)
	}
	if tc.token != "" {
		req.Header.Set("Authorization", "Bearer "+tc.token)
	}
	req.Header.Set("X-Forwarded-For", newIP())
	for k, val := range tc.header {
		req.Header.Set(k, val)
	}
	hc := &http.Client{
		Timeout:       10 * time.Second,
		Transport:     v.Transport(t, nil),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", tc.method, tc.path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, body
}

// sendRaw writes raw on a new connection to addr and reads one response.
// The write runs on its own goroutine: the server may answer and close
// before it has read everything.
func sendRaw(t *testing.T, addr string, raw []byte) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	go conn.Write(raw)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, body
}

func clipBody(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}

// with returns a copy of m with the given keys set; a nil value deletes.
func with(m map[string]any, kv ...any) map[string]any {
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
		} else {
			c[kv[i].(string)] = kv[i+1]
		}
	}
	return c
}

// with2 returns a copy of h with k set to v.
func with2(h map[string]string, k, v string) map[string]string {
	c := map[string]string{k: v}
	for hk, hv := range h {
		c[hk] = hv
	}
	return c
}

// manyHeaders returns n headers of size bytes each.
func manyHeaders(n, size int) map[string]string {
	h := make(map[string]string, n)
	for i := range n {
		h[fmt.Sprintf("X-Filler-%d", i)] = strings.Repeat("f", size)
	}
	return h
}

// utf16LE encodes ASCII s as UTF-16LE.
func utf16LE(s string) []byte {
	b := make([]byte, 0, 2*len(s))
	for i := 0; i < len(s); i++ {
		b = append(b, s[i], 0)
	}
	return b
}

// swapCase returns s with the case of every ASCII letter swapped. Unlike
// strings.ToUpper, it changes a random session id whenever the id has a
// letter at all: about one id in 100,000 has no lower-case letter, and its
// upper-case spelling would be the id itself.
func swapCase(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case 'a' <= c && c <= 'z':
			b[i] = c - 'a' + 'A'
		case 'A' <= c && c <= 'Z':
			b[i] = c - 'A' + 'a'
		}
	}
	return string(b)
}
