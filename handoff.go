package sessiond

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// HandoffTTL is how long a handoff code works (docs/design.md, "Handoff").
const HandoffTTL = 60 * time.Second

// handoffCodeLen is the length of a handoff code: 32 random bytes,
// base64url without padding.
const handoffCodeLen = 43

// HandoffStart is the answer to StartHandoff: a one-time code that hands
// the new session to a browser, instead of its tokens.
type HandoffStart struct {
	// Code is the one-time code: 256 random bits, base64url without
	// padding. It is given out once and stored only as its hash.
	Code string
	// ExpiresIn is how long Code works, from the start by the Manager's
	// clock.
	ExpiresIn time.Duration
	Session   *Session
}

// StartHandoff starts a session for r.UserID exactly as StartSession does,
// but answers a one-time code instead of tokens: the app sends the user's
// browser to the handoff URL with it, and RedeemHandoff there sets the
// browser's token cookies. The code works once, for HandoffTTL.
func (m *Manager) StartHandoff(ctx context.Context, r StartRequest) (*HandoffStart, error) {
	code := newHandoffCode()
	// The record goes in before the session: a session whose record could
	// not be stored is never created, so none is left that nobody holds.
	// A record whose session was then not created redeems as invalid.
	var exp time.Time
	s, now, err := m.startSession(ctx, r, func(s *Session, now time.Time) error {
		exp = now.Add(HandoffTTL)
		return m.sessions.PutHandoff(ctx, handoffHash(code), Handoff{UserID: s.UserID, SessionID: s.ID, ExpiresAt: exp})
	})
	if err != nil {
		return nil, err
	}
	return &HandoffStart{Code: code, ExpiresIn: exp.Sub(now), Session: s}, nil
}

// RedeemHandoff exchanges a handoff code for the tokens of its session,
// once. An unknown or expired code, or one whose session has ended, gives
// an error wrapping ErrHandoffInvalid. A code used before gives one too,
// and ends the session it started (ReasonHandoffReplayed): either the
// browser it was meant for or someone else has the session, and which one
// cannot be told.
func (m *Manager) RedeemHandoff(ctx context.Context, code string) (*Grant, error) {
	if !wellFormedCode(code) {
		return nil, fmt.Errorf("%w: malformed", ErrHandoffInvalid)
	}
	now := m.now()
	h, first, err := m.sessions.TakeHandoff(ctx, handoffHash(code), now)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, fmt.Errorf("%w: unknown or expired", ErrHandoffInvalid)
	case err != nil:
		return nil, err
	case !first:
		m.Logger.LogAttrs(ctx, slog.LevelWarn, "handoff code replayed",
			slog.String("user_id", h.UserID), slog.String("session_id", h.SessionID))
		if err := m.revokeOne(ctx, h.UserID, h.SessionID, ReasonHandoffReplayed); err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: used before; its session is ended", ErrHandoffInvalid)
	}
	s, err := m.sessions.Get(ctx, h.UserID, h.SessionID, now)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: its session has ended", ErrHandoffInvalid)
	}
	if err != nil {
		return nil, err
	}
	m.Logger.LogAttrs(ctx, slog.LevelInfo, "handoff redeemed",
		slog.String("user_id", s.UserID), slog.String("session_id", s.ID))
	return m.grant(s, now)
}

// newHandoffCode returns 256 random bits, base64url without padding.
func newHandoffCode() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("sessiond: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// wellFormedCode reports whether code could be one newHandoffCode made, so
// that nothing else reaches the store.
func wellFormedCode(code string) bool {
	if len(code) != handoffCodeLen {
		return false
	}
	_, err := base64.RawURLEncoding.Strict().DecodeString(code)
	return err == nil
}

// handoffHash is what stores keep of a handoff code: its SHA-256, in hex.
func handoffHash(code string) string {
	sum := sha256.Sum256([]byte(code))
	return hex.EncodeToString(sum[:])
}
