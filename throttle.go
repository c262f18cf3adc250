package sessiond

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
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
// holds it in clear. The (account, address) counter is in the account's
// group, so that both are taken in one atomic step: one address then adds
// to the account's count only what its own budget admits.
func (m *Manager) loginKeys(u *User, login, ip string) loginKeys {
	name := "n:" + FoldLogin(login)
	if u != nil {
		name = "u:" + u.ID
	}
	sum := sha256.Sum256([]byte("sessiond login\x00" + name))
	acct := "la:" + base64.RawURLEncoding.EncodeToString(sum[:12])
	ip = addrKey(ip)
	return loginKeys{account: acct, accountIP: acct + GroupSep + ip, ip: "li:" + ip}
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
// checked: the first two are the account's group, the last the address's.
func (m *Manager) loginLimits(k loginKeys) [3]limit {
	t := m.Throttles
	return [3]limit{
		{"failed sign-ins for this account from this address", t.LoginAccountIP, k.accountIP},
		{"failed sign-ins for this account", t.LoginAccount, k.account},
		{"failed sign-ins from this address", t.LoginIP, k.ip},
	}
}

// checkLogin returns the *ThrottledError of the first login counter of k
// that has reached its limit, before a password is verified, so that an
// attempt past a limit costs no hash. It also reports whether the
// (account, address) counter holds failures, which a correct password then
// resets (none are recorded when that limit is off). The counters are
// counted in one call, one round trip to a shared store.
func (m *Manager) checkLogin(ctx context.Context, now time.Time, k loginKeys) (held bool, err error) {
	limits := m.loginLimits(k)
	var (
		cs     [len(limits)]Counter
		counts [len(limits)]Counted
		on     [len(limits)]int // indexes into limits of the counted
		n      int
	)
	for i, c := range limits {
		if c.rate.N > 0 {
			cs[n], on[n] = Counter{Key: c.key, Window: c.rate.Window}, i
			n++
		}
	}
	if n > 0 {
		if err := m.limiter.Count(ctx, cs[:n], now, counts[:n]); err != nil {
			return false, err
		}
	}
	for j := range n {
		l := limits[on[j]]
		if on[j] == 0 { // (account, address), the one a success resets
			held = counts[j].N > 0
		}
		if counts[j].N >= l.rate.N {
			return held, throttled(l.what, counts[j].OldestLeavesIn)
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
func (m *Manager) loginVerified(ctx context.Context, k loginKeys, ok, held bool) error {
	if !ok {
		m.observer.Login(false)
	}
	now := m.now()
	id := ""
	if !ok {
		id = randomID()
	}
	ls := m.loginLimits(k)
	if err := m.take(ctx, now, id, ls[:2]...); err != nil {
		return err
	}
	if err := m.take(ctx, now, id, ls[2]); err != nil {
		var th *ThrottledError
		if id != "" && errors.As(err, &th) {
			// Refused: the attempt was not answered, so it does not
			// count. A store error keeps it counted: fail closed.
			m.release(ctx, now, id, ls[:2]...)
		}
		return err
	}
	if ok && held {
		m.resetAttempts(ctx, k)
	}
	return nil
}

// take is one atomic check-and-add over limits of one group (see
// Limiter.Take; id "" records nothing): a *ThrottledError naming the first
// full counter, or the store's error when it could not record, which the
// caller answers instead of letting the attempt through.
func (m *Manager) take(ctx context.Context, now time.Time, id string, limits ...limit) error {
	var (
		buf [3]Budget
		on  [3]int
		n   int
	)
	for i, l := range limits {
		if l.rate.N > 0 {
			buf[n], on[n] = Budget{Key: l.key, Window: l.rate.Window, N: l.rate.N}, i
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
		return throttled(limits[on[t.Full]].what, t.RetryAfter)
	}
	return nil
}

// release gives back the event id that take recorded at now; a failure is
// logged, since the event then only counts for nothing.
func (m *Manager) release(ctx context.Context, now time.Time, id string, limits ...limit) {
	var (
		buf [3]string
		n   int
	)
	for _, l := range limits {
		if l.rate.N > 0 {
			buf[n] = l.key
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
func throttled(what string, wait time.Duration) error {
	if wait < time.Second {
		wait = time.Second
	}
	return &ThrottledError{RetryAfter: wait, What: what}
}
