package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/geoip"
	sessiondhttp "github.com/sessiond/sessiond/http"
	"github.com/sessiond/sessiond/internal/adminkey"
	"github.com/sessiond/sessiond/mail"
	"github.com/sessiond/sessiond/prometheus"
	"github.com/sessiond/sessiond/sqlite"
	"github.com/sessiond/sessiond/web"
	"github.com/sessiond/sessiond/webhook"
)

// heartbeat is the event streams' heartbeat interval, 0 for the server's
// default; tests shorten it.
var heartbeat time.Duration

// stores is what a configuration opens.
type stores struct {
	sessions sessiond.SessionStore
	users    sessiond.UserStore
	limiter  sessiond.Limiter
	broker   sessiond.Broker
	activity sessiond.ActivityStore
	// sweep says whether expired sessions must be deleted by a sweeper.
	sweep bool
	close []func() error
}

func (s *stores) Close() error {
	var errs []error
	for i := len(s.close) - 1; i >= 0; i-- {
		errs = append(errs, s.close[i]())
	}
	return errors.Join(errs...)
}

// openStores opens the stores the configuration names: SQLite in the data
// directory by default.
func openStores(ctx context.Context, c *config, log *slog.Logger) (*stores, error) {
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	st := &stores{}
	db, err := sqlite.Open(filepath.Join(c.DataDir, "sessiond.db"))
	if err != nil {
		return nil, err
	}
	st.close = append(st.close, db.Close)
	st.sessions = sqlite.NewSessionStore(db)
	if !c.external() {
		// With the app's own users there is no user store: the SQLite
		// file's user table stays empty and unused.
		st.users = sqlite.NewUserStore(db)
	}
	st.limiter = sqlite.NewLimiter(db)
	st.activity = sqlite.NewActivityStore(db)
	st.broker = sessiond.NewLocalBroker()
	st.sweep = true
	if c.RedisURL != "" {
		if err := openRedis(ctx, c, st, log); err != nil {
			st.Close()
			return nil, err
		}
	}
	if c.DatabaseURL != "" && c.external() {
		log.Warn("SESSIOND_DATABASE_URL is ignored: with SESSIOND_USERS=external the users are the app's own and sessiond keeps none")
	} else if c.DatabaseURL != "" {
		if err := openPostgres(ctx, c, st, log); err != nil {
			st.Close()
			return nil, err
		}
	}
	return st, nil
}

// open opens the configured stores and builds a Manager on them, with the
// parts that adjust changes (nil: none); the caller closes the stores.
func open(ctx context.Context, c *config, log *slog.Logger, adjust func(*sessiond.Parts)) (*sessiond.Manager, *stores, error) {
	st, err := openStores(ctx, c, log)
	if err != nil {
		return nil, nil, err
	}
	m, err := newManager(c, st, log, adjust)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return m, st, nil
}

// newManager builds the Manager of a configuration on opened stores, with
// the parts that adjust changes (nil: none).
func newManager(c *config, st *stores, log *slog.Logger, adjust func(*sessiond.Parts)) (*sessiond.Manager, error) {
	var sk *sessiond.SigningKey
	var previous []ed25519.PublicKey
	var err error
	if c.SigningKeyFile != "" {
		sk, previous, err = readSigningKeys(c.SigningKeyFile)
	} else {
		sk, err = sessiond.LoadOrCreateSigningKey(filepath.Join(c.DataDir, "signing-key.pem"))
	}
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	var rk *sessiond.RefreshKey
	var retired []*sessiond.RefreshKey
	if c.RefreshKeyFile != "" {
		rk, retired, err = readRefreshKeys(c.RefreshKeyFile)
	} else {
		rk, err = sessiond.LoadOrCreateRefreshKey(filepath.Join(c.DataDir, "refresh-key"))
	}
	if err != nil {
		return nil, fmt.Errorf("refresh key: %w", err)
	}
	parts := sessiond.Parts{
		Sessions: st.sessions,
		Users:    st.users,
		Access:   sessiond.NewAccessTokens(c.Issuer, sk, previous...),
		Refresh:  sessiond.NewRefreshTokens(rk, retired...),
		Limiter:  st.limiter,
		Broker:   st.broker,
		Activity: st.activity,
	}
	if c.WebhookURL != "" {
		secret, err := webhook.LoadOrCreateSecret(c.WebhookSecret)
		if err != nil {
			return nil, fmt.Errorf("SESSIOND_WEBHOOK_SECRET_FILE: %w", err)
		}
		if parts.Webhooks, err = webhook.New(c.WebhookURL, secret); err != nil {
			return nil, fmt.Errorf("SESSIOND_WEBHOOK_URL: %w", err)
		}
	}
	if c.SMTPURL != "" {
		if c.external() {
			log.Warn("SESSIOND_SMTP_URL is ignored: with SESSIOND_USERS=external sessiond knows no e-mail addresses (the app tells its users, from the session.created webhook)")
		} else if parts.Mail, err = mail.New(c.SMTPURL, c.MailFrom); err != nil {
			return nil, fmt.Errorf("SESSIOND_SMTP_URL: %w", err)
		}
	}
	if adjust != nil {
		adjust(&parts)
	}
	m := sessiond.NewManager(parts)
	m.AccessTTL = c.AccessTTL
	m.IdleTimeout = c.IdleTimeout
	m.AbsoluteLifetime = c.AbsoluteLifetime
	m.RefreshGrace = c.RefreshGrace
	m.MaxSessions = c.MaxSessions
	m.CapPolicy = sessiond.CapPolicy(c.LimitPolicy)
	m.SignupOpen = c.Signup
	m.ReportURL = sessiondhttp.ReportURL(c.PublicURL, c.BasePath)
	m.Logger = log
	return m, nil
}

func newLogger(c *config, w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: c.logLevel()}))
}

// logLevel is SESSIOND_LOG_LEVEL's level.
func (c *config) logLevel() slog.Level {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	return level
}

// newServerLogger is newLogger for the server: its request lines are
// buffered (see bufferedLog), flushed until ctx ends; wait returns once
// the last flush is done.
func newServerLogger(ctx context.Context, c *config, w io.Writer) (log *slog.Logger, wait func()) {
	buf := newBufferedLog(w)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf.run(ctx)
	}()
	h := slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: c.logLevel()})
	return slog.New(flushingHandler{h, buf, true}), func() { <-done }
}

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs, c, check := newFlagSet("sessiond serve", getenv, stderr)
	if err := parseFlags(fs, "serve", stdout, stderr, fs.Parse, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve takes no arguments, got %q", fs.Args())
	}
	if err := check(); err != nil {
		return err
	}
	trusted, err := sessiondhttp.ParseTrustedProxies(c.TrustedProxies)
	if err != nil {
		return fmt.Errorf("SESSIOND_TRUSTED_PROXIES: %w", err)
	}
	// The log outlives everything else serve starts: its deferred stop
	// runs last and writes what is left.
	logCtx, stopLog := context.WithCancel(context.Background())
	log, waitLog := newServerLogger(logCtx, c, stdout)
	defer func() {
		stopLog()
		waitLog()
	}()
	metrics := prometheus.New()
	metrics.SetBuildInfo(buildParts(readBuildInfo(), runtime.Version()))
	var locator sessiond.Locator
	if c.GeoIPDB != "" {
		g, err := geoip.Open(c.GeoIPDB)
		if err != nil {
			return fmt.Errorf("SESSIOND_GEOIP_DB: %w", err)
		}
		defer g.Close()
		locator = g
	}
	m, st, err := open(ctx, c, log, func(p *sessiond.Parts) { p.Observer, p.Locator = metrics, locator })
	if err != nil {
		return err
	}
	defer st.Close()
	srv := sessiondhttp.NewServer(m)
	srv.TrustedProxies = trusted
	srv.PublicURL = c.PublicURL
	srv.BasePath = c.BasePath
	srv.LoginURL = c.LoginURL
	if srv.ReturnTo, err = sessiondhttp.ParseReturnRules(c.ReturnURLs, c.PublicURL); err != nil {
		return fmt.Errorf("SESSIOND_RETURN_URLS: %w", err)
	}
	srv.Logger = log
	srv.Page = web.Handler(web.Options{
		Signup: c.Signup && !c.external(), PublicURL: c.PublicURL,
		External: c.external(), LoginURL: c.LoginURL, BasePath: c.BasePath,
	})
	srv.MaxStreams = c.MaxStreams
	srv.CORSOrigins = c.CORSOrigins
	srv.HeartbeatInterval = heartbeat
	metrics.WatchOutbox(m.QueueStats)
	metrics.GaugeFunc("sessiond_event_streams_open", "Event streams this instance holds open.", func() float64 { return float64(srv.OpenStreams()) })
	if live, ok := st.sessions.(interface {
		CountLive(context.Context, time.Time) (int, error)
	}); ok {
		// Cheap on SQLite (one count over the expiry index); the Redis
		// store has no such count (it would need a SCAN of every key), so
		// there the gauge is absent: created minus ended tells the trend.
		metrics.GaugeFunc("sessiond_sessions_live", "Live sessions in the store (SQLite only).", func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			n, err := live.CountLive(ctx, time.Now())
			if err != nil {
				return math.NaN()
			}
			return float64(n)
		})
	}
	if lim := openFileLimit(); lim > 0 {
		var lowered bool
		if srv.MaxStreams, lowered = streamsWithin(c.MaxStreams, lim); lowered {
			log.Warn("event streams capped below SESSIOND_MAX_STREAMS by the limit of open files: raise the limit (ulimit -n, systemd LimitNOFILE=) to allow more",
				"max_streams", c.MaxStreams, "open_file_limit", lim, "streams_cap", srv.MaxStreams)
		}
	}
	srv.Metrics = metrics
	// /metrics is served on the admin listener only (docs/design.md,
	// "Admin API").

	// bg lives until serve returns: the sweeper and the keys watcher.
	bg, stopBg := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBg()
	newHTTPServer := func(h http.Handler) *http.Server {
		return &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    sessiondhttp.MaxHeaderBytes,
			// Requests in flight finish during a shutdown: their context
			// is not the one that a signal cancels.
			BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
			ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
	}
	var servers []*http.Server
	var listeners []net.Listener
	defer func() {
		for _, ln := range listeners {
			ln.Close()
		}
	}()

	// The admin listener first, so that its address is logged before the
	// public one's "sessiond listening" line, which tests and scripts wait
	// for.
	var adminLn net.Listener
	if c.AdminAddr != "off" {
		keys, err := adminkey.Open(c.AdminKeysFile, log)
		if err != nil {
			return fmt.Errorf("SESSIOND_ADMIN_KEYS_FILE: %w", err)
		}
		go keys.Watch(bg)
		if keys.Len() == 0 {
			log.Warn("the admin API has no keys yet: make one with sessiond admin-key new NAME", "admin_keys_file", c.AdminKeysFile)
		}
		admin := sessiondhttp.NewAdminServer(m, keys)
		// No trusted proxies here: the admin listener is reached by the
		// app's backend directly, and a proxy trusted for the public
		// listener must not choose the address that the throttle of
		// wrong admin keys counts (or that its log lines name).
		admin.Logger = log
		admin.Metrics = metrics
		admin.MetricsHandler = metrics.Handler()
		admin.PublicURL, admin.BasePath = srv.PublicURL, srv.BasePath
		if adminLn, err = net.Listen("tcp", c.AdminAddr); err != nil {
			return fmt.Errorf("SESSIOND_ADMIN_ADDR: %w", err)
		}
		listeners = append(listeners, adminLn)
		servers = append(servers, newHTTPServer(withPprof(admin.Handler(), c.Pprof)))
	}
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return err
	}
	listeners = append(listeners, ln)
	hs := newHTTPServer(srv.Handler())
	// Long-lived event streams end when shutdown starts, so it does not
	// wait for them (the page reconnects elsewhere).
	hs.RegisterOnShutdown(srv.StopStreams)
	servers = append(servers, hs)

	if st.sweep {
		go m.Sweep(bg, time.Minute)
	}
	// Deliveries stop before the stores close: a send cut off by the
	// exit would leave its user's lease held, delaying their events on
	// the other instances (or this one, restarted) by a minute.
	var delivering sync.WaitGroup
	delivering.Go(func() { m.Deliver(bg) })
	defer func() {
		stopBg()
		delivering.Wait()
	}()
	errc := make(chan error, len(servers))
	for i, s := range servers {
		go func() { errc <- s.Serve(listeners[i]) }()
	}
	if adminLn != nil {
		log.Info("sessiond admin listening", "addr", adminLn.Addr().String(), "url", "http://"+displayAddr(adminLn.Addr().String()))
	} else {
		log.Info("sessiond admin listener off (SESSIOND_ADMIN_ADDR=off)")
	}
	log.Info("sessiond listening", "addr", ln.Addr().String(), "url", "http://"+displayAddr(ln.Addr().String()), "users", c.Users)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errs := make(chan error, len(servers))
	for _, s := range servers {
		go func() { errs <- s.Shutdown(shutCtx) }()
	}
	var shutErr error
	for range servers {
		shutErr = errors.Join(shutErr, <-errs)
	}
	return shutErr
}

// displayAddr makes a listen address clickable: an unspecified host
// becomes localhost.
func displayAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return host + ":" + port
}

// readSigningKeys reads SESSIOND_SIGNING_KEY_FILE: one or more PKCS#8 PEM
// Ed25519 keys. The first signs; the others only verify, so tokens signed
// before a rotation stay valid until they expire.
func readSigningKeys(path string) (*sessiond.SigningKey, []ed25519.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var current *sessiond.SigningKey
	var previous []ed25519.PublicKey
	for n := 1; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		k, err := sessiond.ParseSigningKey(pem.EncodeToMemory(block))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: key %d: %w", path, n, err)
		}
		if current == nil {
			current = k
		} else {
			previous = append(previous, k.Key.Public().(ed25519.PublicKey))
		}
	}
	if current == nil || len(bytes.TrimSpace(data)) > 0 {
		return nil, nil, fmt.Errorf("%s: want one or more PKCS#8 PEM Ed25519 private keys", path)
	}
	return current, previous, nil
}

// readRefreshKeys reads SESSIOND_REFRESH_KEY_FILE: one base64 key per line.
// The first mints new tokens; the others (retired keys) still verify.
func readRefreshKeys(path string) (*sessiond.RefreshKey, []*sessiond.RefreshKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var keys []*sessiond.RefreshKey
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := sessiond.ParseRefreshKey([]byte(line))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: line %d: %w", path, n+1, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, nil, fmt.Errorf("%s: want one or more base64 keys of 32 bytes, one per line", path)
	}
	return keys[0], keys[1:], nil
}
