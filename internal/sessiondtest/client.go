package sessiondtest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/apitest"
)

// Envelope is the API's response shape.
type Envelope struct {
	Status     string          `json:"status"`
	StatusCode int             `json:"status_code"`
	Message    string          `json:"message"`
	Data       json.RawMessage `json:"data"`
}

// Response is one answer of the API.
type Response struct {
	*http.Response
	Body []byte
	Env  Envelope
}

func (r *Response) Decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Env.Data, v); err != nil {
		t.Fatalf("decode data %s: %v", r.Env.Data, err)
	}
}

// Client talks to a sessiond server.
type Client struct {
	t       testing.TB
	base    string
	http    *http.Client
	UA      string
	Headers map[string]string
	// enveloped says which answers must be envelopes.
	enveloped func(path string, status int) bool
}

// NewClient returns a client of the server at base whose every response is validated against
// docs/openapi.yaml, so the description cannot drift from the server.
func NewClient(t testing.TB, base string) *Client {
	v := apitest.NewValidator(t)
	hc := &http.Client{Timeout: 60 * time.Second, Transport: v.Transport(t, nil)}
	return &Client{t: t, base: base, http: hc, UA: "sessiond-test/1.0", enveloped: func(path string, _ int) bool {
		return strings.HasPrefix(path, "/api/v1/") && path != "/api/v1/openapi.json"
	}}
}

// NewAdminClient returns a client of the admin listener at base whose every
// response is validated against docs/openapi-admin.yaml. Do's token is the
// admin key (or whatever a test sends in its place).
func NewAdminClient(t testing.TB, base string) *Client {
	v := apitest.NewAdminValidator(t)
	hc := &http.Client{Timeout: 60 * time.Second, Transport: v.Transport(t, nil)}
	return &Client{t: t, base: base, http: hc, UA: "sessiond-test/1.0", enveloped: func(path string, status int) bool {
		// Introspection answers RFC 7662 JSON, and its errors in the
		// envelope.
		return strings.HasPrefix(path, "/admin/v1/") && (path != "/admin/v1/introspect" || status >= 400)
	}}
}

// Do sends a request; body may be nil, a []byte (sent as is) or a value
// (sent as JSON). It checks the envelope of every /api/v1 JSON answer.
func (c *Client) Do(method, path, token string, body any) *Response {
	c.t.Helper()
	var rd io.Reader
	ct := ""
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case url.Values:
		rd = strings.NewReader(b.Encode())
		ct = "application/x-www-form-urlencoded"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
		ct = "application/json"
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("User-Agent", c.UA)
	for k, v := range c.Headers {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	r := &Response{Response: resp, Body: raw}
	// The API path as the caller wrote it, without the base URL's path
	// (a server under a base path) or the query.
	apiPath, _, _ := strings.Cut(path, "?")
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") && c.enveloped(apiPath, resp.StatusCode) {
		CheckEnvelope(c.t, method+" "+path, resp, raw, &r.Env)
	}
	return r
}

// CheckEnvelope asserts the envelope has exactly its four fields and that
// status_code equals the HTTP status.
func CheckEnvelope(t testing.TB, what string, resp *http.Response, raw []byte, env *Envelope) {
	t.Helper()
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatalf("%s: body is not a JSON object: %v: %q", what, err, raw)
	}
	if len(fields) != 4 || fields["status"] == nil || fields["status_code"] == nil || fields["message"] == nil || fields["data"] == nil {
		t.Fatalf("%s: envelope fields: got %s", what, raw)
	}
	if err := json.Unmarshal(raw, env); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if env.StatusCode != resp.StatusCode {
		t.Fatalf("%s: status_code %d, HTTP status %d", what, env.StatusCode, resp.StatusCode)
	}
	wantStatus := "success"
	if resp.StatusCode >= 400 {
		wantStatus = "error"
		var d struct {
			Code       string `json:"code"`
			RetryAfter int    `json:"retry_after"`
		}
		if err := json.Unmarshal(env.Data, &d); err != nil || d.Code == "" {
			t.Fatalf("%s: error data: got %s, want a code", what, env.Data)
		}
		if ra := resp.Header.Get("Retry-After"); resp.StatusCode == http.StatusTooManyRequests && ra != strconv.Itoa(d.RetryAfter) {
			t.Fatalf("%s: error data %s: retry_after differs from Retry-After %q", what, env.Data, ra)
		}
	}
	if env.Status != wantStatus {
		t.Fatalf("%s: status: got %q, want %q", what, env.Status, wantStatus)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Fatalf("%s: no X-Request-Id header", what)
	}
}

// Expect asserts the HTTP status of r.
func (r *Response) Expect(t testing.TB, status int) *Response {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s %s: got status %d, want %d: %s", r.Request.Method, r.Request.URL.Path, r.StatusCode, status, r.Body)
	}
	return r
}

// User is the API's user object.
type User struct {
	ID        string `json:"id"`
	Username  string `json:"username"`
	Email     string `json:"email"`
	CreatedAt string `json:"created_at"`
}

// Session is the API's session object.
type Session struct {
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
}

// Grant is what a sign-in or a refresh answers.
type Grant struct {
	AccessToken  string  `json:"access_token"`
	TokenType    string  `json:"token_type"`
	ExpiresIn    int     `json:"expires_in"`
	RefreshToken string  `json:"refresh_token"`
	Session      Session `json:"session"`
}

// Password is the password Register gives every user.
const Password = "correct horse battery staple"

// Register signs name up, with the email name@example.com, and fails the
// test unless that is 201.
func (c *Client) Register(name string) User {
	c.t.Helper()
	var u User
	c.Do("POST", "/api/v1/auth/register", "", map[string]string{
		"username": name, "email": name + "@example.com", "password": Password,
	}).Expect(c.t, http.StatusCreated).Decode(c.t, &u)
	return u
}

// Login signs name in, with extra fields in the body, and fails the test
// unless that is 200.
func (c *Client) Login(name string, extra map[string]string) Grant {
	c.t.Helper()
	body := map[string]string{"username": name, "password": Password}
	for k, v := range extra {
		body[k] = v
	}
	var g Grant
	c.Do("POST", "/api/v1/auth/login", "", body).Expect(c.t, http.StatusOK).Decode(c.t, &g)
	return g
}

// Attempt posts a sign-in with login and password and returns the answer,
// whatever it is.
func (c *Client) Attempt(login, password string) *Response {
	c.t.Helper()
	return c.Do("POST", "/api/v1/auth/login", "", map[string]string{"username": login, "password": password})
}

// PostRefresh posts a refresh token and returns the answer, whatever it is.
func (c *Client) PostRefresh(token string) *Response {
	c.t.Helper()
	return c.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": token})
}

// WantField fails the test unless the error message names field.
func (r *Response) WantField(t testing.TB, field string) {
	t.Helper()
	if !strings.HasPrefix(r.Env.Message, field+": ") {
		t.Fatalf("error message %q: want it to name %q", r.Env.Message, field)
	}
}

// WaitReadyz polls /readyz until it answers want, and fails the test after
// within.
func (c *Client) WaitReadyz(t testing.TB, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r := c.Do("GET", "/readyz", "", nil)
		if r.StatusCode == want {
			if want == http.StatusServiceUnavailable && r.Header.Get("Retry-After") == "" {
				t.Fatal("/readyz: 503 without Retry-After")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d after %s, want %d", r.StatusCode, within, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
