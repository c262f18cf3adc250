package http_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/sessiond/sessiond"
	sessiondhttp "github.com/sessiond/sessiond/http"
	"github.com/sessiond/sessiond/sqlite"
)

// newManager returns a Manager over a new SQLite file in dir, with the
// parts that each adjust changes.
func newManager(dir string, adjust ...func(*sessiond.Parts)) (*sessiond.Manager, *sqlite.DB) {
	db, err := sqlite.Open(filepath.Join(dir, "sessiond.db"))
	if err != nil {
		log.Fatal(err)
	}
	sk, err := sessiond.LoadOrCreateSigningKey(filepath.Join(dir, "signing-key.pem"))
	if err != nil {
		log.Fatal(err)
	}
	rk, err := sessiond.LoadOrCreateRefreshKey(filepath.Join(dir, "refresh-key"))
	if err != nil {
		log.Fatal(err)
	}
	parts := sessiond.Parts{
		Sessions: sqlite.NewSessionStore(db),
		Users:    sqlite.NewUserStore(db),
		Access:   sessiond.NewAccessTokens("example", sk),
		Refresh:  sessiond.NewRefreshTokens(rk),
		Limiter:  sqlite.NewLimiter(db),
	}
	for _, f := range adjust {
		f(&parts)
	}
	m := sessiond.NewManager(parts)
	m.Logger = slog.New(slog.DiscardHandler)
	return m, db
}

// Protect a handler of your own: it runs only for requests with a valid
// access token of a live session, and finds the session in its context.
func ExampleMiddleware() {
	dir, err := os.MkdirTemp("", "sessiond-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	m, db := newManager(dir)
	defer db.Close()

	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := sessiond.FromContext(r.Context())
		u, err := m.User(r.Context(), s.UserID)
		if err != nil {
			http.Error(w, "try again", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "hello, %s on %s\n", u.Username, s.Device)
	})
	protected := sessiondhttp.Middleware(m)(hello)

	ctx := context.Background()
	if _, err := m.Register(ctx, sessiond.RegisterRequest{
		Username: "alice", Email: "alice@example.com", Password: "correct horse battery staple",
	}); err != nil {
		log.Fatal(err)
	}
	g, err := m.Login(ctx, sessiond.LoginRequest{
		Login: "alice", Password: "correct horse battery staple", UserAgent: "curl/8.5.0",
	})
	if err != nil {
		log.Fatal(err)
	}

	call := func(token string) {
		r := httptest.NewRequest("GET", "/hello", nil)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		protected.ServeHTTP(w, r)
		body, _ := io.ReadAll(w.Result().Body)
		fmt.Println(w.Code, w.Header().Get("WWW-Authenticate"), strings.TrimSpace(string(body)))
	}
	call("")
	call(g.AccessToken)
	if err := m.Logout(ctx, g.Session); err != nil {
		log.Fatal(err)
	}
	call(g.AccessToken)
	// Output:
	// 401 Bearer error="invalid_token" {"status":"error","status_code":401,"message":"missing, invalid, expired or revoked token","data":{"code":"invalid_token"}}
	// 200  hello, alice on curl
	// 401 Bearer error="invalid_token" {"status":"error","status_code":401,"message":"missing, invalid, expired or revoked token","data":{"code":"invalid_token"}}
}

// Serve sessiond's whole API (login, refresh, devices, JWKS, forward-auth
// check) from your own mux, next to your own routes protected by
// Server.Middleware, which shares the Server's settings.
func ExampleServer_Handler() {
	dir, err := os.MkdirTemp("", "sessiond-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	m, db := newManager(dir)
	defer db.Close()

	srv := sessiondhttp.NewServer(m)
	srv.PublicURL = "https://app.example.com" // the origin browsers see, for the CSRF check
	srv.Logger = slog.New(slog.DiscardHandler)
	api := srv.Handler()

	mux := http.NewServeMux()
	mux.Handle("/api/v1/", api)
	mux.Handle("/.well-known/jwks.json", api)
	mux.Handle("GET /hello", srv.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := sessiond.FromContext(r.Context())
		fmt.Fprintf(w, "hello from session %t\n", s.ID != "")
	})))
	ts := httptest.NewServer(mux)
	defer ts.Close()

	post := func(path, body string) *http.Response {
		resp, err := http.Post(ts.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			log.Fatal(err)
		}
		return resp
	}
	resp := post("/api/v1/auth/register", `{"username":"dana","email":"dana@example.com","password":"correct horse battery staple"}`)
	resp.Body.Close()
	fmt.Println("register:", resp.StatusCode)
	resp = post("/api/v1/auth/login", `{"username":"dana","password":"correct horse battery staple"}`)
	var login struct {
		Data struct {
			AccessToken string `json:"access_token"`
		} `json:"data"`
	}
	err = json.NewDecoder(resp.Body).Decode(&login)
	resp.Body.Close()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("login:", resp.StatusCode)

	req, _ := http.NewRequest("GET", ts.URL+"/hello", nil)
	req.Header.Set("Authorization", "Bearer "+login.Data.AccessToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Print("hello: ", resp.StatusCode, " ", string(body))
	// Output:
	// register: 201
	// login: 200
	// hello: 200 hello from session true
}
