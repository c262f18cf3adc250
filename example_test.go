package sessiond_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/sqlite"
)

// exampleManager returns a Manager over a new SQLite file in dir, with fresh
// keys. A real service keeps its keys (sessiond.LoadOrCreateSigningKey and
// sessiond.LoadOrCreateRefreshKey) so that restarts keep tokens valid.
func exampleManager(dir string) (*sessiond.Manager, func()) {
	return exampleManagerFor(dir, true)
}

// exampleManagerFor is exampleManager, with sessiond's own users or not.
func exampleManagerFor(dir string, ownUsers bool) (*sessiond.Manager, func()) {
	db, err := sqlite.Open(filepath.Join(dir, "sessiond.db"))
	if err != nil {
		log.Fatal(err)
	}
	sk, err := sessiond.GenerateSigningKey()
	if err != nil {
		log.Fatal(err)
	}
	rk, err := sessiond.GenerateRefreshKey()
	if err != nil {
		log.Fatal(err)
	}
	parts := sessiond.Parts{
		Sessions: sqlite.NewSessionStore(db),
		Users:    sqlite.NewUserStore(db),
		Access:   sessiond.NewAccessTokens("example", sk),
		Refresh:  sessiond.NewRefreshTokens(rk),
		// No Limiter: the store's throttles (sessiond.NoThrottles turns
		// them off).
	}
	if !ownUsers {
		parts.Users = nil // the app's own users
	}
	m := sessiond.NewManager(parts)
	m.Logger = slog.New(slog.DiscardHandler)
	return m, func() { db.Close() }
}

// exampleAppManager is exampleManager for the app's own users: no user
// store, any well-formed id is a user.
func exampleAppManager(dir string) (*sessiond.Manager, func()) {
	return exampleManagerFor(dir, false)
}

// A Manager over the embedded SQLite store: register a user, sign in from a
// device, and authenticate the access token of that sign-in, as every
// request does.
func ExampleNewManager() {
	dir, err := os.MkdirTemp("", "sessiond-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := sqlite.Open(filepath.Join(dir, "sessiond.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	sk, err := sessiond.LoadOrCreateSigningKey(filepath.Join(dir, "signing-key.pem"))
	if err != nil {
		log.Fatal(err)
	}
	rk, err := sessiond.LoadOrCreateRefreshKey(filepath.Join(dir, "refresh-key"))
	if err != nil {
		log.Fatal(err)
	}
	m := sessiond.NewManager(sessiond.Parts{
		Sessions: sqlite.NewSessionStore(db),
		Users:    sqlite.NewUserStore(db),
		Access:   sessiond.NewAccessTokens("https://auth.example.com", sk),
		Refresh:  sessiond.NewRefreshTokens(rk),
		Limiter:  sqlite.NewLimiter(db),
	})
	m.Logger = slog.New(slog.DiscardHandler)

	ctx := context.Background()
	u, err := m.Register(ctx, sessiond.RegisterRequest{
		Username: "alice", Email: "alice@example.com", Password: "correct horse battery staple",
	})
	if err != nil {
		log.Fatal(err)
	}
	g, err := m.Login(ctx, sessiond.LoginRequest{
		Login: "alice@example.com", Password: "correct horse battery staple",
		UserAgent: "curl/8.5.0", ClientIP: "192.0.2.1",
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("signed in on", g.Session.Device)

	s, claims, err := m.Authenticate(ctx, g.AccessToken)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("token names the session:", s.ID == g.Session.ID && claims.SessionID == s.ID)
	fmt.Println("session belongs to alice:", s.UserID == u.ID)

	_, err = m.Login(ctx, sessiond.LoginRequest{Login: "alice", Password: "wrong password"})
	fmt.Println("wrong password:", errors.Is(err, sessiond.ErrInvalidCredentials))
	// Output:
	// signed in on curl
	// token names the session: true
	// session belongs to alice: true
	// wrong password: true
}

// Sign out every other device, as after a lost phone: their access tokens
// are refused on their next request and their refresh tokens no longer work.
func ExampleManager_RevokeOthers() {
	dir, err := os.MkdirTemp("", "sessiond-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	m, done := exampleManager(dir)
	defer done()

	ctx := context.Background()
	u, err := m.Register(ctx, sessiond.RegisterRequest{
		Username: "bob", Email: "bob@example.com", Password: "correct horse battery staple",
	})
	if err != nil {
		log.Fatal(err)
	}
	login := func(userAgent string) *sessiond.Grant {
		g, err := m.Login(ctx, sessiond.LoginRequest{Login: "bob", Password: "correct horse battery staple", UserAgent: userAgent})
		if err != nil {
			log.Fatal(err)
		}
		return g
	}
	laptop := login("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0")
	phone := login("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1")
	tablet := login("Mozilla/5.0 (Linux; Android 14; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36")

	n, err := m.RevokeOthers(ctx, u.ID, laptop.Session.ID, sessiond.ReasonRevokedOthers)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("signed out:", n)

	for _, g := range []*sessiond.Grant{laptop, phone, tablet} {
		_, _, err := m.Authenticate(ctx, g.AccessToken)
		fmt.Printf("%s: refused=%v\n", g.Session.Device, errors.Is(err, sessiond.ErrInvalidToken))
	}
	_, err = m.RefreshSession(ctx, phone.RefreshToken, "")
	fmt.Println("phone refresh refused:", errors.Is(err, sessiond.ErrInvalidToken))

	list, err := m.List(ctx, u.ID, laptop.Session.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("devices left:", len(list), list[0].Device)
	// Output:
	// signed out: 2
	// Firefox on Linux: refused=false
	// Safari on iPhone: refused=true
	// Chrome on Android: refused=true
	// phone refresh refused: true
	// devices left: 1 Firefox on Linux
}

// Refresh exchanges the refresh token for new tokens; the old refresh token
// is spent, and replaying it after the grace window ends the session.
func ExampleManager_RefreshSession() {
	dir, err := os.MkdirTemp("", "sessiond-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	m, done := exampleManager(dir)
	defer done()
	now := time.Now()
	m.Now = func() time.Time { return now } // the clock is a field, so time can be moved

	ctx := context.Background()
	if _, err := m.Register(ctx, sessiond.RegisterRequest{
		Username: "carol", Email: "carol@example.com", Password: "correct horse battery staple",
	}); err != nil {
		log.Fatal(err)
	}
	g, err := m.Login(ctx, sessiond.LoginRequest{Login: "carol", Password: "correct horse battery staple"})
	if err != nil {
		log.Fatal(err)
	}
	next, err := m.RefreshSession(ctx, g.RefreshToken, "192.0.2.1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("same session, new refresh token:", next.Session.ID == g.Session.ID && next.RefreshToken != g.RefreshToken)

	// Someone replays the spent token after the grace window (10 s) that
	// covers a client's retries: the session ends for everyone.
	now = now.Add(m.RefreshGrace + time.Second)
	_, err = m.RefreshSession(ctx, g.RefreshToken, "198.51.100.7")
	fmt.Println("replay refused:", errors.Is(err, sessiond.ErrInvalidToken))
	_, _, err = m.Authenticate(ctx, next.AccessToken)
	fmt.Println("session ended:", errors.Is(err, sessiond.ErrInvalidToken))
	// Output:
	// same session, new refresh token: true
	// replay refused: true
	// session ended: true
}

// An app that signs its users in itself (its own passwords, OAuth, SSO,
// passkeys) starts a session for its user id once it knows who the person
// is; sessiond does the rest. A Manager without a user store serves such
// users: any id of 1-128 printable ASCII characters is one.
func ExampleManager_StartSession() {
	dir, err := os.MkdirTemp("", "sessiond-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := sqlite.Open(filepath.Join(dir, "sessiond.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	sk, err := sessiond.GenerateSigningKey()
	if err != nil {
		log.Fatal(err)
	}
	rk, err := sessiond.GenerateRefreshKey()
	if err != nil {
		log.Fatal(err)
	}
	m := sessiond.NewManager(sessiond.Parts{
		Sessions: sqlite.NewSessionStore(db), // no Users: they are the app's
		Access:   sessiond.NewAccessTokens("https://auth.example.com", sk),
		Refresh:  sessiond.NewRefreshTokens(rk),
	})
	m.Logger = slog.New(slog.DiscardHandler)

	// The app has checked the password (or the OAuth callback) of its user
	// "auth0|5f7c"; it passes on what it saw of the end user's device.
	ctx := context.Background()
	g, err := m.StartSession(ctx, sessiond.StartRequest{
		UserID:    "auth0|5f7c",
		UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
		ClientIP:  "192.0.2.1",
		Claims:    map[string]any{"org": "acme"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("signed in on", g.Session.Device, "with claims", string(g.Session.Claims))

	s, c, err := m.Authenticate(ctx, g.AccessToken)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("token of", c.Subject, "for session", s.ID == g.Session.ID)

	// The app's own password changes: every session ends.
	n, err := m.RevokeAll(ctx, "auth0|5f7c", sessiond.ReasonPasswordChanged)
	if err != nil {
		log.Fatal(err)
	}
	_, _, err = m.Authenticate(ctx, g.AccessToken)
	fmt.Println("ended:", n, errors.Is(err, sessiond.ErrInvalidToken))
	// Output:
	// signed in on Safari on iPhone with claims {"org":"acme"}
	// token of auth0|5f7c for session true
	// ended: 1 true
}

// An app that signs its users in itself and serves browsers hands the new
// session to the user's browser instead of holding its tokens: it starts
// a handoff and redirects the browser to the handoff URL with the code,
// where sessiond's HTTP server redeems it once and sets the browser's
// token cookies (see sessiondhttp.HandoffURL). Here the redeem is called
// directly.
func ExampleManager_StartHandoff() {
	dir, err := os.MkdirTemp("", "sessiond-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	m, done := exampleAppManager(dir)
	defer done()

	ctx := context.Background()
	h, err := m.StartHandoff(ctx, sessiond.StartRequest{UserID: "auth0|5f7c"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("code works for", h.ExpiresIn)

	// The browser arrives with the code.
	g, err := m.RedeemHandoff(ctx, h.Code)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("tokens for the session:", g.Session.ID == h.Session.ID)

	// Anyone arriving with it again ends the session.
	_, err = m.RedeemHandoff(ctx, h.Code)
	_, _, authErr := m.Authenticate(ctx, g.AccessToken)
	fmt.Println(errors.Is(err, sessiond.ErrHandoffInvalid), errors.Is(authErr, sessiond.ErrInvalidToken))
	// Output:
	// code works for 1m0s
	// tokens for the session: true
	// true true
}
