package sessiond

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/sessiond/sessiond/useragent"
)

// Locator turns a client address into "City, Country" or "".
type Locator interface {
	Lookup(ip netip.Addr) string
}

// StartRequest starts a session for a user the app itself signed in (its
// own passwords, OAuth, SSO, passkeys): see docs/design.md, "Sessions for
// the app's own users". UserAgent and ClientIP are the end user's, as the
// app saw them; the Manager derives the device and the location from them
// exactly as for a login.
type StartRequest struct {
	UserID string
	// DeviceID is the client's own identifier of the device, optional; a
	// session started for a device that has a live session replaces it.
	DeviceID string
	// DeviceName sets the session's name, optional.
	DeviceName string
	UserAgent  string
	ClientIP   string
	// Claims are the app's claims of the session, carried by every
	// access token of it; nil for none. See CheckClaims.
	Claims map[string]any
}

// Limits of a session's claims and of the user ids of an app's own users.
const (
	// ClaimsLimit is the most bytes the claims of a session take as
	// compact JSON.
	ClaimsLimit = 2048
	// MaxUserIDLen is the longest user id, in bytes.
	MaxUserIDLen = 128
)

// reservedClaims are the names claims may not use: the registered JWT
// claims, the access token's own, and the members of an RFC 7662
// introspection answer. Names starting with "sd_" are reserved too.
var reservedClaims = []string{
	"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "sid", "typ",
	"active", "scope", "client_id", "username", "token_type",
}

// CheckClaims returns the compact JSON of claims, or an *InputError on
// field "claims" when it is too large or uses a reserved name. Nil or
// empty claims give nil.
func CheckClaims(claims map[string]any) (json.RawMessage, error) {
	if len(claims) == 0 {
		return nil, nil
	}
	names := make([]string, 0, len(claims))
	for k := range claims {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if k == "" {
			return nil, invalid("claims", "must not have an empty name")
		}
		// Names are printable ASCII: NUL, spaces, invisible characters
		// and letters that other languages fold to ASCII ("ıss", "İat",
		// "ß") would let some decoder read a claim as a reserved one.
		if !isPrintableASCII(k) {
			return nil, invalid("claims", "names must be printable ASCII without spaces, not %q", k)
		}
		// Any spelling that folds to a reserved name is refused too:
		// decoders that match names case-insensitively (Go's
		// encoding/json among them, with Unicode folding: "ſub" is
		// "sub") would otherwise read "Sub" as the token's own sub.
		if r := reservedName(k); r != "" {
			return nil, invalid("claims", "must not use the reserved name %q (%q in any letter case)", k, r)
		}
		if err := checkClaimValue(claims[k], 1); err != nil {
			return nil, err
		}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(claims); err != nil {
		return nil, invalid("claims", "must be a JSON object")
	}
	raw := bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	if len(raw) > ClaimsLimit {
		return nil, invalid("claims", "must be at most %d bytes as compact JSON, not %d", ClaimsLimit, len(raw))
	}
	return json.RawMessage(raw), nil
}

// reservedName returns the reserved claim name that name folds to, the
// "sd_" prefix when name starts with it in any case, or "".
func reservedName(name string) string {
	for _, r := range reservedClaims {
		if strings.EqualFold(name, r) {
			return r
		}
	}
	if len(name) >= len("sd_") && strings.EqualFold(name[:len("sd_")], "sd_") {
		return "sd_"
	}
	return ""
}

// maxClaimsDepth bounds the nesting of claims: common JSON decoders of
// the services that read the tokens recurse per level.
const maxClaimsDepth = 16

// checkClaimValue refuses a claim value nested deeper than
// maxClaimsDepth, or holding a number no float64 holds (1E+400 would
// break every verifier that decodes numbers as float64).
func checkClaimValue(v any, depth int) error {
	if depth > maxClaimsDepth {
		return invalid("claims", "must not nest deeper than %d levels", maxClaimsDepth)
	}
	switch v := v.(type) {
	case map[string]any:
		for _, x := range v {
			if err := checkClaimValue(x, depth+1); err != nil {
				return err
			}
		}
	case []any:
		for _, x := range v {
			if err := checkClaimValue(x, depth+1); err != nil {
				return err
			}
		}
	case json.Number:
		f, err := v.Float64()
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return invalid("claims", "number %s is out of range", v.String())
		}
	case float64:
		if math.IsInf(v, 0) || math.IsNaN(v) {
			return invalid("claims", "numbers must be finite")
		}
	case float32:
		if math.IsInf(float64(v), 0) || math.IsNaN(float64(v)) {
			return invalid("claims", "numbers must be finite")
		}
	}
	return nil
}

// checkUserID refuses a user id that is not 1-MaxUserIDLen printable ASCII
// characters without spaces.
func checkUserID(id string) error {
	if id == "" {
		return invalid("user_id", "is required")
	}
	if len(id) > MaxUserIDLen {
		return invalid("user_id", "must be at most %d characters", MaxUserIDLen)
	}
	if !isPrintableASCII(id) {
		return invalid("user_id", "must be printable ASCII without spaces")
	}
	return nil
}

// ExternalUsers reports whether the Manager serves the app's own users
// (it has no user store): there is no sign-up, sign-in or password, and
// sessions start with StartSession.
func (m *Manager) ExternalUsers() bool { return m.users == nil }

// errNoUsers answers the acts that need sessiond's own users on a Manager
// that serves the app's.
var errNoUsers = fmt.Errorf("%w: users are the app's own (no user store)", ErrNotFound)

// StartSession starts a session for r.UserID, a user the app signed in,
// and returns its tokens. It applies every rule of a login: the device
// and location from the end user's User-Agent and address, same-device
// replacement, the session cap, events, metrics and the audit line. With a
// user store, the user must exist (ErrNotFound) and not be locked
// (ErrAccountLocked); without one, any well-formed id is a user.
func (m *Manager) StartSession(ctx context.Context, r StartRequest) (*Grant, error) {
	s, now, err := m.startSession(ctx, r, nil)
	if err != nil {
		return nil, err
	}
	return m.grant(s, now)
}

// startSession checks r, then creates its session. before, when not nil,
// runs with the new session after the checks and before the session is
// stored; its error stops the start.
func (m *Manager) startSession(ctx context.Context, r StartRequest, before func(s *Session, now time.Time) error) (*Session, time.Time, error) {
	if err := checkUserID(r.UserID); err != nil {
		return nil, time.Time{}, err
	}
	if err := checkDevice(r.DeviceID, r.DeviceName); err != nil {
		return nil, time.Time{}, err
	}
	claims, err := CheckClaims(r.Claims)
	if err != nil {
		return nil, time.Time{}, err
	}
	u := &User{ID: r.UserID}
	if m.users != nil {
		if u, err = m.users.UserByID(ctx, r.UserID); errors.Is(err, ErrNotFound) {
			return nil, time.Time{}, fmt.Errorf("user %w", ErrNotFound)
		} else if err != nil {
			return nil, time.Time{}, err
		}
		if u.Locked {
			return nil, time.Time{}, ErrAccountLocked
		}
	}
	now := m.now()
	s := m.newSession(u.ID, client{r.DeviceID, r.DeviceName, r.UserAgent, r.ClientIP}, now)
	s.Claims = claims
	if before != nil {
		if err := before(s, now); err != nil {
			return nil, time.Time{}, err
		}
	}
	if err := m.createSession(ctx, u, s, now); err != nil {
		return nil, time.Time{}, err
	}
	if err := m.created(ctx, u, s, now, "start"); err != nil {
		return nil, time.Time{}, err
	}
	return s, now, nil
}

// created records, counts, logs and publishes the new session s of u,
// made at now; via says how it started (a login or a start by the app).
// When its record cannot be written the session is ended again and the
// store's error returned: a sign-in is answered only once its alert is
// sure to go out.
func (m *Manager) created(ctx context.Context, u *User, s *Session, now time.Time, via string) error {
	if err := m.signedIn(ctx, u, s, now); err != nil {
		m.abandon(ctx, s)
		return err
	}
	m.observer.Login(true)
	m.Logger.LogAttrs(ctx, slog.LevelInfo, "session created", slog.String("user_id", s.UserID), slog.String("session_id", s.ID),
		slog.String("device", s.Device), slog.String("via", via))
	m.publish(ctx, Event{Type: EventCreated, UserID: s.UserID, SessionID: s.ID, Session: s.Clone()})
	m.maybeSweep()
	return nil
}

// client is what a login or a start tells of the end user's device.
type client struct {
	deviceID, deviceName, userAgent, ip string
}

// checkDevice refuses a device id or name no session may have.
func checkDevice(deviceID, deviceName string) error {
	if len(deviceID) > MaxDeviceIDLen {
		return invalid("device_id", "must be at most %d bytes", MaxDeviceIDLen)
	}
	return checkDeviceName("device_name", deviceName)
}

// describe returns the device name, class, address and location of c.
// An address that does not parse is kept as "" (the HTTP layer only
// passes parsed ones; a library caller's typo must not reach the list).
func (m *Manager) describe(c client) (device, class, ip, location string) {
	device, class = useragent.Parse(c.userAgent)
	if a, err := netip.ParseAddr(c.ip); err == nil {
		a = a.Unmap().WithZone("")
		ip = a.String()
		if m.locator != nil {
			location = m.locator.Lookup(a)
		}
	}
	return device, class, ip, location
}

// SessionUpdate changes a session: a nil field stays as it is.
type SessionUpdate struct {
	// Name sets the name ("" clears it).
	Name *string
	// Claims replace the claims; an empty non-nil map clears them. Access
	// tokens issued from then on carry the new claims.
	Claims map[string]any
}

// UpdateSession renames a session of userID or replaces its claims, and
// tells the user's devices.
func (m *Manager) UpdateSession(ctx context.Context, userID, id string, u SessionUpdate) (*Session, error) {
	var ch SessionChange
	if u.Name != nil {
		if err := checkDeviceName("name", *u.Name); err != nil {
			return nil, err
		}
		ch.Name = u.Name
	}
	if u.Claims != nil {
		claims, err := CheckClaims(u.Claims)
		if err != nil {
			return nil, err
		}
		ch.Claims = &claims
	}
	s, err := m.sessions.Update(ctx, userID, id, ch)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("session %w", ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	m.publish(ctx, Event{Type: EventRenamed, UserID: userID, SessionID: id, Session: s.Clone()})
	if err := m.renamed(ctx, s); err != nil {
		return nil, err
	}
	return s, nil
}

// Rename sets the name of one session of userID ("" clears it).
func (m *Manager) Rename(ctx context.Context, userID, id, name string) (*Session, error) {
	return m.UpdateSession(ctx, userID, id, SessionUpdate{Name: &name})
}

// EndSession ends one session of userID for the app (reason admin). Unlike
// Revoke, an unknown id is not throttled: the app's calls are trusted.
func (m *Manager) EndSession(ctx context.Context, userID, id string) error {
	err := m.revokeOne(ctx, userID, id, ReasonAdmin)
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("session %w", ErrNotFound)
	}
	return err
}
