// Package sessiondtest builds what the tests of every package need around
// a sessiond.Manager: the Manager itself on real stores (NewManager), an
// HTTP server over it (StartServer) and a client of the API that checks
// every answer against docs/openapi.yaml (NewClient).
package sessiondtest

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/redis"
	"github.com/sessiond/sessiond/sqlite"
)

// Options say what a test Manager runs on. The zero value is a Manager
// with every store in a fresh SQLite file, fresh keys, the default password
// hashing and settings, real time and a logger that discards.
type Options struct {
	// DB holds the stores that are not given below. Nil opens a fresh
	// SQLite file, closed when the test ends.
	DB       *sqlite.DB
	Sessions sessiond.SessionStore
	Users    sessiond.UserStore
	// Limiter keeps the throttles' counts; nil keeps them in DB, unless
	// NoLimiter, which leaves the Manager without throttles.
	Limiter   sessiond.Limiter
	NoLimiter bool
	// Broker carries events between Managers; nil is a LocalBroker.
	Broker sessiond.Broker
	// Observer is told what the Manager does; nil: nobody is.
	Observer sessiond.Observer
	// Locator finds client locations; nil: none.
	Locator sessiond.Locator
	// Activity keeps the security history and the outbox; nil: the
	// Manager records no security activity.
	Activity sessiond.ActivityStore
	// Webhooks receives the webhooks the Manager delivers (when a test
	// runs Deliver); with Activity, its events wait in the outbox.
	Webhooks sessiond.Sender
	// ExternalUsers builds a Manager with no user store: the users are
	// the app's own (Users and DB's user store are not used).
	ExternalUsers bool
	// RecordActivity, without Activity, records security activity where
	// the sessions are, as the binary does.
	RecordActivity bool
	// Mail sends the outbox's e-mails (with Activity or RecordActivity).
	Mail sessiond.Sender

	// Issuer is the access tokens' iss and aud; "" is "sessiond", the
	// binary's default.
	Issuer string
	// SigningKey and RefreshKey are the Manager's keys; nil generates
	// one. Managers standing for the instances of one deployment share
	// them.
	SigningKey *sessiond.SigningKey
	RefreshKey *sessiond.RefreshKey

	// CheapHashing makes password hashing take microseconds, for tests
	// that are not about its cost.
	CheapHashing bool
	// Now is the Manager's clock; nil is time.Now.
	Now func() time.Time
	// Logger is the Manager's logger; nil discards.
	Logger *slog.Logger
}

// Env is a test Manager and what it was built on, so that a test can look
// at the stores themselves rather than through the Manager.
type Env struct {
	Manager *sessiond.Manager

	Issuer     string
	DB         *sqlite.DB // holds the stores Options did not give; nil if it gave all
	Sessions   sessiond.SessionStore
	Users      sessiond.UserStore
	Limiter    sessiond.Limiter // nil when Options.NoLimiter
	Broker     sessiond.Broker
	Activity   sessiond.ActivityStore // nil unless Options.Activity or RecordActivity
	SigningKey *sessiond.SigningKey
	RefreshKey *sessiond.RefreshKey
}

// OpenSQLite opens a fresh SQLite file in a temporary directory, closed
// when t ends.
func OpenSQLite(t testing.TB) *sqlite.DB {
	t.Helper()
	return OpenSQLiteAt(t, filepath.Join(t.TempDir(), "sessiond.db"))
}

// OpenSQLiteAt opens the SQLite file at path, closed when t ends.
func OpenSQLiteAt(t testing.TB, path string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// NewManager builds a Manager as o says. It is the one place tests wire a
// Manager.
func NewManager(t testing.TB, o Options) *Env {
	t.Helper()
	e := &Env{DB: o.DB, Sessions: o.Sessions, Users: o.Users, Limiter: o.Limiter, Broker: o.Broker, SigningKey: o.SigningKey, RefreshKey: o.RefreshKey}
	if e.DB == nil && (e.Sessions == nil || e.Users == nil || (e.Limiter == nil && !o.NoLimiter)) {
		e.DB = OpenSQLite(t)
	}
	if e.Sessions == nil {
		e.Sessions = sqlite.NewSessionStore(e.DB)
	}
	if e.Users == nil {
		e.Users = sqlite.NewUserStore(e.DB)
	}
	if e.Limiter == nil && !o.NoLimiter {
		e.Limiter = sqlite.NewLimiter(e.DB)
	}
	limiter := e.Limiter
	if o.NoLimiter {
		limiter = sessiond.NoThrottles
	}
	if e.Broker == nil {
		e.Broker = sessiond.NewLocalBroker()
	}
	var err error
	if e.SigningKey == nil {
		if e.SigningKey, err = sessiond.GenerateSigningKey(); err != nil {
			t.Fatal(err)
		}
	}
	if e.RefreshKey == nil {
		if e.RefreshKey, err = sessiond.GenerateRefreshKey(); err != nil {
			t.Fatal(err)
		}
	}
	issuer := o.Issuer
	if issuer == "" {
		issuer = "sessiond"
	}
	users := e.Users
	if o.ExternalUsers {
		users = nil
	}
	activity := o.Activity
	if activity == nil && o.RecordActivity {
		// Where the sessions are: the Redis store is one; on SQLite it is
		// a store of its own on the same file.
		switch a, ok := e.Sessions.(sessiond.ActivityStore); {
		case ok:
			activity = a
		case e.DB != nil:
			activity = sqlite.NewActivityStore(e.DB)
		default:
			t.Fatalf("sessiondtest: no activity store for sessions in %T", e.Sessions)
		}
	}
	e.Activity = activity
	m := sessiond.NewManager(sessiond.Parts{
		Sessions: e.Sessions,
		Users:    users,
		Access:   sessiond.NewAccessTokens(issuer, e.SigningKey),
		Refresh:  sessiond.NewRefreshTokens(e.RefreshKey),
		Limiter:  limiter,
		Broker:   e.Broker,
		Observer: o.Observer,
		Locator:  o.Locator,
		Activity: activity,
		Webhooks: o.Webhooks,
		Mail:     o.Mail,
	})
	if o.CheapHashing {
		m.Hasher = sessiond.NewPasswordHasher(sessiond.Argon2Params{Memory: 64, Time: 1, Threads: 1})
	}
	if o.Now != nil {
		m.Now = o.Now
	}
	m.Logger = o.Logger
	if m.Logger == nil {
		m.Logger = slog.New(slog.DiscardHandler)
	}
	e.Issuer = issuer
	e.Manager = m
	return e
}

// Peer returns Options for another instance of e's deployment: the same
// SQLite file, issuer and keys, as two processes given the same data
// directory share them. Stores given to e are not shared: give the peer
// its own (OnRedis) or it gets the SQLite file's.
func (e *Env) Peer() Options {
	return Options{DB: e.DB, Issuer: e.Issuer, SigningKey: e.SigningKey, RefreshKey: e.RefreshKey}
}

// OnRedis returns o with sessions, throttles and events in Redis, on a
// Store of their own closed when t ends, as the binary keeps them when
// given SESSIOND_REDIS_URL; users stay where o puts them. A zero
// ro.Timeout is 2 s: tests share busy cores, and a generous deadline
// keeps them about what they test.
func OnRedis(t testing.TB, o Options, ro redis.Options) Options {
	t.Helper()
	if ro.Timeout == 0 {
		ro.Timeout = 2 * time.Second
	}
	st, err := redis.New(context.Background(), ro)
	if err != nil {
		t.Fatalf("redis.New: %v", err)
	}
	t.Cleanup(st.Close)
	o.Sessions, o.Limiter, o.Broker = st, redis.NewLimiter(st), redis.NewBroker(st)
	return o
}
