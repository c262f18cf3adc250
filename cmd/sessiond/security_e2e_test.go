package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/internal/webhooktest"
	"github.com/sessiond/sessiond/redis/redistest"
)

// deliveryWait bounds how long a test waits for deliveries: a dead
// instance's lease lasts a minute, then the 5 s retry, with room for a
// loaded machine.
const deliveryWait = 100 * time.Second

// storyPassword is the password the stories change to.
const storyPassword = "another long passphrase for e2e"

// TestSecurityE2E tests security activity end to end (docs/design.md,
// "Security activity" and "Delivering events"): the real binary as
// processes of their own, killed as a crash would, on SQLite, one Redis
// and a Redis Cluster; webhooks to a Node receiver that checks each
// delivery with the npm standardwebhooks package, e-mails to a real SMTP
// server.
//
// The subtests run in parallel under one parent, which builds the binary
// once. The delivery backoff is the default one (5 s, 30 s, ...) and has
// no setting, so every test keeps its receiver down only for the first
// attempt of each user: the 5 s retry delivers.
func TestSecurityE2E(t *testing.T) {
	bin := buildSessiond(t)
	// The crash test waits longest (a dead instance's lease): first, so
	// that it overlaps the others.
	t.Run("CrashRightAfterAnswer", func(t *testing.T) {
		t.Parallel()
		testCrashRightAfterAnswer(t, bin)
	})
	t.Run("WebhooksVerifiedInOrder", func(t *testing.T) {
		for _, b := range backends {
			t.Run(b.name, func(t *testing.T) {
				t.Parallel()
				testWebhooksVerifiedInOrder(t, bin, b)
			})
		}
	})
	t.Run("ReceiverDownThenUp", func(t *testing.T) {
		for _, b := range []backend{backends[0], backends[2]} {
			t.Run(b.name, func(t *testing.T) {
				t.Parallel()
				testReceiverDownThenUp(t, bin, b)
			})
		}
	})
	t.Run("TwoInstancesOneCluster", func(t *testing.T) {
		t.Parallel()
		testTwoInstancesOneCluster(t, bin)
	})
	t.Run("WebhookSecretGenerated", func(t *testing.T) {
		t.Parallel()
		testWebhookSecretGenerated(t, bin)
	})
	t.Run("NewSignInMail", func(t *testing.T) {
		t.Parallel()
		testNewSignInMail(t, bin)
	})
	t.Run("UnreachableSMTPNeverSlowsLogin", func(t *testing.T) {
		t.Parallel()
		testUnreachableSMTP(t, bin)
	})
	t.Run("OutboxMetrics", func(t *testing.T) {
		t.Parallel()
		testOutboxMetrics(t, bin)
	})
}

// backend is where the instances of a test keep sessions and activity.
type backend struct {
	name string
	// env returns the settings every instance of the test shares. They
	// share one data directory, so the users (SQLite) and the keys too,
	// as the Redis tests of redis_e2e_test.go do; a deployment on many
	// machines keeps its users in PostgreSQL instead.
	env func(t *testing.T) map[string]string
}

var backends = []backend{
	{"SQLite", func(t *testing.T) map[string]string {
		return map[string]string{"SESSIOND_DATA_DIR": filepath.Join(t.TempDir(), "data")}
	}},
	{"Redis", func(t *testing.T) map[string]string {
		return map[string]string{"SESSIOND_DATA_DIR": filepath.Join(t.TempDir(), "data"), "SESSIOND_REDIS_URL": redistest.Start(t).URL()}
	}},
	{"RedisCluster", func(t *testing.T) map[string]string {
		return map[string]string{"SESSIOND_DATA_DIR": filepath.Join(t.TempDir(), "data"), "SESSIOND_REDIS_URL": redistest.StartCluster(t).URL()}
	}},
}

// withReceiver points env at r: its URL, and its secret in a file of
// mode 0600, as an operator hands the same secret to every instance.
func withReceiver(t *testing.T, env map[string]string, r *webhooktest.Receiver) map[string]string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "webhook-secret")
	if err := os.WriteFile(path, []byte(r.Secret()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{"SESSIOND_WEBHOOK_URL": r.URL(), "SESSIOND_WEBHOOK_SECRET_FILE": path}
	for k, v := range env {
		out[k] = v
	}
	return out
}

// device returns a client of base that signs in as a device of its own:
// its User-Agent.
func device(t *testing.T, base, ua string) *sessiondtest.Client {
	c := sessiondtest.NewClient(t, base)
	c.UA = ua
	return c
}

// hookEvent is a webhook body.
type hookEvent struct {
	Type      string `json:"type"`
	Timestamp string `json:"timestamp"`
	Data      struct {
		UserID  string `json:"user_id"`
		Session struct {
			ID     string `json:"id"`
			Device string `json:"device"`
		} `json:"session"`
		Reason    string          `json:"reason"`
		By        json.RawMessage `json:"by"`
		NewDevice *bool           `json:"new_device"`
		ReportURL string          `json:"report_url"`
	} `json:"data"`
}

// key is what the tests expect of an event: its type, the session it is
// about, and for an end its reason.
func (e hookEvent) key() string {
	k := e.Type + " " + e.Data.Session.ID
	if e.Data.Reason != "" {
		k += " " + e.Data.Reason
	}
	return k
}

func created(g sessiondtest.Grant) string { return "session.created " + g.Session.ID }
func renamed(g sessiondtest.Grant) string { return "session.renamed " + g.Session.ID }
func reused(g sessiondtest.Grant) string  { return "refresh.reuse_detected " + g.Session.ID }
func passwordChanged() string             { return "user.password_changed " }
func ended(g sessiondtest.Grant, reason string) string {
	return "session.ended " + g.Session.ID + " " + reason
}

// history returns the user's security history as GET /api/v1/activity
// answers it to token, newest first, each entry as its type, session id
// and reason.
func history(t *testing.T, base, token string) []string {
	t.Helper()
	var entries []struct {
		Type    string `json:"type"`
		Session struct {
			ID string `json:"id"`
		} `json:"session"`
		Reason string `json:"reason"`
	}
	sessiondtest.NewClient(t, base).Do("GET", "/api/v1/activity", token, nil).Expect(t, http.StatusOK).Decode(t, &entries)
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = strings.TrimSpace(e.Type + " " + e.Session.ID + " " + e.Reason)
	}
	return out
}

// hooks is what a receiver got, taken apart.
type hooks struct {
	// events holds, per user, the event of each webhook-id in the order
	// of its first 2xx.
	events map[string][]hookEvent
	ids    int
	// dups counts 2xx deliveries of an id after its first; failed counts
	// the deliveries answered otherwise (each retried later).
	dups, failed int
	raw          []webhooktest.Delivery
}

// readHooks reads what r got and fails the test unless every delivery was
// verified by the npm standardwebhooks package, and every delivery of an
// id carried the same body.
func readHooks(t *testing.T, r *webhooktest.Receiver) hooks {
	t.Helper()
	h := hooks{events: map[string][]hookEvent{}, raw: r.Deliveries()}
	bodies := map[string]string{}
	ok := map[string]bool{}
	for _, d := range h.raw {
		if !d.Verified {
			t.Fatalf("delivery %s (attempt %d) was not verified by standardwebhooks: %s\nbody: %s", d.ID, d.Attempt, d.Error, d.Body)
		}
		if !strings.HasPrefix(d.ContentType, "application/json") || d.Path != "/hooks" {
			t.Fatalf("delivery %s: got Content-Type %q to path %q, want application/json to /hooks", d.ID, d.ContentType, d.Path)
		}
		if b, seen := bodies[d.ID]; seen && b != d.Body {
			t.Fatalf("webhook-id %s delivered with two bodies:\n%s\n%s", d.ID, b, d.Body)
		}
		bodies[d.ID] = d.Body
		if d.Status/100 != 2 {
			h.failed++
			continue
		}
		if ok[d.ID] {
			h.dups++
			continue
		}
		ok[d.ID] = true
		h.ids++
		var e hookEvent
		if err := json.Unmarshal([]byte(d.Body), &e); err != nil {
			t.Fatalf("delivery %s: body %q: %v", d.ID, d.Body, err)
		}
		h.events[e.Data.UserID] = append(h.events[e.Data.UserID], e)
	}
	return h
}

// keys returns the keys of events.
func keys(events []hookEvent) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = e.key()
	}
	return out
}

// waitHooks waits until r has got, for each user of want, as many events
// as want says, then fails the test unless they are exactly those, in
// that order, with timestamps that never go back, and no other user's.
func waitHooks(t *testing.T, r *webhooktest.Receiver, want map[string][]string, within time.Duration) hooks {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		h := readHooks(t, r)
		complete := true
		for u, w := range want {
			if len(h.events[u]) < len(w) {
				complete = false
			}
		}
		if complete {
			for u, w := range want {
				if got := keys(h.events[u]); !slices.Equal(got, w) {
					t.Fatalf("user %s: got events\n%s\nwant, in this order\n%s", u, strings.Join(got, "\n"), strings.Join(w, "\n"))
				}
				for i := 1; i < len(h.events[u]); i++ {
					if h.events[u][i].Timestamp < h.events[u][i-1].Timestamp {
						t.Fatalf("user %s: event %d at %s delivered after one at %s", u, i, h.events[u][i].Timestamp, h.events[u][i-1].Timestamp)
					}
				}
			}
			for u := range h.events {
				if _, ok := want[u]; !ok {
					t.Fatalf("events of an unexpected user %q: %v", u, keys(h.events[u]))
				}
			}
			return h
		}
		if time.Now().After(deadline) {
			var got []string
			for u, w := range want {
				got = append(got, fmt.Sprintf("user %s: got %d of %d:\n  %s", u, len(h.events[u]), len(w), strings.Join(keys(h.events[u]), "\n  ")))
			}
			t.Fatalf("deliveries after %v (%d deliveries, %d failed):\n%s", within, len(h.raw), h.failed, strings.Join(got, "\n"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// noSecrets fails the test when text holds any of secrets.
func noSecrets(t *testing.T, where, text string, secrets map[string]string) {
	t.Helper()
	for name, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s holds %s", where, name)
		}
	}
}

// grantSecrets adds the tokens of grants to secrets.
func grantSecrets(secrets map[string]string, name string, grants ...sessiondtest.Grant) {
	for i, g := range grants {
		secrets[fmt.Sprintf("the access token of %s %d", name, i)] = g.AccessToken
		secrets[fmt.Sprintf("the refresh token of %s %d", name, i)] = g.RefreshToken
	}
}

// story runs one user's life through the API of bases (each act on the
// next base in turn, so that with two instances each does some): sign-ins
// from three devices, a rename, rotations and a replay of an old refresh
// token, a password change that ends the others, a logout. It returns the
// user's id, the events it must cause, in order, and the secrets they must
// not carry.
func story(t *testing.T, name string, bases ...string) (string, []string, map[string]string) {
	t.Helper()
	n := 0
	next := func() string { n++; return bases[(n-1)%len(bases)] }
	u := device(t, next(), uaFirefoxWin).Register(name)
	laptop := device(t, next(), uaFirefoxWin).Login(name, map[string]string{"device_id": name + "-laptop"})
	phoneC := device(t, next(), uaSafariIPhone)
	phone := phoneC.Login(name, map[string]string{"device_id": name + "-phone"})
	phoneC.Do("PATCH", "/api/v1/sessions/"+phone.Session.ID, phone.AccessToken, map[string]string{"name": "Work phone"}).Expect(t, http.StatusOK)
	lc := device(t, next(), uaFirefoxWin)
	var g2, g3 sessiondtest.Grant
	lc.PostRefresh(laptop.RefreshToken).Expect(t, http.StatusOK).Decode(t, &g2)
	lc.PostRefresh(g2.RefreshToken).Expect(t, http.StatusOK).Decode(t, &g3)
	device(t, next(), uaFirefoxWin).PostRefresh(laptop.RefreshToken).Expect(t, http.StatusUnauthorized)
	tc := device(t, next(), uaChromeAndroid)
	tablet := tc.Login(name, map[string]string{"device_id": name + "-tablet"})
	tc.Do("POST", "/api/v1/auth/password", tablet.AccessToken, map[string]any{
		"current_password": sessiondtest.Password, "new_password": storyPassword,
	}).Expect(t, http.StatusOK)
	device(t, next(), uaChromeAndroid).Do("POST", "/api/v1/auth/logout", tablet.AccessToken, nil).Expect(t, http.StatusOK)
	want := []string{
		created(laptop), created(phone), renamed(phone),
		reused(laptop), ended(laptop, "reuse_detected"),
		created(tablet), passwordChanged(), ended(phone, "password_changed"), ended(tablet, "logout"),
	}
	secrets := map[string]string{"the password": sessiondtest.Password, "the new password": storyPassword}
	grantSecrets(secrets, name, laptop, phone, g2, g3, tablet)
	return u.ID, want, secrets
}

// testWebhooksVerifiedInOrder: two users' whole stories reach the receiver,
// every delivery verified, in order per user, each id once, with the
// fields the design names and no token or password anywhere in the bodies
// or in sessiond's log.
func testWebhooksVerifiedInOrder(t *testing.T, bin string, b backend) {
	r := webhooktest.Start(t)
	base := b.env(t)
	p := startProc(t, bin, withReceiver(t, base, r))
	want := map[string][]string{}
	secrets := map[string]string{"the webhook secret": r.Secret()}
	var users []string
	for _, name := range []string{"ada", "bob"} {
		id, w, s := story(t, name, p.URL)
		want[id] = w
		users = append(users, id)
		for k, v := range s {
			secrets[name+": "+k] = v
		}
	}
	h := waitHooks(t, r, want, deliveryWait)
	if h.dups != 0 || h.failed != 0 {
		t.Errorf("a healthy receiver got %d duplicates and %d failed deliveries, want none", h.dups, h.failed)
	}
	for _, d := range h.raw {
		noSecrets(t, "webhook "+d.ID, d.Body, secrets)
	}
	noSecrets(t, "sessiond's log", p.Logs.String(), secrets)

	ev := h.events[users[0]]
	if first, second := ev[0], ev[1]; first.Data.NewDevice == nil || *first.Data.NewDevice || second.Data.NewDevice == nil || !*second.Data.NewDevice {
		t.Errorf("new_device of the first and second sign-ins: got %v and %v, want false (first ever) and true", first.Data.NewDevice, second.Data.NewDevice)
	}
	if !strings.HasPrefix(ev[0].Data.ReportURL, "/report?t=sdn1.") {
		t.Errorf("report_url without SESSIOND_PUBLIC_URL: got %q, want /report?t=sdn1....", ev[0].Data.ReportURL)
	}
	// The phone was ended by the tablet's password change; the tablet
	// signed itself out.
	tablet := ev[5].Data.Session.ID
	for _, i := range []int{7, 8} {
		var by struct {
			SessionID string `json:"session_id"`
		}
		if err := json.Unmarshal(ev[i].Data.By, &by); err != nil || by.SessionID != tablet {
			t.Errorf("event %s: got by %s, want the tablet's session %s", ev[i].key(), ev[i].Data.By, tablet)
		}
	}
	if by := string(ev[4].Data.By); by != `"system"` {
		t.Errorf("the end by reuse: got by %s, want \"system\"", by)
	}
}

// crashTest is one backend's crash test, waiting for its deliveries.
type crashTest struct {
	name          string
	r             *webhooktest.Receiver
	c             *sessiondProc
	user          string
	laptop, phone sessiondtest.Grant
	started       time.Time
}

// testCrashRightAfterAnswer kills sessiond with SIGKILL right after it
// answered a login, then on another process right after it answered a
// revocation, while the receiver cannot take deliveries (stopped, or
// answering 500 on one Redis); a third process on the same data, with the
// receiver healthy again, delivers all three events, in order. The killed
// process may have held the user's lease, which then delays the third one
// for its minute: the backends are crashed one after the other, then
// their deliveries waited for together.
func testCrashRightAfterAnswer(t *testing.T, bin string) {
	var tests []*crashTest
	for _, b := range backends {
		tests = append(tests, crash(t, bin, b))
	}
	for _, ct := range tests {
		h := waitHooks(t, ct.r, map[string][]string{ct.user: {created(ct.laptop), created(ct.phone), ended(ct.laptop, "revoked")}}, deliveryWait)
		t.Logf("%s: delivered within %v of the third process's start; %d failed deliveries before, %d duplicates",
			ct.name, time.Since(ct.started).Round(time.Millisecond), h.failed, h.dups)
		device(t, ct.c.URL, uaFirefoxWin).Do("GET", "/api/v1/me", ct.phone.AccessToken, nil).Expect(t, http.StatusOK)
		// The history, written with the outbox before each answer, lost
		// nothing either.
		want := []string{"signed_out " + ct.laptop.Session.ID + " revoked", "signed_in " + ct.phone.Session.ID, "signed_in " + ct.laptop.Session.ID}
		if got := history(t, ct.c.URL, ct.phone.AccessToken); !slices.Equal(got, want) {
			t.Errorf("%s: history after the crashes: got %q, want %q", ct.name, got, want)
		}
	}
}

// crash runs the two crashes of testCrashRightAfterAnswer on b, makes the
// receiver healthy and starts the third process.
func crash(t *testing.T, bin string, b backend) *crashTest {
	r := webhooktest.Start(t)
	env := withReceiver(t, b.env(t), r)
	down, up := r.Stop, r.Restart
	if b.name == "Redis" {
		down, up = func() { r.Fail(1 << 20) }, func() { r.Fail(0) }
	}
	ct := &crashTest{name: b.name, r: r}

	a := startProc(t, bin, env)
	ct.user = device(t, a.URL, uaFirefoxWin).Register("crash").ID
	down()
	ct.laptop = device(t, a.URL, uaFirefoxWin).Login("crash", nil)
	a.kill()

	b2 := startProc(t, bin, env)
	ct.phone = device(t, b2.URL, uaSafariIPhone).Login("crash", nil)
	device(t, b2.URL, uaSafariIPhone).Do("DELETE", "/api/v1/sessions/"+ct.laptop.Session.ID, ct.phone.AccessToken, nil).Expect(t, http.StatusOK)
	b2.kill()
	if h := readHooks(t, r); h.ids != 0 {
		t.Fatalf("%s: %d events delivered while the receiver was down", b.name, h.ids)
	}

	up()
	ct.started = time.Now()
	ct.c = startProc(t, bin, env)
	return ct
}

// testReceiverDownThenUp: several users act while the receiver is down;
// once it is up again every event arrives, in order per user.
func testReceiverDownThenUp(t *testing.T, bin string, b backend) {
	r := webhooktest.Start(t)
	base := b.env(t)
	p := startProc(t, bin, withReceiver(t, base, r))
	c := func(ua string) *sessiondtest.Client { return device(t, p.URL, ua) }
	names := []string{"dora", "eve", "finn", "gus"}
	users := map[string]string{}
	for _, n := range names {
		users[n] = c(uaFirefoxWin).Register(n).ID
	}
	r.Stop()
	want := map[string][]string{}
	for _, n := range names {
		one := c(uaFirefoxWin).Login(n, nil)
		two := c(uaSafariIPhone).Login(n, nil)
		c(uaSafariIPhone).Do("DELETE", "/api/v1/sessions/"+one.Session.ID, two.AccessToken, nil).Expect(t, http.StatusOK)
		c(uaSafariIPhone).Do("POST", "/api/v1/auth/logout", two.AccessToken, nil).Expect(t, http.StatusOK)
		want[users[n]] = []string{created(one), created(two), ended(one, "revoked"), ended(two, "logout")}
	}
	time.Sleep(time.Second)
	if n := strings.Count(p.Logs.String(), `"msg":"outbox delivery failed, retrying"`); n < len(names) {
		t.Errorf("%d failed deliveries logged while the receiver was down, want at least one per user (%d)", n, len(names))
	}
	r.Restart()
	h := waitHooks(t, r, want, deliveryWait)
	t.Logf("%s: %d events delivered, %d duplicates", b.name, h.ids, h.dups)
	if h.ids != 16 {
		t.Errorf("got %d distinct events, want 16", h.ids)
	}
}

// testTwoInstancesOneCluster: two instances on one Redis Cluster deliver
// to the same URL what both recorded, each event once, in order per user,
// and between them deliver every one.
func testTwoInstancesOneCluster(t *testing.T, bin string) {
	r := webhooktest.Start(t)
	base := backends[2].env(t)
	env := withReceiver(t, base, r)
	a, b := startProc(t, bin, env), startProc(t, bin, env)
	want := map[string][]string{}
	for _, name := range []string{"hal", "ivy", "jon"} {
		id, w, _ := story(t, name, a.URL, b.URL)
		want[id] = w
	}
	h := waitHooks(t, r, want, deliveryWait)
	t.Logf("%d events, %d duplicates, %d failed deliveries", h.ids, h.dups, h.failed)
	if h.dups != 0 {
		t.Errorf("got %d duplicate deliveries with two healthy instances, want none (the lease lets one instance deliver a user's events)", h.dups)
	}
	var sum float64
	for _, p := range []*sessiondProc{a, b} {
		n, _ := sample(parseMetrics(t, p.AdminURL), "sessiond_outbox_delivered_total", map[string]string{"queue": "webhook"})
		t.Logf("instance %s delivered %v", p.URL, n)
		sum += n
	}
	if int(sum) != h.ids+h.dups {
		t.Errorf("sessiond_outbox_delivered_total over both instances: got %v, want %d (every 2xx)", sum, h.ids+h.dups)
	}
}

// testWebhookSecretGenerated: without SESSIOND_WEBHOOK_SECRET_FILE the
// secret is generated in the data directory, mode 0600, never logged, kept
// across restarts, and it is the one deliveries are signed with (checked
// here with the Standard Webhooks library for Go).
func testWebhookSecretGenerated(t *testing.T, bin string) {
	var (
		mu       sync.Mutex
		secret   string
		verified []string
		seen     = map[string]bool{}
		refused  int
	)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		wh, err := standardwebhooks.NewWebhook(secret)
		if err == nil {
			err = wh.Verify(body, r.Header)
		}
		if err != nil {
			refused++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		// At least once: a send that a stop cut off after the receiver
		// took it comes again, under the same webhook-id.
		if id := r.Header.Get("webhook-id"); !seen[id] {
			seen[id] = true
			var e hookEvent
			_ = json.Unmarshal(body, &e)
			verified = append(verified, e.key())
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(recv.Close)
	dataDir := filepath.Join(t.TempDir(), "data")
	env := map[string]string{"SESSIOND_DATA_DIR": dataDir, "SESSIOND_WEBHOOK_URL": recv.URL + "/hooks"}
	p1 := startProc(t, bin, env)
	path := filepath.Join(dataDir, "webhook-secret")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("no webhook secret in the data directory: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("webhook-secret: got mode %v, want 0600", fi.Mode().Perm())
	}
	raw := string(mustReadFile(t, path))
	mu.Lock()
	secret = strings.TrimSpace(raw)
	mu.Unlock()
	if _, err := standardwebhooks.NewWebhook(secret); err != nil || !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("webhook-secret does not hold a whsec_ secret: %v", err)
	}
	key := strings.TrimPrefix(secret, "whsec_")

	device(t, p1.URL, uaFirefoxWin).Register("kim")
	// Stopped (SIGTERM) right after each sign-in answered, the process
	// leaves no lease behind: the next one delivers at once, not a
	// minute later.
	procs := []*sessiondProc{p1}
	var want []string
	var g sessiondtest.Grant
	for i := range 3 {
		p := procs[len(procs)-1]
		g = device(t, p.URL, uaFirefoxWin).Login("kim", nil)
		want = append(want, created(g))
		p.stop()
		procs = append(procs, startProc(t, bin, env))
		if again := string(mustReadFile(t, path)); again != raw {
			t.Fatalf("webhook-secret changed across restart %d", i+1)
		}
	}
	last := procs[len(procs)-1]
	device(t, last.URL, uaFirefoxWin).Do("POST", "/api/v1/auth/logout", g.AccessToken, nil).Expect(t, http.StatusOK)
	want = append(want, ended(g, "logout"))
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		got, bad := slices.Clone(verified), refused
		mu.Unlock()
		if bad > 0 {
			t.Fatalf("%d deliveries did not verify under the generated secret", bad)
		}
		if len(got) == len(want) {
			if !slices.Equal(got, want) {
				t.Fatalf("got events %q, want %q", got, want)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d verified deliveries after 30 s, want %d: %q", len(got), len(want), got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	last.stop()
	for i, p := range procs {
		noSecrets(t, fmt.Sprintf("the log of sessiond process %d", i+1), p.Logs.String(), map[string]string{"the webhook secret": secret, "the webhook key": key})
	}
}

// testOutboxMetrics: the outbox series of /metrics follow a webhook that
// fails once: a retry counted while the message waits (depth 1, an oldest
// age), then its delivery (depth 0, a latency of about the 5 s backoff).
func testOutboxMetrics(t *testing.T, bin string) {
	r := webhooktest.Start(t)
	p := startProc(t, bin, withReceiver(t, nil, r))
	webhook := map[string]string{"queue": "webhook"}
	value := func(fams map[string]*dto.MetricFamily, name string) float64 {
		t.Helper()
		v, ok := sample(fams, name, webhook)
		if !ok {
			t.Fatalf("%s{queue=\"webhook\"} is missing from /metrics", name)
		}
		return v
	}
	series := []string{"sessiond_outbox_delivered_total", "sessiond_outbox_retries_total", "sessiond_outbox_dropped_total", "sessiond_outbox_depth", "sessiond_outbox_oldest_age_seconds"}
	fams := parseMetrics(t, p.AdminURL)
	for _, name := range series {
		if v := value(fams, name); v != 0 {
			t.Errorf("fresh server: %s got %v, want 0", name, v)
		}
	}
	c := device(t, p.URL, uaFirefoxWin)
	u := c.Register("pia")
	r.Fail(1)
	g := c.Login("pia", nil)

	// The first attempt fails; the message waits 5 s for its retry.
	deadline := time.Now().Add(30 * time.Second)
	for {
		fams = parseMetrics(t, p.AdminURL)
		if value(fams, "sessiond_outbox_delivered_total") != 0 {
			t.Fatal("the webhook was delivered before a scrape saw it wait: the machine is too slow for this test, or the first attempt did not fail")
		}
		if value(fams, "sessiond_outbox_retries_total") == 1 {
			if d, age := value(fams, "sessiond_outbox_depth"), value(fams, "sessiond_outbox_oldest_age_seconds"); d != 1 || age <= 0 {
				t.Errorf("while the webhook waits for its retry: got depth %v and oldest age %v, want 1 and > 0", d, age)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no retry counted 30 s after a failed delivery")
		}
		time.Sleep(50 * time.Millisecond)
	}
	h := waitHooks(t, r, map[string][]string{u.ID: {created(g)}}, deliveryWait)
	if h.failed != 1 {
		t.Errorf("the receiver answered %d deliveries with 500, want 1", h.failed)
	}
	fams = parseMetrics(t, p.AdminURL)
	want := map[string]float64{
		"sessiond_outbox_delivered_total": 1, "sessiond_outbox_retries_total": 1, "sessiond_outbox_dropped_total": 0,
		"sessiond_outbox_depth": 0, "sessiond_outbox_oldest_age_seconds": 0,
	}
	for name, w := range want {
		if v := value(fams, name); v != w {
			t.Errorf("after the delivery: %s got %v, want %v", name, v, w)
		}
	}
	var latency *dto.Histogram
	if f := fams["sessiond_outbox_delivery_latency_seconds"]; f != nil {
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if l.GetName() == "queue" && l.GetValue() == "webhook" {
					latency = m.Histogram
				}
			}
		}
	}
	if latency == nil || latency.GetSampleCount() != 1 || latency.GetSampleSum() < 4 || latency.GetSampleSum() > 60 {
		t.Errorf("sessiond_outbox_delivery_latency_seconds{queue=\"webhook\"}: got %v, want one sample of about 5 s (the first retry)", latency)
	}
}
