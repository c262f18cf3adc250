package http_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/redis"
	"github.com/sessiond/sessiond/redis/redistest"
)

// TestLargeUserPagesAndRevokesAll: a user at the hard maximum of 10,000
// sessions on Redis walks the list page by page through the Link header
// (the current session first, every session exactly once), and signing
// out every other device answers 200 once all 9,999 are gone, with one
// revoked event each.
func TestLargeUserPagesAndRevokesAll(t *testing.T) {
	r := redistest.Start(t)
	ts := sessiondtest.StartServer(t, sessiondtest.OnRedis(t, sessiondtest.Options{}, redis.Options{URL: r.URL()}), func(s *sessiondtest.Server) {
		s.Manager.MaxSessions = 10000
	})
	c := sessiondtest.NewClient(t, ts.URL)
	u := c.Register("many")
	g := c.Login("many", nil)

	st, err := redis.New(context.Background(), redis.Options{URL: r.URL(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	now := time.Now().UTC().Truncate(time.Millisecond)
	want := map[string]bool{g.Session.ID: true}
	for i := range sessiond.HardMaxSessions - 1 {
		at := now.Add(-time.Duration(i/2) * time.Second) // pairs share a time
		s := &sessiond.Session{
			ID: fmt.Sprintf("large-session-id-%05d", i), UserID: u.ID, Device: "curl", DeviceClass: sessiond.ClassCLI,
			IPAddress: "203.0.113.9", CreatedAt: at, LastActive: at, ExpiresAt: now.Add(time.Hour), Generation: 1, RotatedAt: at,
		}
		if _, err := st.Create(context.Background(), s, sessiond.SessionCap{}, now); err != nil {
			t.Fatal(err)
		}
		want[s.ID] = true
	}

	c.Do("GET", "/api/v1/sessions?limit=0", g.AccessToken, nil).Expect(t, 400).WantField(t, "limit")
	c.Do("GET", "/api/v1/sessions?limit=1001", g.AccessToken, nil).Expect(t, 400).WantField(t, "limit")
	c.Do("GET", "/api/v1/sessions?limit=ten", g.AccessToken, nil).Expect(t, 400).WantField(t, "limit")
	c.Do("GET", "/api/v1/sessions?cursor=bm90LWEtY3Vyc29y", g.AccessToken, nil).Expect(t, 400).WantField(t, "cursor")

	next := regexp.MustCompile(`^<(/api/v1/sessions\?[^>]+)>; rel="next"$`)
	seen := map[string]bool{}
	path := "/api/v1/sessions"
	var prev sessiondtest.Session
	for pages := 1; ; pages++ {
		var list []sessiondtest.Session
		resp := c.Do("GET", path, g.AccessToken, nil).Expect(t, 200)
		resp.Decode(t, &list)
		if pages == 1 && (len(list) != sessiond.DefaultListLimit || list[0].ID != g.Session.ID || !list[0].Current) {
			t.Fatalf("first page: got %d sessions, first %+v; want 1000, the current one first", len(list), list[0])
		}
		for i, s := range list {
			if seen[s.ID] {
				t.Fatalf("page %d: session %s listed twice", pages, s.ID)
			}
			seen[s.ID] = true
			if (pages > 1 || i > 1) && s.LastActive > prev.LastActive {
				t.Fatalf("page %d: %s (last active %s) after %s (%s), want newest first", pages, s.ID, s.LastActive, prev.ID, prev.LastActive)
			}
			if pages > 1 || i > 0 {
				prev = s
			}
		}
		link := resp.Header.Get("Link")
		if link == "" {
			if pages != 10 {
				t.Fatalf("the list ended after %d pages, want 10", pages)
			}
			break
		}
		m := next.FindStringSubmatch(link)
		if m == nil || !strings.Contains(m[1], "limit=1000") {
			t.Fatalf("page %d: Link %q, want <relative URL with limit=1000>; rel=\"next\"", pages, link)
		}
		path = m[1]
	}
	if len(seen) != len(want) {
		t.Fatalf("walked %d sessions, want %d", len(seen), len(want))
	}
	for id := range want {
		if !seen[id] {
			t.Fatalf("session %s was on no page", id)
		}
	}

	events := subscribeRaw(t, r.Addr(), redis.EventsChannel(u.ID))
	var revoked struct {
		Revoked int `json:"revoked"`
	}
	c.Do("DELETE", "/api/v1/sessions", g.AccessToken, nil).Expect(t, 200).Decode(t, &revoked)
	if revoked.Revoked != sessiond.HardMaxSessions-1 {
		t.Fatalf("revoke others: got %d, want %d", revoked.Revoked, sessiond.HardMaxSessions-1)
	}
	var list []sessiondtest.Session
	c.Do("GET", "/api/v1/sessions", g.AccessToken, nil).Expect(t, 200).Decode(t, &list)
	if len(list) != 1 || list[0].ID != g.Session.ID {
		t.Fatalf("list after revoke others: got %d sessions, want only the current one", len(list))
	}
	ended := map[string]bool{}
	deadline := time.After(30 * time.Second)
	for len(ended) < sessiond.HardMaxSessions-1 {
		select {
		case msg := <-events:
			if !strings.Contains(msg, `"revoked"`) {
				t.Fatalf("event %s, want a revoked event", msg)
			}
			ended[msg] = true
		case <-deadline:
			t.Fatalf("got %d distinct revoked events, want %d", len(ended), sessiond.HardMaxSessions-1)
		}
	}
}

// subscribeRaw subscribes to a shard channel on a plain connection (which
// Redis buffers for, unlike an in-process subscriber that drops events it
// cannot keep up with) and sends each message's payload on the channel.
func subscribeRaw(t *testing.T, addr, channel string) <-chan string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "*2\r\n$10\r\nSSUBSCRIBE\r\n$%d\r\n%s\r\n", len(channel), channel)
	rd := bufio.NewReader(conn)
	bulk := func() (string, error) {
		line, err := rd.ReadString('\n')
		if err != nil {
			return "", err
		}
		n, err := strconv.Atoi(strings.TrimSpace(line[1:]))
		if err != nil || line[0] != '$' {
			return "", fmt.Errorf("want a bulk string, got %q", line)
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(rd, b); err != nil {
			return "", err
		}
		return string(b[:n]), nil
	}
	// The confirmation: *3, $10, ssubscribe, $n, the channel, :1.
	for range 6 {
		if _, err := rd.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	out := make(chan string, sessiond.HardMaxSessions)
	go func() {
		for {
			if _, err := rd.ReadString('\n'); err != nil { // *3
				return
			}
			kind, err := bulk()
			if err != nil {
				return
			}
			if _, err := bulk(); err != nil { // the channel
				return
			}
			payload, err := bulk()
			if err != nil {
				return
			}
			if kind == "smessage" {
				out <- payload
			}
		}
	}()
	return out
}
