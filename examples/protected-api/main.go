// Command protected-api is a small Go service that embeds sessiond as a
// library: users and sessions live in an SQLite file, sessiond's API is
// mounted on the service's own mux under /api/v1/, and the service's own
// GET /hello answers only signed-in users.
//
//	go run ./examples/protected-api -addr localhost:8081 -data ./data-example
//	curl -s localhost:8081/api/v1/auth/register -H 'Content-Type: application/json' \
//	    -d '{"username":"alice","email":"alice@example.com","password":"correct horse battery staple"}'
//	TOKEN=$(curl -s localhost:8081/api/v1/auth/login -H 'Content-Type: application/json' \
//	    -d '{"username":"alice","password":"correct horse battery staple"}' | jq -r .data.access_token)
//	curl -s localhost:8081/hello -H "Authorization: Bearer $TOKEN"
//	hello, alice (signed in on curl)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/sessiond/sessiond"
	sessiondhttp "github.com/sessiond/sessiond/http"
	"github.com/sessiond/sessiond/sqlite"
)

func main() {
	addr := flag.String("addr", "localhost:8081", "listen address")
	dir := flag.String("data", "./data-example", "directory of the SQLite file and the keys")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, *dir); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, addr, dir string) error {
	app, err := newApp(dir)
	if err != nil {
		return err
	}
	defer app.Close()

	hs := &http.Server{Addr: addr, Handler: app.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.ListenAndServe() }()
	slog.Info("listening", "addr", addr)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// app is the service: a sessiond Manager over SQLite, and the mux that
// serves sessiond's API beside the service's own routes.
type app struct {
	manager *sessiond.Manager
	handler http.Handler
	db      *sqlite.DB
}

// newApp opens (or creates) the SQLite file and the keys in dir. The keys
// are kept in files so that a restart keeps everyone signed in.
func newApp(dir string) (*app, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	signingKey, err := sessiond.LoadOrCreateSigningKey(filepath.Join(dir, "signing-key.pem"))
	if err != nil {
		return nil, err
	}
	refreshKey, err := sessiond.LoadOrCreateRefreshKey(filepath.Join(dir, "refresh-key"))
	if err != nil {
		return nil, err
	}
	db, err := sqlite.Open(filepath.Join(dir, "sessiond.db"))
	if err != nil {
		return nil, err
	}
	a := &app{db: db}
	// README: begin
	m := sessiond.NewManager(sessiond.Parts{
		Sessions: sqlite.NewSessionStore(db), // it throttles too, and sweeps expired rows
		Users:    sqlite.NewUserStore(db),
		Access:   sessiond.NewAccessTokens("my-app", signingKey),
		Refresh:  sessiond.NewRefreshTokens(refreshKey),
	})
	srv := sessiondhttp.NewServer(m)
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", srv.Handler())      // sign-up, sign-in, devices, ...
	mux.Handle("/.well-known/", srv.Handler()) // the JWKS, for services that verify tokens
	mux.Handle("GET /hello", srv.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := sessiond.FromContext(r.Context()) // the signed-in device
		u, err := m.User(r.Context(), s.UserID)
		if err != nil {
			http.Error(w, "try again shortly", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "hello, %s (signed in on %s)\n", u.Username, s.Device)
	})))
	// README: end
	a.manager, a.handler = m, mux
	return a, nil
}

// Close closes the database.
func (a *app) Close() error { return a.db.Close() }

// Handler routes sessiond's API and the service's own routes.
func (a *app) Handler() http.Handler { return a.handler }
