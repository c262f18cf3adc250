package sessiond

import (
	"cmp"
	"context"
	"encoding/json"
	"strings"
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
	// ReasonHandoffReplayed ends a session whose one-time handoff code was
	// used a second time.
	ReasonHandoffReplayed Reason = "handoff_replayed"
	// ReasonReported ends a session its user reported as not theirs.
	ReasonReported Reason = "reported"
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
	// Claims are the app's own claims of the session: a compact JSON
	// object that every access token of the session carries, or nil for
	// none. The Manager checks them (see ClaimsLimit); stores keep them
	// as they are.
	Claims json.RawMessage
}

// Class returns DeviceClass, or ClassUnknown when it is "".
func (s *Session) Class() string {
	if s.DeviceClass == "" {
		return ClassUnknown
	}
	return s.DeviceClass
}

// Clone returns a copy of s. The copy shares Claims, which nothing
// changes in place: a change of claims replaces the slice.
func (s *Session) Clone() *Session {
	c := *s
	return &c
}

// SessionChange is what SessionStore.Update changes; a nil field stays as
// it is.
type SessionChange struct {
	// Name sets the name ("" clears it).
	Name *string
	// Claims replaces the claims (an empty value clears them).
	Claims *json.RawMessage
}

// Ended names a session that a store operation removed and why.
type Ended struct {
	ID     string
	Reason Reason
}

// Handoff is what a one-time handoff code stands for: the session it
// hands to a browser (docs/design.md, "Handoff"). Stores keep it under the
// code's hash, never the code.
type Handoff struct {
	UserID    string
	SessionID string
	// ExpiresAt is when the code stops working.
	ExpiresAt time.Time
}

// CapPolicy says what happens at the session cap.
type CapPolicy string

// Session cap policies.
const (
	// PolicyEvict removes the least recently active session (ties: the
	// older login) to make room.
	PolicyEvict CapPolicy = "evict"
	// PolicyDeny refuses the new login with ErrSessionLimit.
	PolicyDeny CapPolicy = "deny"
)

// HardMaxSessions is the most sessions one user may have, whatever the
// configured cap: every per-user store operation stays bounded, and a
// store may split one over many chunks of StoreChunk sessions.
const HardMaxSessions = 10000

// StoreChunk is the most sessions a store touches in one atomic step
// (one Redis script, one SQLite statement) of a per-user operation, so
// that a user with very many sessions never holds up the store for others.
const StoreChunk = 1000

// ListPosition is a place in the order of a user's session list: the most
// recently active first, ties broken by the newer login, then by ID.
type ListPosition struct {
	LastActive, CreatedAt time.Time
	ID                    string
}

// Position returns the place of s in list order.
func (s *Session) Position() ListPosition {
	return ListPosition{LastActive: s.LastActive, CreatedAt: s.CreatedAt, ID: s.ID}
}

// Compare returns -1 when p comes before q in list order, 1 when after,
// 0 when they are the same place. Times compare to the millisecond, the
// precision stores keep.
func (p ListPosition) Compare(q ListPosition) int {
	if c := cmp.Compare(q.LastActive.UnixMilli(), p.LastActive.UnixMilli()); c != 0 {
		return c
	}
	if c := cmp.Compare(q.CreatedAt.UnixMilli(), p.CreatedAt.UnixMilli()); c != 0 {
		return c
	}
	return strings.Compare(p.ID, q.ID)
}

// SessionCap caps the live sessions of one user. Max <= 0 means no cap (the
// Manager always passes one, at most HardMaxSessions).
type SessionCap struct {
	Max    int
	Policy CapPolicy
}

// SessionStore keeps live sessions. Ended sessions are deleted, not kept.
//
// Every method takes the user id with the session id: a session id paired
// with another user's id is treated exactly like an unknown id. A session
// whose ExpiresAt is at or before now is treated as missing by every method
// that takes now, even before the store has physically deleted it.
// Implementations must be safe for concurrent use. Per-user operations
// (Create's replacement and cap, List, RevokeOthers, RevokeAll) touch at
// most StoreChunk sessions in one atomic step: for a user with no more
// sessions than that, each is one atomic step as a whole; for a larger user
// it is a series of steps, each atomic, the whole not (a session created or
// revoked meanwhile may or may not be seen). Errors other than the sentinels
// are wrapped; a store that did not answer wraps ErrUnavailable.
type SessionStore interface {
	// Create stores s, a new session. Atomically, in this order:
	// if s.DeviceID is not "", a live session of the same user with the
	// same DeviceID is removed (ReasonReplaced); then, if the user has
	// limit.Max or more live sessions, PolicyEvict removes the least
	// recently active ones (ties: older CreatedAt first; ReasonEvicted)
	// until there is room, and PolicyDeny returns ErrSessionLimit and
	// changes nothing (the replacement included). It returns what it
	// removed. Creating an id that exists is an error. For a user with
	// more than StoreChunk sessions, the sessions are read in chunks first
	// and the removals and insert are then done atomically, checking that
	// each removed session still qualifies; with an error, what was
	// already removed is returned with it.
	Create(ctx context.Context, s *Session, limit SessionCap, now time.Time) ([]Ended, error)

	// Get returns the live session id of userID, or ErrNotFound when it is
	// missing, expired at now, or another user's. The result is the
	// caller's to modify. Get is the per-request check: implementations
	// may serve it from a cache that is invalidated on every write.
	Get(ctx context.Context, userID, id string, now time.Time) (*Session, error)

	// List returns the live sessions of userID at now, in no particular
	// order; an unknown user has none (no error). Each session appears
	// once. For a user with more than StoreChunk sessions it reads them in
	// chunks, so it is not a snapshot: a session created or ended during
	// the call may or may not be in the result; every session live
	// throughout it is.
	List(ctx context.Context, userID string, now time.Time) ([]*Session, error)

	// ListPage returns up to limit live sessions of userID at now in list
	// order: LastActive newest first, then CreatedAt newest first, then ID
	// (ascending). With after set, the page starts with the first session
	// that comes after that position; excludeID ("" for none) is left out.
	// Like List, it reads a large user's sessions in chunks; it reads the
	// full fields of the sessions of the page only. It returns fewer than
	// limit sessions only when fewer live ones come after the position: a
	// session that ends during the call is replaced by the next one, so a
	// caller that asks for one more than it shows learns whether another
	// page follows.
	ListPage(ctx context.Context, userID string, now time.Time, after *ListPosition, excludeID string, limit int) ([]*Session, error)

	// Touch records activity: it sets LastActive and ExpiresAt. It returns
	// ErrNotFound when the session is gone. Idempotent.
	Touch(ctx context.Context, userID, id string, lastActive, expiresAt time.Time) error

	// Rotate advances the refresh generation with a compare-and-set: if the
	// session's Generation equals from, it becomes from+1, RotatedAt and
	// LastActive become at, ExpiresAt becomes expiresAt, and the updated
	// session is returned. Otherwise it returns ErrGenerationMismatch and
	// changes nothing; ErrNotFound when the session is gone. An error
	// wrapping ErrNotAcknowledged means the rotation is made but not
	// confirmed by enough replicas; the updated session comes with it.
	Rotate(ctx context.Context, userID, id string, from uint64, at, expiresAt time.Time) (*Session, error)

	// Update applies ch to the session in one atomic step and returns the
	// updated session; ErrNotFound when the session is gone. It changes
	// neither LastActive nor ExpiresAt.
	Update(ctx context.Context, userID, id string, ch SessionChange) (*Session, error)

	// Revoke deletes one session. It returns ErrNotFound when there was
	// no such live session, so a second revoke of the same id reports
	// ErrNotFound. After Revoke returns, Get on this process never returns
	// the session again. An error wrapping ErrNotAcknowledged means this
	// call deleted the session but not enough replicas confirmed it: the
	// session has ended all the same (a retry reports ErrUnavailable until
	// the replicas confirm, then ErrNotFound).
	Revoke(ctx context.Context, userID, id string) error

	// RevokeOthers deletes every session of userID but keepID and returns
	// the ids it deleted (none: an empty slice, no error). It deletes in
	// chunks of at most StoreChunk sessions until none but keepID is left,
	// so sessions created during the call may be deleted too. When it
	// returns an error, the ids it returns with it were deleted (the chunks
	// that completed) and others may remain: the caller must report both.
	// An error wrapping ErrNotAcknowledged means the ids returned were
	// deleted but not enough replicas confirmed it.
	RevokeOthers(ctx context.Context, userID, keepID string) ([]string, error)

	// RevokeAll deletes every session of userID and returns their ids,
	// in chunks like RevokeOthers, with the same answer on an error.
	RevokeAll(ctx context.Context, userID string) ([]string, error)

	// DeleteExpired physically removes sessions expired at now and returns
	// how many it removed; it also removes handoff records expired at now,
	// which it does not count. Stores whose keys expire by themselves
	// return 0.
	DeleteExpired(ctx context.Context, now time.Time) (int, error)

	// Sync returns once every change of userID's sessions made so far is
	// as durable as the store promises (with replica acknowledgements: on
	// the required number of replicas), or an error wrapping
	// ErrNotAcknowledged or ErrUnavailable. Stores without such a promise
	// return nil at once. A caller that answers from a change an earlier
	// call made (a refresh replayed inside its grace window) calls it
	// first, so that it never answers 200 from a change that a failover
	// could take back. Idempotent; it changes no session.
	Sync(ctx context.Context, userID string) error

	// PutHandoff stores h, the record of a one-time handoff code, under
	// codeHash (the code's SHA-256, never the code) until h.ExpiresAt; a
	// record already under codeHash is replaced. Every instance sharing
	// the store must see it (docs/design.md, "Handoff").
	PutHandoff(ctx context.Context, codeHash string, h Handoff) error

	// TakeHandoff uses the handoff record of codeHash, atomically: the
	// first take of a record returns it with first true and marks it used;
	// every later take until it expires returns it with first false (a
	// replay), so of two concurrent takes exactly one is first. It returns
	// ErrNotFound for an unknown hash and for a record whose ExpiresAt is
	// at or before now. A store with replica acknowledgements returns an
	// error wrapping ErrNotAcknowledged (and no record) when the record
	// was marked used but not enough replicas confirmed it: the code must
	// not be honoured, since a failover could make it unused again.
	TakeHandoff(ctx context.Context, codeHash string, now time.Time) (h *Handoff, first bool, err error)

	// Ping reports whether the store answers.
	Ping(ctx context.Context) error

	// Writable reports whether the store accepts writes now, with one small
	// real write that leaves nothing behind or expires within seconds; on
	// a store spread over several servers (Redis Cluster), one on each
	// primary, since one can refuse writes alone. A refused write wraps
	// ErrUnavailable. It is the readiness check, run every few seconds,
	// not on every request: a store that answers reads but refuses writes
	// answers every sign-in and revocation 503, and is not ready. A store
	// with replica acknowledgements also waits for them, each within the
	// store's timeout: without them every revocation and refresh answers
	// 503, so the store is not ready either.
	Writable(ctx context.Context) error
}
