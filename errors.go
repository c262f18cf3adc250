package sessiond

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors. Stores and the Manager wrap them with context; callers
// match them with errors.Is.
var (
	// ErrNotFound reports a missing, expired or foreign session or user.
	ErrNotFound = errors.New("not found")
	// ErrInvalidCredentials reports an unknown user or a wrong password; the
	// two are never told apart.
	ErrInvalidCredentials = errors.New("invalid username or password")
	// ErrInvalidToken reports an access or refresh token that is missing,
	// malformed, forged, expired or whose session is gone.
	ErrInvalidToken = errors.New("invalid token")
	// ErrUsernameTaken and ErrEmailTaken report a registration conflict.
	ErrUsernameTaken = errors.New("username is already taken")
	ErrEmailTaken    = errors.New("email is already registered")
	// ErrSessionLimit reports a login refused because the user is at the
	// session cap under the deny policy.
	ErrSessionLimit = errors.New("too many sessions")
	// ErrGenerationMismatch reports a failed refresh compare-and-set: the
	// session's refresh generation is no longer the one expected.
	ErrGenerationMismatch = errors.New("refresh generation changed")
	// ErrAccountLocked reports a login to a locked account (only after the
	// password was verified).
	ErrAccountLocked = errors.New("account is locked")
	// ErrSignupClosed reports a registration while sign-up is disabled.
	ErrSignupClosed = errors.New("sign-up is disabled")
	// ErrHandoffInvalid reports a handoff code that is unknown, expired,
	// already used, or whose session has ended.
	ErrHandoffInvalid = errors.New("invalid handoff code")
	// ErrReportInvalid reports a "not me" link that is not genuine, has
	// expired, was used already, or whose session has ended.
	ErrReportInvalid = errors.New("invalid report link")
	// ErrUnavailable reports a store that did not answer (down, slow, or
	// past its deadline). The HTTP layer turns it into 503.
	ErrUnavailable = errors.New("store unavailable")
	// ErrNotAcknowledged reports a change that the store made but fewer
	// replicas than required confirmed in time (Redis with replica
	// acknowledgements): it holds on the primary now and may be lost if
	// the primary fails. It wraps ErrUnavailable, so it is answered 503
	// wherever a store error is; a caller that reports what changed (a
	// "session ended" event) must treat the change as made.
	ErrNotAcknowledged error = &notAcknowledged{}
)

// notAcknowledged is the type of ErrNotAcknowledged: a sentinel that is
// also an ErrUnavailable.
type notAcknowledged struct{}

func (*notAcknowledged) Error() string {
	return "the change is made but fewer replicas than required confirmed it"
}

func (*notAcknowledged) Unwrap() error { return ErrUnavailable }

// InputError reports malformed input; Field names what was wrong.
type InputError struct {
	Field   string
	Message string
}

func (e *InputError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// invalid returns an *InputError for field.
func invalid(field, format string, args ...any) error {
	return &InputError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// ThrottledError reports too many attempts; RetryAfter says when to retry.
type ThrottledError struct {
	RetryAfter time.Duration
	// What the 429 says there were too many of.
	What string
	// Rule names the throttle (docs/design.md, "Throttles"), for logs
	// and metrics: login_account_address, login_account, login_address,
	// register, failed_refresh, session_refresh, unknown_revoke,
	// admin_auth.
	Rule string
	// UserID is the user the throttled attempt was about, when known.
	UserID string
}

// ThrottleRules are the names a ThrottledError's Rule takes.
var ThrottleRules = []string{
	"login_account_address", "login_account", "login_address", "register",
	"failed_refresh", "session_refresh", "unknown_revoke", "admin_auth",
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("too many %s, retry after %s", e.What, e.RetryAfter.Round(time.Second))
}
