package sessiond

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Default lifetimes and limits (docs/design.md, "Lifetimes and limits").
const (
	DefaultAccessTTL        = 15 * time.Minute
	DefaultIdleTimeout      = 14 * 24 * time.Hour
	DefaultAbsoluteLifetime = 30 * 24 * time.Hour
	DefaultRefreshGrace     = 10 * time.Second
	DefaultMaxSessions      = 50
	defaultActivityInterval = time.Minute
	defaultReadyInterval    = 2 * time.Second
	defaultSweepInterval    = time.Minute
)

// Manager implements sign-up, sign-in, refresh, validation and revocation.
// It is the only way in: the HTTP layer and the binary call its methods and
// never its stores, broker, limiter or token issuers, which go in through
// NewManager and stay its own. Build it with NewManager, adjust the exported
// settings before first use; it is safe for concurrent use afterwards.
type Manager struct {
	sessions SessionStore
	users    UserStore
	access   *AccessTokens
	refresh  *RefreshTokens
	broker   Broker
	limiter  Limiter
	observer Observer
	locator  Locator
	activity ActivityStore
	senders  map[string]Sender // by queue; nil: the queue is off
	delivery delivery

	// Hasher hashes passwords; default: argon2id with DefaultArgon2.
	Hasher *PasswordHasher
	// Throttles are the throttle limits; the default of each is in its
	// comment.
	Throttles Throttles

	// AccessTTL is the access token lifetime (default 15 min); a token
	// never outlives its session.
	AccessTTL time.Duration
	// IdleTimeout ends a session after this long without activity
	// (default 14 days).
	IdleTimeout time.Duration
	// AbsoluteLifetime ends a session this long after login whatever its
	// activity (default 30 days); 0 means no absolute limit (weaker).
	AbsoluteLifetime time.Duration
	// RefreshGrace is how long a just-rotated refresh token may be
	// replayed and get the same successor (default 10 s).
	RefreshGrace time.Duration
	// MaxSessions caps the sessions of one user (default 50). It is never
	// more than HardMaxSessions: a value <= 0 or above it means
	// HardMaxSessions, and CapPolicy applies there as at any cap.
	MaxSessions int
	// CapPolicy says what happens at the cap (default PolicyEvict).
	CapPolicy CapPolicy
	// ActivityInterval is the least time between two activity writes of
	// one session (default 1 min).
	ActivityInterval time.Duration
	// SignupOpen says whether Register accepts new users (default true).
	SignupOpen bool
	// ReadyInterval is the least time between two write probes of Ready
	// (default 2 s); in between, Ready answers the last probe's result.
	ReadyInterval time.Duration
	// SweepInterval is the least time between two sweeps of expired
	// sessions that new sessions start in the background (default 1
	// min; <= 0: none, for a caller that runs Sweep itself). Stores whose
	// keys expire by themselves (Redis) have nothing to sweep; the SQLite
	// store would otherwise keep every expired row.
	SweepInterval time.Duration

	// ReportURL is the address of the "not me" page that report links
	// point to, with ?t=<token> appended (default "/report"); the binary
	// sets it to its public URL and base path.
	ReportURL string
	// DeliveryBackoff is the wait after each failed delivery of a webhook
	// or an e-mail, the last one repeating until DeliveryHorizon (default
	// DefaultDeliveryBackoff).
	DeliveryBackoff []time.Duration
	// DeliveryPoll is how often Deliver looks for messages that other
	// instances recorded or that are due for a retry (default 1 s); this
	// instance's own go out at once.
	DeliveryPoll time.Duration
	// DeliveryLease is how long a user's queue stays with the instance
	// delivering it (default 1 min), renewed before each send: after an
	// instance dies, others take over its queues within it.
	DeliveryLease time.Duration

	// Logger receives audit lines; default slog.Default().
	Logger *slog.Logger
	// Now is the clock; default time.Now. It is the only clock that
	// decides lifetimes, the HTTP layer's included.
	Now func() time.Time

	ready        readiness
	sweep        lazySweep
	accountTurns keyedTurns  // sign-ins of one account, one at a time (verifyPassword)
	told         toldNotices // accounts whose throttle notice is told (loginThrottled)
}

// Parts are what a Manager is built on. Sessions, Access and Refresh are
// required; the rest are optional.
type Parts struct {
	Sessions SessionStore
	// Users keeps sessiond's own users and passwords; nil: the users are
	// the app's own, and sessions start with StartSession (see
	// ExternalUsers).
	Users UserStore
	// Access issues and verifies access tokens.
	Access *AccessTokens
	// Refresh mints and parses refresh tokens.
	Refresh *RefreshTokens
	// Limiter backs the throttles. Nil: the limiter of Sessions when it
	// is a LimiterSource (the SQLite and Redis stores are), else none;
	// NoThrottles turns them off.
	Limiter Limiter
	// Broker carries session events; nil: an in-process LocalBroker, for a
	// single instance.
	Broker Broker
	// Observer is told about logins, refreshes and revocations, for
	// metrics; nil: nobody is.
	Observer Observer
	// Locator finds the location of a client address; nil: sessions have
	// no location.
	Locator Locator
	// Activity keeps the security history, the devices and places users
	// signed in from, and the outbox of webhooks and e-mails
	// (docs/design.md, "Security activity"); nil: none of them. The
	// SQLite and Redis session stores are ActivityStores.
	Activity ActivityStore
	// Webhooks sends events to the app (see package webhook); nil: no
	// webhooks. It needs Activity.
	Webhooks Sender
	// Mail sends new-sign-in e-mails to sessiond's own users (see package
	// mail); nil: none. It needs Activity and Users.
	Mail Sender
}

// Observer is told what the Manager does, for metrics. Its methods must be
// fast and must not block.
type Observer interface {
	Login(ok bool)
	Refresh(ok bool)
	ReuseDetected()
	Ended(reason Reason, n int)
	// PasswordVerified is told how long a password verification took (the
	// argon2id hash, or the dummy hash of an unknown user, with any wait
	// for a free hashing slot) for a login or for the current password of
	// a password change, which counts as a login attempt; so that the rest
	// of a login's time can be told apart from it.
	PasswordVerified(d time.Duration)
	// Delivered is told that a message of queue was delivered, age after
	// it was recorded; Retried that a delivery failed and waits for a
	// retry; Dropped that a message was given up after DeliveryHorizon.
	Delivered(queue string, age time.Duration)
	Retried(queue string)
	Dropped(queue string)
}

// noObserver is the Observer of a Manager built without one.
type noObserver struct{}

func (noObserver) Login(bool)                      {}
func (noObserver) Refresh(bool)                    {}
func (noObserver) ReuseDetected()                  {}
func (noObserver) Ended(Reason, int)               {}
func (noObserver) PasswordVerified(time.Duration)  {}
func (noObserver) Delivered(string, time.Duration) {}
func (noObserver) Retried(string)                  {}
func (noObserver) Dropped(string)                  {}

// NewManager returns a Manager on p with the default settings.
func NewManager(p Parts) *Manager {
	m := &Manager{
		sessions:         p.Sessions,
		users:            p.Users,
		access:           p.Access,
		refresh:          p.Refresh,
		broker:           p.Broker,
		limiter:          p.Limiter,
		observer:         p.Observer,
		locator:          p.Locator,
		activity:         p.Activity,
		delivery:         newDelivery(),
		Hasher:           NewPasswordHasher(DefaultArgon2),
		Throttles:        defaultThrottles,
		AccessTTL:        DefaultAccessTTL,
		IdleTimeout:      DefaultIdleTimeout,
		AbsoluteLifetime: DefaultAbsoluteLifetime,
		RefreshGrace:     DefaultRefreshGrace,
		MaxSessions:      DefaultMaxSessions,
		CapPolicy:        PolicyEvict,
		ActivityInterval: defaultActivityInterval,
		SignupOpen:       true,
		ReadyInterval:    defaultReadyInterval,
		SweepInterval:    defaultSweepInterval,
		Logger:           slog.Default(),
		Now:              time.Now,
	}
	if m.broker == nil {
		m.broker = NewLocalBroker()
	}
	if p.Activity != nil {
		m.senders = map[string]Sender{QueueWebhook: p.Webhooks, QueueMail: p.Mail}
	}
	if m.observer == nil {
		m.observer = noObserver{}
	}
	m.sweep.last.Store(time.Now().UnixNano()) // the first sweep waits an interval
	if m.limiter == nil {
		m.limiter = noLimiter{}
		if src, ok := p.Sessions.(LimiterSource); ok {
			m.limiter = src.Limiter()
		}
	}
	return m
}

func (m *Manager) now() time.Time { return m.Now().UTC().Truncate(time.Millisecond) }

// maxSessions is the cap Create applies: MaxSessions within
// 1..HardMaxSessions, anything else HardMaxSessions.
func (m *Manager) maxSessions() int {
	if m.MaxSessions <= 0 || m.MaxSessions > HardMaxSessions {
		return HardMaxSessions
	}
	return m.MaxSessions
}

// RegisterRequest is a sign-up.
type RegisterRequest struct {
	Username string
	Email    string
	Password string
	// ClientIP is used for the registration throttle only.
	ClientIP string
}

// Register creates a user.
func (m *Manager) Register(ctx context.Context, r RegisterRequest) (*User, error) {
	if m.users == nil {
		return nil, errNoUsers
	}
	if !m.SignupOpen {
		return nil, ErrSignupClosed
	}
	return m.register(ctx, r, true)
}

// AddUser creates a user as an administrator: checked as Register checks
// it, but not throttled (r.ClientIP is not used) and whatever SignupOpen
// says.
func (m *Manager) AddUser(ctx context.Context, r RegisterRequest) (*User, error) {
	if m.users == nil {
		return nil, errNoUsers
	}
	return m.register(ctx, r, false)
}

// register creates the user of r, under the registration throttle when
// throttled.
func (m *Manager) register(ctx context.Context, r RegisterRequest, throttled bool) (*User, error) {
	if err := checkUsername(r.Username); err != nil {
		return nil, err
	}
	if err := checkEmail(r.Email); err != nil {
		return nil, err
	}
	if err := CheckPassword("password", r.Password); err != nil {
		return nil, err
	}
	now := m.now()
	// Every attempt counts, not only those that create a user: each costs a
	// password hash and tells whether a username or email is taken.
	if throttled {
		if err := m.take(ctx, now, randomID(), registrations.of(addrKey(r.ClientIP))); err != nil {
			return nil, err
		}
	}
	hash, err := m.Hasher.Hash(ctx, r.Password)
	if err != nil {
		return nil, err
	}
	u := &User{ID: randomID(), Username: r.Username, Email: r.Email, PasswordHash: hash, CreatedAt: now}
	if err := m.users.CreateUser(ctx, u); err != nil {
		return nil, err
	}
	m.Logger.LogAttrs(ctx, slog.LevelInfo, "user registered", slog.String("user_id", u.ID))
	return u, nil
}

// LoginRequest is a sign-in from one device. The Manager derives the
// session's device name and class from UserAgent, and its location from
// ClientIP.
type LoginRequest struct {
	// Login is a username or an email address.
	Login    string
	Password string
	// DeviceID is the client's own identifier of the device, optional; a
	// login from a device that has a live session replaces it.
	DeviceID string
	// DeviceName sets the session's name, optional.
	DeviceName string
	// UserAgent is the client's User-Agent header.
	UserAgent string
	// ClientIP is the client's address; it also keys the throttles.
	ClientIP string
}

// Grant is the answer to a login or a refresh. Its durations are measured
// from the grant by the Manager's clock, so a transport that sends them
// needs no clock of its own.
type Grant struct {
	AccessToken  string
	RefreshToken string
	// AccessExpiresAt is when AccessToken expires.
	AccessExpiresAt time.Time
	// ExpiresIn is AccessToken's lifetime (the OAuth expires_in).
	ExpiresIn time.Duration
	// RefreshExpiresIn is the longest RefreshToken can serve: until the
	// session's absolute end, or with no absolute lifetime until its
	// current expiry (a cookie holding it may live that long).
	RefreshExpiresIn time.Duration
	Session          *Session
}

// Login verifies the credentials and creates a session for the device.
func (m *Manager) Login(ctx context.Context, r LoginRequest) (*Grant, error) {
	if m.users == nil {
		return nil, errNoUsers
	}
	if err := r.check(); err != nil {
		return nil, err
	}
	now := m.now()
	u, err := m.userByLogin(ctx, r.Login)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	ok, err := m.verifyPassword(ctx, now, u, r.Login, r.Password, r.ClientIP)
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, ErrInvalidCredentials
	case u.Locked:
		m.observer.Login(false)
		return nil, ErrAccountLocked
	}
	if m.Hasher.NeedsRehash(u.PasswordHash) {
		// An imported hash, or one of older parameters: replaced now,
		// before the session is created, so that createSession compares
		// the user with the hash it now has.
		if u, err = m.upgradeHash(ctx, u, r.Password); err != nil {
			return nil, err
		}
	}
	s := m.newSession(u.ID, client{r.DeviceID, r.DeviceName, r.UserAgent, r.ClientIP}, now)
	if err := m.createSession(ctx, u, s, now); err != nil {
		return nil, err
	}
	if err := m.created(ctx, u, s, now, "login"); err != nil {
		return nil, err
	}
	return m.grant(s, now)
}

// check refuses a LoginRequest whose fields no account could match.
func (r *LoginRequest) check() error {
	switch {
	case r.Login == "":
		return invalid("username", "is required")
	case len(r.Login) > maxEmailLen || !utf8.ValidString(r.Login):
		return invalid("username", "must be a username or an email address")
	case r.Password == "":
		return invalid("password", "is required")
	case len(r.Password) > 4*maxPasswordLen || !utf8.ValidString(r.Password):
		return invalid("password", "must be valid UTF-8 of at most %d characters", maxPasswordLen)
	}
	return checkDevice(r.DeviceID, r.DeviceName)
}

// newSession returns the session that a login or start of userID from
// client c creates at now.
func (m *Manager) newSession(userID string, c client, now time.Time) *Session {
	s := &Session{
		ID:         randomID(),
		UserID:     userID,
		Name:       c.deviceName,
		CreatedAt:  now,
		LastActive: now,
		Generation: 1,
		RotatedAt:  now,
	}
	s.Device, s.DeviceClass, s.IPAddress, s.Location = m.describe(c)
	if c.deviceID != "" {
		s.DeviceID = DeviceHash(userID, c.deviceID)
	}
	s.DeviceClass = s.Class()
	s.ExpiresAt = m.expiry(s, now)
	return s
}

// createSession stores s, a new session of u, under the session cap, and
// ends the sessions it replaces or evicts.
func (m *Manager) createSession(ctx context.Context, u *User, s *Session, now time.Time) error {
	ended, err := m.sessions.Create(ctx, s, SessionCap{Max: m.maxSessions(), Policy: m.CapPolicy}, now)
	if err != nil {
		return err
	}
	for _, e := range ended {
		gone := &Session{ID: e.ID}
		if e.Reason == ReasonReplaced {
			// The same device, by definition.
			gone = &Session{ID: e.ID, DeviceID: s.DeviceID, Device: s.Device, DeviceClass: s.DeviceClass}
		}
		if err := m.ended(ctx, u.ID, []*Session{gone}, e.Reason, now); err != nil {
			m.abandon(ctx, s)
			return err
		}
	}
	// A password change, reset, lock or deletion that ran while this login
	// was hashing has already ended the user's sessions; it must end this
	// one too. Those acts change the user before they revoke, so reading
	// the user after creating the session sees them.
	return m.recheckUser(ctx, u, s.ID)
}

// abandon ends s, the stored session of a sign-in that is refused after
// all: nobody gets its tokens, and it must not stay in the user's list
// unexplained.
func (m *Manager) abandon(ctx context.Context, s *Session) {
	if err := m.sessions.Revoke(context.WithoutCancel(ctx), s.UserID, s.ID); err != nil && !errors.Is(err, ErrNotFound) {
		m.Logger.LogAttrs(ctx, slog.LevelWarn, "session of a refused sign-in not ended", slog.String("session_id", s.ID), slog.String("err", err.Error()))
	}
}

// recheckUser ends session id if the user changed since u was read. The
// app's own users (no user store) change elsewhere: the app ends their
// sessions itself.
func (m *Manager) recheckUser(ctx context.Context, u *User, id string) error {
	if m.users == nil {
		return nil
	}
	cur, err := m.users.UserByID(ctx, u.ID)
	if err == nil && !cur.Locked && cur.PasswordHash == u.PasswordHash {
		return nil
	}
	if rerr := m.sessions.Revoke(context.WithoutCancel(ctx), u.ID, id); rerr != nil && !errors.Is(rerr, ErrNotFound) {
		return rerr
	}
	switch {
	case err != nil && !errors.Is(err, ErrNotFound):
		return err
	case err == nil && cur.Locked:
		return ErrAccountLocked
	}
	return ErrInvalidCredentials
}

// DeviceHash derives the stored device id from the client's device
// identifier and the user id, so stores never keep the client's value.
func DeviceHash(userID, deviceID string) string {
	h := sha256.New()
	fmt.Fprintf(h, "sessiond device\x00%d:%s\x00%s", len(userID), userID, deviceID)
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:16])
}

// expiry returns min(lastActive + idle, created + absolute).
func (m *Manager) expiry(s *Session, lastActive time.Time) time.Time {
	exp := lastActive.Add(m.IdleTimeout)
	if m.AbsoluteLifetime > 0 {
		if abs := s.CreatedAt.Add(m.AbsoluteLifetime); abs.Before(exp) {
			exp = abs
		}
	}
	return exp
}

// grant issues tokens for generation s.Generation of s.
func (m *Manager) grant(s *Session, now time.Time) (*Grant, error) {
	exp := now.Add(m.AccessTTL)
	if s.ExpiresAt.Before(exp) {
		exp = s.ExpiresAt
	}
	at, err := m.access.IssueWithClaims(s.UserID, s.ID, s.Claims, now, exp)
	if err != nil {
		return nil, fmt.Errorf("issue access token: %w", err)
	}
	rt := m.refresh.Mint(RefreshClaims{UserID: s.UserID, SessionID: s.ID, Generation: s.Generation})
	rtEnd := s.ExpiresAt
	if m.AbsoluteLifetime > 0 {
		rtEnd = s.CreatedAt.Add(m.AbsoluteLifetime)
	}
	return &Grant{
		AccessToken: at, RefreshToken: rt, AccessExpiresAt: exp,
		ExpiresIn: exp.Sub(now), RefreshExpiresIn: rtEnd.Sub(now), Session: s,
	}, nil
}

// RefreshSession exchanges a refresh token for new tokens. The token of the
// current generation rotates; the previous generation inside the grace
// window gets the current one; any older authentic token revokes the
// session (reuse). A forged or malformed token changes nothing.
//
// The generation is decided before any throttle: reuse always ends the
// session, whatever any counter says, so a thief who keeps the session's
// refresh budget full, or a neighbour behind the same address who fills
// its failed-refresh budget, cannot turn the victim's replay of a
// superseded token into a 429. Only failures count toward (and are held
// back by) the address's failed-refresh limit, and only real rotations
// toward the session's refresh limit.
func (m *Manager) RefreshSession(ctx context.Context, token, clientIP string) (*Grant, error) {
	now := m.now()
	failed := failedRefreshes.of(addrKey(clientIP))
	c, err := m.refresh.Parse(token)
	if err != nil {
		return nil, m.refreshFailed(ctx, now, failed, err)
	}
	s, rotated, err := m.rotate(ctx, c, now)
	switch {
	case rotated:
		m.observer.Refresh(true)
		return m.grant(s, now)
	case errors.Is(err, ErrNotFound):
		return nil, m.refreshFailed(ctx, now, failed, fmt.Errorf("%w: session ended", ErrInvalidToken))
	case err != nil:
		return nil, err
	case c.Generation+1 == s.Generation && now.Sub(s.RotatedAt) <= m.RefreshGrace:
		// The previous generation inside the grace window gets the
		// current tokens again, never a second child, and counts for
		// nothing. The rotation it answers for may be one whose own
		// answer was a 503 because the store could not confirm it (on
		// replicas): it is confirmed before its tokens are handed out,
		// or a failover could bring back the generation they supersede.
		if err := m.sessions.Sync(ctx, s.UserID); err != nil {
			return nil, err
		}
		m.observer.Refresh(true)
		return m.grant(s, now)
	case c.Generation < s.Generation:
		return nil, m.reused(ctx, s, now, failed, clientIP)
	default:
		// A generation from the future cannot be authentic for this
		// session; refuse and change nothing.
		return nil, m.refreshFailed(ctx, now, failed, fmt.Errorf("%w: unknown refresh generation", ErrInvalidToken))
	}
}

// rotate advances the session of c to the next generation if c is of its
// current one, with a compare-and-set, and reports whether it did, with
// the rotated session. Otherwise it returns the session as it is, for the
// caller to judge c against: when another refresh of the same token wins
// the race, it decides again on the session that refresh left. A rotation
// takes its place in the session's refresh budget before it happens, and
// gives it back if another refresh rotates first.
func (m *Manager) rotate(ctx context.Context, c RefreshClaims, now time.Time) (*Session, bool, error) {
	perSession := sessionRefreshes.of(c.SessionID)
	s, err := m.sessions.Get(ctx, c.UserID, c.SessionID, now)
	for attempt := 0; err == nil && c.Generation == s.Generation; attempt++ {
		if attempt == 3 {
			return nil, false, fmt.Errorf("refresh %s: lost the rotation race 3 times: %w", c.SessionID, ErrUnavailable)
		}
		id := randomID()
		if terr := m.take(ctx, now, id, perSession); terr != nil {
			var th *ThrottledError
			if !errors.As(terr, &th) {
				return nil, false, terr
			}
			// The budget is full, unless a concurrent refresh of this
			// very token has just rotated: this one is then a replay.
			if s, err = m.sessions.Get(ctx, c.UserID, c.SessionID, now); err == nil && s.Generation == c.Generation {
				return nil, false, aboutUser(terr, c.UserID)
			}
			break
		}
		next, rerr := m.sessions.Rotate(ctx, s.UserID, s.ID, c.Generation, now, m.expiry(s, now))
		if rerr == nil {
			return next, true, nil
		}
		if errors.Is(rerr, ErrGenerationMismatch) || errors.Is(rerr, ErrNotFound) {
			// Not rotated; a store error may hide a rotation that
			// happened, which keeps its place.
			m.release(ctx, now, id, perSession)
		}
		switch {
		case !errors.Is(rerr, ErrGenerationMismatch):
			err = rerr
		case next != nil:
			s = next
		default:
			s, err = m.sessions.Get(ctx, c.UserID, c.SessionID, now)
		}
	}
	return s, false, err
}

// reused answers an authentic refresh token of a generation older than
// the session's: someone else holds a copy. It ends the session, whatever
// the throttles say.
func (m *Manager) reused(ctx context.Context, s *Session, now time.Time, failed counter, clientIP string) error {
	m.observer.ReuseDetected()
	m.Logger.LogAttrs(ctx, slog.LevelWarn, "refresh token reuse detected: ending the session",
		slog.String("user_id", s.UserID), slog.String("session_id", s.ID), slog.String("client_ip", clientIP))
	if err := m.reuseDetected(ctx, s, clientIP, now); err != nil {
		return err
	}
	if err := m.revokeOne(ctx, s.UserID, s.ID, ReasonReuseDetected); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	// It is a failed refresh of this address all the same; its answer
	// does not wait for the count, which only the session's end matters
	// to.
	if err := m.take(ctx, now, randomID(), failed); err != nil && !errors.As(err, new(*ThrottledError)) {
		m.Logger.LogAttrs(ctx, slog.LevelWarn, "throttle count failed", slog.String("err", err.Error()))
	}
	return fmt.Errorf("%w: refresh token reused", ErrInvalidToken)
}

// refreshFailed counts a failed refresh of the address and returns cause,
// or the 429 of an address past its limit, or the store's error when the
// failure could not be recorded: a failure is only answered once counted.
func (m *Manager) refreshFailed(ctx context.Context, now time.Time, failed counter, cause error) error {
	m.observer.Refresh(false)
	if err := m.take(ctx, now, randomID(), failed); err != nil {
		return err
	}
	return cause
}

// Authenticate verifies an access token and checks that its session is
// live. It records activity at most once per ActivityInterval. The returned
// session and claims are the caller's.
func (m *Manager) Authenticate(ctx context.Context, token string) (*Session, *AccessClaims, error) {
	now := m.now()
	c, err := m.access.Verify(token, now)
	if err != nil {
		return nil, nil, err
	}
	s, err := m.sessions.Get(ctx, c.Subject, c.SessionID, now)
	if errors.Is(err, ErrNotFound) {
		return nil, nil, fmt.Errorf("%w: session ended", ErrInvalidToken)
	}
	if err != nil {
		return nil, nil, err
	}
	if now.Sub(s.LastActive) >= m.ActivityInterval {
		exp := m.expiry(s, now)
		switch err := m.sessions.Touch(ctx, s.UserID, s.ID, now, exp); {
		case errors.Is(err, ErrNotFound):
			return nil, nil, fmt.Errorf("%w: session ended", ErrInvalidToken)
		case err != nil:
			return nil, nil, err
		}
		s.LastActive, s.ExpiresAt = now, exp
	}
	return s, c, nil
}

// User returns the user with id. Without a user store (the app's own
// users) it is a User with only ID set.
func (m *Manager) User(ctx context.Context, id string) (*User, error) {
	if m.users == nil {
		return &User{ID: id}, nil
	}
	return m.users.UserByID(ctx, id)
}

// FindUser returns the user whose username or email is login (compared as
// at sign-in), or ErrNotFound.
func (m *Manager) FindUser(ctx context.Context, login string) (*User, error) {
	if m.users == nil {
		return nil, errNoUsers
	}
	return m.userByLogin(ctx, login)
}

// Live reports whether the session s has not ended. A store that does not
// answer counts as ended: whoever asks stops serving the session.
func (m *Manager) Live(ctx context.Context, s *Session) bool {
	_, err := m.sessions.Get(ctx, s.UserID, s.ID, m.now())
	return err == nil
}

// Subscribe returns a channel of the events of userID's sessions and a
// function that ends the subscription and closes the channel (see
// Broker.Subscribe).
func (m *Manager) Subscribe(ctx context.Context, userID string) (<-chan Event, func(), error) {
	return m.broker.Subscribe(ctx, userID)
}

// JWKS returns the JSON Web Key Set of the keys that verify access tokens,
// for services that verify them themselves.
func (m *Manager) JWKS() []byte {
	return m.access.JWKS()
}

// List returns the live sessions of userID: currentID first, then in list
// order (see ListPage).
func (m *Manager) List(ctx context.Context, userID, currentID string) ([]*Session, error) {
	list, err := m.sessions.List(ctx, userID, m.now())
	if err != nil {
		return nil, err
	}
	sortList(list, currentID)
	return list, nil
}

// sortList puts currentID first, then the rest in list order.
func sortList(list []*Session, currentID string) {
	slices.SortFunc(list, func(a, b *Session) int {
		switch {
		case a.ID == currentID:
			return -1
		case b.ID == currentID:
			return 1
		}
		return a.Position().Compare(b.Position())
	})
}

// Page sizes of ListPage.
const (
	DefaultListLimit = 1000
	MaxListLimit     = 1000
)

// SessionPage is one page of a user's session list.
type SessionPage struct {
	Sessions []*Session
	// Next is the cursor of the following page; "" on the last one.
	Next string
}

// ListPage returns one page of at most limit (1..MaxListLimit) live
// sessions of userID in the order of List: currentID first (always on the
// first page), then the most recently active first, ties broken by the
// newer login, then by id. cursor is "" for the first page, else the Next
// of the page before; it names a position in that order, so walking the
// pages of a list that does not change meanwhile returns every session
// exactly once, and a list that changes never repeats a session that kept
// its place. A bad limit or cursor is an *InputError naming it.
func (m *Manager) ListPage(ctx context.Context, userID, currentID string, limit int, cursor string) (*SessionPage, error) {
	if limit < 1 || limit > MaxListLimit {
		return nil, invalid("limit", "must be a whole number from 1 to %d", MaxListLimit)
	}
	var after *listCursor
	if cursor != "" {
		c, err := parseListCursor(cursor)
		if err != nil {
			return nil, err
		}
		after = c
	}
	now := m.now()
	var first []*Session
	if after == nil && currentID != "" {
		cur, err := m.sessions.Get(ctx, userID, currentID, now)
		switch {
		case err == nil:
			first = []*Session{cur}
		case !errors.Is(err, ErrNotFound):
			return nil, err
		}
	}
	var pos *ListPosition
	if after != nil && !after.rest {
		pos = &after.pos
	}
	// One more than the page holds tells whether another follows.
	rest, err := m.sessions.ListPage(ctx, userID, now, pos, currentID, limit-len(first)+1)
	if err != nil {
		return nil, err
	}
	list := append(first, rest...)
	page := &SessionPage{Sessions: list}
	if len(list) > limit {
		page.Sessions = list[:limit:limit]
		page.Next = formatListCursor(list[limit-1], currentID)
	}
	return page, nil
}

// listCursor is the position, in list order, of the last session of a page,
// or with rest set, the place right after the current session (a first
// page of one).
type listCursor struct {
	pos  ListPosition
	rest bool
}

// restCursor is the raw cursor after a first page holding only the current
// session.
const restCursor = "current"

// formatListCursor encodes the position of s, the last of a page, as an
// opaque cursor.
func formatListCursor(s *Session, currentID string) string {
	raw := restCursor
	if s.ID != currentID {
		raw = fmt.Sprintf("%d.%d.%s", s.LastActive.UnixMilli(), s.CreatedAt.UnixMilli(), s.ID)
	}
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// parseListCursor decodes a cursor of formatListCursor.
func parseListCursor(cursor string) (*listCursor, error) {
	bad := invalid("cursor", "is not a cursor this server issued")
	if len(cursor) > 256 {
		return nil, bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return nil, bad
	}
	if string(raw) == restCursor {
		return &listCursor{rest: true}, nil
	}
	parts := strings.SplitN(string(raw), ".", 3)
	if len(parts) != 3 || parts[2] == "" {
		return nil, bad
	}
	active, err1 := strconv.ParseInt(parts[0], 10, 64)
	created, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil {
		return nil, bad
	}
	return &listCursor{pos: ListPosition{LastActive: time.UnixMilli(active).UTC(), CreatedAt: time.UnixMilli(created).UTC(), ID: parts[2]}}, nil
}

// Logout ends the session s. A session that ended meanwhile is already
// logged out: that is not an error.
func (m *Manager) Logout(ctx context.Context, s *Session) error {
	if err := m.revokeOne(ctx, s.UserID, s.ID, ReasonLogout); !errors.Is(err, ErrNotFound) {
		return err
	}
	return nil
}

// Revoke ends one session of userID. An unknown id and another user's id
// both give ErrNotFound; too many of those in a row are throttled.
func (m *Manager) Revoke(ctx context.Context, userID, id string, reason Reason) error {
	err := m.revokeOne(ctx, userID, id, reason)
	if errors.Is(err, ErrNotFound) {
		if err := m.take(ctx, m.now(), randomID(), unknownRevocations.of(userKey(userID))); err != nil {
			return aboutUser(err, userID)
		}
		return fmt.Errorf("session %w", ErrNotFound)
	}
	return err
}

// revokeOne ends one session and tells of its end. A store that deleted it
// but could not confirm the deletion on enough replicas (ErrNotAcknowledged)
// has ended it all the same where every read goes: its end is told too,
// and the error returned, so the caller answers 503 and the client retries.
func (m *Manager) revokeOne(ctx context.Context, userID, id string, reason Reason) error {
	gone := &Session{ID: id}
	if m.recording() {
		// Read first, so that the history and the webhook say which
		// device ended; a session already gone is not found either way.
		switch s, err := m.sessions.Get(ctx, userID, id, m.now()); {
		case err == nil:
			gone = s
		case errors.Is(err, ErrNotFound):
		default:
			return err
		}
	}
	err := m.sessions.Revoke(ctx, userID, id)
	if err == nil || errors.Is(err, ErrNotAcknowledged) {
		if rerr := m.ended(ctx, userID, []*Session{gone}, reason, m.now()); err == nil {
			err = rerr
		}
	}
	return err
}

// RevokeOthers ends every session of userID but keepID and returns how many
// it ended. With an error, some sessions may have ended (the store works in
// chunks): they are logged and published all the same, and the count says
// how many.
func (m *Manager) RevokeOthers(ctx context.Context, userID, keepID string, reason Reason) (int, error) {
	before, err := m.readBefore(ctx, userID)
	if err != nil {
		return 0, err
	}
	ids, err := m.sessions.RevokeOthers(ctx, userID, keepID)
	if rerr := m.ended(ctx, userID, known(ids, before), reason, m.now()); err == nil {
		err = rerr
	}
	return len(ids), err
}

// readBefore reads the sessions of userID before a revocation of many of
// them, when their ends are recorded (see known).
func (m *Manager) readBefore(ctx context.Context, userID string) (map[string]*Session, error) {
	if !m.recording() {
		return nil, nil
	}
	list, err := m.sessions.List(ctx, userID, m.now())
	if err != nil {
		return nil, err
	}
	before := make(map[string]*Session, len(list))
	for _, s := range list {
		before[s.ID] = s
	}
	return before, nil
}

// RevokeAll ends every session of userID and returns how many it ended,
// with the same answer on an error as RevokeOthers.
func (m *Manager) RevokeAll(ctx context.Context, userID string, reason Reason) (int, error) {
	before, err := m.readBefore(ctx, userID)
	if err != nil {
		return 0, err
	}
	ids, err := m.sessions.RevokeAll(ctx, userID)
	if rerr := m.ended(ctx, userID, known(ids, before), reason, m.now()); err == nil {
		err = rerr
	}
	return len(ids), err
}

// ChangePasswordRequest changes the password of the signed-in user.
type ChangePasswordRequest struct {
	Current     string
	New         string
	RevokeOther bool
	ClientIP    string
}

// ChangePassword verifies the current password, sets the new one and, when
// asked, ends every other session of the user. A wrong current password
// counts as a failed login.
func (m *Manager) ChangePassword(ctx context.Context, s *Session, r ChangePasswordRequest) (int, error) {
	if m.users == nil {
		return 0, errNoUsers
	}
	if r.Current == "" {
		return 0, invalid("current_password", "is required")
	}
	if err := CheckPassword("new_password", r.New); err != nil {
		return 0, err
	}
	u, err := m.users.UserByID(ctx, s.UserID)
	if errors.Is(err, ErrNotFound) {
		return 0, fmt.Errorf("%w: user deleted", ErrInvalidToken)
	}
	if err != nil {
		return 0, err
	}
	ok, err := m.verifyPassword(ctx, m.now(), u, u.Username, r.Current, r.ClientIP)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, invalid("current_password", "is wrong")
	}
	hash, err := m.Hasher.Hash(ctx, r.New)
	if err != nil {
		return 0, err
	}
	if err := m.users.SetPassword(ctx, u.ID, hash); err != nil {
		return 0, err
	}
	m.Logger.LogAttrs(ctx, slog.LevelInfo, "password changed", slog.String("user_id", u.ID), slog.String("session_id", s.ID))
	// The password has changed: what follows must finish even if the
	// client goes away. The sessions it ends were ended by s.
	ctx, cancel := detach(NewContext(ctx, s))
	defer cancel()
	if err := m.passwordChanged(ctx, u.ID, s); err != nil {
		return 0, err
	}
	if !r.RevokeOther {
		return 0, nil
	}
	return m.RevokeOthers(ctx, u.ID, s.ID, ReasonPasswordChanged)
}

// detach returns a context that outlives ctx's cancellation but not by more
// than 30 s, for the second half of an act whose first half is done.
func detach(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
}

// ResetPassword sets a new password for userID (an administrator's act)
// and ends every session of the user.
func (m *Manager) ResetPassword(ctx context.Context, userID, password string) (int, error) {
	if m.users == nil {
		return 0, errNoUsers
	}
	if err := CheckPassword("password", password); err != nil {
		return 0, err
	}
	hash, err := m.Hasher.Hash(ctx, password)
	if err != nil {
		return 0, err
	}
	if err := m.users.SetPassword(ctx, userID, hash); err != nil {
		return 0, err
	}
	ctx, cancel := detach(ctx)
	defer cancel()
	if err := m.passwordChanged(ctx, userID, nil); err != nil {
		return 0, err
	}
	return m.RevokeAll(ctx, userID, ReasonPasswordReset)
}

// SetLocked locks (ending every session) or unlocks the account userID.
func (m *Manager) SetLocked(ctx context.Context, userID string, locked bool) (int, error) {
	if m.users == nil {
		return 0, errNoUsers
	}
	if err := m.users.SetLocked(ctx, userID, locked); err != nil {
		return 0, err
	}
	if !locked {
		return 0, nil
	}
	ctx, cancel := detach(ctx)
	defer cancel()
	return m.RevokeAll(ctx, userID, ReasonAccountLocked)
}

// DeleteUser deletes the account userID and ends every session of it. The
// account goes first, so a login racing the deletion cannot keep a session.
func (m *Manager) DeleteUser(ctx context.Context, userID string) (int, error) {
	if m.users == nil {
		return 0, errNoUsers
	}
	if err := m.users.DeleteUser(ctx, userID); err != nil {
		return 0, err
	}
	ctx, cancel := detach(ctx)
	defer cancel()
	return m.RevokeAll(ctx, userID, ReasonAccountDeleted)
}

// Sweep deletes expired sessions from stores that do not expire them by
// themselves, every interval until ctx ends. A Manager also sweeps by
// itself as sessions start (see SweepInterval); Sweep is for a process
// that wants expired rows gone on a schedule of its own.
func (m *Manager) Sweep(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		m.sweepOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sweepOnce deletes the expired sessions, and counts and logs them.
func (m *Manager) sweepOnce(ctx context.Context) {
	n, err := m.sessions.DeleteExpired(ctx, m.now())
	if err != nil && ctx.Err() == nil {
		m.Logger.WarnContext(ctx, "sweep expired sessions", "err", err)
	}
	if n > 0 {
		m.Logger.InfoContext(ctx, "expired sessions deleted", "count", n, "reason", ReasonExpired)
		m.observer.Ended(ReasonExpired, n)
	}
}

// lazySweep starts a background sweep at most once per interval, on the
// way of the calls that add sessions, so that a Manager nobody runs Sweep
// on still drops expired rows. Its times are the monotonic clock's.
type lazySweep struct {
	last    atomic.Int64 // unix ns of the last start
	running atomic.Bool
}

// maybeSweep starts a sweep in the background unless one ran within
// SweepInterval or is under way.
func (m *Manager) maybeSweep() {
	if m.SweepInterval <= 0 {
		return
	}
	now, last := time.Now().UnixNano(), m.sweep.last.Load()
	if now-last < int64(m.SweepInterval) || !m.sweep.last.CompareAndSwap(last, now) || !m.sweep.running.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer m.sweep.running.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		m.sweepOnce(ctx)
	}()
}

// ended logs, publishes and records the end of sessions at now. Its error
// is the activity store's: the sessions have ended all the same.
func (m *Manager) ended(ctx context.Context, userID string, sessions []*Session, reason Reason, now time.Time) error {
	if len(sessions) == 0 {
		return nil
	}
	m.observer.Ended(reason, len(sessions))
	for _, s := range sessions {
		m.Logger.LogAttrs(ctx, slog.LevelInfo, "session ended", slog.String("user_id", userID), slog.String("session_id", s.ID), slog.String("reason", string(reason)))
	}
	if len(sessions) == 1 {
		m.publish(ctx, Event{Type: EventRevoked, UserID: userID, SessionID: sessions[0].ID, Reason: reason})
	} else {
		events := make([]Event, len(sessions))
		for i, s := range sessions {
			events[i] = Event{Type: EventRevoked, UserID: userID, SessionID: s.ID, Reason: reason}
		}
		if err := m.broker.PublishMany(context.WithoutCancel(ctx), events); err != nil {
			m.Logger.WarnContext(ctx, "publish session events", "type", EventRevoked, "count", len(events), "err", err)
		}
	}
	return m.signedOut(ctx, userID, sessions, reason, now)
}

func (m *Manager) publish(ctx context.Context, e Event) {
	if err := m.broker.Publish(context.WithoutCancel(ctx), e); err != nil {
		m.Logger.WarnContext(ctx, "publish session event", "type", e.Type, "session_id", e.SessionID, "err", err)
	}
}

// randomID returns 128 random bits, base64url without padding.
func randomID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic("sessiond: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Ping reports whether both stores answer.
func (m *Manager) Ping(ctx context.Context) error {
	if err := m.sessions.Ping(ctx); err != nil {
		return fmt.Errorf("session store: %w", err)
	}
	if m.users == nil {
		return nil
	}
	if err := m.users.Ping(ctx); err != nil {
		return fmt.Errorf("user store: %w", err)
	}
	return nil
}

// Ready reports whether the Manager can serve: both stores answer (Ping,
// on every call) and the session store and the limiter store accept
// writes. A store that answers reads but refuses writes (a full disk, a
// Redis answering READONLY or NOREPLICAS) answers every sign-in and
// revocation 503, so it is not ready. The write probes run at most once
// per ReadyInterval, whatever the number of callers: calls in between get
// the last result, and calls during a probe wait for it.
func (m *Manager) Ready(ctx context.Context) error {
	if err := m.Ping(ctx); err != nil {
		return err
	}
	return m.ready.get(ctx, m.ReadyInterval, m.writable)
}

// writable probes the stores that take writes on the way of a request.
func (m *Manager) writable(ctx context.Context) error {
	if err := m.sessions.Writable(ctx); err != nil {
		return fmt.Errorf("session store: %w", err)
	}
	if err := m.limiter.Writable(ctx); err != nil {
		return fmt.Errorf("limiter store: %w", err)
	}
	return nil
}

// readiness caches the result of a probe. Its times are the monotonic
// clock's, not the Manager's: they say how old a probe is, not how long a
// session lives.
type readiness struct {
	mu      sync.Mutex
	at      time.Time     // of the last result; zero: none yet
	err     error         // the last result
	running chan struct{} // closed when the probe under way ends; nil: none
}

// probeTimeout bounds one write probe, whoever waits for it.
const probeTimeout = 2 * time.Second

// get returns the last result of probe if it is younger than every, and
// otherwise waits for a fresh one, started unless one is under way. A
// caller whose ctx ends stops waiting; the probe goes on for the others.
func (r *readiness) get(ctx context.Context, every time.Duration, probe func(context.Context) error) error {
	r.mu.Lock()
	if !r.at.IsZero() && time.Since(r.at) < every {
		err := r.err
		r.mu.Unlock()
		return err
	}
	if r.running == nil {
		done := make(chan struct{})
		r.running = done
		go func() {
			pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), probeTimeout)
			err := probe(pctx)
			cancel()
			r.mu.Lock()
			r.at, r.err, r.running = time.Now(), err, nil
			r.mu.Unlock()
			close(done)
		}()
	}
	done := r.running
	r.mu.Unlock()
	select {
	case <-done:
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.err
	case <-ctx.Done():
		return fmt.Errorf("readiness probe: %w: %w", ErrUnavailable, ctx.Err())
	}
}
