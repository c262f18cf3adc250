package http

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/sessiond/sessiond"
)

// Caps of the event streams open at once. Each open stream holds a
// connection, so a file descriptor, and a subscription: without caps one
// access token could open streams until the process runs out of file
// descriptors and no client gets in. The counts are kept by each Server,
// so with many instances they apply per instance.
const (
	// MaxStreamsPerSession is how many streams one session may hold open.
	MaxStreamsPerSession = 3
	// MaxStreamsPerUser is how many streams all sessions of one user may
	// hold open together.
	MaxStreamsPerUser = 20
	// DefaultMaxStreams is the default of Server.MaxStreams.
	DefaultMaxStreams = 10_000
)

// errTooManyStreams refuses a stream beyond a cap; the errors of each cap
// wrap it.
var errTooManyStreams = errors.New("too many event streams")

var (
	errSessionStreams  = fmt.Errorf("%w: at most %d per session are open at once", errTooManyStreams, MaxStreamsPerSession)
	errUserStreams     = fmt.Errorf("%w: at most %d per user are open at once", errTooManyStreams, MaxStreamsPerUser)
	errInstanceStreams = fmt.Errorf("%w: this server holds as many as it takes, retry shortly", errTooManyStreams)
)

// streamRetryAfter is the Retry-After of a stream refused at a cap.
const streamRetryAfter = 10 * time.Second

// streamCounts counts the open streams of a Server, by session, by user
// and in all. The zero value is ready to use.
type streamCounts struct {
	mu        sync.Mutex
	total     int
	byUser    map[string]int
	bySession map[string]int
}

// acquire counts one more stream of userID's session sessionID, or fails
// with an error wrapping errTooManyStreams when that would pass a cap; the
// caller calls release once the stream ends.
func (c *streamCounts) acquire(userID, sessionID string, max int) (release func(), err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.bySession[sessionID] >= MaxStreamsPerSession:
		return nil, errSessionStreams
	case c.byUser[userID] >= MaxStreamsPerUser:
		return nil, errUserStreams
	case c.total >= max:
		return nil, errInstanceStreams
	}
	if c.byUser == nil {
		c.byUser, c.bySession = make(map[string]int), make(map[string]int)
	}
	c.total++
	c.byUser[userID]++
	c.bySession[sessionID]++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.total--
			decr(c.byUser, userID)
			decr(c.bySession, sessionID)
		})
	}, nil
}

// decr counts one less for key, forgetting keys that reach zero so the
// maps hold only what is open.
func decr(m map[string]int, key string) {
	if m[key] <= 1 {
		delete(m, key)
		return
	}
	m[key]--
}

// OpenStreams reports how many event streams s holds open.
func (s *Server) OpenStreams() int {
	s.streams.mu.Lock()
	defer s.streams.mu.Unlock()
	return s.streams.total
}

// DefaultHeartbeatInterval is the default of Server.HeartbeatInterval.
const DefaultHeartbeatInterval = 25 * time.Second

func (s *Server) heartbeat() time.Duration {
	if s.HeartbeatInterval <= 0 {
		return DefaultHeartbeatInterval
	}
	return s.HeartbeatInterval
}

// events streams the user's session events as Server-Sent Events until the
// stream's own session ends, its access token expires, the server shuts
// down, or the client goes away or stops reading.
func (s *Server) events(w http.ResponseWriter, r *http.Request, sess *sessiond.Session) error {
	ctx := r.Context()
	limit := s.MaxStreams
	if limit <= 0 {
		limit = DefaultMaxStreams
	}
	release, err := s.streams.acquire(sess.UserID, sess.ID, limit)
	if err != nil {
		// A client refused here may be one of many connections opened to
		// exhaust file descriptors: do not keep its connection alive.
		w.Header().Set("Connection", "close")
		return err
	}
	defer release()
	ch, cancel, err := s.Manager.Subscribe(ctx, sess.UserID)
	if err != nil {
		return err
	}
	defer cancel()
	beatEvery := s.heartbeat()
	rc := http.NewResponseController(w)
	// The stream outlives the server's write timeout by design; each write
	// gets its own deadline instead, so a client that stops reading does
	// not hold the stream forever.
	write := func(format string, args ...any) bool {
		rc.SetWriteDeadline(time.Now().Add(beatEvery + 10*time.Second))
		fmt.Fprintf(w, format, args...)
		return rc.Flush() == nil
	}
	// live reports whether the stream's session still exists: its revoked
	// event may never arrive (a full buffer, an admin command on another
	// process), and a signed-out device must not go on seeing events.
	live := func() bool { return s.Manager.Live(ctx, sess) }
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
		t := time.NewTimer(c.ExpiresAt.Time.Sub(s.Manager.Now()))
		defer t.Stop()
		until = t.C
	}
	beat := time.NewTicker(beatEvery)
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
