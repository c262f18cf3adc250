package sessiond

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Rate is a limit of N events per Window. N <= 0 disables it.
type Rate struct {
	N      int
	Window time.Duration
}

// Throttles are the limits of docs/design.md, "Throttles".
type Throttles struct {
	// LoginAccountIP, LoginAccount and LoginIP count failed logins (and
	// wrong current passwords) per (account, client IP), per account and
	// per client IP (defaults 10, 100 and 30 per 15 min). Unknown accounts
	// count exactly like real ones.
	LoginAccountIP, LoginAccount, LoginIP Rate
	// Register counts registrations per client IP (default 20 per hour).
	Register Rate
	// FailedRefresh counts unknown, forged or reused refresh tokens per
	// client IP (default 30 per minute).
	FailedRefresh Rate
	// SessionRefresh counts refreshes of one session (default 10 per
	// minute).
	SessionRefresh Rate
	// UnknownRevoke counts revocations of unknown or foreign session ids
	// per user (default 30 per minute).
	UnknownRevoke Rate
	// AdminAuth counts admin API requests with a missing or wrong key per
	// client IP (default 20 per minute); a valid key is never counted.
	AdminAuth Rate
}

// defaultThrottles are the defaults of docs/design.md, "Throttles".
var defaultThrottles = Throttles{
	LoginAccountIP: Rate{10, 15 * time.Minute},
	LoginAccount:   Rate{100, 15 * time.Minute},
	LoginIP:        Rate{30, 15 * time.Minute},
	Register:       Rate{20, time.Hour},
	FailedRefresh:  Rate{30, time.Minute},
	SessionRefresh: Rate{10, time.Minute},
	UnknownRevoke:  Rate{30, time.Minute},
	AdminAuth:      Rate{20, time.Minute},
}

// rule is one throttle: a rate of Throttles, counted per key. Its keys
// start with its own prefix, so that no two rules share a counter, and its
// 429 says "too many <what>".
type rule struct {
	name   string // in ThrottleRules
	what   string
	prefix string
	rate   func(*Throttles) Rate
}

// The throttles. Each row says what the 429 says, the key of the counter
// (its prefix, then what it counts per) and the rate. Keys hold no secret
// and no login name in clear: an account is named by a hash (see
// loginCounters), an IPv6 address by its /64 (addrKey).
var (
	// Failed sign-ins and wrong current passwords per account and client
	// address: "la:" account hash, GroupSep, address. It is in the
	// account's group, so that the two are taken in one atomic step.
	failedLoginsAccountAddr = &rule{"login_account_address", "failed sign-ins for this account from this address", "la:",
		func(t *Throttles) Rate { return t.LoginAccountIP }}
	// The same per account: "la:" account hash.
	failedLoginsAccount = &rule{"login_account", "failed sign-ins for this account", "la:",
		func(t *Throttles) Rate { return t.LoginAccount }}
	// The same per client address: "li:" address.
	failedLoginsAddr = &rule{"login_address", "failed sign-ins from this address", "li:",
		func(t *Throttles) Rate { return t.LoginIP }}
	// Registrations, created or not, per client address: "reg:" address.
	registrations = &rule{"register", "registrations", "reg:",
		func(t *Throttles) Rate { return t.Register }}
	// Unknown, forged or reused refresh tokens per client address: "rf:"
	// address.
	failedRefreshes = &rule{"failed_refresh", "failed refreshes", "rf:",
		func(t *Throttles) Rate { return t.FailedRefresh }}
	// Rotations of one session: "rs:" session id.
	sessionRefreshes = &rule{"session_refresh", "refreshes of this session", "rs:",
		func(t *Throttles) Rate { return t.SessionRefresh }}
	// Revocations of unknown or foreign session ids per user: "rv:" user
	// id.
	unknownRevocations = &rule{"unknown_revoke", "revocations of unknown sessions", "rv:",
		func(t *Throttles) Rate { return t.UnknownRevoke }}
	// Admin API requests without a valid key per client address: "aa:"
	// address.
	adminAuthFailures = &rule{"admin_auth", "requests without a valid admin key", "aa:",
		func(t *Throttles) Rate { return t.AdminAuth }}
)

// FailedAdminAuth counts a request to the admin API that came with a
// missing or wrong key from clientIP. It returns nil when the request is to
// be refused as unauthenticated, a *ThrottledError once the address is past
// its limit, or the limiter store's error (the request is then answered as
// unavailable: the throttle fails closed).
func (m *Manager) FailedAdminAuth(ctx context.Context, clientIP string) error {
	return m.take(ctx, m.now(), randomID(), adminAuthFailures.of(addrKey(clientIP)))
}

// counter is the counter of rule r for one subject (an address, a session,
// a user): its events are under key.
type counter struct {
	rule *rule
	key  string
}

// of returns the counter of r for subject.
func (r *rule) of(subject string) counter { return counter{r, r.prefix + subject} }

// loginCounters are the counters of a sign-in attempt, in the order they
// are checked: the (account, address) counter and the account's, which
// are one group, then the address's. The account is the user's id when
// the login names a user, so that a username and an email address share
// one count, and otherwise the lowercased login as typed, so that an
// unknown name counts like a real one; either is hashed, so no key holds
// it in clear. Being in the account's group, the (account, address)
// counter is taken with the account's in one atomic step: one address then
// adds to the account's count only what its own budget admits.
func loginCounters(u *User, login, ip string) [3]counter {
	name := "n:" + FoldLogin(login)
	if u != nil {
		name = "u:" + u.ID
	}
	sum := sha256.Sum256([]byte("sessiond login\x00" + name))
	account := base64.RawURLEncoding.EncodeToString(sum[:12])
	ip = addrKey(ip)
	return [3]counter{
		failedLoginsAccountAddr.of(account + GroupSep + ip),
		failedLoginsAccount.of(account),
		failedLoginsAddr.of(ip),
	}
}

// keyedTurns lets callers of one key go one at a time, and callers of
// different keys at once. Waiting ends with the caller's context, and
// after turnWait at the longest, answered as unavailable.
type keyedTurns struct {
	mu sync.Mutex
	m  map[string]*turn
}

// turn is one key's token and how many callers hold or wait for it.
type turn struct {
	ch chan struct{}
	n  int
}

// turnWait bounds the wait for one account's turn.
const turnWait = 10 * time.Second

// lock waits for key's turn and returns the function that ends it.
func (k *keyedTurns) lock(ctx context.Context, key string) (func(), error) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*turn{}
	}
	t := k.m[key]
	if t == nil {
		t = &turn{ch: make(chan struct{}, 1)}
		k.m[key] = t
	}
	t.n++
	k.mu.Unlock()
	wait := time.NewTimer(turnWait)
	defer wait.Stop()
	select {
	case t.ch <- struct{}{}:
		return func() { <-t.ch; k.leave(key, t) }, nil
	case <-ctx.Done():
		k.leave(key, t)
		return nil, ctx.Err()
	case <-wait.C:
		k.leave(key, t)
		return nil, fmt.Errorf("%w: too many sign-ins of this account at once", ErrUnavailable)
	}
}

func (k *keyedTurns) leave(key string, t *turn) {
	k.mu.Lock()
	if t.n--; t.n == 0 {
		delete(k.m, key)
	}
	k.mu.Unlock()
}

// userKey names a user id for the throttles. An app's own user ids may hold
// GroupSep, which would split the key's group: it and "%" are escaped.
func userKey(id string) string {
	if !strings.ContainsAny(id, GroupSep+"%") {
		return id
	}
	return strings.NewReplacer("%", "%25", GroupSep, "%7C").Replace(id)
}

// addrKey names a client address for the throttles: an IPv6 address by its
// /64, since one host usually holds a whole /64 and would otherwise get a
// fresh budget per address.
func addrKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is6() || a.Is4In6() {
		return ip
	}
	p, _ := a.Prefix(64)
	return p.String()
}

// verifyPassword checks password against the hash of u (nil: an unknown
// account, which costs the same hash) under the sign-in throttles of login
// from ip, and reports whether it is right. An attempt past a limit gets
// its 429 before any hash; a wrong password is answered only once
// recorded; a right one forgets the failures of its account from its
// address.
func (m *Manager) verifyPassword(ctx context.Context, now time.Time, u *User, login, password, ip string) (bool, error) {
	cs := loginCounters(u, login, ip)
	checked := func(held bool, err error) (bool, error) {
		if err != nil && u != nil {
			err = aboutUser(err, u.ID)
			if errors.As(err, new(*ThrottledError)) {
				m.loginThrottled(ctx, u.ID, ip)
			}
		}
		return held, err
	}
	// A first check outside any turn answers an attempt past a limit, or a
	// store that does not answer, at once and all in parallel.
	if _, err := checked(m.checkLogin(ctx, now, cs)); err != nil {
		return false, err
	}
	// Then sign-ins of one account take turns from a second check to the
	// record, so each sees the failures of those before it: a burst of
	// wrong passwords sent at once gets at most the limit's worth of
	// hashes between them (the rest get their 429 before hashing),
	// instead of a hash each. That matters most for an imported hash that
	// costs a hundred times an argon2id one.
	unlock, err := m.accountTurns.lock(ctx, cs[1].key)
	if err != nil {
		return false, err
	}
	defer unlock()
	held, err := checked(m.checkLogin(ctx, m.now(), cs))
	if err != nil {
		return false, err
	}
	hash := ""
	if u != nil {
		hash = u.PasswordHash
	}
	start := time.Now()
	ok, err := m.Hasher.Verify(ctx, hash, password)
	if err != nil {
		return false, err
	}
	m.observer.PasswordVerified(time.Since(start))
	userID := ""
	if u != nil {
		userID = u.ID
	}
	if err := m.loginVerified(ctx, cs, ok, held); err != nil {
		if userID != "" && errors.As(err, new(*ThrottledError)) {
			m.loginThrottled(ctx, userID, ip)
		}
		return false, aboutUser(err, userID)
	}
	if !ok {
		// For fail2ban-style tools: the address and, when the login named
		// a user, who; never the login as typed (it may be a password
		// typed in the wrong field).
		attrs := []slog.Attr{slog.String("client_ip", ip)}
		if userID != "" {
			attrs = append(attrs, slog.String("user_id", userID))
		}
		m.Logger.LogAttrs(ctx, slog.LevelWarn, "sign-in failed", attrs...)
	}
	return ok, nil
}

// checkLogin returns the *ThrottledError of the first of the login
// counters cs that has reached its limit, before a password is verified,
// so that an attempt past a limit costs no hash. It also reports whether
// the (account, address) counter holds failures, which a correct password
// then resets (none are recorded when that limit is off). The counters are
// counted in one call, one round trip to a shared store.
func (m *Manager) checkLogin(ctx context.Context, now time.Time, cs [3]counter) (held bool, err error) {
	var (
		ask    [len(cs)]Counter
		counts [len(cs)]Counted
		on     [len(cs)]int // indexes into cs of the counted
		n      int
	)
	for i, c := range cs {
		if r := c.rule.rate(&m.Throttles); r.N > 0 {
			ask[n], on[n] = Counter{Key: c.key, Window: r.Window}, i
			n++
		}
	}
	if n == 0 {
		return false, nil
	}
	if err := m.limiter.Count(ctx, ask[:n], now, counts[:n]); err != nil {
		return false, err
	}
	for j := range n {
		c := cs[on[j]]
		if on[j] == 0 { // (account, address), the one a success resets
			held = counts[j].N > 0
		}
		if counts[j].N >= c.rule.rate(&m.Throttles).N {
			return held, c.rule.throttled(counts[j].OldestLeavesIn)
		}
	}
	return held, nil
}

// loginVerified answers a login once its password is verified (ok tells
// whether it was right), and only while the limits hold. A failure is
// recorded with a Take per group of counters, each one atomic
// check-and-add: it learns that the password was wrong only if every
// counter had room for it, so however many attempts run at once, on every
// instance together, at most N failures per window are answered 401; the
// others get the 429 they would have got up front. A success records
// nothing (successes never count, and never hold anyone back) but passes
// the same check, also a write: a right password past a limit gets the
// 429 a wrong one gets, and when the limiter store cannot record, right
// and wrong passwords alike get its error (503), so that no answer tells
// them apart. held says whether the (account, address) counter held
// failures before the hash: a success then forgets them.
func (m *Manager) loginVerified(ctx context.Context, cs [3]counter, ok, held bool) error {
	if !ok {
		m.observer.Login(false)
	}
	now := m.now()
	id := ""
	if !ok {
		id = randomID()
	}
	if err := m.take(ctx, now, id, cs[:2]...); err != nil {
		return err
	}
	if err := m.take(ctx, now, id, cs[2]); err != nil {
		var th *ThrottledError
		if id != "" && errors.As(err, &th) {
			// Refused: the attempt was not answered, so it does not
			// count. A store error keeps it counted: fail closed.
			m.release(ctx, now, id, cs[:2]...)
		}
		return err
	}
	if ok && held {
		m.resetAttempts(ctx, cs[0])
	}
	return nil
}

// resetAttempts forgets the failures of an account from an address (its
// counter c) after a correct password.
func (m *Manager) resetAttempts(ctx context.Context, c counter) {
	if err := m.limiter.Reset(ctx, c.key); err != nil {
		m.Logger.WarnContext(ctx, "throttle reset failed", "err", err)
	}
}

// take is one atomic check-and-add over counters of one group (see
// Limiter.Take; id "" records nothing): a *ThrottledError naming the first
// full counter, or the store's error when it could not record, which the
// caller answers instead of letting the attempt through. A counter whose
// rule is off (N <= 0) is left out.
func (m *Manager) take(ctx context.Context, now time.Time, id string, cs ...counter) error {
	var (
		buf [3]Budget
		on  [3]int
		n   int
	)
	for i, c := range cs {
		if r := c.rule.rate(&m.Throttles); r.N > 0 {
			buf[n], on[n] = Budget{Key: c.key, Window: r.Window, N: r.N}, i
			n++
		}
	}
	if n == 0 {
		return nil
	}
	t, err := m.limiter.Take(ctx, buf[:n], id, now)
	if err != nil {
		return fmt.Errorf("throttle: %w", err)
	}
	if !t.OK {
		return cs[on[t.Full]].rule.throttled(t.RetryAfter)
	}
	return nil
}

// release gives back the event id that take recorded at now; a failure is
// logged, since the event then only counts for nothing.
func (m *Manager) release(ctx context.Context, now time.Time, id string, cs ...counter) {
	var (
		buf [3]string
		n   int
	)
	for _, c := range cs {
		if c.rule.rate(&m.Throttles).N > 0 {
			buf[n] = c.key
			n++
		}
	}
	if n == 0 {
		return
	}
	if err := m.limiter.Release(context.WithoutCancel(ctx), buf[:n], id, now); err != nil {
		m.Logger.LogAttrs(ctx, slog.LevelWarn, "throttle release failed", slog.String("err", err.Error()))
	}
}

// throttled returns the *ThrottledError of a full counter whose oldest
// event leaves its window in wait.
func (r *rule) throttled(wait time.Duration) error {
	if wait < time.Second {
		wait = time.Second
	}
	return &ThrottledError{RetryAfter: wait, What: r.what, Rule: r.name}
}

// aboutUser returns err with userID as the user of a ThrottledError in it.
func aboutUser(err error, userID string) error {
	var th *ThrottledError
	if errors.As(err, &th) && th.UserID == "" {
		th.UserID = userID
	}
	return err
}
