package http_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/sqlite"
)

// User-Agents of the devices in these tests.
const (
	chromeWindows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	safariIPhone  = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
	firefoxLinux  = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
)

// parked is the webhook Sender of a Manager whose deliveries never run (no
// test here calls Deliver): its events wait in the outbox of the real
// activity store, where reportLink reads the "not me" links.
type parked struct{}

func (parked) Send(context.Context, string, sessiond.OutboxMessage) error {
	return errors.New("deliveries do not run in this test")
}

// testClock is a Manager clock a test moves forward.
type testClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// recordingServer is a test server whose Manager records security activity
// in a real SQLite activity store.
type recordingServer struct {
	*sessiondtest.Server
	Activity *sqlite.ActivityStore
	Clock    *testClock
}

// startRecording starts a server whose Manager records activity and queues
// webhooks (see parked); configure is StartServer's.
func startRecording(t *testing.T, configure func(s *sessiondtest.Server)) *recordingServer {
	t.Helper()
	db := sessiondtest.OpenSQLite(t)
	act := sqlite.NewActivityStore(db)
	clock := &testClock{}
	ts := sessiondtest.StartServer(t, sessiondtest.Options{
		DB: db, Activity: true, Webhooks: parked{}, CheapHashing: true, Now: clock.Now,
	}, configure)
	return &recordingServer{Server: ts, Activity: act, Clock: clock}
}

// reportLink returns the report_url of the session.created webhook of
// sessionID, as the app or the e-mail would get it.
func (s *recordingServer) reportLink(t *testing.T, userID, sessionID string) string {
	t.Helper()
	msgs, err := s.Activity.Pending(context.Background(), sessiond.QueueWebhook, userID, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		var hook struct {
			Type string `json:"type"`
			Data struct {
				Session struct {
					ID string `json:"id"`
				} `json:"session"`
				ReportURL string `json:"report_url"`
			} `json:"data"`
		}
		if err := json.Unmarshal(m.Body, &hook); err != nil {
			t.Fatalf("outbox message %s: %v", m.Body, err)
		}
		if hook.Type == sessiond.WebhookSessionCreated && hook.Data.Session.ID == sessionID {
			if !strings.Contains(hook.Data.ReportURL, "/report?t=") {
				t.Fatalf("report_url %q: want a /report?t= link", hook.Data.ReportURL)
			}
			return hook.Data.ReportURL
		}
	}
	t.Fatalf("no session.created webhook of session %s among %d messages", sessionID, len(msgs))
	return ""
}

// entry is one history entry of GET /api/v1/activity.
type entry struct {
	Type    string `json:"type"`
	At      string `json:"at"`
	Session struct {
		ID          string `json:"id"`
		Device      string `json:"device"`
		DeviceClass string `json:"device_class"`
		Name        string `json:"name"`
		IPAddress   string `json:"ip_address"`
		Location    string `json:"location"`
	} `json:"session"`
	Reason      string          `json:"reason"`
	By          json.RawMessage `json:"by"`
	NewDevice   *bool           `json:"new_device"`
	NewLocation *bool           `json:"new_location"`
}

// byActor decodes by as one of the user's sessions; ok false when it is
// something else.
func (e entry) byActor() (id, device string, ok bool) {
	var a struct {
		SessionID string `json:"session_id"`
		Device    string `json:"device"`
	}
	if len(e.By) == 0 || e.By[0] != '{' || json.Unmarshal(e.By, &a) != nil {
		return "", "", false
	}
	return a.SessionID, a.Device, true
}

func activity(t *testing.T, c *sessiondtest.Client, token string) []entry {
	t.Helper()
	var out []entry
	c.Do("GET", "/api/v1/activity", token, nil).Expect(t, 200).Decode(t, &out)
	return out
}

// TestActivityRecordsWhatHappened: sign-ins (the second device new), a
// device signed out by another, a password change that ends a third
// device, and a logout each appear in GET /api/v1/activity, newest first,
// with who did it; every answer is checked against docs/openapi.yaml by
// the client.
func TestActivityRecordsWhatHappened(t *testing.T) {
	ts := startRecording(t, nil)
	c := sessiondtest.NewClient(t, ts.URL)
	c.Register("ines")

	c.UA = chromeWindows
	laptop := c.Login("ines", nil)
	got := activity(t, c, laptop.AccessToken)
	if len(got) != 1 || got[0].Type != "signed_in" || got[0].Session.ID != laptop.Session.ID ||
		got[0].Session.Device != "Chrome on Windows" || got[0].Session.DeviceClass != "desktop" || got[0].Session.IPAddress != "127.0.0.1" {
		t.Fatalf("after the first sign-in: got %+v", got)
	}
	if got[0].NewDevice == nil || *got[0].NewDevice || got[0].NewLocation == nil || *got[0].NewLocation {
		t.Errorf("the first sign-in: new_device %v, new_location %v; want both present and false", got[0].NewDevice, got[0].NewLocation)
	}

	c.UA = safariIPhone
	phone := c.Login("ines", nil)
	got = activity(t, c, laptop.AccessToken)
	if len(got) != 2 || got[0].Session.ID != phone.Session.ID || got[0].Type != "signed_in" {
		t.Fatalf("after the phone's sign-in: got %+v, want its entry first", got)
	}
	if got[0].NewDevice == nil || !*got[0].NewDevice {
		t.Errorf("the phone's sign-in: new_device %v, want true", got[0].NewDevice)
	}

	// The laptop signs the phone out: by names the laptop.
	c.Do("DELETE", "/api/v1/sessions/"+phone.Session.ID, laptop.AccessToken, nil).Expect(t, 200)
	got = activity(t, c, laptop.AccessToken)
	if len(got) != 3 || got[0].Type != "signed_out" || got[0].Session.ID != phone.Session.ID || got[0].Reason != "revoked" {
		t.Fatalf("after signing the phone out: got %+v", got)
	}
	if id, dev, ok := got[0].byActor(); !ok || id != laptop.Session.ID || dev != "Chrome on Windows" {
		t.Errorf("by of the phone's sign-out: got %s, want the laptop's session and device", got[0].By)
	}
	if got[0].Session.Device != phone.Session.Device || got[0].Session.Device == "" {
		t.Errorf("the signed-out session's device: got %q, want %q", got[0].Session.Device, phone.Session.Device)
	}

	// A password change on the laptop ends the tablet.
	c.UA = firefoxLinux
	tablet := c.Login("ines", nil)
	c.Do("POST", "/api/v1/auth/password", laptop.AccessToken, map[string]any{
		"current_password": sessiondtest.Password, "new_password": "another long passphrase",
	}).Expect(t, 200)
	got = activity(t, c, laptop.AccessToken)
	var changed, ended *entry
	for i := range got {
		switch {
		case got[i].Type == "password_changed":
			changed = &got[i]
		case got[i].Type == "signed_out" && got[i].Session.ID == tablet.Session.ID:
			ended = &got[i]
		}
	}
	if changed == nil {
		t.Fatalf("no password_changed entry in %+v", got)
	}
	if id, _, ok := changed.byActor(); !ok || id != laptop.Session.ID || changed.Session.ID != laptop.Session.ID {
		t.Errorf("password_changed: by %s, session %s; want the laptop's", changed.By, changed.Session.ID)
	}
	if ended == nil || ended.Reason != "password_changed" {
		t.Fatalf("the tablet's end: got %+v, want a signed_out entry with reason password_changed", ended)
	}
	if id, _, ok := ended.byActor(); !ok || id != laptop.Session.ID {
		t.Errorf("the tablet's end: by %s, want the laptop", ended.By)
	}

	// A logout is by the session itself; a new session still sees it all.
	c.Do("POST", "/api/v1/auth/logout", laptop.AccessToken, nil).Expect(t, 200)
	c.UA = chromeWindows
	var again sessiondtest.Grant
	c.Do("POST", "/api/v1/auth/login", "", map[string]string{"username": "ines", "password": "another long passphrase"}).Expect(t, 200).Decode(t, &again)
	got = activity(t, c, again.AccessToken)
	if got[0].Type != "signed_in" || got[0].Session.ID != again.Session.ID || got[1].Type != "signed_out" || got[1].Reason != "logout" {
		t.Fatalf("after a logout and a new sign-in: got %+v", got[:2])
	}
	if id, _, ok := got[1].byActor(); !ok || id != laptop.Session.ID {
		t.Errorf("the logout: by %s, want the laptop itself", got[1].By)
	}
	for i := 1; i < len(got); i++ {
		if got[i].At > got[i-1].At {
			t.Errorf("entry %d (%s) is newer than entry %d (%s): want newest first", i, got[i].At, i-1, got[i-1].At)
		}
	}
}

// TestActivityNeedsAToken: no token, a garbage token and a revoked
// session's token are 401 with the envelope.
func TestActivityNeedsAToken(t *testing.T) {
	ts := startRecording(t, nil)
	c := sessiondtest.NewClient(t, ts.URL)
	c.Register("jon")
	g := c.Login("jon", nil)
	r := c.Do("GET", "/api/v1/activity", "", nil).Expect(t, 401)
	if !strings.Contains(string(r.Env.Data), `"invalid_token"`) {
		t.Errorf("no token: data %s, want code invalid_token", r.Env.Data)
	}
	c.Do("GET", "/api/v1/activity", "garbage", nil).Expect(t, 401)
	c.Do("POST", "/api/v1/auth/logout", g.AccessToken, nil).Expect(t, 200)
	c.Do("GET", "/api/v1/activity", g.AccessToken, nil).Expect(t, 401)
}

// TestActivityOfAnotherUserIsNotShown: each user sees their own history
// only.
func TestActivityOfAnotherUserIsNotShown(t *testing.T) {
	ts := startRecording(t, nil)
	c := sessiondtest.NewClient(t, ts.URL)
	c.Register("kim")
	c.Register("lou")
	k := c.Login("kim", nil)
	l := c.Login("lou", nil)
	for _, e := range activity(t, c, k.AccessToken) {
		if e.Session.ID == l.Session.ID {
			t.Fatalf("kim's history holds lou's session: %+v", e)
		}
	}
}

// TestActivityWithoutRecordingIsEmpty: a Manager that keeps no activity
// answers an empty array, never null.
func TestActivityWithoutRecordingIsEmpty(t *testing.T) {
	ts := startServer(t, nil)
	c := sessiondtest.NewClient(t, ts.URL)
	c.Register("max")
	g := c.Login("max", nil)
	r := c.Do("GET", "/api/v1/activity", g.AccessToken, nil).Expect(t, 200)
	if string(r.Env.Data) != "[]" {
		t.Errorf("data: got %s, want []", r.Env.Data)
	}
}
