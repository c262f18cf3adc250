package http_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/sessiond/sessiond"
	sessiondhttp "github.com/sessiond/sessiond/http"
	"github.com/sessiond/sessiond/internal/apitest"
	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// documentedCodes returns the error codes the ErrorData schema of the
// OpenAPI document at path (relative to the module root) lists.
func documentedCodes(t *testing.T, path string) []string {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromFile(filepath.Join("..", filepath.FromSlash(path)))
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, v := range doc.Components.Schemas["ErrorData"].Value.Properties["code"].Value.Enum {
		codes = append(codes, v.(string))
	}
	if len(codes) == 0 {
		t.Fatalf("%s: no ErrorData code enum", path)
	}
	return codes
}

// TestEveryDocumentedCodeIsAnswered makes one real request for every error
// code the two OpenAPI documents list, and checks the answer carries it:
// a code documented but never answered (or answered under another one)
// fails here.
func TestEveryDocumentedCodeIsAnswered(t *testing.T) {
	ts := startServer(t, nil)
	m := ts.Manager
	keys := adminKeySet{"sdk_" + strings.Repeat("k", 43): "test"}
	admin := ts.StartAdmin(t, keys, nil)
	c := sessiondtest.NewClient(t, ts.URL)
	u := c.Register("cody")
	g := c.Login("cody", nil)

	got := map[string]bool{}
	send := func(base, method, path, ct, body string, h map[string]string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var env struct {
			Data struct {
				Code string `json:"code"`
			} `json:"data"`
		}
		if err := json.Unmarshal(raw, &env); err != nil || resp.StatusCode < 400 || env.Data.Code == "" {
			t.Fatalf("%s %s: got %d %s, want an error with a code", method, path, resp.StatusCode, raw)
		}
		got[env.Data.Code] = true
	}
	const js = "application/json"
	bearer := map[string]string{"Authorization": "Bearer " + g.AccessToken}

	// Two Authorization headers (a map holds one).
	req, _ := http.NewRequest("GET", ts.URL+"/api/v1/me", nil)
	req.Header.Add("Authorization", "Bearer "+g.AccessToken)
	req.Header.Add("Authorization", "Bearer "+g.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var env struct{ Data struct{ Code string } }
	json.NewDecoder(resp.Body).Decode(&env)
	resp.Body.Close()
	if resp.StatusCode != 400 || env.Data.Code != "invalid_request" {
		t.Fatalf("two Authorization headers: got %d %q", resp.StatusCode, env.Data.Code)
	}
	got[env.Data.Code] = true
	send(ts.URL, "POST", "/api/v1/auth/register", js, `{"username":"","email":"x@example.com","password":"password123"}`, nil)
	send(ts.URL, "POST", "/api/v1/auth/login", js, `{"username":"cody","password":"wrong password"}`, nil)
	send(ts.URL, "GET", "/api/v1/me", "", "", map[string]string{"Authorization": "Bearer not-a-token"})
	send(ts.URL, "POST", "/api/v1/auth/login", js, `{"username":"cody","password":"`+sessiondtest.Password+`"}`,
		map[string]string{sessiondhttp.CookiesHeader: "1", "Origin": "https://evil.example"})
	send(ts.URL, "GET", "/api/v1/nothing-here", "", "", nil)
	send(ts.URL, "PUT", "/api/v1/me", "", "", bearer)
	send(ts.URL, "POST", "/api/v1/auth/register", js, `{"username":"cody","email":"new@example.com","password":"password123"}`, nil)
	send(ts.URL, "POST", "/api/v1/auth/register", js, `{"username":"cody2","email":"cody@example.com","password":"password123"}`, nil)
	send(ts.URL, "POST", "/api/v1/auth/login", js, `{"username":"cody","password":"`+strings.Repeat("x", 70<<10)+`"}`, nil)
	send(ts.URL, "POST", "/api/v1/auth/login", "text/plain", `username=cody`, nil)
	for range 10 {
		c.Attempt("cody", "wrong again")
	}
	send(ts.URL, "POST", "/api/v1/auth/login", js, `{"username":"cody","password":"wrong again"}`, nil)
	for range sessiondhttp.MaxStreamsPerSession {
		sessiondtest.Subscribe(t, ts.URL, g.AccessToken)
	}
	send(ts.URL, "GET", "/api/v1/sessions/events", "", "", bearer)
	send(admin.URL, "GET", "/admin/v1/users/x/sessions", "", "", map[string]string{"Authorization": "Bearer sdk_wrong"})
	send(ts.URL, "GET", "/auth/handoff?code="+strings.Repeat("A", 43), "", "", nil)

	// A cap that denies, closed sign-up, a locked account, and a store
	// that is gone, each on a server of its own.
	deny := startServer(t, func(s *sessiondtest.Server) { s.Manager.MaxSessions, s.Manager.CapPolicy = 1, sessiond.PolicyDeny })
	dc := sessiondtest.NewClient(t, deny.URL)
	dc.Register("dana")
	dc.Login("dana", nil)
	send(deny.URL, "POST", "/api/v1/auth/login", js, `{"username":"dana","password":"`+sessiondtest.Password+`"}`, nil)
	closed := startServer(t, func(s *sessiondtest.Server) { s.Manager.SignupOpen = false })
	send(closed.URL, "POST", "/api/v1/auth/register", js, `{"username":"eve","email":"eve@example.com","password":"password123"}`, nil)
	if _, err := m.SetLocked(context.Background(), u.ID, true); err != nil {
		t.Fatal(err)
	}
	send(admin.URL, "POST", "/admin/v1/sessions", js, `{"user_id":"`+u.ID+`"}`, map[string]string{"Authorization": "Bearer sdk_" + strings.Repeat("k", 43)})
	gone := startServer(t, nil)
	gc := sessiondtest.NewClient(t, gone.URL)
	gc.Register("finn")
	fg := gc.Login("finn", nil)
	gone.DB.Close()
	send(gone.URL, "GET", "/api/v1/me", "", "", map[string]string{"Authorization": "Bearer " + fg.AccessToken})

	documented := append(documentedCodes(t, apitest.SpecPath), documentedCodes(t, apitest.AdminSpecPath)...)
	slices.Sort(documented)
	documented = slices.Compact(documented)
	for _, code := range documented {
		if !got[code] {
			t.Errorf("documented code %q: no request here was answered with it", code)
		}
	}
	for code := range got {
		if !slices.Contains(documented, code) {
			t.Errorf("answered code %q is not documented", code)
		}
	}
}

// adminKeySet is a fixed set of admin keys.
type adminKeySet map[string]string

func (s adminKeySet) Lookup(key string) (string, bool) {
	name, ok := s[key]
	return name, ok
}
