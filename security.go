package sessiond

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Webhook event types (docs/design.md, "Security activity").
const (
	WebhookSessionCreated  = "session.created"
	WebhookSessionRenamed  = "session.renamed"
	WebhookSessionEnded    = "session.ended"
	WebhookReuseDetected   = "refresh.reuse_detected"
	WebhookPasswordChanged = "user.password_changed"
	WebhookLoginThrottled  = "login.throttled"
)

// History entry types, the type of each entry Activity returns.
const (
	ActivitySignedIn        = "signed_in"
	ActivitySignedOut       = "signed_out"
	ActivityPasswordChanged = "password_changed"
	ActivityReuseDetected   = "reuse_detected"
	ActivitySignInThrottled = "sign_in_throttled"
)

// Actors of a session's end other than one of the user's sessions.
const (
	ByAdmin  = "admin"
	BySystem = "system"
)

// recordBatch is the most history entries and messages written in one
// Record: ending 10,000 sessions writes them in steps of this size.
const recordBatch = 500

// timeFormat renders times in events and history: RFC 3339, UTC,
// milliseconds.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"

func formatTime(t time.Time) string { return t.UTC().Format(timeFormat) }

// entrySession is a session as a history entry shows it.
type entrySession struct {
	ID          string `json:"id"`
	Device      string `json:"device"`
	DeviceClass string `json:"device_class"`
	Name        string `json:"name"`
	IPAddress   string `json:"ip_address"`
	Location    string `json:"location"`
}

func newEntrySession(s *Session) entrySession {
	return entrySession{ID: s.ID, Device: s.Device, DeviceClass: s.Class(), Name: s.Name, IPAddress: s.IPAddress, Location: s.Location}
}

// sessionJSON is a session in an event: the fields a session object has in
// the API but current.
type sessionJSON struct {
	entrySession
	LoginTime  string          `json:"login_time,omitempty"`
	LastActive string          `json:"last_active,omitempty"`
	ExpiresAt  string          `json:"expires_at,omitempty"`
	Claims     json.RawMessage `json:"claims"`
}

// newSessionJSON returns s as events show it. A session known only by its
// id (one a store removed without the Manager reading it first) has its id
// and nothing else.
func newSessionJSON(s *Session) sessionJSON {
	j := sessionJSON{entrySession: newEntrySession(s), Claims: s.Claims}
	if !s.CreatedAt.IsZero() {
		j.LoginTime, j.LastActive, j.ExpiresAt = formatTime(s.CreatedAt), formatTime(s.LastActive), formatTime(s.ExpiresAt)
	}
	if len(j.Claims) == 0 {
		j.Claims = json.RawMessage("{}")
	}
	return j
}

// entryJSON is a history entry as clients see it.
type entryJSON struct {
	Type        string       `json:"type"`
	At          string       `json:"at"`
	Session     entrySession `json:"session"`
	Reason      Reason       `json:"reason,omitempty"`
	By          any          `json:"by,omitempty"`
	NewDevice   *bool        `json:"new_device,omitempty"`
	NewLocation *bool        `json:"new_location,omitempty"`
}

// actorJSON is a session that ended another.
type actorJSON struct {
	SessionID string `json:"session_id"`
	Device    string `json:"device"`
}

// webhookJSON is the body of a webhook.
type webhookJSON struct {
	Type      string `json:"type"`
	Timestamp string `json:"timestamp"`
	Data      any    `json:"data"`
}

// record gathers what one act adds to a user's history and outbox.
type record struct {
	entries []ActivityEntry
	msgs    []OutboxMessage
}

func (r *record) entry(at time.Time, e entryJSON) {
	e.At = formatTime(at)
	b, err := json.Marshal(e)
	if err != nil {
		panic("sessiond: history entry does not encode: " + err.Error())
	}
	r.entries = append(r.entries, ActivityEntry{At: at, Data: b})
}

// message queues body for queue.
func (r *record) message(queue string, body any) {
	b, err := json.Marshal(body)
	if err != nil {
		panic("sessiond: outbox message does not encode: " + err.Error())
	}
	r.msgs = append(r.msgs, OutboxMessage{ID: "msg_" + randomID(), Queue: queue, Body: b})
}

// recording reports whether the Manager keeps security activity.
func (m *Manager) recording() bool { return m.activity != nil }

// hook queues a webhook event when webhooks are on.
func (m *Manager) hook(r *record, typ string, at time.Time, data any) {
	if m.senders[QueueWebhook] == nil {
		return
	}
	r.message(QueueWebhook, webhookJSON{Type: typ, Timestamp: formatTime(at), Data: data})
}

// commit writes r for userID, in steps of recordBatch, before the act is
// answered, and wakes this instance's delivery. The act has happened
// already: an error is the store's, and the caller answers it (a 503) so
// the client asks again rather than trust an act whose report may be lost.
func (m *Manager) commit(ctx context.Context, userID string, r *record, now time.Time) error {
	if !m.recording() || (len(r.entries) == 0 && len(r.msgs) == 0) {
		return nil
	}
	ctx, cancel := detach(ctx)
	defer cancel()
	// A message's age, which its retries and its latency count from, starts
	// when it is recorded: a sign-in's starts after its password hash.
	recorded := m.now()
	for i := range r.msgs {
		r.msgs[i].CreatedAt = recorded
	}
	entries, msgs := r.entries, r.msgs
	for len(entries) > 0 || len(msgs) > 0 {
		ne, nm := min(len(entries), recordBatch), min(len(msgs), recordBatch)
		switch err := m.activity.Record(ctx, userID, entries[:ne], msgs[:nm], now); {
		case errors.Is(err, ErrNotAcknowledged):
			// Recorded on the primary, not confirmed by its replicas: as
			// durable as the sign-in it tells of (which waits for no
			// replica), and a revocation has waited for its own. Only a
			// failover in between loses it.
			m.Logger.LogAttrs(ctx, slog.LevelWarn, "security activity not confirmed by replicas", slog.String("user_id", userID), slog.String("err", err.Error()))
		case err != nil:
			m.Logger.LogAttrs(ctx, slog.LevelError, "security activity not recorded", slog.String("user_id", userID), slog.String("err", err.Error()))
			return fmt.Errorf("record security activity: %w", err)
		}
		entries, msgs = entries[ne:], msgs[nm:]
	}
	if len(r.msgs) > 0 {
		m.delivery.wake()
	}
	return nil
}

// deviceIdentity is what makes a device the same one: its device id hash
// when the client sent one, else its device name and class.
func deviceIdentity(s *Session) string {
	if s.DeviceID != "" {
		return "id:" + s.DeviceID
	}
	return "ua:" + s.Class() + ":" + s.Device
}

// country returns the country of a location ("Lagos, Nigeria" is
// "Nigeria"): what makes a location new.
func country(location string) string {
	if i := strings.LastIndex(location, ", "); i >= 0 {
		return location[i+2:]
	}
	return location
}

// signedIn records the new session s of u: remembers its device and
// country, adds it to the history, queues the session.created webhook and,
// for a new device of one of sessiond's own users, the e-mail.
func (m *Manager) signedIn(ctx context.Context, u *User, s *Session, now time.Time) error {
	if !m.recording() {
		return nil
	}
	nov, err := m.activity.Remember(ctx, s.UserID, deviceIdentity(s), country(s.Location), now)
	if err != nil {
		return fmt.Errorf("remember device: %w", err)
	}
	var r record
	r.entry(now, entryJSON{
		Type: ActivitySignedIn, Session: newEntrySession(s),
		NewDevice: &nov.NewDevice, NewLocation: &nov.NewLocation,
	})
	report := m.reportURL(s, now)
	m.hook(&r, WebhookSessionCreated, now, map[string]any{
		"user_id": s.UserID, "session": newSessionJSON(s),
		"new_device": nov.NewDevice, "new_location": nov.NewLocation, "report_url": report,
	})
	if nov.NewDevice && m.senders[QueueMail] != nil && m.users != nil && u != nil && u.Email != "" && m.mayMail(ctx, s.UserID, now) {
		r.message(QueueMail, NewSignInMail{
			To: u.Email, Username: u.Username, Device: s.Device, Name: s.Name,
			Location: s.Location, IPAddress: s.IPAddress, At: now, ReportURL: report,
		})
	}
	if err := m.commit(ctx, s.UserID, &r, now); err != nil {
		m.unremember(ctx, s, nov, now)
		return err
	}
	return nil
}

// unremember undoes what the Remember at now of the sign-in s, refused
// because its record failed, found new: the client's retry must find that
// device and country new again, or its history entry, webhook and e-mail
// would not tell of them. A device or country seen before stays.
func (m *Manager) unremember(ctx context.Context, s *Session, nov Novelty, now time.Time) {
	var device, place string
	if nov.NewDevice || nov.First {
		device = deviceIdentity(s)
	}
	if c := country(s.Location); c != "" && (nov.NewLocation || nov.First) {
		place = c
	}
	if device == "" && place == "" {
		return
	}
	ctx, cancel := detach(ctx)
	defer cancel()
	if err := m.activity.Forget(ctx, s.UserID, device, place, now); err != nil {
		m.Logger.LogAttrs(ctx, slog.LevelWarn, "device of an unrecorded sign-in not forgotten: the next sign-in from it is not told of as new",
			slog.String("user_id", s.UserID), slog.String("err", err.Error()))
	}
}

// NewSignInMailRate bounds the new-sign-in e-mails sent to one user. Sign-up
// does not verify the address and a client chooses its device id, so
// without it one account could make every sign-in an e-mail to somebody
// else's address. The sign-ins past it are still in the history and the
// webhooks.
var NewSignInMailRate = Rate{N: 5, Window: time.Hour}

// newSignInMails counts the new-sign-in e-mails of a user.
var newSignInMails = &rule{"new_sign_in_mail", "new-sign-in e-mails", "nm:",
	func(*Throttles) Rate { return NewSignInMailRate }}

// mayMail reports whether userID may be sent one more new-sign-in e-mail
// at now, and counts it. A limiter that does not answer lets it go: an
// alert lost is worse than one too many.
func (m *Manager) mayMail(ctx context.Context, userID string, now time.Time) bool {
	if err := m.take(ctx, now, randomID(), newSignInMails.of(userKey(userID))); errors.As(err, new(*ThrottledError)) {
		m.Logger.LogAttrs(ctx, slog.LevelInfo, "new-sign-in e-mail not sent: the user had their share of them lately", slog.String("user_id", userID))
		return false
	}
	return true
}

// actor says who ended a session for reason: the user's session that did
// (carried by ctx, see NewContext), an administrator or the app's backend,
// or sessiond itself.
func actor(ctx context.Context, reason Reason, ended *Session) any {
	switch reason {
	case ReasonLogout:
		return actorJSON{SessionID: ended.ID, Device: ended.Device}
	case ReasonRevoked, ReasonRevokedOthers, ReasonPasswordChanged:
		if s, ok := FromContext(ctx); ok {
			return actorJSON{SessionID: s.ID, Device: s.Device}
		}
		// Not a signed-in device: the app's backend (the admin API, a
		// library call) or an administrator.
		return ByAdmin
	case ReasonAdmin, ReasonPasswordReset, ReasonAccountLocked, ReasonAccountDeleted:
		return ByAdmin
	}
	return BySystem
}

// signedOut records the end of sessions for reason: a history entry and
// a session.ended webhook each. A session that ended through a reused
// refresh token has its reuse_detected entry instead (see reuseDetected).
func (m *Manager) signedOut(ctx context.Context, userID string, sessions []*Session, reason Reason, now time.Time) error {
	if !m.recording() || len(sessions) == 0 {
		return nil
	}
	var r record
	for _, s := range sessions {
		by := actor(ctx, reason, s)
		if reason != ReasonReuseDetected {
			r.entry(now, entryJSON{Type: ActivitySignedOut, Session: newEntrySession(s), Reason: reason, By: by})
		}
		m.hook(&r, WebhookSessionEnded, now, map[string]any{
			"user_id": userID, "session": newSessionJSON(s), "reason": reason, "by": by,
		})
	}
	return m.commit(ctx, userID, &r, now)
}

// known returns the sessions of ids, with what before knew of each (a
// session read before it ended), or the id alone.
func known(ids []string, before map[string]*Session) []*Session {
	out := make([]*Session, len(ids))
	for i, id := range ids {
		if s := before[id]; s != nil {
			out[i] = s
		} else {
			out[i] = &Session{ID: id}
		}
	}
	return out
}

// Activity returns the security history of userID: the entries of the last
// ActivityKeep, newest first, at most ActivityMax, each as clients see it
// (docs/design.md, "Security activity"). A Manager without an activity
// store has none.
func (m *Manager) Activity(ctx context.Context, userID string) ([]json.RawMessage, error) {
	if !m.recording() {
		return []json.RawMessage{}, nil
	}
	now := m.now()
	entries, err := m.activity.Activity(ctx, userID, now.Add(-ActivityKeep), ActivityMax)
	if err != nil {
		return nil, err
	}
	out := make([]json.RawMessage, len(entries))
	for i, e := range entries {
		out[i] = e.Data
	}
	return out, nil
}

// throttleNotices counts the notices of an account's sign-ins being
// throttled: one per window, so a flood of 429s tells the user and the app
// once.
var throttleNotices = &rule{"throttle_notice", "throttle notices", "tn:",
	func(t *Throttles) Rate { return Rate{1, t.LoginAccount.Window} }}

// loginThrottled tells of a sign-in of userID from ip refused with a 429,
// once per window of the account: a history entry and a login.throttled
// webhook. Nothing it does changes the 429.
func (m *Manager) loginThrottled(ctx context.Context, userID, ip string) {
	if !m.recording() || m.Throttles.LoginAccount.Window <= 0 {
		return
	}
	now := m.now()
	if m.told.recently(userID, now) {
		return // by this instance: no limiter call per 429 of a flood
	}
	var th *ThrottledError
	switch err := m.take(ctx, now, randomID(), throttleNotices.of(userKey(userID))); {
	case err == nil:
		m.told.note(userID, now.Add(m.Throttles.LoginAccount.Window))
	case errors.As(err, &th):
		// Told already in this window, by this instance or another.
		m.told.note(userID, now.Add(th.RetryAfter))
		return
	default:
		return // the limiter is down
	}
	var r record
	r.entry(now, entryJSON{Type: ActivitySignInThrottled, Session: entrySession{IPAddress: ip}})
	m.hook(&r, WebhookLoginThrottled, now, map[string]any{"user_id": userID, "client_ip": ip})
	if err := m.commit(ctx, userID, &r, now); err != nil {
		m.Logger.LogAttrs(ctx, slog.LevelWarn, "throttle notice not recorded", slog.String("user_id", userID), slog.String("err", err.Error()))
	}
}

// toldNotices remembers, per instance, the accounts whose throttle notice
// of the current window is told, so that a flood of 429s for one account
// asks the limiter once per window rather than once per request.
type toldNotices struct {
	mu    sync.Mutex
	until map[string]time.Time
}

// toldNoticesMax bounds the memory of toldNotices: past it, it starts
// over (the limiter still tells each account once per window).
const toldNoticesMax = 10000

// recently reports whether userID's notice is known told at now.
func (t *toldNotices) recently(userID string, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return now.Before(t.until[userID])
}

// note records that userID's notice is told until until.
func (t *toldNotices) note(userID string, until time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.until == nil || len(t.until) >= toldNoticesMax {
		t.until = map[string]time.Time{}
	}
	t.until[userID] = until
}

// passwordChanged records a password change of userID: by the session s,
// or by an administrator when s is nil.
func (m *Manager) passwordChanged(ctx context.Context, userID string, s *Session) error {
	if !m.recording() {
		return nil
	}
	now := m.now()
	var (
		r     record
		by    any = ByAdmin
		entry     = entryJSON{Type: ActivityPasswordChanged, By: ByAdmin}
	)
	if s != nil {
		by = actorJSON{SessionID: s.ID, Device: s.Device}
		entry = entryJSON{Type: ActivityPasswordChanged, Session: newEntrySession(s), By: by}
	}
	r.entry(now, entry)
	m.hook(&r, WebhookPasswordChanged, now, map[string]any{"user_id": userID, "by": by})
	return m.commit(ctx, userID, &r, now)
}

// reuseDetected records that an old refresh token of s was presented from
// ip: a history entry and a refresh.reuse_detected webhook (the session's
// end is recorded by signedOut).
func (m *Manager) reuseDetected(ctx context.Context, s *Session, ip string, now time.Time) error {
	if !m.recording() {
		return nil
	}
	var r record
	r.entry(now, entryJSON{Type: ActivityReuseDetected, Session: newEntrySession(s), Reason: ReasonReuseDetected})
	m.hook(&r, WebhookReuseDetected, now, map[string]any{"user_id": s.UserID, "session": newSessionJSON(s), "client_ip": ip})
	return m.commit(ctx, s.UserID, &r, now)
}

// renamed queues the session.renamed webhook of s.
func (m *Manager) renamed(ctx context.Context, s *Session) error {
	if m.senders[QueueWebhook] == nil {
		return nil
	}
	now := m.now()
	var r record
	m.hook(&r, WebhookSessionRenamed, now, map[string]any{"user_id": s.UserID, "session": newSessionJSON(s)})
	return m.commit(ctx, s.UserID, &r, now)
}
