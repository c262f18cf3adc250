package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/redis/redistest"
)

// Faults of a real Redis under the real program (docs/design.md, "Fail
// closed"). Redis being killed under load is
// TestRedisDownIsUnavailableThenRecovers in http/redisdown_test.go.

// TestFaultRedisKilledWithAppendFsyncAlways kills Redis (SIGKILL, as a
// crash) after logins, revocations and refreshes, and restarts it on the
// same port and directory. With appendonly yes and appendfsync always,
// every acknowledged write is on disk: no session is lost, no revocation is
// undone, and refresh generations survive, so an old refresh token is
// still caught as reuse. The checks run on an instance started after the
// restart, which cannot know anything from memory (the revoking instance
// would refuse its own revocations for a few seconds whatever Redis says).
//
// A process kill leaves written data in the kernel, so it tells an AOF
// from no AOF (this test fails with appendonly no) but not appendfsync
// always from everysec; only a power cut would.
func TestFaultRedisKilledWithAppendFsyncAlways(t *testing.T) {
	r := redistest.Start(t, redistest.WithConfig("appendonly", "yes", "appendfsync", "always"))
	env := map[string]string{"SESSIOND_REDIS_URL": r.URL(), "SESSIOND_DATA_DIR": t.TempDir()}
	a := startServer(t, env)
	ca := sessiondtest.NewClient(t, a.URL)
	ca.Register("quinn")
	var g [6]sessiondtest.Grant
	for i := range g {
		g[i] = ca.Login("quinn", map[string]string{"device_name": fmt.Sprintf("device %d", i)})
	}
	// 0 is revoked from another device, 1 logs out.
	ca.Do("DELETE", "/api/v1/sessions/"+g[0].Session.ID, g[5].AccessToken, nil).Expect(t, 200)
	ca.Do("POST", "/api/v1/auth/logout", g[1].AccessToken, nil).Expect(t, 200)
	// 2 is refreshed twice (generation 3), 3 once (generation 2).
	var g2b, g2c, g3b sessiondtest.Grant
	ca.PostRefresh(g[2].RefreshToken).Expect(t, 200).Decode(t, &g2b)
	ca.PostRefresh(g2b.RefreshToken).Expect(t, 200).Decode(t, &g2c)
	ca.PostRefresh(g[3].RefreshToken).Expect(t, 200).Decode(t, &g3b)
	// 4 is renamed.
	ca.Do("PATCH", "/api/v1/sessions/"+g[4].Session.ID, g[4].AccessToken, map[string]string{"name": "renamed"}).Expect(t, 200)
	var before []sessiondtest.Session
	ca.Do("GET", "/api/v1/sessions", g[5].AccessToken, nil).Expect(t, 200).Decode(t, &before)
	if len(before) != 4 {
		t.Fatalf("sessions before the crash: got %d, want 4", len(before))
	}

	r.Kill()
	ca.WaitReadyz(t, http.StatusServiceUnavailable, 2*time.Second)
	r.Start()
	ca.WaitReadyz(t, http.StatusOK, 10*time.Second)

	b := startServer(t, env)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("instance a:\n%s\ninstance b:\n%s", a.Logs.String(), b.Logs.String())
		}
	})
	cb := sessiondtest.NewClient(t, b.URL)
	cb.WaitReadyz(t, http.StatusOK, 10*time.Second)
	var after []sessiondtest.Session
	cb.Do("GET", "/api/v1/sessions", g[5].AccessToken, nil).Expect(t, 200).Decode(t, &after)
	if !slices.Equal(before, after) {
		t.Fatalf("sessions changed across the crash:\nbefore %+v\nafter  %+v", before, after)
	}
	// Connections that were open when Redis died can still answer a write
	// with EOF until they are replaced; a write whose outcome is unknown is
	// a 503 (the store's answer is unknown, so nothing is decided), which
	// the client retries. What survived is judged on the settled answer.
	settled := func(do func() *sessiondtest.Response) *sessiondtest.Response {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			r := do()
			if r.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
				return r
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	refresh := func(c *sessiondtest.Client, token string) *sessiondtest.Response {
		return settled(func() *sessiondtest.Response { return c.PostRefresh(token) })
	}
	for _, c := range []*sessiondtest.Client{cb, ca} {
		// Revocations held.
		for _, i := range []int{0, 1} {
			c.Do("GET", "/api/v1/me", g[i].AccessToken, nil).Expect(t, 401)
			refresh(c, g[i].RefreshToken).Expect(t, 401)
		}
		// Live sessions work.
		for _, tok := range []string{g[4].AccessToken, g[5].AccessToken, g2c.AccessToken, g3b.AccessToken} {
			c.Do("GET", "/api/v1/me", tok, nil).Expect(t, 200)
		}
	}
	// Session 3 is still at generation 2: its current token rotates it
	// (a lost rotation would make that token one from the future).
	var g3c sessiondtest.Grant
	refresh(cb, g3b.RefreshToken).Expect(t, 200).Decode(t, &g3c)
	if g3c.Session.ID != g[3].Session.ID {
		t.Fatalf("refresh after the crash: got session %s, want %s", g3c.Session.ID, g[3].Session.ID)
	}
	// Session 2 is still at generation 3: its first token is reuse and
	// ends the session (a lost rotation would accept it).
	refresh(cb, g[2].RefreshToken).Expect(t, 401)
	cb.Do("GET", "/api/v1/me", g2c.AccessToken, nil).Expect(t, 401)
	refresh(cb, g2c.RefreshToken).Expect(t, 401)
	ca.Do("GET", "/api/v1/me", g2c.AccessToken, nil).Expect(t, 401)
}

// burstResult is one answer during a burst.
type burstResult struct {
	what   string
	status int
	took   time.Duration
	retry  string
	err    error
}

// TestFaultSlowRedis pauses every Redis client (CLIENT PAUSE ALL) and sends
// a burst of requests: each answers 503 with Retry-After within the 100ms
// deadline (well under a second), never 401 or 200 on something that needs
// Redis; goroutines do not pile up in the process (the server runs in it),
// neither while Redis stays paused nor after; and everything works again
// after the pause.
func TestFaultSlowRedis(t *testing.T) {
	r := redistest.Start(t)
	ts := startServer(t, map[string]string{"SESSIOND_REDIS_URL": r.URL(), "SESSIOND_REDIS_TIMEOUT": "100ms"})
	c := sessiondtest.NewClient(t, ts.URL)
	c.Register("pat")
	g := c.Login("pat", nil)

	hc := &http.Client{Timeout: 5 * time.Second}
	send := func(what string) burstResult {
		var req *http.Request
		switch what {
		case "me":
			req, _ = http.NewRequest("GET", ts.URL+"/api/v1/me", nil)
			req.Header.Set("Authorization", "Bearer "+g.AccessToken)
		case "sessions":
			req, _ = http.NewRequest("GET", ts.URL+"/api/v1/sessions", nil)
			req.Header.Set("Authorization", "Bearer "+g.AccessToken)
		case "refresh":
			body, _ := json.Marshal(map[string]string{"refresh_token": g.RefreshToken})
			req, _ = http.NewRequest("POST", ts.URL+"/api/v1/auth/refresh", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
		case "login":
			body, _ := json.Marshal(map[string]string{"username": "pat", "password": sessiondtest.Password})
			req, _ = http.NewRequest("POST", ts.URL+"/api/v1/auth/login", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
		case "readyz":
			req, _ = http.NewRequest("GET", ts.URL+"/readyz", nil)
		}
		start := time.Now()
		resp, err := hc.Do(req)
		res := burstResult{what: what, took: time.Since(start), err: err}
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			res.status, res.retry = resp.StatusCode, resp.Header.Get("Retry-After")
		}
		return res
	}
	kinds := []string{"me", "sessions", "refresh", "login", "readyz"}
	const perKind = 40
	burst := func(kinds []string) ([]burstResult, time.Duration) {
		start := time.Now()
		results := make([]burstResult, perKind*len(kinds))
		var wg sync.WaitGroup
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = send(kinds[i%len(kinds)])
			}()
		}
		wg.Wait()
		return results, time.Since(start)
	}
	settled := func(limit int, within time.Duration) int {
		hc.CloseIdleConnections()
		deadline := time.Now().Add(within)
		for {
			n := runtime.NumGoroutine()
			if n <= limit || time.Now().After(deadline) {
				return n
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// Warm up with the same load (without the paths that throttles or
	// argon2 would make slow), so that connections and pools are in their
	// steady state, then count the goroutines of the process.
	// On a loaded machine a few of these may exceed the 100ms deadline.
	warm, _ := burst([]string{"me", "sessions", "readyz"})
	for _, res := range warm {
		if res.err != nil || res.status != 200 && res.status != 503 {
			t.Fatalf("%s before the pause: %d %v", res.what, res.status, res.err)
		}
	}
	before := settled(0, 500*time.Millisecond)

	// The pause outlasts the keep-alive ping (1 s) plus the connection
	// write timeout (2 s), after which the store drops its connection.
	const pause = 5 * time.Second
	const slack = 15
	r.MustDo("CLIENT", "PAUSE", fmt.Sprint(pause.Milliseconds()), "ALL")
	paused := time.Now()
	results, took := burst(kinds)
	if took >= time.Second {
		t.Fatalf("the burst took %s: the test would not be checking answers within the deadline", took)
	}
	var slowest time.Duration
	counts := map[string]int{}
	for _, res := range results {
		if res.err != nil {
			t.Fatalf("%s during the pause: %v", res.what, res.err)
		}
		counts[fmt.Sprintf("%s %d", res.what, res.status)]++
		slowest = max(slowest, res.took)
		if res.took >= time.Second {
			t.Errorf("%s during the pause answered %d after %s, want well under 1 s", res.what, res.status, res.took)
		}
		switch {
		case res.status == 503:
			if res.retry == "" {
				t.Errorf("%s during the pause: 503 without Retry-After", res.what)
			}
		case res.what == "me" && res.status == 200:
			// Served from the client-side cache, which stays valid while
			// its connection lives: no Redis call needed.
		default:
			t.Errorf("%s during the pause: got %d, want 503", res.what, res.status)
		}
	}
	t.Logf("during a %s pause: %d requests in %s, slowest %s: %v", pause, len(results), took, slowest, counts)

	// Each call that timed out leaves a goroutine waiting for its late
	// reply (rueidis), until Redis answers or the connection is dropped:
	// while Redis stays paused, they must be gone once the keep-alive
	// ping has failed, well before the pause ends.
	during := runtime.NumGoroutine()
	held := settled(before+slack, time.Until(paused.Add(pause-500*time.Millisecond)))
	released := time.Since(paused)
	if held > before+slack {
		var dump strings.Builder
		pprof.Lookup("goroutine").WriteTo(&dump, 1)
		t.Fatalf("goroutines piled up while Redis was paused: %d before the burst, %d right after it, still %d %s into the pause\n%s", before, during, held, released.Round(time.Millisecond), dump.String())
	}

	time.Sleep(time.Until(paused.Add(pause)))
	c.WaitReadyz(t, http.StatusOK, 5*time.Second)
	after := settled(before+slack, 3*time.Second)
	t.Logf("goroutines: %d before the burst, %d right after it, %d by %s into the pause, %d once it ended", before, during, held, released.Round(time.Millisecond), after)
	if after > before+slack {
		var dump strings.Builder
		pprof.Lookup("goroutine").WriteTo(&dump, 1)
		t.Fatalf("goroutines piled up: %d before the burst, %d after the pause\n%s", before, after, dump.String())
	}

	// Recovery. The refreshes sent during the pause were queued by Redis
	// and may have run once it resumed; the same token then gets the
	// successor inside the grace window.
	c.Do("GET", "/api/v1/me", g.AccessToken, nil).Expect(t, 200)
	c.Do("GET", "/api/v1/sessions", g.AccessToken, nil).Expect(t, 200)
	var g2 sessiondtest.Grant
	c.PostRefresh(g.RefreshToken).Expect(t, 200).Decode(t, &g2)
	c.Do("GET", "/api/v1/me", g2.AccessToken, nil).Expect(t, 200)
	c.Login("pat", nil)
}

// clientIDs returns the ids of Redis's normal client connections of user
// that have client tracking on (flags contain t): the connections that
// carry an instance's invalidations.
func clientIDs(t *testing.T, r *redistest.Server, user string) []string {
	t.Helper()
	var ids []string
	for _, line := range strings.Split(r.MustDo("CLIENT", "LIST", "TYPE", "normal"), "\n") {
		f := map[string]string{}
		for _, kv := range strings.Fields(line) {
			k, v, _ := strings.Cut(kv, "=")
			f[k] = v
		}
		if f["user"] == user && strings.Contains(f["flags"], "t") {
			ids = append(ids, f["id"])
		}
	}
	return ids
}

// waitRefused polls GET /api/v1/me with token on c until it answers 401,
// and fails the test if it still answers 200 after within. A 503 while the
// instance reconnects is acceptable; any other answer is not.
func waitRefused(t *testing.T, c *sessiondtest.Client, token string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		r := c.Do("GET", "/api/v1/me", token, nil)
		switch r.StatusCode {
		case 401:
			return time.Since(start)
		case 200, 503:
		default:
			t.Fatalf("GET /api/v1/me: got %d while waiting for 401: %s", r.StatusCode, r.Body)
		}
		if time.Since(start) > within {
			t.Fatalf("a revoked session still answers %d after %s", r.StatusCode, within)
		}
		time.Sleep(time.Millisecond)
	}
}

// past503 repeats req while it answers 503, for at most within, and
// returns the first other answer.
func past503(t *testing.T, within time.Duration, req func() *sessiondtest.Response) *sessiondtest.Response {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		r := req()
		if r.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			return r
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestFaultInvalidationConnectionKilled kills instance B's Redis
// connections, which carry its invalidation messages, with CLIENT KILL,
// while B holds sessions in its client-side cache. B connects as its own
// ACL user, so the kill hits B alone and A keeps working. A revocation on
// A right after the kill, and one after B has reconnected, both reach B
// within a second: B's cached copies died with their connection instead of
// being served stale for the cache TTL.
func TestFaultInvalidationConnectionKilled(t *testing.T) {
	r := redistest.Start(t)
	r.MustDo("ACL", "SETUSER", "instance-b", "on", ">b-secret", "~*", "&*", "+@all")
	dir := t.TempDir()
	a := startServer(t, map[string]string{"SESSIOND_REDIS_URL": r.URL(), "SESSIOND_DATA_DIR": dir})
	b := startServer(t, map[string]string{"SESSIOND_REDIS_URL": "redis://instance-b:b-secret@" + r.Addr(), "SESSIOND_DATA_DIR": dir})
	ca, cb := sessiondtest.NewClient(t, a.URL), sessiondtest.NewClient(t, b.URL)
	ca.Register("kim")
	keep := ca.Login("kim", nil)
	early := ca.Login("kim", nil) // revoked right after the kill
	late := ca.Login("kim", nil)  // revoked after B has reconnected

	// B caches both: after the first request, B answers without asking
	// Redis.
	for _, g := range []sessiondtest.Grant{early, late} {
		cb.Do("GET", "/api/v1/me", g.AccessToken, nil).Expect(t, 200)
	}
	reads := redisCalls(t, r, "hmget")
	for range 10 {
		for _, g := range []sessiondtest.Grant{early, late} {
			cb.Do("GET", "/api/v1/me", g.AccessToken, nil).Expect(t, 200)
		}
	}
	if n := redisCalls(t, r, "hmget") - reads; n != 0 {
		t.Fatalf("B read Redis %d times for 20 requests: the sessions are not cached, the test would prove nothing", n)
	}

	ids := clientIDs(t, r, "instance-b")
	if len(ids) == 0 {
		t.Fatalf("no tracking connection of instance B in CLIENT LIST:\n%s", r.MustDo("CLIENT", "LIST"))
	}
	for _, id := range ids {
		r.MustDo("CLIENT", "KILL", "ID", id)
	}
	ca.Do("DELETE", "/api/v1/sessions/"+early.Session.ID, keep.AccessToken, nil).Expect(t, 200)
	ca.Do("GET", "/api/v1/me", early.AccessToken, nil).Expect(t, 401)
	d := waitRefused(t, cb, early.AccessToken, time.Second)
	t.Logf("B refused the session revoked right after the kill after %s", d)

	// B reconnects; the session it cached before the kill must not be
	// served from that old copy, which no invalidation would ever reach:
	// B reads it from Redis again, on a connection that tracks it.
	reads = redisCalls(t, r, "hmget")
	deadline := time.Now().Add(5 * time.Second)
	for len(clientIDs(t, r, "instance-b")) == 0 || cb.Do("GET", "/api/v1/me", late.AccessToken, nil).StatusCode != 200 {
		if time.Now().After(deadline) {
			t.Fatal("B did not reconnect within 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for range 10 {
		cb.Do("GET", "/api/v1/me", late.AccessToken, nil).Expect(t, 200)
	}
	if redisCalls(t, r, "hmget") == reads {
		t.Fatal("B kept answering from the copy it cached before its connection was killed")
	}
	ca.Do("DELETE", "/api/v1/sessions/"+late.Session.ID, keep.AccessToken, nil).Expect(t, 200)
	d = waitRefused(t, cb, late.AccessToken, time.Second)
	t.Logf("B refused the session cached before the kill and revoked after it reconnected after %s", d)

	// B's other connections to Redis died too; an idle one is found dead
	// when next used, and that one call answers 503 (never 200 or 401).
	var list []sessiondtest.Session
	past503(t, 2*time.Second, func() *sessiondtest.Response {
		return cb.Do("GET", "/api/v1/sessions", keep.AccessToken, nil)
	}).Expect(t, 200).Decode(t, &list)
	if len(list) != 1 || list[0].ID != keep.Session.ID {
		t.Fatalf("B's list after the revocations: got %+v, want only the keeping session", list)
	}
}

// redisCalls returns how many times r has run cmd (INFO commandstats).
func redisCalls(t *testing.T, r *redistest.Server, cmd string) int {
	t.Helper()
	info := r.MustDo("INFO", "commandstats")
	_, rest, ok := strings.Cut(info, "cmdstat_"+cmd+":calls=")
	if !ok {
		return 0
	}
	n := 0
	for _, ch := range rest {
		if ch < '0' || ch > '9' {
			break
		}
		n = n*10 + int(ch-'0')
	}
	return n
}
