package sessiond_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/geoip"
	"github.com/sessiond/sessiond/geoip/geoiptest"
	"github.com/sessiond/sessiond/internal/apitest"
	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/redis"
	"github.com/sessiond/sessiond/redis/redistest"
)

// inbox is a Sender that keeps what it is given, in order, and fails the
// first failures sends: it stands for the app's endpoint in the Manager's
// own tests (the webhook package and the binary's tests send to a real
// receiver that checks signatures with a third party's verifier).
type inbox struct {
	mu       sync.Mutex
	failures int
	got      []sessiond.OutboxMessage
	attempts map[string]int
}

func (b *inbox) Send(_ context.Context, _ string, msg sessiond.OutboxMessage) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.attempts == nil {
		b.attempts = map[string]int{}
	}
	b.attempts[msg.ID]++
	if b.failures > 0 {
		b.failures--
		return errors.New("receiver answered 500")
	}
	b.got = append(b.got, msg)
	return nil
}

// newInbox returns an inbox failing its first failures sends whose
// deliveries are checked, when the test ends, against the OpenAPI
// document's webhooks (the bodies; the webhook package checks the
// headers and signatures with a third party's verifier).
func newInbox(t *testing.T, failures int) *inbox {
	b := &inbox{failures: failures}
	v := apitest.NewValidator(t)
	t.Cleanup(func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, msg := range b.got {
			h := http.Header{"Webhook-Id": {msg.ID}, "Webhook-Timestamp": {"1700000000"}, "Webhook-Signature": {"v1,AAAA"}}
			if err := v.ValidateWebhook(h, msg.Body); err != nil {
				t.Errorf("delivered webhook does not match the OpenAPI document: %v", err)
			}
		}
	})
	return b
}

// events returns the delivered webhooks, decoded.
func (b *inbox) events() []webhookEvent {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]webhookEvent, 0, len(b.got))
	for _, msg := range b.got {
		var e webhookEvent
		if err := json.Unmarshal(msg.Body, &e); err != nil {
			panic(err)
		}
		e.id = msg.ID
		out = append(out, e)
	}
	return out
}

type webhookEvent struct {
	id        string
	Type      string         `json:"type"`
	Timestamp string         `json:"timestamp"`
	Data      map[string]any `json:"data"`
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// deliver runs m.Deliver until the test ends.
func deliver(t *testing.T, m *sessiond.Manager) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Deliver(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// activityEnvs returns Options recording activity on SQLite, Redis and a
// Redis Cluster, with the sample GeoIP database and a clock near real
// time (Redis expires keys by the wall clock).
func activityEnvs(t *testing.T) map[string]sessiondtest.Options {
	t.Helper()
	loc, err := geoip.Open(geoiptest.WriteSample(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { loc.Close() })
	base := sessiondtest.Options{RecordActivity: true, Locator: loc, Issuer: "test", CheapHashing: true, NoLimiter: true}
	return map[string]sessiondtest.Options{
		"sqlite":        base,
		"redis":         sessiondtest.OnRedis(t, base, redis.Options{URL: redistest.Start(t).URL()}),
		"redis cluster": sessiondtest.OnRedis(t, base, redis.Options{URL: redistest.StartCluster(t).URL()}),
	}
}

const (
	chromeWindows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
	safariIPhone  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)

type historyEntry struct {
	Type    string `json:"type"`
	At      string `json:"at"`
	Session struct {
		ID, Device, Location string
		IPAddress            string `json:"ip_address"`
	} `json:"session"`
	Reason      string `json:"reason"`
	By          any    `json:"by"`
	NewDevice   *bool  `json:"new_device"`
	NewLocation *bool  `json:"new_location"`
}

func history(t *testing.T, m *sessiond.Manager, userID string) []historyEntry {
	t.Helper()
	raw, err := m.Activity(context.Background(), userID)
	if err != nil {
		t.Fatalf("activity: %v", err)
	}
	out := make([]historyEntry, len(raw))
	for i, r := range raw {
		if err := json.Unmarshal(r, &out[i]); err != nil {
			t.Fatalf("entry %s: %v", r, err)
		}
	}
	return out
}

func loginFrom(t *testing.T, m *sessiond.Manager, user, deviceID, ua, ip string) *sessiond.Grant {
	t.Helper()
	g, err := m.Login(context.Background(), sessiond.LoginRequest{Login: user, Password: "password123", DeviceID: deviceID, UserAgent: ua, ClientIP: ip})
	if err != nil {
		t.Fatalf("login %s from %s: %v", user, deviceID, err)
	}
	return g
}

func TestHistoryTellsWhatHappenedAndWho(t *testing.T) {
	for name, o := range activityEnvs(t) {
		t.Run(name, func(t *testing.T) {
			m := sessiondtest.NewManager(t, o).Manager
			ctx := context.Background()
			u, err := m.Register(ctx, sessiond.RegisterRequest{Username: "ada", Email: "ada@example.com", Password: "password123"})
			if err != nil {
				t.Fatal(err)
			}
			laptop := loginFrom(t, m, "ada", "laptop", chromeWindows, "81.2.69.142") // London: the first sign-in
			phone := loginFrom(t, m, "ada", "phone", safariIPhone, "102.89.1.1")     // Lagos: new device, new country
			again := loginFrom(t, m, "ada", "laptop", chromeWindows, "81.2.69.142")  // replaces the laptop's session
			if err := m.Revoke(sessiond.NewContext(ctx, again.Session), u.ID, phone.Session.ID, sessiond.ReasonRevoked); err != nil {
				t.Fatal(err)
			}
			other := loginFrom(t, m, "ada", "tablet", safariIPhone, "81.2.69.142")
			if _, err := m.ChangePassword(ctx, again.Session, sessiond.ChangePasswordRequest{Current: "password123", New: "password456", RevokeOther: true}); err != nil {
				t.Fatal(err)
			}
			if _, err := m.RevokeAll(ctx, u.ID, sessiond.ReasonAdmin); err != nil {
				t.Fatal(err)
			}

			got := history(t, m, u.ID)
			var lines []string
			for _, e := range slices.Backward(got) {
				line := e.Type + " " + e.Session.ID
				if e.Reason != "" {
					line += " " + e.Reason
				}
				if e.NewDevice != nil {
					line += fmt.Sprintf(" new_device=%v new_location=%v", *e.NewDevice, *e.NewLocation)
				}
				switch by := e.By.(type) {
				case string:
					line += " by " + by
				case map[string]any:
					line += fmt.Sprintf(" by %v", by["session_id"])
				}
				lines = append(lines, line)
			}
			want := []string{
				"signed_in " + laptop.Session.ID + " new_device=false new_location=false",
				"signed_in " + phone.Session.ID + " new_device=true new_location=true",
				"signed_out " + laptop.Session.ID + " replaced by system",
				"signed_in " + again.Session.ID + " new_device=false new_location=false",
				"signed_out " + phone.Session.ID + " revoked by " + again.Session.ID,
				"signed_in " + other.Session.ID + " new_device=true new_location=false",
				"password_changed " + again.Session.ID + " by " + again.Session.ID,
				"signed_out " + other.Session.ID + " password_changed by " + again.Session.ID,
				"signed_out " + again.Session.ID + " admin by admin",
			}
			if !slices.Equal(lines, want) {
				t.Errorf("history, oldest first:\n got %s\nwant %s", strings.Join(lines, "\n     "), strings.Join(want, "\n     "))
			}
			if len(got) != len(want) {
				return
			}
			// got[1] is the tablet, ended by revoke-others.
			if got[1].Session.Device == "" || got[1].Session.Location != "London, United Kingdom" {
				t.Errorf("a session ended by revoke-others is not described: %+v", got[1].Session)
			}
		})
	}
}

func TestWebhooksAreDeliveredInOrderAfterFailures(t *testing.T) {
	for name, o := range activityEnvs(t) {
		t.Run(name, func(t *testing.T) {
			box := newInbox(t, 3)
			o.Webhooks = box
			m := sessiondtest.NewManager(t, o).Manager
			m.DeliveryBackoff = []time.Duration{10 * time.Millisecond}
			m.DeliveryPoll = 20 * time.Millisecond
			ctx := context.Background()
			u, err := m.Register(ctx, sessiond.RegisterRequest{Username: "bo", Email: "bo@example.com", Password: "password123"})
			if err != nil {
				t.Fatal(err)
			}
			a := loginFrom(t, m, "bo", "a", chromeWindows, "81.2.69.142")
			b := loginFrom(t, m, "bo", "b", safariIPhone, "102.89.1.1")
			if _, err := m.Rename(ctx, u.ID, b.Session.ID, "Bo's phone"); err != nil {
				t.Fatal(err)
			}
			if err := m.Logout(ctx, b.Session); err != nil {
				t.Fatal(err)
			}
			deliver(t, m)
			waitFor(t, "4 webhooks", func() bool { return len(box.events()) == 4 })
			ev := box.events()
			var types []string
			for _, e := range ev {
				types = append(types, e.Type)
			}
			if want := []string{"session.created", "session.created", "session.renamed", "session.ended"}; !slices.Equal(types, want) {
				t.Fatalf("types = %v, want %v", types, want)
			}
			if ev[0].Data["session"].(map[string]any)["id"] != a.Session.ID || ev[1].Data["new_device"] != true || ev[0].Data["new_device"] != false {
				t.Errorf("session.created data: %v / %v", ev[0].Data, ev[1].Data)
			}
			if ev[1].Data["new_location"] != true || ev[1].Data["user_id"] != u.ID {
				t.Errorf("second sign-in from Lagos: %v", ev[1].Data)
			}
			report, _ := ev[1].Data["report_url"].(string)
			if !strings.HasPrefix(report, "/report?t=sdn1.") {
				t.Errorf("report_url = %q", report)
			}
			if ev[2].Data["session"].(map[string]any)["name"] != "Bo's phone" {
				t.Errorf("renamed: %v", ev[2].Data)
			}
			if ev[3].Data["reason"] != "logout" || ev[3].Data["session"].(map[string]any)["device"] != b.Session.Device {
				t.Errorf("ended: %v", ev[3].Data)
			}
			// The first message failed three times and was retried with
			// the same id; no other was sent before it went through.
			box.mu.Lock()
			defer box.mu.Unlock()
			if n := box.attempts[ev[0].id]; n != 4 {
				t.Errorf("first message attempts = %d, want 4", n)
			}
			for _, e := range ev[1:] {
				if n := box.attempts[e.id]; n != 1 {
					t.Errorf("message %s attempts = %d, want 1", e.Type, n)
				}
			}
			for _, e := range ev {
				for _, secret := range []string{a.RefreshToken, a.AccessToken, "password123"} {
					if strings.Contains(fmt.Sprint(e.Data), secret) {
						t.Errorf("%s carries a secret", e.Type)
					}
				}
			}
		})
	}
}

// TestInstancesDeliverEachMessageOnce runs two instances' delivery on one
// store: every message goes out once, each user's in order.
func TestInstancesDeliverEachMessageOnce(t *testing.T) {
	envs := activityEnvs(t)
	for _, name := range []string{"sqlite", "redis cluster"} {
		o := envs[name]
		t.Run(name, func(t *testing.T) {
			box := newInbox(t, 0)
			o.Webhooks, o.ExternalUsers = box, true
			first := sessiondtest.NewManager(t, o)
			peer := first.Peer()
			peer.Sessions, peer.Limiter, peer.Broker = first.Sessions, first.Limiter, first.Broker
			peer.RecordActivity, peer.Webhooks, peer.ExternalUsers, peer.NoLimiter = true, box, true, true
			second := sessiondtest.NewManager(t, peer)
			ms := []*sessiond.Manager{first.Manager, second.Manager}
			for _, m := range ms {
				m.DeliveryPoll = 10 * time.Millisecond
				deliver(t, m)
			}
			ctx := context.Background()
			const users, perUser = 5, 6
			for i := range users {
				id := fmt.Sprintf("app-user-%d", i)
				for j := range perUser {
					g, err := ms[j%2].StartSession(ctx, sessiond.StartRequest{UserID: id, DeviceID: fmt.Sprint(j)})
					if err != nil {
						t.Fatal(err)
					}
					if err := ms[(j+1)%2].Logout(ctx, g.Session); err != nil {
						t.Fatal(err)
					}
				}
			}
			waitFor(t, "every webhook", func() bool { return len(box.events()) >= users*perUser*2 })
			time.Sleep(100 * time.Millisecond) // a duplicate would arrive by now
			ev := box.events()
			if len(ev) != users*perUser*2 {
				t.Fatalf("delivered %d, want %d (duplicates?)", len(ev), users*perUser*2)
			}
			seen := map[string]bool{}
			order := map[string][]string{}
			for _, e := range ev {
				if seen[e.id] {
					t.Errorf("message %s delivered twice", e.id)
				}
				seen[e.id] = true
				uid := e.Data["user_id"].(string)
				order[uid] = append(order[uid], e.Type+" "+e.Data["session"].(map[string]any)["id"].(string))
			}
			for uid, got := range order {
				for k := 0; k+1 < len(got); k += 2 {
					c, d := strings.Fields(got[k]), strings.Fields(got[k+1])
					if c[0] != "session.created" || d[0] != "session.ended" || c[1] != d[1] {
						t.Errorf("user %s: out of order at %d: %q then %q", uid, k, got[k], got[k+1])
					}
				}
			}
		})
	}
}

func TestReportLink(t *testing.T) {
	clk := &clock{t: time.Now().UTC().Truncate(time.Millisecond)}
	box := newInbox(t, 0)
	env := sessiondtest.NewManager(t, sessiondtest.Options{RecordActivity: true, Webhooks: box, Issuer: "test", CheapHashing: true, Now: clk.Now})
	m := env.Manager
	m.ReportURL = "https://auth.example.com/auth/report"
	m.DeliveryPoll = 10 * time.Millisecond
	deliver(t, m)
	ctx := context.Background()
	u, err := m.Register(ctx, sessiond.RegisterRequest{Username: "cy", Email: "cy@example.com", Password: "password123"})
	if err != nil {
		t.Fatal(err)
	}
	keep := loginFrom(t, m, "cy", "a", chromeWindows, "")
	stolen := loginFrom(t, m, "cy", "b", safariIPhone, "")
	third := loginFrom(t, m, "cy", "c", safariIPhone, "")
	waitFor(t, "3 session.created", func() bool { return len(box.events()) >= 3 })
	token := func(i int) string {
		t.Helper()
		link, err := url.Parse(box.events()[i].Data["report_url"].(string))
		if err != nil || link.Host != "auth.example.com" || link.Path != "/auth/report" {
			t.Fatalf("report_url %v: %v", link, err)
		}
		return link.Query().Get("t")
	}
	tok, tokThird := token(1), token(2)

	s, err := m.ReportedSession(ctx, tok)
	if err != nil || s.ID != stolen.Session.ID {
		t.Fatalf("ReportedSession = %v, %v; want the stolen session", s, err)
	}
	for name, bad := range map[string]string{
		"forged":        tok[:len(tok)-2] + map[bool]string{true: "AA", false: "BB"}[!strings.HasSuffix(tok, "AA")],
		"cut":           tok[:len(tok)/2],
		"empty":         "",
		"refresh token": keep.RefreshToken,
		"other user's":  strings.Replace(tok, ".", ".x", 1),
	} {
		if _, err := m.Report(ctx, bad, false); !errors.Is(err, sessiond.ErrReportInvalid) {
			t.Errorf("%s token: err = %v, want ErrReportInvalid", name, err)
		}
	}
	if live, _ := m.List(ctx, u.ID, ""); len(live) != 3 {
		t.Fatalf("bad tokens changed something: %d sessions live", len(live))
	}
	if n, err := m.Report(ctx, tok, false); err != nil || n != 1 {
		t.Fatalf("Report = %d, %v", n, err)
	}
	if _, _, err := m.Authenticate(ctx, stolen.AccessToken); !errors.Is(err, sessiond.ErrInvalidToken) {
		t.Errorf("reported session still authenticates: %v", err)
	}
	if _, err := m.Report(ctx, tok, true); !errors.Is(err, sessiond.ErrReportInvalid) || !strings.Contains(err.Error(), "already ended") {
		t.Errorf("second use: %v", err)
	}
	if _, _, err := m.Authenticate(ctx, keep.AccessToken); err != nil {
		t.Errorf("a used link's second use ended another session: %v", err)
	}
	h := history(t, m, u.ID)
	if h[0].Type != "signed_out" || h[0].Reason != "reported" || h[0].Session.ID != stolen.Session.ID {
		t.Errorf("latest entry = %+v, want the reported session signed out", h[0])
	}

	clk.Advance(sessiond.ReportLinkTTL)
	if _, err := m.ReportedSession(ctx, tokThird); !errors.Is(err, sessiond.ErrReportInvalid) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired link: %v", err)
	}
	clk.Advance(-time.Second)
	if n, err := m.Report(ctx, tokThird, true); err != nil || n != 2 {
		t.Errorf("report everywhere = %d, %v; want 2 (the third and the kept one)", n, err)
	}
	if live, _ := m.List(ctx, u.ID, ""); len(live) != 0 {
		t.Errorf("after reporting everywhere %d sessions live", len(live))
	}
	_ = third
}

func TestThrottledSignInsAreToldOncePerWindow(t *testing.T) {
	box := newInbox(t, 0)
	env := sessiondtest.NewManager(t, sessiondtest.Options{RecordActivity: true, Webhooks: box, Issuer: "test", CheapHashing: true})
	m := env.Manager
	m.Throttles.LoginAccountIP = sessiond.Rate{N: 2, Window: time.Minute}
	m.DeliveryPoll = 10 * time.Millisecond
	deliver(t, m)
	ctx := context.Background()
	u, err := m.Register(ctx, sessiond.RegisterRequest{Username: "di", Email: "di@example.com", Password: "password123"})
	if err != nil {
		t.Fatal(err)
	}
	var throttled int
	for range 6 {
		_, err := m.Login(ctx, sessiond.LoginRequest{Login: "di", Password: "wrong-password", ClientIP: "192.0.2.7"})
		if errors.As(err, new(*sessiond.ThrottledError)) {
			throttled++
		}
	}
	if throttled != 4 {
		t.Fatalf("throttled %d of 6, want 4", throttled)
	}
	waitFor(t, "login.throttled", func() bool { return len(box.events()) >= 1 })
	time.Sleep(50 * time.Millisecond)
	ev := box.events()
	if len(ev) != 1 || ev[0].Type != "login.throttled" || ev[0].Data["user_id"] != u.ID || ev[0].Data["client_ip"] != "192.0.2.7" {
		t.Errorf("events = %+v, want one login.throttled", ev)
	}
	h := history(t, m, u.ID)
	if len(h) != 1 || h[0].Type != "sign_in_throttled" || h[0].Session.IPAddress != "192.0.2.7" {
		t.Errorf("history = %+v", h)
	}
}

// TestEventRecordedAsAWorkerEndsIsNotLeftForThePoll records an event while
// the worker that delivered the user's previous one is ending its turn: it
// goes out when that worker ends, without waiting for the poll (a minute
// here).
func TestEventRecordedAsAWorkerEndsIsNotLeftForThePoll(t *testing.T) {
	box := newInbox(t, 0)
	m := sessiondtest.NewManager(t, sessiondtest.Options{RecordActivity: true, Webhooks: box, ExternalUsers: true, Issuer: "test"}).Manager
	m.DeliveryPoll = time.Minute
	ctx := context.Background()
	g, err := m.StartSession(ctx, sessiond.StartRequest{UserID: "app-user"})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	m.SetDeliveryUserDoneForTest(func(_, userID string) {
		once.Do(func() {
			if err := m.EndSession(ctx, userID, g.Session.ID); err != nil {
				t.Error(err)
			}
			// The loop, woken by the record, finds the user busy.
			time.Sleep(200 * time.Millisecond)
		})
	})
	deliver(t, m)
	waitFor(t, "session.ended", func() bool { return len(box.events()) == 2 })
}
