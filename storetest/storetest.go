// Package storetest is the conformance suite that every sessiond store must
// pass. A store's own test file calls Run, RunUsers or RunLimiter with a
// constructor that returns a fresh, empty store for each sub-test:
//
//	func TestSessionStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) sessiond.SessionStore {
//			return newStore(t)
//		})
//	}
//
// Time is always passed in, never slept on. Times are anchored near the wall
// clock, because stores such as Redis also expire their keys by themselves:
// a session the suite treats as live is never expired by the real clock
// while the suite runs.
package storetest

import (
	"crypto/rand"
	"encoding/base64"
	"time"
)

// base returns a reference time near the wall clock with a sub-millisecond
// part, so that stores are checked to keep at least millisecond precision.
func base() time.Time {
	return time.Now().UTC().Truncate(time.Second).Add(123*time.Millisecond + 456789*time.Nanosecond)
}

// msEqual reports whether a and b are the same instant at millisecond
// precision.
func msEqual(a, b time.Time) bool {
	return a.Truncate(time.Millisecond).Equal(b.Truncate(time.Millisecond))
}

// randomID returns 128 random bits, base64url without padding, like a
// session or user id.
func randomID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// fmtTime renders t for failure messages.
func fmtTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000000Z07:00")
}
