package http_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/redis"
	"github.com/sessiond/sessiond/redis/redistest"
)

func TestRedisDownIsUnavailableThenRecovers(t *testing.T) {
	r := redistest.Start(t)
	ts := sessiondtest.StartServer(t, sessiondtest.OnRedis(t, sessiondtest.Options{}, redis.Options{URL: r.URL(), Timeout: 100 * time.Millisecond}), nil)
	c := sessiondtest.NewClient(t, ts.URL)
	c.Register("olga")
	g := c.Login("olga", nil)
	c.Do("GET", "/api/v1/me", g.AccessToken, nil).Expect(t, 200)

	// Load from several clients while Redis dies.
	var mu sync.Mutex
	seen := map[int]int{}
	stop := make(chan struct{})
	killed := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Timeout: 5 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				afterKill := false
				select {
				case <-killed:
					afterKill = true
				default:
				}
				req, _ := http.NewRequest("GET", ts.URL+"/api/v1/me", nil)
				req.Header.Set("Authorization", "Bearer "+g.AccessToken)
				resp, err := hc.Do(req)
				if err != nil {
					t.Errorf("request failed: %v", err)
					return
				}
				resp.Body.Close()
				if afterKill {
					mu.Lock()
					seen[resp.StatusCode]++
					mu.Unlock()
					if resp.StatusCode == 503 && resp.Header.Get("Retry-After") == "" {
						t.Errorf("503 without Retry-After")
					}
				}
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	r.Kill()
	// The connection drop reaches the client within moments; from then
	// on, nothing may succeed and nothing may be refused for good.
	time.Sleep(200 * time.Millisecond)
	close(killed)
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	if len(seen) != 1 || seen[503] == 0 {
		t.Fatalf("while Redis was down: statuses %v, want only 503", seen)
	}
	c.Do("POST", "/api/v1/auth/login", "", map[string]string{"username": "olga", "password": sessiondtest.Password}).Expect(t, 503)
	c.Do("GET", "/readyz", "", nil).Expect(t, 503)

	r.Start()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp := c.Do("GET", "/readyz", "", nil)
		if resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessiond did not recover within 10 s after Redis came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Redis kept nothing (no persistence in this test), so the old session
	// is gone: 401 now that the store answers again, and a new login works.
	c.Do("GET", "/api/v1/me", g.AccessToken, nil).Expect(t, 401)
	g2 := c.Login("olga", nil)
	c.Do("GET", "/api/v1/me", g2.AccessToken, nil).Expect(t, 200)
}
