package redis

import (
	"testing"
	"time"

	"github.com/sessiond/sessiond"
)

// BenchmarkDecode decodes the hash of a typical session, as Get does for
// every authenticated request, without Redis.
func BenchmarkDecode(b *testing.B) {
	now := time.Now()
	s := &sessiond.Session{ID: "Zt1nYbB0dM4w3Tf2oOa9iA", UserID: "u7h5kQJ3mR2bX8cYp1sLvA",
		DeviceID: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Device: "Chrome on Windows",
		DeviceClass: sessiond.ClassDesktop, IPAddress: "203.0.113.42", Location: "Lagos, Nigeria",
		CreatedAt: now, LastActive: now, ExpiresAt: now.Add(time.Hour), Generation: 1, RotatedAt: now}
	var h hashValues
	kv := encodeSession(s)
	for i := 0; i < len(kv); i += 2 {
		for f, name := range fieldNames {
			if name == kv[i] {
				h.set(f, kv[i+1])
			}
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, err := decodeFields(s.UserID, s.ID, &h); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

func BenchmarkSessionKey(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		SessionKey("u7h5kQJ3mR2bX8cYp1sLvA", "Zt1nYbB0dM4w3Tf2oOa9iA")
	}
}
