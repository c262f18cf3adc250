package http

import (
	"bytes"
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
	for i, s := range strs {
		u := &sessiond.User{ID: "u" + s, Username: s, Email: s + "@example.com", CreatedAt: t0}
		sess := &sessiond.Session{
			ID: "id" + s, UserID: u.ID, Device: s, DeviceClass: []string{"", sessiond.ClassMobile, s}[i%3],
			Name: s, IPAddress: s, Location: s,
			CreatedAt: t0, LastActive: t0.Add(time.Duration(i) * time.Millisecond), ExpiresAt: t0.Add(time.Hour),
		}
		want := httptest.NewRecorder()
		writeJSON(want, 200, "ok", struct {
			User    userJSON    `json:"user"`
			Session sessionJSON `json:"session"`
		}{newUserJSON(u), newSessionJSON(sess, sess.ID)})
		got := httptest.NewRecorder()
		writeMe(got, newUserJSON(u), sess)
		if !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
			t.Errorf("%q:\ngot  %s\nwant %s", s, got.Body.Bytes(), want.Body.Bytes())
		}
		if got.Code != want.Code || got.Header().Get("Content-Type") != want.Header().Get("Content-Type") ||
			got.Header().Get("Cache-Control") != want.Header().Get("Cache-Control") {
			t.Errorf("%q: status and headers %d %v, want %d %v", s, got.Code, got.Header(), want.Code, want.Header())
		}
		var other bytes.Buffer
		other.Write(appendSessionJSON(nil, sess, "another id"))
		want2 := httptest.NewRecorder()
		writeJSON(want2, 200, "ok", newSessionJSON(sess, "another id"))
		if !bytes.Contains(want2.Body.Bytes(), other.Bytes()) {
			t.Errorf("%q: session not current:\ngot  %s\nwant within %s", s, other.Bytes(), want2.Body.Bytes())
		}
	}
}
