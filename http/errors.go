package http

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sessiond/sessiond"
)

// Error codes: data.code of every error envelope. They are a stable API:
// clients branch on them, never on the message.
const (
	codeInvalidRequest     = "invalid_request"
	codeInvalidField       = "invalid_field"
	codeInvalidCredentials = "invalid_credentials"
	codeAccountLocked      = "account_locked"
	codeInvalidToken       = "invalid_token"
	codeCSRFFailed         = "csrf_failed"
	codeNotFound           = "not_found"
	codeMethodNotAllowed   = "method_not_allowed"
	codeUsernameTaken      = "username_taken"
	codeEmailTaken         = "email_taken"
	codeSessionLimit       = "session_limit"
	codeBodyTooLarge       = "body_too_large"
	codeUnsupportedMedia   = "unsupported_media_type"
	codeRateLimited        = "rate_limited"
	codeTooManyStreams     = "too_many_streams"
	codeUnavailable        = "unavailable"
	codeSignupClosed       = "signup_closed"
	codeAdminKeyInvalid    = "admin_key_invalid"
	codeHandoffInvalid     = "handoff_invalid"
)

// apiError is how one error is answered.
type apiError struct {
	status int
	code   string
	msg    string
	// field names the one input field that was wrong, if any.
	field string
	// retryAfter is when to try again (429 and 503 only).
	retryAfter time.Duration
}

// errorData is the data of an error envelope.
type errorData struct {
	Code       string `json:"code"`
	Field      string `json:"field,omitempty"`
	RetryAfter int    `json:"retry_after,omitempty"`
}

// errorStatus is the one table that turns errors into statuses, codes and
// the messages clients see. Anything not in it is logged and answered with
// 503: the store's answer is unknown, so the request neither succeeds nor
// is refused for good.
func errorStatus(err error) apiError {
	var inputErr *sessiond.InputError
	var throttled *sessiond.ThrottledError
	var maxBytes *http.MaxBytesError
	var method *methodError
	switch {
	case errors.As(err, &inputErr) && inputErr.Field != "":
		return apiError{status: http.StatusBadRequest, code: codeInvalidField, msg: inputErr.Error(), field: inputErr.Field}
	case errors.As(err, &inputErr):
		return apiError{status: http.StatusBadRequest, code: codeInvalidRequest, msg: inputErr.Error()}
	case errors.As(err, &maxBytes):
		return apiError{status: http.StatusRequestEntityTooLarge, code: codeBodyTooLarge, msg: fmt.Sprintf("request body is larger than %d bytes", maxBytes.Limit)}
	case errors.Is(err, sessiond.ErrHandoffInvalid):
		return apiError{status: http.StatusBadRequest, code: codeHandoffInvalid, msg: "the handoff code is unknown, expired or already used"}
	case errors.Is(err, sessiond.ErrInvalidCredentials):
		return apiError{status: http.StatusUnauthorized, code: codeInvalidCredentials, msg: "invalid username or password"}
	case errors.Is(err, errAdminKey):
		return apiError{status: http.StatusUnauthorized, code: codeAdminKeyInvalid, msg: "missing or invalid admin key"}
	case errors.Is(err, errUserLocked):
		return apiError{status: http.StatusForbidden, code: codeAccountLocked, msg: "this user is locked"}
	case errors.Is(err, errUserNotFound):
		return apiError{status: http.StatusNotFound, code: codeNotFound, msg: "user not found"}
	case errors.Is(err, sessiond.ErrAccountLocked):
		return apiError{status: http.StatusUnauthorized, code: codeAccountLocked, msg: "this account is locked"}
	case errors.Is(err, sessiond.ErrInvalidToken):
		return apiError{status: http.StatusUnauthorized, code: codeInvalidToken, msg: "missing, invalid, expired or revoked token"}
	case errors.Is(err, errNoEndpoint):
		return apiError{status: http.StatusNotFound, code: codeNotFound, msg: "no such endpoint"}
	case errors.Is(err, sessiond.ErrNotFound):
		return apiError{status: http.StatusNotFound, code: codeNotFound, msg: "session not found"}
	case errors.As(err, &method):
		return apiError{status: http.StatusMethodNotAllowed, code: codeMethodNotAllowed, msg: "method " + method.method + " is not allowed here"}
	case errors.Is(err, sessiond.ErrUsernameTaken):
		return apiError{status: http.StatusConflict, code: codeUsernameTaken, msg: "username is already taken"}
	case errors.Is(err, sessiond.ErrEmailTaken):
		return apiError{status: http.StatusConflict, code: codeEmailTaken, msg: "email is already registered"}
	case errors.Is(err, sessiond.ErrSessionLimit):
		return apiError{status: http.StatusConflict, code: codeSessionLimit, msg: "too many signed-in devices: sign out another device first"}
	case errors.Is(err, sessiond.ErrSignupClosed):
		return apiError{status: http.StatusForbidden, code: codeSignupClosed, msg: "sign-up is disabled"}
	case errors.As(err, &throttled):
		return apiError{status: http.StatusTooManyRequests, code: codeRateLimited, msg: throttled.Error(), retryAfter: throttled.RetryAfter}
	case errors.Is(err, errTooManyStreams):
		return apiError{status: http.StatusTooManyRequests, code: codeTooManyStreams, msg: err.Error(), retryAfter: streamRetryAfter}
	case errors.Is(err, errCSRF):
		return apiError{status: http.StatusForbidden, code: codeCSRFFailed, msg: "cross-site request refused"}
	case errors.Is(err, errMediaType):
		return apiError{status: http.StatusUnsupportedMediaType, code: codeUnsupportedMedia, msg: strings.TrimPrefix(err.Error(), errMediaType.Error()+": ")}
	}
	return errUnavailable
}

// errUnavailable is the answer to an error the table does not know, and
// to a store that does not answer.
var errUnavailable = apiError{status: http.StatusServiceUnavailable, code: codeUnavailable, msg: "service temporarily unavailable, retry shortly", retryAfter: time.Second}

var (
	errCSRF       = errors.New("cross-site request")
	errMediaType  = errors.New("unsupported media type")
	errNoEndpoint = errors.New("no such endpoint")
)

// methodError is a request whose path has routes, none for its method.
type methodError struct{ method string }

func (e *methodError) Error() string { return "method " + e.method + " not allowed" }

// writeError answers err in the envelope.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	writeAPIError(w, s.noteError(w, r, err))
}

// noteError returns how err is answered, after setting the headers that
// go with it and writing the log lines it needs.
func (s *Server) noteError(w http.ResponseWriter, r *http.Request, err error) apiError {
	e := errorStatus(err)
	switch e.status {
	case http.StatusUnauthorized:
		switch e.code {
		case codeInvalidToken:
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		case codeAdminKeyInvalid:
			// No error code: it would tell a missing key from a wrong one.
			w.Header().Set("WWW-Authenticate", `Bearer realm="sessiond admin"`)
		}
	case http.StatusTooManyRequests:
		// Every 429, for fail2ban-style tools: the rule, the address and,
		// when known, the user.
		attrs := []slog.Attr{slog.String("request_id", requestID(r.Context())), slog.String("path", r.URL.Path)}
		var th *sessiond.ThrottledError
		if errors.As(err, &th) {
			attrs = append(attrs, slog.String("rule", th.Rule))
		} else {
			attrs = append(attrs, slog.String("rule", e.code))
		}
		_, ip := s.clientIP(r)
		attrs = append(attrs, slog.String("client_ip", ip))
		if th != nil && th.UserID != "" {
			attrs = append(attrs, slog.String("user_id", th.UserID))
		} else if sess, ok := sessiond.FromContext(r.Context()); ok {
			attrs = append(attrs, slog.String("user_id", sess.UserID))
		}
		s.logger().LogAttrs(r.Context(), slog.LevelWarn, "throttled", attrs...)
		if s.Metrics != nil {
			if th != nil {
				s.Metrics.Throttled(th.Rule)
			} else {
				s.Metrics.Throttled(e.code)
			}
		}
	case http.StatusServiceUnavailable:
		level := slog.LevelError
		if errors.Is(err, sessiond.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			level = slog.LevelWarn
		}
		s.logger().LogAttrs(r.Context(), level, "request failed", slog.String("request_id", requestID(r.Context())), slog.String("err", err.Error()))
		if s.Metrics != nil {
			s.Metrics.StoreError()
		}
	}
	return e
}

// writeAPIError writes e in the envelope, with Retry-After on 429 and 503.
func writeAPIError(w http.ResponseWriter, e apiError) {
	data := errorData{Code: e.code, Field: e.field}
	if e.status == http.StatusTooManyRequests || e.status == http.StatusServiceUnavailable {
		// Whole seconds, rounded up and at least 1: a client told 0
		// would retry at once.
		secs := max(int((e.retryAfter+time.Second-1)/time.Second), 1)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		if e.status == http.StatusTooManyRequests {
			data.RetryAfter = secs
		}
	}
	writeJSON(w, e.status, e.msg, data)
}
