package http

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/sessiond/sessiond"
)

// errTooManyStreams refuses a stream beyond the caps.
var errTooManyStreams = errors.New("too many event streams")

// streamRetryAfter is the Retry-After of a stream refused at a cap.
const streamRetryAfter = 30 * time.Second

// HeartbeatInterval is how often the event stream sends a comment line.
var HeartbeatInterval = 25 * time.Second

// events streams the user's session events as Server-Sent Events until the
// stream's own session ends, its access token expires, the server shuts
// down, or the client goes away or stops reading.
func (s *Server) events(w http.ResponseWriter, r *http.Request, sess *sessiond.Session) error {
	ctx := r.Context()
	ch, cancel, err := s.Manager.Broker.Subscribe(ctx, sess.UserID)
	if err != nil {
		return err
	}
	defer cancel()
	rc := http.NewResponseController(w)
	// The stream outlives the server's write timeout by design; each write
	// gets its own deadline instead, so a client that stops reading does
	// not hold the stream forever.
	write := func(format string, args ...any) bool {
		rc.SetWriteDeadline(time.Now().Add(HeartbeatInterval + 10*time.Second))
		fmt.Fprintf(w, format, args...)
		return rc.Flush() == nil
	}
	// live reports whether the stream's session still exists: its revoked
	// event may never arrive (a full buffer, an admin command on another
	// process), and a signed-out device must not go on seeing events.
	live := func() bool {
		_, err := s.Manager.Sessions.Get(ctx, sess.UserID, sess.ID, s.Manager.Now())
		return err == nil
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if !write(": connected\n\n") {
		return nil
	}
	var until <-chan time.Time
	if c, ok := ctx.Value(authKey{}).(*sessiond.AccessClaims); ok && c.ExpiresAt != nil {
		t := time.NewTimer(time.Until(c.ExpiresAt.Time))
		defer t.Stop()
		until = t.C
	}
	beat := time.NewTicker(HeartbeatInterval)
	defer beat.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.stop:
			return nil
		case <-until:
			return nil
		case <-beat.C:
			if !live() || !write(": ping\n\n") {
				return nil
			}
		case e, ok := <-ch:
			if !ok {
				return nil
			}
			own := e.Type == sessiond.EventRevoked && e.SessionID == sess.ID
			if !own && !live() {
				return nil
			}
			out := struct {
				Type      sessiond.EventType `json:"type"`
				SessionID string             `json:"session_id"`
				Reason    sessiond.Reason    `json:"reason,omitempty"`
				Session   *sessionJSON       `json:"session,omitempty"`
			}{Type: e.Type, SessionID: e.SessionID, Reason: e.Reason}
			if e.Session != nil {
				sj := newSessionJSON(e.Session, sess.ID)
				out.Session = &sj
			}
			b, _ := json.Marshal(out)
			if !write("event: %s\ndata: %s\n\n", e.Type, b) || own {
				return nil
			}
		}
	}
}
