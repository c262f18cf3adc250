package http_test

import (
	"bufio"
	"net/http"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/redis"
	"github.com/sessiond/sessiond/redis/redistest"
)

func TestEventStream(t *testing.T) {
	for _, store := range []string{"sqlite", "redis"} {
		t.Run(store, func(t *testing.T) {
			var ts, srvB *sessiondtest.Server
			if store == "redis" {
				r := redistest.Start(t)
				ts = sessiondtest.StartServer(t, sessiondtest.OnRedis(t, sessiondtest.Options{}, redis.Options{URL: r.URL()}), nil)
				// events cross instances
				srvB = sessiondtest.StartServer(t, sessiondtest.OnRedis(t, ts.Peer(), redis.Options{URL: r.URL()}), nil)
			} else {
				ts = startServer(t, nil)
				srvB = ts
			}
			c, cb := sessiondtest.NewClient(t, ts.URL), sessiondtest.NewClient(t, srvB.URL)
			c.Register("tess")
			a := c.Login("tess", nil)
			stream := sessiondtest.Subscribe(t, ts.URL, a.AccessToken)
			time.Sleep(100 * time.Millisecond) // the subscription is in place

			b := cb.Login("tess", nil)
			ev := sessiondtest.NextEvent(t, stream)
			if ev.Event != "created" || ev.Data.Type != "created" || ev.Data.SessionID != b.Session.ID || ev.Data.Session == nil || ev.Data.Session.Current {
				t.Fatalf("created: got %+v", ev)
			}
			cb.Do("PATCH", "/api/v1/sessions/"+b.Session.ID, b.AccessToken, map[string]string{"name": "Phone"}).Expect(t, 200)
			ev = sessiondtest.NextEvent(t, stream)
			if ev.Event != "renamed" || ev.Data.SessionID != b.Session.ID || ev.Data.Session == nil || ev.Data.Session.Name != "Phone" {
				t.Fatalf("renamed: got %+v", ev)
			}
			cb.Do("DELETE", "/api/v1/sessions/"+b.Session.ID, a.AccessToken, nil).Expect(t, 200)
			ev = sessiondtest.NextEvent(t, stream)
			if ev.Event != "revoked" || ev.Data.SessionID != b.Session.ID || ev.Data.Reason != "revoked" {
				t.Fatalf("revoked: got %+v", ev)
			}
			// Its own session signed out elsewhere: the revoked event, then
			// the stream ends.
			d := cb.Login("tess", nil)
			sessiondtest.NextEvent(t, stream)
			cb.Do("DELETE", "/api/v1/sessions/"+a.Session.ID, d.AccessToken, nil).Expect(t, 200)
			ev = sessiondtest.NextEvent(t, stream)
			if ev.Event != "revoked" || ev.Data.SessionID != a.Session.ID {
				t.Fatalf("own revocation: got %+v", ev)
			}
			select {
			case _, ok := <-stream:
				if ok {
					t.Fatal("the stream sent more after its own session ended")
				}
			case <-time.After(2 * time.Second):
				t.Fatal("the stream did not end after its own session was revoked")
			}
		})
	}
}

// TestEventStreamEndsWithItsToken: the stream ends when its access token
// expires (the page refreshes and reconnects) and sends comment lines in
// between, so proxies keep it open.
func TestEventStreamEndsWithItsToken(t *testing.T) {
	ts := startServer(t, func(s *sessiondtest.Server) {
		s.Manager.AccessTTL = 3 * time.Second
		s.HTTP.HeartbeatInterval = 300 * time.Millisecond
	})
	c := sessiondtest.NewClient(t, ts.URL)
	c.Register("uma")
	g := c.Login("uma", nil)
	req, _ := http.NewRequest("GET", ts.URL+"/api/v1/sessions/events", nil)
	req.Header.Set("Authorization", "Bearer "+g.AccessToken)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	pings := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if sc.Text() == ": ping" {
			pings++
		}
	}
	took := time.Since(start)
	if took < 1500*time.Millisecond || took > 6*time.Second {
		t.Fatalf("stream lasted %v, want about the token's remaining 3 s", took)
	}
	if pings < 2 {
		t.Fatalf("got %d heartbeat comments in %v", pings, took)
	}
}
