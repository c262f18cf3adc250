package sessiondtest

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// StreamEvent is one event of an event stream.
type StreamEvent struct {
	Event string
	Data  struct {
		Type      string   `json:"type"`
		SessionID string   `json:"session_id"`
		Reason    string   `json:"reason"`
		Session   *Session `json:"session"`
	}
}

// Subscribe subscribes to the event stream with token and returns a
// channel of its events, closed when the stream ends.
func Subscribe(t testing.TB, base, token string) <-chan StreamEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/api/v1/sessions/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("events: status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	ch := make(chan StreamEvent, 16)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var ev StreamEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.Event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.Data); err != nil {
					t.Errorf("event data %q: %v", line, err)
				}
			case line == "" && ev.Event != "":
				ch <- ev
				ev = StreamEvent{}
			}
		}
	}()
	return ch
}

// NextEvent returns the next event of ch, and fails the test if the
// stream ends or sends nothing within 2 s.
func NextEvent(t testing.TB, ch <-chan StreamEvent) StreamEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("the stream ended")
		}
		return ev
	case <-time.After(2 * time.Second):
		t.Fatal("no event within 2 s")
	}
	return StreamEvent{}
}
