package sessiond

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// ReportLinkTTL is how long a "not me" link works, unless its session ends
// first.
const ReportLinkTTL = 7 * 24 * time.Hour

// A report token has the refresh token's layout under its own prefix and
// MAC domain, with the link's expiry (unix seconds) where a refresh token
// has its generation:
//
//	sdn1.<key id>.<base64url(user id)>.<session id>.<expiry>.<base64url(MAC)>
//
// It needs no state: it is single-use because using it ends its session,
// and a token whose session has ended is refused.
const (
	reportPrefix    = "sdn1."
	reportMACDomain = "sessiond report link v1\x00"
)

// errReportEnded answers a link whose session has ended, by its use or
// otherwise.
var errReportEnded = fmt.Errorf("%w: that sign-in has already ended (the link may have been used)", ErrReportInvalid)

// reportURL returns the "not me" link of s, made at now.
func (m *Manager) reportURL(s *Session, now time.Time) string {
	token := m.refresh.current.mint(reportPrefix, reportMACDomain, &RefreshClaims{
		UserID: s.UserID, SessionID: s.ID, Generation: uint64(now.Add(ReportLinkTTL).Unix()),
	})
	base := m.ReportURL
	if base == "" {
		base = "/report"
	}
	return base + "?t=" + token
}

// ReportedSession returns the session a "not me" token names, for the page
// that asks the user to confirm; it changes nothing. A token that is not
// genuine, has expired, or whose session has ended (a link used already
// among them) gives an error wrapping ErrReportInvalid that says which; a
// store that does not answer gives its error.
func (m *Manager) ReportedSession(ctx context.Context, token string) (*Session, error) {
	c, err := m.refresh.parse(token, reportPrefix, reportMACDomain)
	if err != nil {
		return nil, fmt.Errorf("%w: the link is not genuine or was cut short", ErrReportInvalid)
	}
	now := m.now()
	if c.Generation > uint64(now.Add(ReportLinkTTL+time.Minute).Unix()) {
		return nil, fmt.Errorf("%w: the link is not genuine", ErrReportInvalid)
	}
	if !now.Before(time.Unix(int64(c.Generation), 0)) {
		return nil, fmt.Errorf("%w: the link has expired", ErrReportInvalid)
	}
	s, err := m.sessions.Get(ctx, c.UserID, c.SessionID, now)
	if errors.Is(err, ErrNotFound) {
		return nil, errReportEnded
	}
	return s, err
}

// Report ends the session a "not me" token names (reason reported), or with
// everywhere every session of its user, and returns how many ended. Its
// errors are ReportedSession's.
func (m *Manager) Report(ctx context.Context, token string, everywhere bool) (int, error) {
	s, err := m.ReportedSession(ctx, token)
	if err != nil {
		return 0, err
	}
	m.Logger.LogAttrs(ctx, slog.LevelWarn, "sign-in reported by its user as not theirs",
		slog.String("user_id", s.UserID), slog.String("session_id", s.ID), slog.Bool("everywhere", everywhere))
	if everywhere {
		ctx, cancel := detach(ctx)
		defer cancel()
		return m.RevokeAll(ctx, s.UserID, ReasonReported)
	}
	if err := m.revokeOne(ctx, s.UserID, s.ID, ReasonReported); err != nil {
		if errors.Is(err, ErrNotFound) {
			return 0, errReportEnded
		}
		return 0, err
	}
	return 1, nil
}
