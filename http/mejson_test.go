package http

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
)

// TestWriteMeMatchesWriteJSON checks that the hand-written /me answer is
// byte for byte, headers included, what writeJSON writes.
func TestAppendTimeMatchesFormatTime(t *testing.T) {
	times := []time.Time{
		{}, time.Unix(0, 0), time.Date(2026, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 1_000_000, time.FixedZone("east", 14*3600)),
		time.Date(9999, 12, 31, 23, 59, 59, 0, time.FixedZone("west", -12*3600)),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Now(), time.Now().In(time.FixedZone("x", 5*3600+1800)),
	}
	for i := range 1000 {
		times = append(times, time.UnixMilli(int64(i)*987_654_321_123).Add(time.Duration(i)*time.Microsecond))
	}
	for _, tm := range times {
		if got, want := string(appendTime(nil, tm)), formatTime(tm); got != want {
			t.Errorf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	}
}

func TestWriteMeMatchesWriteJSON(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 678_000_000, time.FixedZone("x", 3600))
	strs := []string{
		"", "plain", `quote " and \ backslash`, "<script>&amp;</script>", "tab\tnew\nline\x00\x1f",
		"São Paulo, Brazil", "emoji 🎉", "line\u2028sep\u2029", "bad \xff utf-8", "\x7f del",
	}
	// Claims as sessiond.CheckClaims keeps them (compact, HTML not
	// escaped), and one that a store might hand back with spaces.
	claims := []string{
		"", `{}`, `{"plan":"pro","org":42}`, `{"html":"<b>&</b>","sep":"\u2028","nested":{"a":[1,true,null]}}`,
		`{"name":"São Paulo 🎉"}`, `{ "spaced" : [ 1 , 2 ] }`, `{"quote":"a\"b\\c"}`,
	}
	for i, s := range strs {
		u := &sessiond.User{ID: "u" + s, Username: s, Email: s + "@example.com", CreatedAt: t0}
		for j, c := range claims {
			sess := &sessiond.Session{
				ID: "id" + s, UserID: u.ID, Device: s, DeviceClass: []string{"", sessiond.ClassMobile, s}[i%3],
				Name: s, IPAddress: s, Location: s,
				CreatedAt: t0, LastActive: t0.Add(time.Duration(i) * time.Millisecond), ExpiresAt: t0.Add(time.Hour),
			}
			if c != "" {
				sess.Claims = json.RawMessage(c)
			}
			uj := newUserJSON(u)
			for _, up := range []*userJSON{&uj, nil} {
				want := httptest.NewRecorder()
				writeJSON(want, 200, "ok", meJSON(up, sess))
				got := httptest.NewRecorder()
				writeMe(got, up, sess)
				if !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
					t.Errorf("%q, claims %d, app's user %v:\ngot  %s\nwant %s", s, j, up == nil, got.Body.Bytes(), want.Body.Bytes())
				}
				if got.Code != want.Code || got.Header().Get("Content-Type") != want.Header().Get("Content-Type") ||
					got.Header().Get("Cache-Control") != want.Header().Get("Cache-Control") {
					t.Errorf("%q: status and headers %d %v, want %d %v", s, got.Code, got.Header(), want.Code, want.Header())
				}
			}
			other, ok := appendSessionJSON(nil, sess, "another id")
			want2 := httptest.NewRecorder()
			writeJSON(want2, 200, "ok", newSessionJSON(sess, "another id"))
			if !ok || !bytes.Contains(want2.Body.Bytes(), other) {
				t.Errorf("%q: session not current:\ngot  %s\nwant within %s", s, other, want2.Body.Bytes())
			}
		}
	}
}

// TestMeJSONShapes pins the shapes meJSON (and so writeMe) answers: the
// app's own user has only an id, and a session without claims shows {}.
func TestMeJSONShapes(t *testing.T) {
	sess := &sessiond.Session{ID: "s1", UserID: "auth0|abc"}
	b, err := json.Marshal(meJSON(nil, sess))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		User    map[string]any `json:"user"`
		Session map[string]any `json:"session"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.User) != 1 || got.User["id"] != "auth0|abc" {
		t.Errorf("app's user: got %v, want only id auth0|abc", got.User)
	}
	if c, ok := got.Session["claims"].(map[string]any); !ok || len(c) != 0 {
		t.Errorf("claims of a session without any: got %#v, want {}", got.Session["claims"])
	}
}

// Claims that are not JSON (no store hands them back, but nothing in
// writeMe may turn them into a malformed answer) get what writeJSON gives.
func TestWriteMeBadClaims(t *testing.T) {
	sess := &sessiond.Session{ID: "s1", UserID: "u", Claims: json.RawMessage(`{"a": nope}`)}
	want := httptest.NewRecorder()
	writeJSON(want, 200, "ok", meJSON(nil, sess))
	got := httptest.NewRecorder()
	writeMe(got, nil, sess)
	if got.Code != want.Code || !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
		t.Errorf("got %d %s, want %d %s", got.Code, got.Body.Bytes(), want.Code, want.Body.Bytes())
	}
	if !json.Valid(got.Body.Bytes()) {
		t.Errorf("answer is not JSON: %s", got.Body.Bytes())
	}
}
