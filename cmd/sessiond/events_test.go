package main

import (
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// TestEventStreamEndsWhenItsSessionEndsUnannounced: a session revoked where
// this server's broker does not hear of it (the admin command, another
// process on the same SQLite file) still ends its stream, and the stream
// shows nothing after that.
func TestEventStreamEndsWhenItsSessionEndsUnannounced(t *testing.T) {
	old := heartbeat
	heartbeat = 200 * time.Millisecond
	t.Cleanup(func() { heartbeat = old })
	ts := startServer(t, nil)
	c := sessiondtest.NewClient(t, ts.URL)
	c.Register("vera")
	g := c.Login("vera", nil)
	stream := sessiondtest.Subscribe(t, ts.URL, g.AccessToken)
	getenv := func(k string) string {
		if k == "SESSIOND_DATA_DIR" {
			return ts.DataDir
		}
		return ""
	}
	var out strings.Builder
	if err := run(t.Context(), []string{"sessions", "revoke", "vera", g.Session.ID}, getenv, strings.NewReader(""), &out, &out); err != nil {
		t.Fatalf("admin revoke: %v\n%s", err, out.String())
	}
	// Another process's write reaches this server's cache within 1 s; then
	// a new device's created event must not reach the ended stream.
	time.Sleep(1200 * time.Millisecond)
	c.Login("vera", nil)
	deadline := time.After(3 * time.Second)
	for {
		select {
		case ev, ok := <-stream:
			if !ok {
				return
			}
			if ev.Event == "created" {
				t.Fatalf("the stream of an ended session saw a new login: %+v", ev)
			}
		case <-deadline:
			t.Fatal("the stream of a session revoked by the admin command is still open after 3 s")
		}
	}
}
