package http_test

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/redis"
	"github.com/sessiond/sessiond/redis/redistest"
)

// TestThrottle drives every throttle (docs/design.md, "Throttles") through the real
// HTTP server, once with the embedded store and once with Redis. Client
// addresses are simulated with X-Forwarded-For from a trusted proxy
// (127.0.0.1), except where the point is that an untrusted peer cannot do
// the same. Each sub-test uses its own addresses and accounts, so the
// counters of one never reach into another.
func TestThrottle(t *testing.T) {
	for _, backend := range []struct {
		name string
		// heavy runs the per-account case (100 argon2 hashes); once is
		// enough, the limiter itself is the same code path on both.
		heavy bool
	}{{"sqlite", true}, {"redis", false}} {
		t.Run(backend.name, func(t *testing.T) {
			start := func(trusted bool) *sessiondtest.Server {
				var o sessiondtest.Options
				if backend.name == "redis" {
					// Concurrent sign-ins keep both cores hashing: a
					// generous deadline keeps this about throttles, not
					// about load.
					o = sessiondtest.OnRedis(t, o, redis.Options{URL: redistest.Start(t).URL(), Timeout: 5 * time.Second})
				}
				return sessiondtest.StartServer(t, o, func(s *sessiondtest.Server) {
					if trusted {
						s.HTTP.TrustedProxies = proxies(t, "127.0.0.1/32")
					}
				})
			}
			proxied := start(true)
			direct := start(false)
			testThrottles(t, proxied, direct, backend.heavy)
		})
	}
}

// ipSeq numbers simulated client addresses, unique within a test binary.
var ipSeq atomic.Uint32

// newIP returns a fresh client address in 10.0.0.0/8.
func newIP() string {
	n := ipSeq.Add(1)
	return fmt.Sprintf("10.%d.%d.%d", n>>16&255, n>>8&255, n&255)
}

// from returns a client of ts that claims to come from ip through the
// trusted proxy.
func from(t testing.TB, ts *sessiondtest.Server, ip string) *sessiondtest.Client {
	c := sessiondtest.NewClient(t, ts.URL)
	c.Headers = map[string]string{"X-Forwarded-For": ip}
	return c
}

// userSeq makes usernames unique within a test binary.
var userSeq atomic.Uint32

// newUser registers a fresh user from a fresh address (the registration
// throttle counts per address) and returns its username.
func newUser(t testing.TB, ts *sessiondtest.Server, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s%d", prefix, userSeq.Add(1))
	from(t, ts, newIP()).Register(name)
	return name
}

const wrongPassword = "not the password"

// expectThrottled asserts a 429 in the envelope with a Retry-After of at
// least one second and at most window, whose message names what.
func expectThrottled(t testing.TB, r *sessiondtest.Response, window time.Duration, what string) {
	t.Helper()
	r.Expect(t, http.StatusTooManyRequests)
	ra, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil || ra < 1 || time.Duration(ra)*time.Second > window {
		t.Fatalf("Retry-After: got %q, want 1 to %d seconds", r.Header.Get("Retry-After"), int(window/time.Second))
	}
	if !strings.Contains(r.Env.Message, what) {
		t.Fatalf("429 message %q does not say %q", r.Env.Message, what)
	}
}

// retryText matches the varying part of a throttle message.
var retryText = regexp.MustCompile(`retry after [0-9hms.]+`)

func testThrottles(t *testing.T, proxied, direct *sessiondtest.Server, heavy bool) {
	const (
		loginWindow    = 15 * time.Minute
		minuteWindow   = time.Minute
		registerWindow = time.Hour
	)

	t.Run("ten failures per account and address, then 429", func(t *testing.T) {
		user := newUser(t, proxied, "amy")
		other := newUser(t, proxied, "abe")
		attacker := from(t, proxied, newIP())
		for i := range 10 {
			if r := attacker.Attempt(user, wrongPassword); r.StatusCode != 401 {
				t.Fatalf("failure %d: got %d, want 401: %s", i+1, r.StatusCode, r.Body)
			}
		}
		expectThrottled(t, attacker.Attempt(user, wrongPassword), loginWindow, "this account from this address")
		// The right password from that address waits too: the check comes
		// before the password, or the 429 would be an oracle.
		expectThrottled(t, attacker.Attempt(user, sessiondtest.Password), loginWindow, "this account from this address")
		// One address never locks the user out: the user signs in from
		// anywhere else, and the address still signs in to other accounts.
		from(t, proxied, newIP()).Attempt(user, sessiondtest.Password).Expect(t, 200)
		attacker.Attempt(other, sessiondtest.Password).Expect(t, 200)
	})

	t.Run("a success resets the account and address count", func(t *testing.T) {
		user := newUser(t, proxied, "bea")
		c := from(t, proxied, newIP())
		for range 9 {
			c.Attempt(user, wrongPassword).Expect(t, 401)
		}
		c.Attempt(user, sessiondtest.Password).Expect(t, 200)
		for i := range 10 {
			if r := c.Attempt(user, wrongPassword); r.StatusCode != 401 {
				t.Fatalf("failure %d after the reset: got %d, want 401: %s", i+1, r.StatusCode, r.Body)
			}
		}
		expectThrottled(t, c.Attempt(user, wrongPassword), loginWindow, "this account from this address")
	})

	t.Run("username and email share one count", func(t *testing.T) {
		user := newUser(t, proxied, "cal")
		c := from(t, proxied, newIP())
		for i := range 10 {
			login := user
			if i%2 == 1 {
				login = strings.ToUpper(user) + "@EXAMPLE.com"
			}
			c.Attempt(login, wrongPassword).Expect(t, 401)
		}
		expectThrottled(t, c.Attempt(user, wrongPassword), loginWindow, "this account from this address")
		expectThrottled(t, c.Attempt(user+"@example.com", sessiondtest.Password), loginWindow, "this account from this address")
	})

	t.Run("successes never count and thirty failures per address across accounts", func(t *testing.T) {
		users := []string{newUser(t, proxied, "dan"), newUser(t, proxied, "dot")}
		c := from(t, proxied, newIP())
		// More successes than any limit, from one address, to two accounts.
		for i := range 31 {
			c.Attempt(users[i%2], sessiondtest.Password).Expect(t, 200)
		}
		// Thirty failures, at most three per account: real accounts and
		// names nobody has.
		for i := range 30 {
			login := fmt.Sprintf("ghost-%d-%d", userSeq.Load(), i/3)
			if i%3 == 0 {
				login = users[i/3%2]
			}
			if r := c.Attempt(login, wrongPassword); r.StatusCode != 401 {
				t.Fatalf("failure %d from the address: got %d, want 401: %s", i+1, r.StatusCode, r.Body)
			}
		}
		expectThrottled(t, c.Attempt("ghost-fresh-"+newIP(), wrongPassword), loginWindow, "sign-ins from this address")
		expectThrottled(t, c.Attempt(users[0], sessiondtest.Password), loginWindow, "sign-ins from this address")
		from(t, proxied, newIP()).Attempt(users[0], sessiondtest.Password).Expect(t, 200)
	})

	t.Run("unknown usernames count exactly like real ones", func(t *testing.T) {
		real := newUser(t, proxied, "eve")
		ghost := "ghost-" + real
		cr, cg := from(t, proxied, newIP()), from(t, proxied, newIP())
		for i := range 12 {
			password := wrongPassword
			if i == 11 {
				password = sessiondtest.Password
			}
			a, b := cr.Attempt(real, password), cg.Attempt(ghost, password)
			if a.StatusCode != b.StatusCode {
				t.Fatalf("attempt %d: real account %d, unknown name %d", i+1, a.StatusCode, b.StatusCode)
			}
			want := 401
			if i >= 10 {
				want = 429
				if (a.Header.Get("Retry-After") == "") || (b.Header.Get("Retry-After") == "") {
					t.Fatalf("attempt %d: Retry-After missing", i+1)
				}
			}
			if a.StatusCode != want {
				t.Fatalf("attempt %d: got %d, want %d: %s", i+1, a.StatusCode, want, a.Body)
			}
			// The bodies are the same but for the seconds left to wait.
			ab, bb := retryText.ReplaceAllString(string(a.Body), "retry after T"), retryText.ReplaceAllString(string(b.Body), "retry after T")
			if ab != bb {
				t.Fatalf("attempt %d: bodies differ:\nreal:    %s\nunknown: %s", i+1, a.Body, b.Body)
			}
		}
	})

	t.Run("concurrent failures do not pass the limit", func(t *testing.T) {
		user := newUser(t, proxied, "fay")
		c := from(t, proxied, newIP())
		var mu sync.Mutex
		statuses := map[int]int{}
		var wg sync.WaitGroup
		for range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := c.Attempt(user, wrongPassword)
				mu.Lock()
				statuses[r.StatusCode]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		if statuses[401] > 10 || statuses[401]+statuses[429] != 40 {
			t.Fatalf("40 concurrent wrong passwords: got %v, want at most 10 checked (401) and the rest 429", statuses)
		}
		t.Logf("40 concurrent wrong passwords: %v", statuses)
		expectThrottled(t, c.Attempt(user, wrongPassword), loginWindow, "this account from this address")
		from(t, proxied, newIP()).Attempt(user, sessiondtest.Password).Expect(t, 200)
	})

	t.Run("concurrent successes are never held back", func(t *testing.T) {
		// One address, as behind a NAT: 31 users sign in at once (more
		// than the per-address limit), one of them 12 times (more than
		// the per-account-and-address limit).
		var users []string
		for range 31 {
			users = append(users, newUser(t, proxied, "nat"))
		}
		for range 11 {
			users = append(users, users[0])
		}
		c := from(t, proxied, newIP())
		var mu sync.Mutex
		statuses := map[int]int{}
		var wg sync.WaitGroup
		for _, u := range users {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := c.Attempt(u, sessiondtest.Password)
				mu.Lock()
				statuses[r.StatusCode]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		if statuses[200] != len(users) {
			t.Fatalf("%d concurrent sign-ins from one address: got %v, want every one 200", len(users), statuses)
		}
	})

	if heavy {
		t.Run("a hundred failures per account from many addresses", func(t *testing.T) {
			user := newUser(t, proxied, "gus")
			fail := func(n int) {
				t.Helper()
				for i := range n {
					// Two failures per address, far from the (account,
					// address) limit.
					c := from(t, proxied, fmt.Sprintf("198.18.%d.%d", userSeq.Load()%200, i/2))
					if r := c.Attempt(user, wrongPassword); r.StatusCode != 401 {
						t.Fatalf("failure %d: got %d, want 401: %s", i+1, r.StatusCode, r.Body)
					}
				}
			}
			fail(50)
			// Halfway, the user still signs in from a fresh address; the
			// success counts for nothing.
			from(t, proxied, newIP()).Attempt(user, sessiondtest.Password).Expect(t, 200)
			userSeq.Add(1) // other addresses for the second half
			fail(50)
			// A flood from many addresses slows the account down.
			expectThrottled(t, from(t, proxied, newIP()).Attempt(user, sessiondtest.Password), loginWindow, "failed sign-ins for this account,")
			// Other accounts are not concerned.
			from(t, proxied, newIP()).Attempt(newUser(t, proxied, "gil"), sessiondtest.Password).Expect(t, 200)
		})
	}

	t.Run("rotating X-Forwarded-For from an untrusted peer bypasses nothing", func(t *testing.T) {
		// direct trusts no proxy: the socket peer is the client, whatever
		// the header says.
		c := sessiondtest.NewClient(t, direct.URL)
		c.Register("hal")
		g := c.Login("hal", nil)
		if g.Session.IPAddress != "127.0.0.1" {
			t.Fatalf("session address: got %q, want the peer 127.0.0.1", g.Session.IPAddress)
		}
		spoof := func() { c.Headers = map[string]string{"X-Forwarded-For": newIP()} }
		// One account.
		for range 10 {
			spoof()
			c.Attempt("hal", wrongPassword).Expect(t, 401)
		}
		spoof()
		expectThrottled(t, c.Attempt("hal", wrongPassword), loginWindow, "this account from this address")
		// Many accounts: 20 more failures make 30 from the peer.
		for i := range 20 {
			spoof()
			c.Attempt(fmt.Sprintf("nobody-%d", i), wrongPassword).Expect(t, 401)
		}
		spoof()
		expectThrottled(t, c.Attempt("nobody-else", wrongPassword), loginWindow, "sign-ins from this address")
	})

	t.Run("a wrong current password counts as a failed login", func(t *testing.T) {
		user := newUser(t, proxied, "ida")
		c := from(t, proxied, newIP())
		g := c.Login(user, nil)
		change := func(current string) *sessiondtest.Response {
			return c.Do("POST", "/api/v1/auth/password", g.AccessToken, map[string]any{
				"current_password": current, "new_password": "another good password", "revoke_other_sessions": false,
			})
		}
		for range 10 {
			change(wrongPassword).Expect(t, 400)
		}
		expectThrottled(t, change(wrongPassword), loginWindow, "this account from this address")
		expectThrottled(t, c.Attempt(user, sessiondtest.Password), loginWindow, "this account from this address")
		// Elsewhere, both work.
		c2 := from(t, proxied, newIP())
		c2.Attempt(user, sessiondtest.Password).Expect(t, 200)
		c2.Do("POST", "/api/v1/auth/password", g.AccessToken, map[string]any{
			"current_password": sessiondtest.Password, "new_password": "another good password",
		}).Expect(t, 200)
	})

	t.Run("thirty failed refreshes per address a minute", func(t *testing.T) {
		user := newUser(t, proxied, "jon")
		g := from(t, proxied, newIP()).Login(user, nil)
		c := from(t, proxied, newIP())
		forged := forgeRefresh(g.RefreshToken)
		for i := range 30 {
			tok := []string{"garbage", forged, g.AccessToken, "sdr1." + strings.Repeat("A", 40)}[i%4]
			if r := c.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": tok}); r.StatusCode != 401 {
				t.Fatalf("failed refresh %d: got %d, want 401: %s", i+1, r.StatusCode, r.Body)
			}
		}
		refresh := func(c *sessiondtest.Client) *sessiondtest.Response {
			return c.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": g.RefreshToken})
		}
		expectThrottled(t, c.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": "garbage"}), minuteWindow, "failed refreshes")
		// The limit holds failures back, not the authentic token of a user
		// behind the same address; and the forgeries changed nothing.
		var next sessiondtest.Grant
		refresh(c).Expect(t, 200).Decode(t, &next)
		expectThrottled(t, c.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": forged}), minuteWindow, "failed refreshes")
		var last sessiondtest.Grant
		c.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": next.RefreshToken}).Expect(t, 200).Decode(t, &last)
		// Nor is reuse detection: a superseded token from the throttled
		// address ends the session (401), never a 429.
		refresh(c).Expect(t, 401)
		from(t, proxied, newIP()).Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": last.RefreshToken}).Expect(t, 401)
		c.Do("GET", "/api/v1/me", last.AccessToken, nil).Expect(t, 401)
	})

	t.Run("ten refreshes of one session a minute", func(t *testing.T) {
		user := newUser(t, proxied, "kay")
		c := from(t, proxied, newIP())
		g := c.Login(user, nil)
		other := c.Login(user, nil)
		// Forgeries that name the session do not spend its budget.
		forger := from(t, proxied, newIP())
		for range 15 {
			forger.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": forgeRefresh(g.RefreshToken)}).Expect(t, 401)
		}
		tok := g.RefreshToken
		for i := range 10 {
			var next sessiondtest.Grant
			r := c.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": tok})
			if r.StatusCode != 200 {
				t.Fatalf("refresh %d: got %d, want 200: %s", i+1, r.StatusCode, r.Body)
			}
			r.Decode(t, &next)
			tok = next.RefreshToken
		}
		expectThrottled(t, c.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": tok}), minuteWindow, "refreshes of this session")
		// Per session: the user's other session is not concerned.
		c.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": other.RefreshToken}).Expect(t, 200)
	})

	t.Run("thirty revokes of unknown sessions per user a minute", func(t *testing.T) {
		user, neighbour := newUser(t, proxied, "lea"), newUser(t, proxied, "lou")
		c := from(t, proxied, newIP())
		a, b, keep := c.Login(user, nil), c.Login(user, nil), c.Login(user, nil)
		n := c.Login(neighbour, nil)
		for i := range 30 {
			id := randomSessionID()
			if i%5 == 0 {
				id = n.Session.ID // another user's session looks unknown
			}
			if r := c.Do("DELETE", "/api/v1/sessions/"+id, a.AccessToken, nil); r.StatusCode != 404 {
				t.Fatalf("unknown revoke %d: got %d, want 404: %s", i+1, r.StatusCode, r.Body)
			}
		}
		expectThrottled(t, c.Do("DELETE", "/api/v1/sessions/"+randomSessionID(), a.AccessToken, nil), minuteWindow, "revocations of unknown sessions")
		expectThrottled(t, c.Do("DELETE", "/api/v1/sessions/"+n.Session.ID, keep.AccessToken, nil), minuteWindow, "revocations of unknown sessions")
		// Successful revokes are never throttled, from any of the user's
		// sessions, and the neighbour's session is untouched.
		c.Do("DELETE", "/api/v1/sessions/"+b.Session.ID, a.AccessToken, nil).Expect(t, 200)
		c.Do("DELETE", "/api/v1/sessions/"+a.Session.ID, keep.AccessToken, nil).Expect(t, 200)
		c.Do("GET", "/api/v1/me", n.AccessToken, nil).Expect(t, 200)
		// The count is per user.
		c.Do("DELETE", "/api/v1/sessions/"+randomSessionID(), n.AccessToken, nil).Expect(t, 404)
	})

	t.Run("twenty registrations per address an hour", func(t *testing.T) {
		c := from(t, proxied, newIP())
		prefix := fmt.Sprintf("reg%d-", userSeq.Add(1))
		for i := range 20 {
			c.Register(fmt.Sprintf("%s%d", prefix, i))
		}
		expectThrottled(t, c.Do("POST", "/api/v1/auth/register", "", map[string]string{
			"username": prefix + "x", "email": prefix + "x@example.com", "password": sessiondtest.Password,
		}), registerWindow, "registrations")
		from(t, proxied, newIP()).Register(prefix + "y")
	})

	t.Run("bursts of three times a limit get the limit through", func(t *testing.T) {
		// Sent at once from one address: each throttle takes its place
		// atomically before it answers.
		statuses := func(n int, send func(i int) *sessiondtest.Response) map[int]int {
			var mu sync.Mutex
			got := map[int]int{}
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					r := send(i)
					mu.Lock()
					got[r.StatusCode]++
					mu.Unlock()
				})
			}
			wg.Wait()
			return got
		}
		want := func(what string, got map[int]int, status, n int) {
			t.Helper()
			t.Logf("%d %s at once: %v", 3*n, what, got)
			if got[status] != n || got[429] != 2*n {
				t.Fatalf("%d %s at once: got %v, want %d answered %d and %d answered 429", 3*n, what, got, n, status, 2*n)
			}
		}
		c := from(t, proxied, newIP())
		prefix := fmt.Sprintf("burst%d-", userSeq.Add(1))
		want("registrations", statuses(60, func(i int) *sessiondtest.Response {
			return c.Do("POST", "/api/v1/auth/register", "", map[string]string{
				"username": fmt.Sprintf("%s%d", prefix, i), "email": fmt.Sprintf("%s%d@example.com", prefix, i), "password": sessiondtest.Password,
			})
		}), 201, 20)

		user := newUser(t, proxied, "nia")
		g := from(t, proxied, newIP()).Login(user, nil)
		c = from(t, proxied, newIP())
		want("forged refreshes", statuses(90, func(int) *sessiondtest.Response {
			return c.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": forgeRefresh(g.RefreshToken)})
		}), 401, 30)
		want("revocations of unknown sessions", statuses(90, func(int) *sessiondtest.Response {
			return c.Do("DELETE", "/api/v1/sessions/"+randomSessionID(), g.AccessToken, nil)
		}), 404, 30)
		want("wrong passwords", statuses(30, func(int) *sessiondtest.Response {
			return c.Attempt(user, wrongPassword)
		}), 401, 10)
	})

	t.Run("conflicting registrations count too", func(t *testing.T) {
		// Each attempt costs an argon2 hash and answers whether a name is
		// taken: neither may be free.
		taken := newUser(t, proxied, "max")
		c := from(t, proxied, newIP())
		for i := range 20 {
			c.Do("POST", "/api/v1/auth/register", "", map[string]string{
				"username": taken, "email": fmt.Sprintf("%s-%d@example.com", taken, i), "password": sessiondtest.Password,
			}).Expect(t, 409)
		}
		expectThrottled(t, c.Do("POST", "/api/v1/auth/register", "", map[string]string{
			"username": taken, "email": taken + "-x@example.com", "password": sessiondtest.Password,
		}), registerWindow, "registrations")
	})
}

// forgeRefresh returns tok with its MAC replaced: the same user, session
// and generation, not signed by the server.
func forgeRefresh(tok string) string {
	i := strings.LastIndexByte(tok, '.')
	mac := make([]byte, 32)
	rand.Read(mac)
	return tok[:i+1] + base64.RawURLEncoding.EncodeToString(mac)
}

// randomSessionID returns an id shaped like a real one that names nothing.
func randomSessionID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
