package sessiond

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"net/netip"
	"strings"
	"time"
)

// Rate is a limit of N events per Window. N <= 0 disables it.
type Rate struct {
	N      int
	Window time.Duration
}

// Throttles are the limits of DESIGN section 2.
type Throttles struct {
	// LoginAccountIP, LoginAccount and LoginIP count failed logins (and
	// wrong current passwords) per (account, client IP), per account and
	// per client IP. Unknown accounts count exactly like real ones.
	LoginAccountIP, LoginAccount, LoginIP Rate
	// Register counts registrations per client IP.
	Register Rate
	// FailedRefresh counts unknown, forged or reused refresh tokens per
	// client IP.
	FailedRefresh Rate
	// SessionRefresh counts refreshes of one session.
	SessionRefresh Rate
	// UnknownRevoke counts revocations of unknown or foreign session ids
	// per user.
	UnknownRevoke Rate
}

// DefaultThrottles are the defaults of DESIGN section 2.
var DefaultThrottles = Throttles{
	LoginAccountIP: Rate{10, 15 * time.Minute},
	LoginAccount:   Rate{100, 15 * time.Minute},
	LoginIP:        Rate{30, 15 * time.Minute},
	Register:       Rate{20, time.Hour},
	FailedRefresh:  Rate{30, time.Minute},
	SessionRefresh: Rate{10, time.Minute},
	UnknownRevoke:  Rate{30, time.Minute},
}

type loginKeys struct{ account, accountIP, ip string }

// loginKeys names the counters of a login attempt. The account is the
// user's id when the login names a user, so that a username and an email
// address share one count, and otherwise the lowercased login as typed, so
// that an unknown name counts like a real one; either is hashed, so no key
// holds it in clear.
func (m *Manager) loginKeys(u *User, login, ip string) loginKeys {
	name := "n:" + strings.ToLower(login)
	if u != nil {
		name = "u:" + u.ID
	}
	sum := sha256.Sum256([]byte("sessiond login\x00" + name))
	acct := base64.RawURLEncoding.EncodeToString(sum[:12])
	ip = addrKey(ip)
	return loginKeys{account: "la:" + acct, accountIP: "lai:" + acct + ":" + ip, ip: "li:" + ip}
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

// limit is one counter of an attempt: its rate, its key, and what the 429
// says about it.
type limit struct {
	what string
	rate Rate
	key  string
}

// loginLimits lists the login counters of k, in the order they are
// checked.
func (m *Manager) loginLimits(k loginKeys) [3]limit {
	t := m.Throttles
	return [3]limit{
		{"failed sign-ins for this account from this address", t.LoginAccountIP, k.accountIP},
		{"failed sign-ins for this account", t.LoginAccount, k.account},
		{"failed sign-ins from this address", t.LoginIP, k.ip},
	}
}

// throttleLogin checks the login counters before a password is verified,
// so that an attempt past a limit costs no hash.
func (m *Manager) throttleLogin(ctx context.Context, now time.Time, k loginKeys) error {
	_, err := m.checkLogin(ctx, now, k, 0)
	return err
}

// checkLogin returns the *ThrottledError of the first login counter of k
// that, with adjust added, has reached its limit. It also reports whether
// the (account, address) counter holds failures, which a correct password
// then resets (none are recorded when that limit is off). A Limiter
// that is a MultiCounter counts them all in one call: a login checks them
// twice, and with a shared store each call is a round trip.
func (m *Manager) checkLogin(ctx context.Context, now time.Time, k loginKeys, adjust int) (held bool, err error) {
	if m.Limiter == nil {
		return false, nil
	}
	limits := m.loginLimits(k)
	var (
		cs     [len(limits)]Counter
		counts [len(limits)]Count
		on     [len(limits)]int // indexes into limits of the counted
		n      int
	)
	for i, c := range limits {
		if c.rate.N > 0 {
			cs[n], on[n] = Counter{Key: c.key, Window: c.rate.Window}, i
			n++
		}
	}
	mc, batch := m.Limiter.(MultiCounter)
	if batch && n > 0 {
		if err := mc.CountMany(ctx, cs[:n], now, counts[:n]); err != nil {
			return false, err
		}
	}
	for j := range n {
		if !batch {
			c, w, err := m.Limiter.Count(ctx, cs[j].Key, cs[j].Window, now)
			if err != nil {
				return held, err
			}
			counts[j] = Count{N: c, OldestLeavesIn: w}
		}
		l := limits[on[j]]
		if on[j] == 0 { // (account, address), the one a success resets
			held = counts[j].N > 0
		}
		if err := limited(l.what, l.rate, counts[j].N+adjust, counts[j].OldestLeavesIn); err != nil {
			return held, err
		}
	}
	return held, nil
}

// loginVerified records a failed attempt (ok false) and checks the login
// counters again once the password is verified. Concurrent attempts all
// passed throttleLogin before any of them failed, so the answer, which
// tells whether the password was right, is only given while the limits
// hold: a failure when the counters, itself included, are within them, a
// success when no limit is reached. Any other attempt gets the 429 it would
// have got up front. Since every failure is recorded before it is counted,
// at most N failures learn their answer per window, on every instance
// together, however many were sent at once; and successes never hold
// anyone back, since they are never counted.
//
// After a correct password that passed, the failures of this account from
// this address are forgotten; a counter that was just counted empty is
// left alone, which spares the common login a round trip.
func (m *Manager) loginVerified(ctx context.Context, k loginKeys, ok bool) error {
	self := 0
	if !ok {
		m.loginFailed(ctx, m.now(), k)
		self = -1
	}
	// Every failure recorded so far, by any instance, is counted, however
	// its clock stamped it: a Limiter counts events after its now too.
	held, err := m.checkLogin(ctx, m.now(), k, self)
	if err != nil {
		return err
	}
	if ok && held {
		m.resetAttempts(ctx, k)
	}
	return nil
}

// loginFailed counts a failed attempt. The account's and the address's
// counters only take failures that this address still had a right to make
// on this account, so a burst from one address, however concurrent, adds
// at most LoginAccountIP.N to the account's count: one address can never
// lock a user out.
func (m *Manager) loginFailed(ctx context.Context, now time.Time, k loginKeys) {
	m.observeLogin(false)
	t := m.Throttles
	m.count(ctx, now, t.LoginAccountIP, k.accountIP)
	if m.Limiter != nil && t.LoginAccountIP.N > 0 {
		n, _, err := m.Limiter.Count(ctx, k.accountIP, t.LoginAccountIP.Window, now)
		if err == nil && n > t.LoginAccountIP.N {
			return
		}
	}
	m.count(ctx, now, t.LoginAccount, k.account)
	m.count(ctx, now, t.LoginIP, k.ip)
}

// throttle returns a *ThrottledError when key has reached rate.
func (m *Manager) throttle(ctx context.Context, now time.Time, what string, rate Rate, key string) error {
	if m.Limiter == nil || rate.N <= 0 {
		return nil
	}
	n, wait, err := m.Limiter.Count(ctx, key, rate.Window, now)
	if err != nil {
		return err
	}
	return limited(what, rate, n, wait)
}

// limited returns a *ThrottledError when n events have reached rate, wait
// being how long until the oldest of them leaves its window.
func limited(what string, rate Rate, n int, wait time.Duration) error {
	if n < rate.N {
		return nil
	}
	if wait < time.Second {
		wait = time.Second
	}
	return &ThrottledError{RetryAfter: wait, What: what}
}

// count records one event under key; a failure is logged, not returned,
// since the answer to the client does not depend on it.
func (m *Manager) count(ctx context.Context, now time.Time, rate Rate, key string) {
	if m.Limiter == nil || rate.N <= 0 {
		return
	}
	if err := m.Limiter.Add(ctx, key, rate.Window, now); err != nil {
		m.Logger.LogAttrs(ctx, slog.LevelWarn, "throttle count failed", slog.String("err", err.Error()))
	}
}
