package http

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
)

// BenchmarkWriteMe compares the hand-written /me answer with encoding/json.
func BenchmarkWriteMe(b *testing.B) {
	t0 := time.Now()
	u := userJSON{ID: "WN68q2PCnvmJNCo6Zk3AKQ", Username: "alice", Email: "alice@example.com", CreatedAt: formatTime(t0)}
	sess := &sessiond.Session{
		ID: "XB5deUutyofSRpVhpSvyJA", Device: "Safari on macOS", DeviceClass: sessiond.ClassDesktop, Name: "Work laptop",
		IPAddress: "203.0.113.7", Location: "Lagos, Nigeria", CreatedAt: t0, LastActive: t0, ExpiresAt: t0.Add(time.Hour),
	}
	w := httptest.NewRecorder()
	b.Run("impl=encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			w.Body.Reset()
			writeJSON(w, 200, "ok", meJSON(&u, sess))
		}
	})
	b.Run("impl=hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			w.Body.Reset()
			writeMe(w, &u, sess)
		}
	})
	b.Run("impl=hand/claims", func(b *testing.B) {
		withClaims := *sess
		withClaims.Claims = []byte(`{"org":"acme","roles":["admin","billing"],"plan":"pro"}`)
		b.ReportAllocs()
		for b.Loop() {
			w.Body.Reset()
			writeMe(w, &u, &withClaims)
		}
	})
	b.Run("impl=hand/app-user", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			w.Body.Reset()
			writeMe(w, nil, sess)
		}
	})
}
