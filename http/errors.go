package http

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/sessiond/sessiond"
)

// errorStatus is the one table that turns errors into statuses and the
// messages clients see. Anything not in it is logged and answered with 503:
// the store's answer is unknown, so the request neither succeeds nor is
// refused for good.
func errorStatus(err error) (status int, msg string) {
	var inputErr *sessiond.InputError
	var throttled *sessiond.ThrottledError
	var maxBytes *http.MaxBytesError
	switch {
	case errors.As(err, &inputErr):
		return http.StatusBadRequest, inputErr.Error()
	case errors.As(err, &maxBytes):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", maxBytes.Limit)
	case errors.Is(err, sessiond.ErrInvalidCredentials):
		return http.StatusUnauthorized, "invalid username or password"
	case errors.Is(err, sessiond.ErrAccountLocked):
		return http.StatusUnauthorized, "this account is locked"
	case errors.Is(err, sessiond.ErrInvalidToken):
		return http.StatusUnauthorized, "missing, invalid, expired or revoked token"
	case errors.Is(err, sessiond.ErrNotFound):
		return http.StatusNotFound, "session not found"
	case errors.Is(err, sessiond.ErrUsernameTaken):
		return http.StatusConflict, "username is already taken"
	case errors.Is(err, sessiond.ErrEmailTaken):
		return http.StatusConflict, "email is already registered"
	case errors.Is(err, sessiond.ErrSessionLimit):
		return http.StatusConflict, "too many signed-in devices: sign out another device first"
	case errors.Is(err, sessiond.ErrSignupClosed):
		return http.StatusForbidden, "sign-up is disabled"
	case errors.As(err, &throttled):
		return http.StatusTooManyRequests, throttled.Error()
	case errors.Is(err, errCSRF):
		return http.StatusForbidden, "cross-site request refused"
	case errors.Is(err, errMediaType):
		return http.StatusUnsupportedMediaType, strings.TrimPrefix(err.Error(), errMediaType.Error()+": ")
	}
	return http.StatusServiceUnavailable, "service temporarily unavailable, retry shortly"
}

var (
	errCSRF      = errors.New("cross-site request")
	errMediaType = errors.New("unsupported media type")
)

// writeError answers err in the envelope.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := errorStatus(err)
	switch status {
	case http.StatusUnauthorized:
		if !errors.Is(err, sessiond.ErrInvalidCredentials) && !errors.Is(err, sessiond.ErrAccountLocked) {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		}
	case http.StatusTooManyRequests:
		var t *sessiond.ThrottledError
		errors.As(err, &t)
		w.Header().Set("Retry-After", strconv.Itoa(int((t.RetryAfter+999_999_999)/1e9)))
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "1")
		level := slog.LevelError
		if errors.Is(err, sessiond.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			level = slog.LevelWarn
		}
		s.logger().LogAttrs(r.Context(), level, "request failed", slog.String("request_id", requestID(r.Context())), slog.String("err", err.Error()))
		if s.Metrics != nil {
			s.Metrics.StoreError()
		}
	}
	writeJSON(w, status, msg, struct{}{})
}
