package http_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// sessionWithClaims is the part of a session object these tests read.
type sessionWithClaims struct {
	ID      string          `json:"id"`
	Current bool            `json:"current"`
	Claims  json.RawMessage `json:"claims"`
}

// streamEvent is the data of one event of the stream.
type streamEvent struct {
	Type      string             `json:"type"`
	SessionID string             `json:"session_id"`
	Session   *sessionWithClaims `json:"session"`
}

// subscribeClaims opens the event stream with token and returns the data of
// its events.
func subscribeClaims(t *testing.T, base, token string) <-chan streamEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/sessions/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("events: got status %d, want 200", res.StatusCode)
	}
	ch := make(chan streamEvent, 16)
	go func() {
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var ev streamEvent
				if json.Unmarshal([]byte(data), &ev) == nil {
					ch <- ev
				}
			}
		}
	}()
	return ch
}

// startApp starts a session for the app's own user id through the
// Manager, as the app would after signing the user in.
func startApp(t *testing.T, m *sessiond.Manager, userID string, claims map[string]any) *sessiond.Grant {
	t.Helper()
	g, err := m.StartSession(context.Background(), sessiond.StartRequest{
		UserID: userID, UserAgent: "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
		ClientIP: "203.0.113.7", Claims: claims,
	})
	if err != nil {
		t.Fatalf("StartSession(%q): %v", userID, err)
	}
	return g
}

// sameJSON fails the test unless got and want are the same JSON value.
func sameJSON(t *testing.T, what string, got json.RawMessage, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %q is not JSON: %v", what, got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s: got %s, want %s", what, got, want)
	}
}

// TestSessionClaimsShown: the claims a session was started with are in
// every session object of the API, and {} for a session without any
// (docs/design.md, "Sessions and users").
func TestSessionClaimsShown(t *testing.T) {
	for _, external := range []bool{true, false} {
		name := "internal users"
		if external {
			name = "app's own users"
		}
		t.Run(name, func(t *testing.T) {
			srv := sessiondtest.StartServer(t, sessiondtest.Options{ExternalUsers: external, CheapHashing: true}, nil)
			c := sessiondtest.NewClient(t, srv.URL)
			userID := "auth0|abc"
			if !external {
				userID = c.Register("ada").ID
			}
			watcher := startApp(t, srv.Manager, userID, nil)
			events := subscribeClaims(t, srv.URL, watcher.AccessToken)
			const claims = `{"org":"acme","roles":["admin","billing"],"note":"<b>&</b>"}`
			g := startApp(t, srv.Manager, userID, map[string]any{
				"org": "acme", "roles": []any{"admin", "billing"}, "note": "<b>&</b>",
			})
			plain := startApp(t, srv.Manager, userID, nil)

			// The created event's session, as the stream shows it.
			for _, want := range []struct {
				id, claims string
			}{{g.Session.ID, claims}, {plain.Session.ID, `{}`}} {
				select {
				case ev := <-events:
					if ev.Type != "created" || ev.Session == nil || ev.SessionID != want.id {
						t.Fatalf("event: got %+v, want created %s with its session", ev, want.id)
					}
					sameJSON(t, "event claims", ev.Session.Claims, want.claims)
				case <-time.After(5 * time.Second):
					t.Fatalf("no created event for %s within 5 s", want.id)
				}
			}

			var me struct {
				User    map[string]any    `json:"user"`
				Session sessionWithClaims `json:"session"`
			}
			c.Do("GET", "/api/v1/me", g.AccessToken, nil).Expect(t, http.StatusOK).Decode(t, &me)
			sameJSON(t, "/me claims", me.Session.Claims, claims)
			if external && (len(me.User) != 1 || me.User["id"] != userID) {
				t.Errorf("/me user: got %v, want only {id: %q}", me.User, userID)
			}
			if !external && me.User["username"] != "ada" {
				t.Errorf("/me user: got %v, want username ada", me.User)
			}

			var list []sessionWithClaims
			c.Do("GET", "/api/v1/sessions", g.AccessToken, nil).Expect(t, http.StatusOK).Decode(t, &list)
			if len(list) != 3 {
				t.Fatalf("list: got %d sessions, want 3", len(list))
			}
			for _, s := range list {
				switch s.ID {
				case g.Session.ID:
					sameJSON(t, "list claims of the started session", s.Claims, claims)
				case plain.Session.ID, watcher.Session.ID:
					sameJSON(t, "list claims of a session without claims", s.Claims, `{}`)
				default:
					t.Errorf("list: unknown session %s", s.ID)
				}
			}

			var grant struct {
				RefreshToken string            `json:"refresh_token"`
				Session      sessionWithClaims `json:"session"`
			}
			c.PostRefresh(g.RefreshToken).Expect(t, http.StatusOK).Decode(t, &grant)
			sameJSON(t, "refresh claims", grant.Session.Claims, claims)

			var renamed sessionWithClaims
			c.Do("PATCH", "/api/v1/sessions/"+plain.Session.ID, plain.AccessToken, map[string]string{"name": "Kitchen"}).
				Expect(t, http.StatusOK).Decode(t, &renamed)
			sameJSON(t, "rename claims", renamed.Claims, `{}`)
		})
	}
}

// TestAppUsersHaveNoAccountEndpoints: when the app signs its users in,
// register, login and password do not exist, whatever the request; the
// rest of the API works on the sessions the app started.
func TestAppUsersHaveNoAccountEndpoints(t *testing.T) {
	srv := sessiondtest.StartServer(t, sessiondtest.Options{ExternalUsers: true}, nil)
	g := startApp(t, srv.Manager, "auth0|abc", nil)
	other := startApp(t, srv.Manager, "auth0|abc", nil)

	for _, path := range []string{"/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/auth/password"} {
		for _, tc := range []struct {
			method, contentType, body, token string
		}{
			{"POST", "application/json", `{"username":"ada","email":"ada@example.com","password":"correct horse battery staple"}`, ""},
			{"POST", "application/json", `{"current_password":"a","new_password":"b"}`, g.AccessToken},
			{"POST", "text/plain", "not json at all", ""},
			{"POST", "application/x-www-form-urlencoded", "username=ada&password=x", ""},
			{"POST", "", strings.Repeat("x", 200<<10), ""},
			{"GET", "", "", ""},
			{"DELETE", "", "", g.AccessToken},
		} {
			req, err := http.NewRequest(tc.method, srv.URL+path, strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(res.Body)
			res.Body.Close()
			var env struct {
				Data struct {
					Code string `json:"code"`
				} `json:"data"`
			}
			json.Unmarshal(raw, &env)
			if res.StatusCode != http.StatusNotFound || env.Data.Code != "not_found" {
				t.Errorf("%s %s (%s): got %d %s, want 404 not_found", tc.method, path, tc.contentType, res.StatusCode, raw)
			}
		}
	}

	c := sessiondtest.NewClient(t, srv.URL)
	r := c.Do("GET", "/api/v1/auth/check", g.AccessToken, nil).Expect(t, http.StatusOK)
	if got := r.Header.Get("X-Sessiond-User"); got != "auth0|abc" {
		t.Errorf("check: X-Sessiond-User %q, want auth0|abc", got)
	}
	c.Do("DELETE", "/api/v1/sessions/"+other.Session.ID, g.AccessToken, nil).Expect(t, http.StatusOK)
	c.Do("GET", "/api/v1/me", other.AccessToken, nil).Expect(t, http.StatusUnauthorized)
	c.Do("POST", "/api/v1/auth/logout", g.AccessToken, nil).Expect(t, http.StatusOK)
	c.Do("GET", "/api/v1/me", g.AccessToken, nil).Expect(t, http.StatusUnauthorized)
}
