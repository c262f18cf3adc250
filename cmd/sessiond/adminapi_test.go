package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// TestAdminListener runs the program with its admin listener: a key made
// by "sessiond admin-key new" while it runs works within 5 s, starts a
// session for one of the app's users that the public listener then
// serves, /metrics is there and not on the public listener, and neither
// listener answers the other's API.
func TestAdminListener(t *testing.T) {
	ts := startServer(t, nil)
	if ts.AdminURL == "" || ts.AdminURL == ts.URL {
		t.Fatalf("admin URL %q (public %q): want a listener of its own", ts.AdminURL, ts.URL)
	}
	ac := sessiondtest.NewAdminClient(t, ts.AdminURL)
	pc := sessiondtest.NewClient(t, ts.URL)

	u := pc.Register("carol")
	ac.Do("GET", "/admin/v1/users/"+u.ID+"/sessions", "sdk_nothing", nil).Expect(t, 401)
	key := newAdminKey(t, map[string]string{"SESSIOND_DATA_DIR": ts.DataDir}, "app")
	deadline := time.Now().Add(5 * time.Second)
	for ac.Do("GET", "/admin/v1/users/"+u.ID+"/sessions", key, nil).StatusCode != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("a new key is not accepted 5 s after admin-key new")
		}
		time.Sleep(100 * time.Millisecond)
	}

	var g sessiondtest.Grant
	ac.Do("POST", "/admin/v1/sessions", key, map[string]any{"user_id": u.ID, "user_agent": "curl/8.5.0", "claims": map[string]any{"plan": "pro"}}).
		Expect(t, http.StatusCreated).Decode(t, &g)
	if r := pc.Do("GET", "/api/v1/auth/check", g.AccessToken, nil).Expect(t, 200); r.Header.Get("X-Sessiond-User") != u.ID {
		t.Fatalf("forward auth: got user %q", r.Header.Get("X-Sessiond-User"))
	}
	pc.PostRefresh(g.RefreshToken).Expect(t, 200)

	if m := scrape(t, ts.AdminURL); m[`sessiond_logins_total{result="success"}`] != 1 {
		t.Fatalf("admin /metrics: sessions started got %v, want 1", m[`sessiond_logins_total{result="success"}`])
	}
	pc.Do("GET", "/metrics", "", nil).Expect(t, 404)
	pc.Do("POST", "/admin/v1/sessions", key, map[string]any{"user_id": "x"}).Expect(t, 404)
	pc.Do("GET", "/api/v1/auth/check", key, nil).Expect(t, 401)
	ac.Do("GET", "/api/v1/auth/check", g.AccessToken, nil).Expect(t, 404)
	ac.Do("GET", "/readyz", "", nil).Expect(t, 200)
	if logs := ts.Logs.String(); strings.Contains(logs, key) || strings.Contains(logs, g.AccessToken) || !strings.Contains(logs, `"msg":"admin"`) {
		t.Fatal("the log holds a key or a token, or no audit line")
	}
}

// TestAdminListenerOff checks SESSIOND_ADMIN_ADDR=off: no admin listener,
// the public one as before.
func TestAdminListenerOff(t *testing.T) {
	ts := startServer(t, map[string]string{"SESSIOND_ADMIN_ADDR": "off"})
	if ts.AdminURL != "" {
		t.Fatalf("admin listener at %s with SESSIOND_ADMIN_ADDR=off", ts.AdminURL)
	}
	if !strings.Contains(ts.Logs.String(), "admin listener off") {
		t.Fatal("no log line saying the admin listener is off")
	}
	sessiondtest.NewClient(t, ts.URL).Do("GET", "/readyz", "", nil).Expect(t, 200)
}
