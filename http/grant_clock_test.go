package http_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	sessiondhttp "github.com/sessiond/sessiond/http"
)

// TestGrantLifetimesFollowTheManagersClock: expires_in and the cookies'
// Max-Age come from the Manager's clock, the one that decides the
// lifetimes, whatever the wall clock says. The Manager here runs a year
// in the past: measured against the wall clock, the tokens would already
// have expired (expires_in 0, cookies of 1 s).
func TestGrantLifetimesFollowTheManagersClock(t *testing.T) {
	m, db := newManager(t.TempDir())
	t.Cleanup(func() { db.Close() })
	past := time.Now().AddDate(-1, 0, 0)
	m.Now = func() time.Time { return past }
	ctx := context.Background()
	if _, err := m.Register(ctx, sessiond.RegisterRequest{Username: "yara", Email: "yara@example.com", Password: "correct horse battery staple"}); err != nil {
		t.Fatal(err)
	}
	h := sessiondhttp.NewServer(m).Handler()
	login := func(cookies bool) *httptest.ResponseRecorder {
		t.Helper()
		r := httptest.NewRequest("POST", "http://example.com/api/v1/auth/login",
			strings.NewReader(`{"username":"yara","password":"correct horse battery staple"}`))
		r.Header.Set("Content-Type", "application/json")
		if cookies {
			r.Header.Set(sessiondhttp.CookiesHeader, "1")
			r.Header.Set("Sec-Fetch-Site", "same-origin")
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			t.Fatalf("login: got %d %s, want 200", w.Code, w.Body)
		}
		return w
	}
	var out struct {
		Data struct {
			ExpiresIn int64 `json:"expires_in"`
		} `json:"data"`
	}
	if err := json.Unmarshal(login(false).Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	if want := int64(m.AccessTTL / time.Second); out.Data.ExpiresIn != want {
		t.Errorf("expires_in: got %d, want %d", out.Data.ExpiresIn, want)
	}
	maxAge := map[string]int{}
	for _, c := range login(true).Result().Cookies() {
		maxAge[c.Name] = c.MaxAge
	}
	if got, want := maxAge[sessiondhttp.AccessCookie], int(m.AccessTTL/time.Second); got != want {
		t.Errorf("access cookie Max-Age: got %d, want %d", got, want)
	}
	if got, want := maxAge[sessiondhttp.RefreshCookie], int(m.AbsoluteLifetime/time.Second); got != want {
		t.Errorf("refresh cookie Max-Age: got %d, want %d (the session's absolute lifetime)", got, want)
	}
}
