package sessiond

import (
	"context"
	"time"
)

// Device classes of a Session.
const (
	ClassDesktop = "desktop"
	ClassMobile  = "mobile"
	ClassTablet  = "tablet"
	ClassCLI     = "cli"
	ClassBot     = "bot"
	ClassUnknown = "unknown"
)

// Reason says why a session ended.
type Reason string

// Reasons a session ends.
const (
	ReasonLogout          Reason = "logout"
	ReasonRevoked         Reason = "revoked"
	ReasonRevokedOthers   Reason = "revoked_others"
	ReasonPasswordChanged Reason = "password_changed"
	ReasonPasswordReset   Reason = "password_reset"
	ReasonAccountLocked   Reason = "account_locked"
	ReasonAccountDeleted  Reason = "account_deleted"
	ReasonReplaced        Reason = "replaced"
	ReasonEvicted         Reason = "evicted"
	ReasonExpired         Reason = "expired"
	ReasonReuseDetected   Reason = "reuse_detected"
	ReasonAdmin           Reason = "admin"
)

// Session is one signed-in device of a user.
type Session struct {
	// ID has at least 128 random bits, base64url without padding.
	ID     string
	UserID string
	// DeviceID is a hash of the client's device identifier together with
	// the user id, "" when the client sent none.
	DeviceID string
	// Device is a short name such as "Chrome on Windows" or "curl".
	Device string
	// DeviceClass is one of the Class constants.
	DeviceClass string
	// Name is set by the user ("" when unset), at most 64 characters.
	Name       string
	IPAddress  string
	Location   string
	CreatedAt  time.Time
	LastActive time.Time
	// ExpiresAt is min(LastActive + idle timeout, CreatedAt + absolute
	// lifetime), computed by the Manager.
	ExpiresAt time.Time
	// Generation is the current refresh token generation (starts at 1).
	Generation uint64
	// RotatedAt is when Generation was last set; it anchors the refresh
	// grace window.
	RotatedAt time.Time
}

// Clone returns a copy of s.
func (s *Session) Clone() *Session {
	c := *s
	return &c
}

// Ended names a session that a store operation removed and why.
type Ended struct {
	ID     string
	Reason Reason
}

// LimitPolicy says what happens at the session cap.
type LimitPolicy string

// Session cap policies.
const (
	// PolicyEvict removes the least recently active session (ties: the
	// older login) to make room.
	PolicyEvict LimitPolicy = "evict"
	// PolicyDeny refuses the new login with ErrSessionLimit.
	PolicyDeny LimitPolicy = "deny"
)

// Limit caps the live sessions of one user. Max <= 0 means no cap.
type Limit struct {
	Max    int
	Policy LimitPolicy
}

// SessionStore keeps live sessions. Ended sessions are deleted, not kept.
//
// Every method takes the user id with the session id: a session id paired
// with another user's id is treated exactly like an unknown id. A session
// whose ExpiresAt is at or before now is treated as missing by every method
// that takes now, even before the store has physically deleted it.
// Implementations must be safe for concurrent use; every multi-step operation
// is atomic. Errors other than the sentinels are wrapped; a store that did
// not answer wraps ErrUnavailable.
type SessionStore interface {
	// Create stores s, a new session. Atomically, in this order:
	// if s.DeviceID is not "", a live session of the same user with the
	// same DeviceID is removed (ReasonReplaced); then, if the user has
	// limit.Max or more live sessions, PolicyEvict removes the least
	// recently active ones (ties: older CreatedAt first; ReasonEvicted)
	// until there is room, and PolicyDeny returns ErrSessionLimit and
	// changes nothing (the replacement included). It returns what it
	// removed. Creating an id that exists is an error.
	Create(ctx context.Context, s *Session, limit Limit, now time.Time) ([]Ended, error)

	// Get returns the live session id of userID, or ErrNotFound when it is
	// missing, expired at now, or another user's. The result is the
	// caller's to modify. Get is the per-request check: implementations
	// may serve it from a cache that is invalidated on every write.
	Get(ctx context.Context, userID, id string, now time.Time) (*Session, error)

	// List returns the live sessions of userID at now, in no particular
	// order; an unknown user has none (no error).
	List(ctx context.Context, userID string, now time.Time) ([]*Session, error)

	// Touch records activity: it sets LastActive and ExpiresAt. It returns
	// ErrNotFound when the session is gone. Idempotent.
	Touch(ctx context.Context, userID, id string, lastActive, expiresAt time.Time) error

	// Rotate advances the refresh generation with a compare-and-set: if the
	// session's Generation equals from, it becomes from+1, RotatedAt and
	// LastActive become at, ExpiresAt becomes expiresAt, and the updated
	// session is returned. Otherwise it returns ErrGenerationMismatch and
	// changes nothing; ErrNotFound when the session is gone.
	Rotate(ctx context.Context, userID, id string, from uint64, at, expiresAt time.Time) (*Session, error)

	// Rename sets the session's Name ("" clears it) and returns the
	// updated session; ErrNotFound when the session is gone.
	Rename(ctx context.Context, userID, id, name string) (*Session, error)

	// Revoke deletes one session. It returns ErrNotFound when there was
	// no such live session, so a second revoke of the same id reports
	// ErrNotFound. After Revoke returns, Get on this process never returns
	// the session again.
	Revoke(ctx context.Context, userID, id string) error

	// RevokeOthers deletes every session of userID but keepID and returns
	// the ids it deleted (none: an empty slice, no error).
	RevokeOthers(ctx context.Context, userID, keepID string) ([]string, error)

	// RevokeAll deletes every session of userID and returns their ids.
	RevokeAll(ctx context.Context, userID string) ([]string, error)

	// DeleteExpired physically removes sessions expired at now and returns
	// how many it removed. Stores whose keys expire by themselves return 0.
	DeleteExpired(ctx context.Context, now time.Time) (int, error)

	// Ping reports whether the store answers.
	Ping(ctx context.Context) error

	// Writable reports whether the store accepts writes now, with one small
	// real write that leaves nothing behind or expires within seconds; on
	// a store spread over several servers (Redis Cluster), one on each
	// primary, since one can refuse writes alone. A refused write wraps
	// ErrUnavailable. It is the readiness check, run every few seconds,
	// not on every request: a store that answers reads but refuses writes
	// answers every sign-in and revocation 503, and is not ready.
	Writable(ctx context.Context) error
}
