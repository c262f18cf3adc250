package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	sessiondhttp "github.com/sessiond/sessiond/http"
	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/redis/redistest"
)

type streamEvent struct {
	Event string
	Data  struct {
		Type      string                `json:"type"`
		SessionID string                `json:"session_id"`
		Reason    string                `json:"reason"`
		Session   *sessiondtest.Session `json:"session"`
	}
}

// openStream subscribes to the event stream with token and returns a
// channel of its events, closed when the stream ends.
func openStream(t *testing.T, base, token string) <-chan streamEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/sessions/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("events: status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	ch := make(chan streamEvent, 16)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var ev streamEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.Event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.Data); err != nil {
					t.Errorf("event data %q: %v", line, err)
				}
			case line == "" && ev.Event != "":
				ch <- ev
				ev = streamEvent{}
			}
		}
	}()
	return ch
}

func nextEvent(t *testing.T, ch <-chan streamEvent) streamEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("the stream ended")
		}
		return ev
	case <-time.After(2 * time.Second):
		t.Fatal("no event within 2 s")
	}
	return streamEvent{}
}

func TestEventStream(t *testing.T) {
	for _, store := range []string{"sqlite", "redis"} {
		t.Run(store, func(t *testing.T) {
			env := map[string]string{}
			srvB := (*testServer)(nil)
			if store == "redis" {
				r := redistest.Start(t)
				env["SESSIOND_REDIS_URL"] = r.URL()
				env["SESSIOND_DATA_DIR"] = t.TempDir()
			}
			ts := startServer(t, env)
			srvB = ts
			if store == "redis" {
				srvB = startServer(t, env) // events cross instances
			}
			c, cb := sessiondtest.NewClient(t, ts.URL), sessiondtest.NewClient(t, srvB.URL)
			c.Register("tess")
			a := c.Login("tess", nil)
			stream := openStream(t, ts.URL, a.AccessToken)
			time.Sleep(100 * time.Millisecond) // the subscription is in place

			b := cb.Login("tess", nil)
			ev := nextEvent(t, stream)
			if ev.Event != "created" || ev.Data.Type != "created" || ev.Data.SessionID != b.Session.ID || ev.Data.Session == nil || ev.Data.Session.Current {
				t.Fatalf("created: got %+v", ev)
			}
			cb.Do("PATCH", "/api/v1/sessions/"+b.Session.ID, b.AccessToken, map[string]string{"name": "Phone"}).Expect(t, 200)
			ev = nextEvent(t, stream)
			if ev.Event != "renamed" || ev.Data.SessionID != b.Session.ID || ev.Data.Session == nil || ev.Data.Session.Name != "Phone" {
				t.Fatalf("renamed: got %+v", ev)
			}
			cb.Do("DELETE", "/api/v1/sessions/"+b.Session.ID, a.AccessToken, nil).Expect(t, 200)
			ev = nextEvent(t, stream)
			if ev.Event != "revoked" || ev.Data.SessionID != b.Session.ID || ev.Data.Reason != "revoked" {
				t.Fatalf("revoked: got %+v", ev)
			}
			// Its own session signed out elsewhere: the revoked event, then
			// the stream ends.
			d := cb.Login("tess", nil)
			nextEvent(t, stream)
			cb.Do("DELETE", "/api/v1/sessions/"+a.Session.ID, d.AccessToken, nil).Expect(t, 200)
			ev = nextEvent(t, stream)
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
	old := sessiondhttp.HeartbeatInterval
	sessiondhttp.HeartbeatInterval = 300 * time.Millisecond
	t.Cleanup(func() { sessiondhttp.HeartbeatInterval = old })
	ts := startServer(t, map[string]string{"SESSIOND_ACCESS_TTL": "3s"})
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

// TestEventStreamEndsWhenItsSessionEndsUnannounced: a session revoked where
// this server's broker does not hear of it (the admin command, another
// process on the same SQLite file) still ends its stream, and the stream
// shows nothing after that.
func TestEventStreamEndsWhenItsSessionEndsUnannounced(t *testing.T) {
	old := sessiondhttp.HeartbeatInterval
	sessiondhttp.HeartbeatInterval = 200 * time.Millisecond
	t.Cleanup(func() { sessiondhttp.HeartbeatInterval = old })
	ts := startServer(t, nil)
	c := sessiondtest.NewClient(t, ts.URL)
	c.Register("vera")
	g := c.Login("vera", nil)
	stream := openStream(t, ts.URL, g.AccessToken)
	getenv := func(k string) string {
		if k == "SESSIOND_DATA_DIR" {
			return ts.DataDir
		}
		return ""
	}
	var out strings.Builder
	if err := run(t.Context(), []string{"sessions", "revoke", "vera", g.Session.ID}, getenv, strings.NewReader(""), &out, &out); err != nil {
		t.Fatalf("admin revoke: %v\n%s", err, out.String())
	}
	// Another process's write reaches this server's cache within 1 s; then
	// a new device's created event must not reach the ended stream.
	time.Sleep(1200 * time.Millisecond)
	c.Login("vera", nil)
	deadline := time.After(3 * time.Second)
	for {
		select {
		case ev, ok := <-stream:
			if !ok {
				return
			}
			if ev.Event == "created" {
				t.Fatalf("the stream of an ended session saw a new login: %+v", ev)
			}
		case <-deadline:
			t.Fatal("the stream of a session revoked by the admin command is still open after 3 s")
		}
	}
}
