package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/redis/rueidis"

	"github.com/sessiond/sessiond"
	sessiondhttp "github.com/sessiond/sessiond/http"
	"github.com/sessiond/sessiond/redis"
	"github.com/sessiond/sessiond/sqlite"
)

// The peers are the handlers a reader needs to judge sessiond's figures:
// small servers written here, each run as its own process (this program,
// started again with -serve-peer), as the sessiond binary is, so that each
// has its own runtime and none shares the load generator's. Every one
// answers GET / for a Bearer token with a small JSON body.
const (
	// peerBare answers without looking at the token: net/http alone.
	peerBare = "bare"
	// peerHS256 and peerEdDSA verify a JWT with golang-jwt, and check no
	// revocation: the stateless design.
	peerHS256 = "hs256"
	peerEdDSA = "eddsa"
	// peerJWTRedis verifies an HS256 JWT and asks Redis whether its
	// session still exists (EXISTS, one round trip per request, through
	// rueidis without client-side caching): the usual design of
	// revocable JWTs.
	peerJWTRedis = "jwt-redis"
	// peerLibSQLite and peerLibRedis are sessiond's Go middleware
	// (http.Middleware) in front of the bare handler, sessions in SQLite
	// or in Redis.
	peerLibSQLite = "lib-sqlite"
	peerLibRedis  = "lib-redis"
)

// peerHello is the line a peer prints when it listens.
type peerHello struct {
	Addr   string   `json:"addr"`
	Tokens []string `json:"tokens"`
}

const peerIssuer = "bench-peer"

// peerAnswer is what every peer answers.
func peerAnswer(w http.ResponseWriter, userID string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	w.Write([]byte(`{"user_id":"` + userID + `"}` + "\n"))
}

type peerClaims struct {
	SessionID string `json:"sid"`
	jwt.RegisteredClaims
}

// servePeer is the -serve-peer mode: it prepares kind's state in dir (keys,
// tokens for n devices, sessions), listens on a loopback port, prints a
// peerHello line and serves until SIGTERM.
func servePeer(kind, dir, redisURL string, n int) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	h, tokens, closeFn, err := newPeer(ctx, kind, dir, redisURL, n)
	if err != nil {
		return err
	}
	defer closeFn()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); srv.Close() }()
	hello, _ := json.Marshal(peerHello{Addr: ln.Addr().String(), Tokens: tokens})
	fmt.Println(string(hello))
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// newPeer returns kind's handler and n access tokens it accepts.
func newPeer(ctx context.Context, kind, dir, redisURL string, n int) (http.Handler, []string, func(), error) {
	nop := func() {}
	switch kind {
	case peerBare:
		tokens, _, err := hs256Tokens(n)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { peerAnswer(w, "user-0") }), tokens, nop, err
	case peerHS256:
		tokens, key, err := hs256Tokens(n)
		if err != nil {
			return nil, nil, nil, err
		}
		return jwtHandler(jwt.SigningMethodHS256.Alg(), key, nil), tokens, nop, nil
	case peerEdDSA:
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, nil, err
		}
		tokens := make([]string, n)
		for i := range tokens {
			if tokens[i], err = peerToken(jwt.SigningMethodEdDSA, priv, i); err != nil {
				return nil, nil, nil, err
			}
		}
		return jwtHandler(jwt.SigningMethodEdDSA.Alg(), pub, nil), tokens, nop, nil
	case peerJWTRedis:
		tokens, key, err := hs256Tokens(n)
		if err != nil {
			return nil, nil, nil, err
		}
		opt, err := rueidis.ParseURL(redisURL)
		if err != nil {
			return nil, nil, nil, err
		}
		opt.DisableCache = true
		c, err := rueidis.NewClient(opt)
		if err != nil {
			return nil, nil, nil, err
		}
		// The sessions exist, as a login would have written them.
		for i := range n {
			if err := c.Do(ctx, c.B().Set().Key(peerSessionKey(i)).Value("user-0").Ex(time.Hour).Build()).Error(); err != nil {
				c.Close()
				return nil, nil, nil, err
			}
		}
		exists := func(r *http.Request, cl *peerClaims) (bool, error) {
			return c.Do(r.Context(), c.B().Exists().Key("bench:session:"+cl.SessionID).Build()).AsBool()
		}
		return jwtHandler(jwt.SigningMethodHS256.Alg(), key, exists), tokens, c.Close, nil
	case peerLibSQLite, peerLibRedis:
		return libraryPeer(ctx, kind, dir, redisURL, n)
	}
	return nil, nil, nil, fmt.Errorf("unknown peer %q", kind)
}

func peerSessionKey(i int) string { return fmt.Sprintf("bench:session:s%d", i) }

// hs256Tokens makes a random HS256 key and n tokens signed with it.
func hs256Tokens(n int) ([]string, []byte, error) {
	key := make([]byte, 32)
	rand.Read(key)
	tokens := make([]string, n)
	for i := range tokens {
		var err error
		if tokens[i], err = peerToken(jwt.SigningMethodHS256, key, i); err != nil {
			return nil, nil, err
		}
	}
	return tokens, key, nil
}

// peerToken signs the claims of device i: those of sessiond's access
// tokens (iss, aud, sub, sid, iat, exp).
func peerToken(m jwt.SigningMethod, key any, i int) (string, error) {
	now := time.Now()
	c := peerClaims{
		SessionID: fmt.Sprintf("s%d", i),
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: peerIssuer, Audience: jwt.ClaimStrings{peerIssuer}, Subject: fmt.Sprintf("user-%d", i%4),
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
		},
	}
	return jwt.NewWithClaims(m, c).SignedString(key)
}

// jwtHandler verifies the Bearer token with golang-jwt (algorithm alg,
// issuer, audience, expiry required) and, when exists is set, asks it
// whether the session still exists.
func jwtHandler(alg string, key any, exists func(*http.Request, *peerClaims) (bool, error)) http.Handler {
	parser := jwt.NewParser(jwt.WithValidMethods([]string{alg}), jwt.WithIssuer(peerIssuer), jwt.WithAudience(peerIssuer), jwt.WithExpirationRequired())
	keyFunc := func(*jwt.Token) (any, error) { return key, nil }
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		var c peerClaims
		if _, err := parser.ParseWithClaims(tok, &c, keyFunc); err != nil {
			http.Error(w, "invalid token", http.StatusUnauthorized)
			return
		}
		if exists != nil {
			ok, err := exists(r, &c)
			if err != nil {
				http.Error(w, "store unavailable", http.StatusServiceUnavailable)
				return
			}
			if !ok {
				http.Error(w, "session ended", http.StatusUnauthorized)
				return
			}
		}
		peerAnswer(w, c.Subject)
	})
}

// libraryPeer is sessiond's Middleware over a Manager with users in SQLite
// and sessions in SQLite or Redis, and n devices signed in.
func libraryPeer(ctx context.Context, kind, dir, redisURL string, n int) (http.Handler, []string, func(), error) {
	db, err := sqlite.Open(filepath.Join(dir, "sessiond.db"))
	if err != nil {
		return nil, nil, nil, err
	}
	sk, err := sessiond.GenerateSigningKey()
	if err != nil {
		return nil, nil, nil, err
	}
	rk, err := sessiond.GenerateRefreshKey()
	if err != nil {
		return nil, nil, nil, err
	}
	parts := sessiond.Parts{
		Sessions: sqlite.NewSessionStore(db),
		Users:    sqlite.NewUserStore(db),
		Access:   sessiond.NewAccessTokens(peerIssuer, sk),
		Refresh:  sessiond.NewRefreshTokens(rk),
		Limiter:  sessiond.NoThrottles,
	}
	closeFn := func() { db.Close() }
	if kind == peerLibRedis {
		rs, err := redis.New(ctx, redis.Options{URL: redisURL})
		if err != nil {
			db.Close()
			return nil, nil, nil, err
		}
		parts.Sessions = rs
		closeFn = func() { rs.Close(); db.Close() }
	}
	m := sessiond.NewManager(parts)
	m.Logger = slog.New(slog.DiscardHandler)
	const users, password = 4, "correct horse battery staple"
	for u := range users {
		name := fmt.Sprintf("peer%d", u)
		if _, err := m.Register(ctx, sessiond.RegisterRequest{Username: name, Email: name + "@example.com", Password: password}); err != nil {
			closeFn()
			return nil, nil, nil, err
		}
	}
	tokens := make([]string, n)
	for i := range tokens {
		g, err := m.Login(ctx, sessiond.LoginRequest{Login: fmt.Sprintf("peer%d", i%users), Password: password,
			DeviceID: fmt.Sprintf("device-%d", i), UserAgent: "bench", ClientIP: "127.0.0.1"})
		if err != nil {
			closeFn()
			return nil, nil, nil, err
		}
		tokens[i] = g.AccessToken
	}
	h := sessiondhttp.Middleware(m)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := sessiond.FromContext(r.Context())
		peerAnswer(w, s.UserID)
	}))
	return h, tokens, closeFn, nil
}

// peerProcess is a peer started by the benchmark.
type peerProcess struct {
	URL    string
	Tokens []string
	cmd    *exec.Cmd
	done   chan struct{}
	stderr *tailBuffer
}

// startPeer runs this program again with -serve-peer kind and waits for
// its peerHello.
func startPeer(kind, dir, redisURL string, n int) (*peerProcess, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-serve-peer", kind, "-peer-dir", dir, "-peer-redis", redisURL, "-c", fmt.Sprint(n))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &peerProcess{cmd: cmd, done: make(chan struct{}), stderr: &tailBuffer{}}
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start peer %s: %w", kind, err)
	}
	hello := make(chan peerHello, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		for sc.Scan() {
			var h peerHello
			if json.Unmarshal(sc.Bytes(), &h) == nil && h.Addr != "" {
				hello <- h
			}
		}
	}()
	go func() { cmd.Wait(); close(p.done) }()
	select {
	case h := <-hello:
		p.URL, p.Tokens = "http://"+h.Addr, h.Tokens
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("peer %s exited: %s", kind, p.stderr.String())
	case <-time.After(60 * time.Second):
		p.Stop()
		return nil, fmt.Errorf("peer %s did not listen within 60 s: %s", kind, p.stderr.String())
	}
}

// Stop ends the peer (SIGTERM, then SIGKILL after 5 s).
func (p *peerProcess) Stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}
