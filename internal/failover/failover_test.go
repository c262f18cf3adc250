package failover_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/internal/apitest"
	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/redis"
	"github.com/sessiond/sessiond/redis/redistest"
)

const password = "correct horse battery staple"

// errorLog records the log lines at level Error, where the server logs a
// 503 that is not a store being unavailable (a bug behind a 503), and
// those at level Warn (the reasons of the other 503s), shown if the test
// fails.
type errorLog struct {
	mu    sync.Mutex
	lines []string
	warns []string
}

func (l *errorLog) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelWarn }
func (l *errorLog) WithAttrs([]slog.Attr) slog.Handler            { return l }
func (l *errorLog) WithGroup(string) slog.Handler                 { return l }
func (l *errorLog) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	l.mu.Lock()
	if r.Level >= slog.LevelError {
		l.lines = append(l.lines, b.String())
	} else {
		l.warns = append(l.warns, r.Time.Format("15:04:05.000")+" "+b.String())
	}
	l.mu.Unlock()
	return nil
}

func (l *errorLog) check(t *testing.T) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		t.Errorf("logged at level Error: %s", line)
	}
}

// instance is one sessiond HTTP server with its own Redis client.
type instance struct {
	name   string
	url    string
	client *http.Client
	m      *sessiond.Manager
}

// deployment is two instances over one Redis Cluster (sessions, throttles)
// and one SQLite file (users), sharing their keys, as two sessiond
// processes of one deployment would.
type deployment struct {
	a, b *instance
	log  *errorLog
}

func newDeployment(t *testing.T, c *redistest.Cluster, acks int) *deployment {
	t.Helper()
	db := sessiondtest.OpenSQLite(t)
	sk, err := sessiond.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	rk, err := sessiond.GenerateRefreshKey()
	if err != nil {
		t.Fatal(err)
	}
	d := &deployment{log: &errorLog{}}
	t.Cleanup(func() {
		if t.Failed() {
			d.log.mu.Lock()
			defer d.log.mu.Unlock()
			t.Logf("warnings logged:\n%s", strings.Join(d.log.warns, "\n"))
		}
	})
	logger := slog.New(d.log)
	v := apitest.NewValidator(t)
	var throttles sessiond.Throttles // high enough that only the store can refuse
	for _, r := range []*sessiond.Rate{&throttles.LoginAccountIP, &throttles.LoginAccount, &throttles.LoginIP, &throttles.Register,
		&throttles.FailedRefresh, &throttles.SessionRefresh, &throttles.UnknownRevoke} {
		*r = sessiond.Rate{N: 1_000_000, Window: time.Minute}
	}
	for _, p := range []**instance{&d.a, &d.b} {
		// A deadline of 1 s rather than 100 ms: the test machine is
		// shared, and a dial plus a round trip to a replica can take
		// longer than 100 ms there.
		o := sessiondtest.OnRedis(t, sessiondtest.Options{DB: db, SigningKey: sk, RefreshKey: rk, CheapHashing: true, Logger: logger},
			redis.Options{URL: c.URL(), ReplicaAcks: acks, Timeout: time.Second})
		srv := sessiondtest.StartServer(t, o, func(s *sessiondtest.Server) { s.Manager.Throttles = throttles })
		name := "A"
		if p == &d.b {
			name = "B"
		}
		*p = &instance{name: name, url: srv.URL, m: srv.Manager, client: &http.Client{Transport: v.Transport(t, nil), Timeout: 10 * time.Second}}
	}
	return d
}

// register creates a user through instance A's Manager and returns its id.
func (d *deployment) register(t *testing.T, name string) string {
	t.Helper()
	u, err := d.a.m.Register(context.Background(), sessiond.RegisterRequest{
		Username: name, Email: name + "@example.com", Password: password, ClientIP: "192.0.2.1",
	})
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	return u.ID
}

type answer struct {
	status int
	data   json.RawMessage
}

type grant struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	Session      struct {
		ID string `json:"id"`
	} `json:"session"`
}

// do sends one API request; a transport error is status 0.
func (in *instance) do(method, path, token string, body any) answer {
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, in.url+path, rd)
	if err != nil {
		return answer{}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := in.client.Do(req)
	if err != nil {
		return answer{}
	}
	defer resp.Body.Close()
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&env)
	return answer{status: resp.StatusCode, data: env.Data}
}

func (in *instance) login(name string) (answer, grant) {
	a := in.do("POST", "/api/v1/auth/login", "", map[string]string{"username": name, "password": password})
	var g grant
	if a.status == http.StatusOK {
		_ = json.Unmarshal(a.data, &g)
	}
	return a, g
}

func (in *instance) refresh(token string) (answer, grant) {
	a := in.do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": token})
	var g grant
	if a.status == http.StatusOK {
		_ = json.Unmarshal(a.data, &g)
	}
	return a, g
}

func (in *instance) me(token string) answer { return in.do("GET", "/api/v1/me", token, nil) }

func (in *instance) revoke(token, id string) answer {
	return in.do("DELETE", "/api/v1/sessions/"+id, token, nil)
}

// settle repeats req while it answers 503 (the cluster is still failing
// over, or a replica is still catching up), for at most 15 s, and returns
// the first other answer.
func settle(t *testing.T, what string, req func() answer) answer {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		a := req()
		if a.status != http.StatusServiceUnavailable {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still 503 after 15 s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mustLogin(t *testing.T, in *instance, name string) grant {
	t.Helper()
	var g grant
	a := settle(t, "login on "+in.name, func() answer { a, gr := in.login(name); g = gr; return a })
	if a.status != http.StatusOK {
		t.Fatalf("login of %s on %s: got %d, want 200", name, in.name, a.status)
	}
	return g
}

// refusedEverywhere checks that the session of g is refused on both
// instances, by its access token and by its refresh token.
func (d *deployment) refusedEverywhere(t *testing.T, what string, g grant) {
	t.Helper()
	for _, in := range []*instance{d.a, d.b} {
		if a := settle(t, what+": GET /me on "+in.name, func() answer { return in.me(g.AccessToken) }); a.status != http.StatusUnauthorized {
			t.Errorf("%s: GET /me on %s with its access token: got %d, want 401", what, in.name, a.status)
		}
		if a := settle(t, what+": refresh on "+in.name, func() answer { a, _ := in.refresh(g.RefreshToken); return a }); a.status != http.StatusUnauthorized {
			t.Errorf("%s: refresh on %s with its refresh token: got %d, want 401", what, in.name, a.status)
		}
	}
}

// detach cuts replica off its master: the replica is paused (SIGSTOP) and
// the master drops its replication link, so nothing the master writes from
// now on reaches the replica, which still holds everything written before.
func detach(t *testing.T, master, replica *redistest.Server) {
	t.Helper()
	// What came before (the sessions a test signs in) must be on the
	// replica, or the failover loses those too and proves nothing: wait
	// until the replica has processed the master's whole stream so far.
	want := replOffset(t, master, "master_repl_offset")
	deadline := time.Now().Add(10 * time.Second)
	for replOffset(t, replica, "slave_repl_offset") < want {
		if time.Now().After(deadline) {
			t.Fatalf("replica %s did not reach offset %d of its master in 10 s", replica.Addr(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	replica.Freeze()
	master.MustDo("CLIENT", "KILL", "TYPE", "replica")
}

// replOffset returns the replication offset field of s's INFO replication.
func replOffset(t *testing.T, s *redistest.Server, field string) int64 {
	t.Helper()
	for _, line := range strings.Split(s.MustDo("INFO", "replication"), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatalf("%s: %s: %v", s.Addr(), line, err)
			}
			return n
		}
	}
	t.Fatalf("%s: INFO replication has no %s", s.Addr(), field)
	return 0
}

// restore starts a killed node again (it rejoins as a replica of the
// master that replaced it) and waits until every replica is in sync.
func restore(t *testing.T, c *redistest.Cluster, node *redistest.Server) {
	t.Helper()
	node.Start()
	c.WaitOK()
	c.WaitReplicas()
}

// TestRevocationSurvivesFailover revokes a session while its master's
// replica is cut off, then kills the master so that the replica takes
// over without the revocation. With one replica acknowledgement required
// the revoke is answered 503, never 200, and a revoke answered 200 is
// still in force after its master dies; without (the contrast) the revoke
// is answered 200 and the revoked session works again after the failover.
func TestRevocationSurvivesFailover(t *testing.T) {
	c := redistest.StartFailoverCluster(t)

	t.Run("acks 1", func(t *testing.T) {
		d := newDeployment(t, c, 1)
		userID := d.register(t, "alice")
		victim := mustLogin(t, d.a, "alice")
		other := mustLogin(t, d.a, "alice")
		for _, in := range []*instance{d.a, d.b} {
			if a := in.me(victim.AccessToken); a.status != http.StatusOK {
				t.Fatalf("GET /me on %s: got %d", in.name, a.status)
			}
		}
		key := redis.SessionKey(userID, victim.Session.ID)
		master := c.MasterOf(key)
		replica := c.ReplicaOf(master)

		detach(t, master, replica)
		if a := d.a.revoke(other.AccessToken, victim.Session.ID); a.status != http.StatusServiceUnavailable {
			t.Fatalf("revoke while the replica is cut off: got %d, want 503", a.status)
		}
		if a, _ := d.b.refresh(other.RefreshToken); a.status != http.StatusServiceUnavailable {
			t.Fatalf("refresh while the replica is cut off: got %d, want 503", a.status)
		}
		master.Kill()
		replica.Thaw()
		c.WaitFailover(key, master)

		// The promoted replica has no replica of its own: a revoke cannot
		// be confirmed, so it is never answered 200.
		settle(t, "GET /me after the failover", func() answer { return d.b.me(other.AccessToken) })
		if a := d.b.revoke(other.AccessToken, victim.Session.ID); a.status != http.StatusServiceUnavailable {
			t.Fatalf("revoke on a master without replica: got %d, want 503", a.status)
		}
		restore(t, c, master)
		a := settle(t, "revoke once the old master is back as a replica", func() answer {
			return d.b.revoke(other.AccessToken, victim.Session.ID)
		})
		// The unconfirmed revoke above deleted it already (404); either
		// way the session is gone and replicas confirmed it.
		if a.status != http.StatusOK && a.status != http.StatusNotFound {
			t.Fatalf("revoke once the old master is back as a replica: got %d, want 200 or 404", a.status)
		}
		d.refusedEverywhere(t, "the session revoked around the failover", victim)

		// A revoke answered 200 survives the death of its master, killed
		// the moment the answer arrives.
		survivor := mustLogin(t, d.b, "alice")
		for _, in := range []*instance{d.a, d.b} {
			settle(t, "GET /me", func() answer { return in.me(survivor.AccessToken) })
		}
		key = redis.SessionKey(userID, survivor.Session.ID)
		master = c.MasterOf(key)
		if a := d.a.revoke(other.AccessToken, survivor.Session.ID); a.status != http.StatusOK {
			t.Fatalf("revoke with the replica in sync: got %d, want 200", a.status)
		}
		master.Kill()
		c.WaitFailover(key, master)
		d.refusedEverywhere(t, "the session revoked (200) before its master died", survivor)
		d.refusedEverywhere(t, "the session revoked around the first failover", victim)
		restore(t, c, master)
		d.log.check(t)
	})

	t.Run("acks 0 loses a revocation answered 200", func(t *testing.T) {
		d := newDeployment(t, c, 0)
		userID := d.register(t, "bob")
		victim := mustLogin(t, d.a, "bob")
		other := mustLogin(t, d.a, "bob")
		key := redis.SessionKey(userID, victim.Session.ID)
		master := c.MasterOf(key)
		replica := c.ReplicaOf(master)

		detach(t, master, replica)
		if a := d.a.revoke(other.AccessToken, victim.Session.ID); a.status != http.StatusOK {
			t.Fatalf("revoke without acknowledgements while the replica is cut off: got %d, want 200", a.status)
		}
		master.Kill()
		replica.Thaw()
		c.WaitFailover(key, master)

		// The failure that replica acknowledgements prevent: the session
		// revoked with a 200 is alive again.
		if a := settle(t, "GET /me after the failover", func() answer { return d.b.me(victim.AccessToken) }); a.status != http.StatusOK {
			t.Fatalf("GET /me with the revoked session after the failover, without acknowledgements: got %d, "+
				"want 200 (the revocation lost with its master; this contrast shows what acks 1 prevents)", a.status)
		}
		if a := settle(t, "refresh after the failover", func() answer { a, _ := d.b.refresh(victim.RefreshToken); return a }); a.status != http.StatusOK {
			t.Fatalf("refresh of the revoked session after the failover, without acknowledgements: got %d, want 200", a.status)
		}
		t.Log("without replica acknowledgements, a session revoked with a 200 came back after its master failed over")
		restore(t, c, master)
		d.log.check(t)
	})
}

// revoked is a session whose revoke was answered 200, with its tokens.
type revoked struct {
	at time.Time
	g  grant
}

// TestLoadDuringFailover runs logins, refreshes and revokes on both
// instances from several goroutines while a master is killed and later
// comes back as a replica: only 503s while the cluster fails over (no
// other 5xx, no error logged), every request succeeds again afterwards
// without restarting anything, and no session whose revoke was answered 200
// is accepted afterwards on either instance.
func TestLoadDuringFailover(t *testing.T) {
	c := redistest.StartFailoverCluster(t)
	d := newDeployment(t, c, 1)
	names := []string{"u0", "u1", "u2", "u3", "u4", "u5"}
	ids := map[string]string{}
	for _, n := range names {
		ids[n] = d.register(t, n)
	}

	var (
		mu       sync.Mutex
		statuses = map[string]map[int]int{}
		gone     []revoked
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	record := func(op string, status int) {
		mu.Lock()
		defer mu.Unlock()
		if statuses[op] == nil {
			statuses[op] = map[int]int{}
		}
		statuses[op][status]++
	}
	for w := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			insts := []*instance{d.a, d.b}
			for {
				select {
				case <-stop:
					return
				default:
				}
				name := names[rng.IntN(len(names))]
				in := insts[rng.IntN(2)]
				a, g := in.login(name)
				record("login", a.status)
				if a.status != http.StatusOK {
					continue
				}
				if a, g2 := insts[rng.IntN(2)].refresh(g.RefreshToken); a.status == http.StatusOK {
					g = g2
					record("refresh", a.status)
				} else {
					record("refresh", a.status)
				}
				a = insts[rng.IntN(2)].revoke(g.AccessToken, g.Session.ID)
				record("revoke", a.status)
				if a.status == http.StatusOK {
					mu.Lock()
					gone = append(gone, revoked{at: time.Now(), g: g})
					mu.Unlock()
				}
			}
		})
	}

	time.Sleep(time.Second)
	key := redis.IndexKey(ids["u0"])
	master := c.MasterOf(key)
	killed := time.Now()
	master.Kill()
	c.WaitFailover(key, master)
	promoted := time.Now()
	restore(t, c, master)
	back := time.Now()
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	t.Logf("master killed; promoted after %v; old master back in sync after %v more", promoted.Sub(killed), back.Sub(promoted))

	mu.Lock()
	for op, m := range statuses {
		t.Logf("%s: %v", op, m)
		for status, n := range m {
			switch {
			case status == 0:
				t.Errorf("%s: %d requests got no HTTP answer", op, n)
			case status >= 500 && status != http.StatusServiceUnavailable:
				t.Errorf("%s: %d answers %d, want only 503 among 5xx", op, n, status)
			case op == "login" && status != http.StatusOK && status != http.StatusServiceUnavailable:
				t.Errorf("login: %d answers %d, want 200 or 503", n, status)
			}
		}
	}
	if statuses["revoke"][http.StatusOK] == 0 {
		t.Fatal("no revoke answered 200 under load")
	}
	mu.Unlock()

	// Recovery: each user signs in, refreshes and signs a device out on
	// both instances; after the first answer, nothing is refused.
	for _, n := range names {
		g := mustLogin(t, d.a, n)
		for _, in := range []*instance{d.b, d.a} {
			a, g2 := in.refresh(g.RefreshToken)
			if a.status != http.StatusOK {
				t.Fatalf("refresh of %s on %s after recovery: got %d, want 200", n, in.name, a.status)
			}
			g = g2
		}
		if a := d.b.revoke(g.AccessToken, g.Session.ID); a.status != http.StatusOK {
			t.Fatalf("revoke of %s after recovery: got %d, want 200", n, a.status)
		}
		d.refusedEverywhere(t, "a session revoked after recovery", g)
	}

	// No revoke answered 200 was undone by the failover.
	for _, r := range gone {
		d.refusedEverywhere(t, fmt.Sprintf("session %s revoked at t=%v (t=0: the kill)", r.g.Session.ID, r.at.Sub(killed).Round(time.Millisecond)), r.g)
	}
	t.Logf("%d sessions revoked with a 200 are refused on both instances", len(gone))
	d.log.check(t)
}
