package apitest_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/sessiond/sessiond/internal/apitest"
)

const (
	user    = `{"id":"u1","username":"ada","email":"ada@example.com","created_at":"2025-05-01T09:29:58.120Z"}`
	current = `{"id":"Zk3n9Qd1s7XyV0aB4cR2eQ","device":"Firefox on Linux","device_class":"desktop","name":"","ip_address":"203.0.113.7","location":"Lagos, Nigeria","login_time":"2025-05-01T09:30:00.000Z","last_active":"2025-05-01T09:30:00.000Z","expires_at":"2025-05-15T09:30:00.000Z","current":true,"claims":{}}`
	other   = `{"id":"Aa3n9Qd1s7XyV0aB4cR2eQ","device":"curl","device_class":"cli","name":"build box","ip_address":"::1","location":"","login_time":"2025-04-01T09:30:00.000Z","last_active":"2025-04-02T09:30:00.000Z","expires_at":"2025-04-16T09:30:00.000Z","current":false,"claims":{"org":"acme"}}`
	jwt     = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1MSJ9.c2ln"
)

// canned is one response a test server gives.
type canned struct {
	status  int
	headers map[string]string
	body    string
}

func (c canned) serve(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Request-Id", "req-1")
	for k, v := range c.headers {
		if v == "" {
			w.Header().Del(k)
		} else {
			w.Header().Set(k, v)
		}
	}
	w.WriteHeader(c.status)
	io.WriteString(w, c.body)
}

func envelope(status int, data string) string {
	s := "success"
	if status >= 400 {
		s = "error"
	}
	return fmt.Sprintf(`{"status":%q,"status_code":%d,"message":"m","data":%s}`, s, status, data)
}

// roundTrip sends method path (with body, if any) to a server answering c
// and returns the request and the response with its body.
func roundTrip(t *testing.T, c canned, method, path, body string) (*http.Request, *http.Response, []byte) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(srv.Close)
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return req, resp, b
}

func TestValidate(t *testing.T) {
	v := apitest.NewValidator(t)
	ok200 := func(data string) canned { return canned{status: 200, body: envelope(200, data)} }
	tests := []struct {
		name         string
		method, path string
		resp         canned
		wantErr      string // "" means the response must pass
	}{
		{"me", "GET", "/api/v1/me", ok200(`{"user":` + user + `,"session":` + current + `}`), ""},
		{"extra envelope field", "GET", "/api/v1/me",
			canned{status: 200, body: `{"status":"success","status_code":200,"message":"m","data":{"user":` + user + `,"session":` + current + `},"extra":1}`}, "extra"},
		{"status_code is a string", "GET", "/api/v1/me",
			canned{status: 200, body: `{"status":"success","status_code":"200","message":"m","data":{"user":` + user + `,"session":` + current + `}}`}, "status_code"},
		{"missing data", "POST", "/api/v1/auth/logout",
			canned{status: 200, body: `{"status":"success","status_code":200,"message":"m"}`}, "data"},
		{"null data", "POST", "/api/v1/auth/logout",
			canned{status: 200, body: `{"status":"success","status_code":200,"message":"m","data":null}`}, "data"},
		{"status_code differs from the HTTP status", "POST", "/api/v1/auth/logout",
			canned{status: 200, body: envelope(201, `{}`)}, "status_code"},
		{"error status on success", "POST", "/api/v1/auth/logout",
			canned{status: 200, body: `{"status":"error","status_code":200,"message":"m","data":{}}`}, "status"},
		{"logout", "POST", "/api/v1/auth/logout", ok200(`{}`), ""},
		{"data on logout", "POST", "/api/v1/auth/logout", ok200(`{"revoked":1}`), "revoked"},
		{"no X-Request-Id", "POST", "/api/v1/auth/logout",
			canned{status: 200, headers: map[string]string{"X-Request-Id": ""}, body: envelope(200, `{}`)}, "X-Request-Id"},
		{"undocumented status", "GET", "/api/v1/me", canned{status: 418, body: envelope(418, `{"code":"not_found"}`)}, "status is not supported"},
		{"text/plain error", "GET", "/api/v1/me",
			canned{status: 401, headers: map[string]string{"Content-Type": "text/plain", "WWW-Authenticate": `Bearer error="invalid_token"`}, body: "unauthorized"}, "Content-Type"},
		{"401", "GET", "/api/v1/me",
			canned{status: 401, headers: map[string]string{"WWW-Authenticate": `Bearer error="invalid_token"`}, body: envelope(401, `{"code":"invalid_token"}`)}, ""},
		{"401 without WWW-Authenticate", "GET", "/api/v1/me", canned{status: 401, body: envelope(401, `{"code":"invalid_token"}`)}, "WWW-Authenticate"},
		{"failed login without WWW-Authenticate", "POST", "/api/v1/auth/login", canned{status: 401, body: envelope(401, `{"code":"invalid_credentials"}`)}, ""},
		{"failed login with a token's code", "POST", "/api/v1/auth/login", canned{status: 401, body: envelope(401, `{"code":"invalid_token"}`)}, "code"},
		{"error without a code", "GET", "/api/v1/sessions", canned{status: 503, headers: map[string]string{"Retry-After": "1"}, body: envelope(503, `{}`)}, "code"},
		{"error with an unknown code", "GET", "/api/v1/sessions", canned{status: 503, headers: map[string]string{"Retry-After": "1"}, body: envelope(503, `{"code":"oops"}`)}, "code"},
		{"400 naming its field", "POST", "/api/v1/auth/login", canned{status: 400, body: envelope(400, `{"code":"invalid_field","field":"password"}`)}, ""},
		{"429 without retry_after", "POST", "/api/v1/auth/login",
			canned{status: 429, headers: map[string]string{"Retry-After": "30"}, body: envelope(429, `{"code":"rate_limited"}`)}, "retry_after"},
		{"error with data", "GET", "/api/v1/me",
			canned{status: 401, headers: map[string]string{"WWW-Authenticate": "Bearer"}, body: envelope(401, `{"why":"x"}`)}, "why"},
		{"429 with Retry-After", "POST", "/api/v1/auth/login",
			canned{status: 429, headers: map[string]string{"Retry-After": "30"}, body: envelope(429, `{"code":"rate_limited","retry_after":30}`)}, ""},
		{"429 without Retry-After", "POST", "/api/v1/auth/login", canned{status: 429, body: envelope(429, `{"code":"rate_limited","retry_after":30}`)}, "Retry-After"},
		{"503 without Retry-After", "GET", "/api/v1/sessions", canned{status: 503, body: envelope(503, `{"code":"unavailable"}`)}, "Retry-After"},
		{"sessions, current first", "GET", "/api/v1/sessions", ok200(`[` + current + `,` + other + `]`), ""},
		{"sessions, current last", "GET", "/api/v1/sessions", ok200(`[` + other + `,` + current + `]`), "current"},
		{"sessions, a page after the first", "GET", "/api/v1/sessions", ok200(`[` + other + `]`), ""},
		{"sessions, bad device_class", "GET", "/api/v1/sessions",
			ok200(`[` + strings.Replace(current, `"desktop"`, `"laptop"`, 1) + `]`), "device_class"},
		{"time without milliseconds", "GET", "/api/v1/sessions",
			ok200(`[` + strings.Replace(current, `09:30:00.000Z`, `09:30:00Z`, 1) + `]`), "login_time"},
		{"session without claims", "GET", "/api/v1/sessions",
			ok200(`[` + strings.Replace(current, `,"claims":{}`, ``, 1) + `]`), "claims"},
		{"claims not an object", "GET", "/api/v1/sessions",
			ok200(`[` + strings.Replace(current, `"claims":{}`, `"claims":["admin"]`, 1) + `]`), "claims"},
		{"me, the app's own user", "GET", "/api/v1/me", ok200(`{"user":{"id":"auth0|abc"},"session":` + current + `}`), ""},
		{"me, the app's own user with a username", "GET", "/api/v1/me",
			ok200(`{"user":{"id":"auth0|abc","username":"ada"},"session":` + current + `}`), "user"},
		{"revoke others", "DELETE", "/api/v1/sessions", ok200(`{"revoked":2}`), ""},
		{"rename", "PATCH", "/api/v1/sessions/Aa3n9Qd1s7XyV0aB4cR2eQ", ok200(other), ""},
		{"revoke unknown id", "DELETE", "/api/v1/sessions/nope", canned{status: 404, body: envelope(404, `{"code":"not_found"}`)}, ""},
		{"revoke the id \"events\"", "DELETE", "/api/v1/sessions/events", canned{status: 404, body: envelope(404, `{"code":"not_found"}`)}, ""},
		{"rename the id \"events\"", "PATCH", "/api/v1/sessions/events", canned{status: 405, headers: map[string]string{"Allow": "GET"}, body: envelope(405, `{"code":"method_not_allowed"}`)}, "status is not supported"},
		{"post to the event stream", "POST", "/api/v1/sessions/events", canned{status: 405, headers: map[string]string{"Allow": "GET, HEAD"}, body: envelope(405, `{"code":"method_not_allowed"}`)}, ""},
		{"login with tokens", "POST", "/api/v1/auth/login",
			ok200(`{"access_token":"` + jwt + `","token_type":"Bearer","expires_in":900,"refresh_token":"r","session":` + current + `}`), ""},
		{"login with cookies", "POST", "/api/v1/auth/login",
			ok200(`{"token_type":"Bearer","expires_in":900,"session":` + current + `}`), ""},
		{"login with only an access token", "POST", "/api/v1/auth/login",
			ok200(`{"access_token":"` + jwt + `","token_type":"Bearer","expires_in":900,"session":` + current + `}`), "refresh_token"},
		{"expires_in as a duration", "POST", "/api/v1/auth/refresh",
			ok200(`{"token_type":"Bearer","expires_in":"15m","session":` + current + `}`), "expires_in"},
		{"register", "POST", "/api/v1/auth/register", canned{status: 201, body: envelope(201, user)}, ""},
		{"register leaks the hash", "POST", "/api/v1/auth/register",
			canned{status: 201, body: envelope(201, strings.Replace(user, `}`, `,"password_hash":"x"}`, 1))}, "password_hash"},
		{"forward auth", "GET", "/api/v1/auth/check",
			canned{status: 200, headers: map[string]string{"X-Sessiond-User": "u1", "X-Sessiond-Session": "Zk3n9Qd1s7XyV0aB4cR2eQ"}, body: envelope(200, `{}`)}, ""},
		{"forward auth without headers", "GET", "/api/v1/auth/check", ok200(`{}`), "X-Sessiond-"},
		{"unknown api path", "GET", "/api/v1/nope", canned{status: 404, body: envelope(404, `{"code":"not_found"}`)}, ""},
		{"unknown api path, plain 404", "GET", "/api/v1/nope",
			canned{status: 404, headers: map[string]string{"Content-Type": "text/plain; charset=utf-8"}, body: "404 page not found\n"}, "Content-Type"},
		{"wrong method", "PUT", "/api/v1/me",
			canned{status: 405, headers: map[string]string{"Allow": "GET, HEAD"}, body: envelope(405, `{"code":"method_not_allowed"}`)}, ""},
		{"wrong method without Allow", "PUT", "/api/v1/me", canned{status: 405, body: envelope(405, `{"code":"method_not_allowed"}`)}, "Allow"},
		{"page is not checked", "GET", "/", canned{status: 200, headers: map[string]string{"Content-Type": "text/html"}, body: "<!doctype html>"}, ""},
		{"healthz", "GET", "/healthz", ok200(`{}`), ""},
		{"readyz down", "GET", "/readyz", canned{status: 503, body: envelope(503, `{"code":"unavailable"}`)}, ""},
		{"jwks", "GET", "/.well-known/jwks.json",
			canned{status: 200, body: `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"k1","alg":"EdDSA","use":"sig"}]}`}, ""},
		{"jwks with a private key", "GET", "/.well-known/jwks.json",
			canned{status: 200, body: `{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"secret","kid":"k1"}]}`}, "d"},
		{"go server's own 431", "GET", "/api/v1/me",
			canned{status: 431, headers: map[string]string{"Content-Type": "text/plain; charset=utf-8", "X-Request-Id": ""}, body: "431 Request Header Fields Too Large"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, resp, body := roundTrip(t, tt.resp, tt.method, tt.path, "")
			err := v.Validate(req, resp, body)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("got error %v, want none", err)
			case tt.wantErr != "" && err == nil:
				t.Errorf("got no error, want one mentioning %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("got error %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

// TestValidateAdmin checks the admin document's validator: /admin/v1 plays
// the part of /api/v1, introspection answers are not envelopes, and
// /metrics is the admin listener's.
func TestValidateAdmin(t *testing.T) {
	v := apitest.NewAdminValidator(t)
	adminCurrent := strings.Replace(current, `"claims":{}`, `"claims":{"plan":"pro"}`, 1)
	adminOther := other
	tests := []struct {
		name         string
		method, path string
		resp         canned
		wantErr      string
	}{
		{"metrics", "GET", "/metrics",
			canned{status: 200, headers: map[string]string{"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}, body: "# HELP x y\nx 1\n"}, ""},
		{"openmetrics", "GET", "/metrics",
			canned{status: 200, headers: map[string]string{"Content-Type": "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores"}, body: "# EOF\n"}, ""},
		{"start", "POST", "/admin/v1/sessions",
			canned{status: 201, body: envelope(201, `{"access_token":"`+jwt+`","token_type":"Bearer","expires_in":900,"refresh_token":"r","session":`+adminCurrent+`}`)}, ""},
		{"start without claims", "POST", "/admin/v1/sessions",
			canned{status: 201, body: envelope(201, `{"access_token":"`+jwt+`","token_type":"Bearer","expires_in":900,"refresh_token":"r","session":`+strings.Replace(current, `,"claims":{}`, ``, 1)+`}`)}, "claims"},
		{"list", "GET", "/admin/v1/users/a%2Fb/sessions", canned{status: 200, body: envelope(200, `[`+adminOther+`]`)}, ""},
		{"list with a current session", "GET", "/admin/v1/users/u1/sessions", canned{status: 200, body: envelope(200, `[`+adminCurrent+`]`)}, "current"},
		{"introspect inactive", "POST", "/admin/v1/introspect", canned{status: 200, body: `{"active":false}`}, ""},
		{"introspect inactive with more", "POST", "/admin/v1/introspect", canned{status: 200, body: `{"active":false,"sub":"u1"}`}, "active"},
		{"introspect active", "POST", "/admin/v1/introspect",
			canned{status: 200, body: `{"active":true,"token_type":"access_token","sub":"u1","sid":"Zk3n9Qd1s7XyV0aB4cR2eQ","exp":2,"iat":1,"iss":"sessiond","aud":"sessiond","jti":"j","plan":"pro"}`}, ""},
		{"admin key refused", "GET", "/admin/v1/users/u1/sessions",
			canned{status: 401, headers: map[string]string{"WWW-Authenticate": "Bearer"}, body: envelope(401, `{"code":"admin_key_invalid"}`)}, ""},
		{"public code on the admin listener", "GET", "/admin/v1/users/u1/sessions",
			canned{status: 401, headers: map[string]string{"WWW-Authenticate": "Bearer"}, body: envelope(401, `{"code":"invalid_token"}`)}, "code"},
		{"unknown admin path", "GET", "/admin/v1/nope", canned{status: 404, body: envelope(404, `{"code":"not_found"}`)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, resp, body := roundTrip(t, tt.resp, tt.method, tt.path, "")
			err := v.Validate(req, resp, body)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("got error %v, want none", err)
			case tt.wantErr != "" && err == nil:
				t.Errorf("got no error, want one mentioning %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("got error %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

// recorder is a testing.TB that collects Errorf calls instead of failing.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) failures() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errs...)
}

func TestCheck(t *testing.T) {
	v := apitest.NewValidator(t)
	reqBody := `{"username":"ada","password":"x"}`
	req, resp, body := roundTrip(t, canned{status: 200, body: envelope(200, `{"extra":true}`)}, "POST", "/api/v1/auth/logout", reqBody)

	rec := &recorder{TB: t}
	v.Check(rec, req, []byte(reqBody), resp, body)
	errs := rec.failures()
	if len(errs) != 1 {
		t.Fatalf("got %d failures, want 1: %q", len(errs), errs)
	}
	for _, want := range []string{"POST /api/v1/auth/logout", "response 200", "extra", reqBody} {
		if !strings.Contains(errs[0], want) {
			t.Errorf("failure message %q does not mention %q", errs[0], want)
		}
	}
}

func TestTransport(t *testing.T) {
	v := apitest.NewValidator(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/me", canned{status: 200, body: envelope(200, `{"user":`+user+`,"session":`+current+`}`)}.serve)
	mux.HandleFunc("GET /api/v1/sessions", canned{status: 200, body: envelope(200, `[`+current+`,`+current+`]`)}.serve)
	mux.HandleFunc("GET /api/v1/sessions/events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("X-Request-Id", "req-2")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, ": hello\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done() // a stream that never ends by itself
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	rec := &recorder{TB: t}
	client := &http.Client{Transport: v.Transport(rec, srv.Client().Transport)}

	t.Run("valid response keeps its body", func(t *testing.T) {
		resp, err := client.Get(srv.URL + "/api/v1/me")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if want := envelope(200, `{"user":`+user+`,"session":`+current+`}`); string(b) != want {
			t.Errorf("got body %s, want %s", b, want)
		}
		if errs := rec.failures(); len(errs) != 0 {
			t.Errorf("got failures %q, want none", errs)
		}
	})

	t.Run("invalid response fails the test", func(t *testing.T) {
		resp, err := client.Get(srv.URL + "/api/v1/sessions") // two current sessions
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if errs := rec.failures(); len(errs) != 1 || !strings.Contains(errs[0], "GET /api/v1/sessions") {
			t.Errorf("got failures %q, want one for GET /api/v1/sessions", errs)
		}
		rec.errs = nil
	})

	t.Run("event stream is not buffered", func(t *testing.T) {
		resp, err := client.Get(srv.URL + "/api/v1/sessions/events")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		if err != nil || line != ": hello\n" {
			t.Errorf("got first line %q, %v; want %q", line, err, ": hello\n")
		}
		if errs := rec.failures(); len(errs) != 0 {
			t.Errorf("got failures %q, want none", errs)
		}
	})
}

func TestTransportEventStreamContentType(t *testing.T) {
	v := apitest.NewValidator(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("X-Request-Id", "req-3")
		w.WriteHeader(http.StatusOK) // not a documented answer of GET /api/v1/me
	}))
	t.Cleanup(srv.Close)
	rec := &recorder{TB: t}
	client := &http.Client{Transport: v.Transport(rec, srv.Client().Transport)}
	resp, err := client.Get(srv.URL + "/api/v1/me")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if errs := rec.failures(); len(errs) != 1 || !strings.Contains(errs[0], "text/event-stream") {
		t.Errorf("got failures %q, want one about text/event-stream", errs)
	}
}
