package http_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/geoip/geoiptest"
	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/redis"
	"github.com/sessiond/sessiond/redis/redistest"
)

// TestDeviceFieldsBehindProxy: with a trusted proxy, the client IP is the
// right-most untrusted X-Forwarded-For address and its location comes from
// the GeoIP database; an untrusted peer cannot spoof either.
func TestDeviceFieldsBehindProxy(t *testing.T) {
	db := geoiptest.WriteSample(t)
	loc := locator(t, db)
	trusted := sessiondtest.StartServer(t, sessiondtest.Options{Locator: loc}, func(s *sessiondtest.Server) {
		s.HTTP.TrustedProxies = proxies(t, "127.0.0.1")
	})
	untrusted := sessiondtest.StartServer(t, sessiondtest.Options{Locator: loc}, func(s *sessiondtest.Server) {
		s.HTTP.TrustedProxies = proxies(t, "10.0.0.0/8")
	})
	for _, tc := range []struct {
		name, xff, wantIP, wantLoc string
		srv                        *sessiondtest.Server
	}{
		{"trusted peer, one hop", "81.2.69.142", "81.2.69.142", "London, United Kingdom", trusted},
		{"trusted peer, spoofed left entry", "102.89.1.1, 81.2.69.142", "81.2.69.142", "London, United Kingdom", trusted},
		{"trusted peer, IPv6", "2a02:c7f::1", "2a02:c7f::1", "Berlin, Germany", trusted},
		{"trusted peer, country only", "89.160.20.112", "89.160.20.112", "Sweden", trusted},
		{"trusted peer, private address", "192.168.1.10", "192.168.1.10", "", trusted},
		{"trusted peer, garbage", "not-an-ip", "127.0.0.1", "", trusted},
		{"untrusted peer, spoofed header", "81.2.69.142", "127.0.0.1", "", untrusted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := sessiondtest.NewClient(t, tc.srv.URL)
			user := fmt.Sprintf("u%d", time.Now().UnixNano()%1e9)
			c.Register(user)
			c.Headers = map[string]string{"X-Forwarded-For": tc.xff}
			g := c.Login(user, nil)
			if g.Session.IPAddress != tc.wantIP || g.Session.Location != tc.wantLoc {
				t.Fatalf("got ip %q location %q, want %q %q", g.Session.IPAddress, g.Session.Location, tc.wantIP, tc.wantLoc)
			}
		})
	}
}

// TestSameDeviceReplacesItsSession: logging in again with the same
// device_id replaces the device's session instead of adding one.
func TestSameDeviceReplacesItsSession(t *testing.T) {
	ts := startServer(t, nil)
	c := sessiondtest.NewClient(t, ts.URL)
	c.Register("quinn")
	first := c.Login("quinn", map[string]string{"device_id": "laptop-1"})
	other := c.Login("quinn", map[string]string{"device_id": "phone-1"})
	second := c.Login("quinn", map[string]string{"device_id": "laptop-1", "device_name": "Laptop"})
	if second.Session.ID == first.Session.ID {
		t.Fatal("the replacement kept the old session id")
	}
	c.Do("GET", "/api/v1/me", first.AccessToken, nil).Expect(t, 401)
	var list []sessiondtest.Session
	c.Do("GET", "/api/v1/sessions", second.AccessToken, nil).Expect(t, 200).Decode(t, &list)
	if len(list) != 2 || list[0].ID != second.Session.ID || list[0].Name != "Laptop" || list[1].ID != other.Session.ID {
		t.Fatalf("list: got %+v", list)
	}
	// Another user's identical device id is a different device.
	c.Register("rick")
	c.Login("rick", map[string]string{"device_id": "laptop-1"})
	c.Do("GET", "/api/v1/me", second.AccessToken, nil).Expect(t, 200)
}

// TestSessionCapUnderConcurrentLogins: simultaneous logins never leave more
// than the cap, on SQLite and on Redis, under both policies. (storetest
// checks the same with 100 concurrent creates on every store; here each
// login also pays for an argon2id hash.)
func TestSessionCapUnderConcurrentLogins(t *testing.T) {
	for _, store := range []string{"sqlite", "redis"} {
		for _, policy := range []string{"evict", "deny"} {
			t.Run(store+"/"+policy, func(t *testing.T) {
				var o sessiondtest.Options
				if store == "redis" {
					// The machine is busy hashing passwords: a generous
					// deadline keeps this about the cap, not about load.
					o = sessiondtest.OnRedis(t, o, redis.Options{URL: redistest.Start(t).URL(), Timeout: 5 * time.Second})
				}
				ts := sessiondtest.StartServer(t, o, func(s *sessiondtest.Server) {
					s.Manager.MaxSessions = 5
					s.Manager.CapPolicy = sessiond.CapPolicy(policy)
					s.HTTP.TrustedProxies = proxies(t, "127.0.0.1")
				})
				c := sessiondtest.NewClient(t, ts.URL)
				c.Register("sam")
				const n = 40
				var mu sync.Mutex
				statuses := map[int]int{}
				var wg sync.WaitGroup
				for i := range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						// Distinct client addresses keep the sign-in
						// throttles out of the way.
						c := from(t, ts, fmt.Sprintf("203.0.113.%d", i+1))
						r := c.Do("POST", "/api/v1/auth/login", "", map[string]string{"username": "sam", "password": sessiondtest.Password, "device_name": fmt.Sprint(i)})
						mu.Lock()
						statuses[r.StatusCode]++
						mu.Unlock()
					}()
				}
				wg.Wait()
				if policy == "deny" {
					if statuses[200] != 5 || statuses[409] != n-5 {
						t.Fatalf("deny: statuses %v, want 5 × 200 and %d × 409", statuses, n-5)
					}
					c.Do("POST", "/api/v1/auth/login", "", map[string]string{"username": "sam", "password": sessiondtest.Password}).Expect(t, 409)
					return
				}
				g := c.Login("sam", nil)
				if statuses[200] != n {
					t.Fatalf("evict: statuses %v, want %d × 200", statuses, n)
				}
				var list []sessiondtest.Session
				c.Do("GET", "/api/v1/sessions", g.AccessToken, nil).Expect(t, 200).Decode(t, &list)
				if len(list) != 5 {
					t.Fatalf("evict: %d sessions after %d logins, want 5", len(list), n+1)
				}
			})
		}
	}
}

var _ = http.StatusOK
