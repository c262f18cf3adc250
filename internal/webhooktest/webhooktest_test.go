package webhooktest_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/internal/webhooktest"
	"github.com/sessiond/sessiond/webhook"
)

func send(t *testing.T, r *webhooktest.Receiver, id string) error {
	t.Helper()
	e, err := webhook.New(r.URL(), r.Secret())
	if err != nil {
		t.Fatal(err)
	}
	return e.Send(context.Background(), "u1", sessiond.OutboxMessage{ID: id, Body: []byte(`{"type":"session.ended"}`)})
}

func statuses(ds []webhooktest.Delivery) []int {
	var out []int
	for _, d := range ds {
		out = append(out, d.Status)
	}
	return out
}

func TestFail(t *testing.T) {
	r := webhooktest.Start(t)
	r.Fail(2)
	for i, want := range []bool{false, false, true} {
		if err := send(t, r, "msg_1"); (err == nil) != want {
			t.Fatalf("send %d: got %v, want delivered %v", i+1, err, want)
		}
	}
	got := r.Deliveries()
	if s := statuses(got); len(s) != 3 || s[0] != 500 || s[1] != 500 || s[2] != 204 {
		t.Fatalf("got statuses %v, want [500 500 204]", s)
	}
	if got[2].Attempt != 3 || !got[2].Verified {
		t.Errorf("got attempt %d verified %v, want 3 true", got[2].Attempt, got[2].Verified)
	}
}

func TestUnsignedRefused(t *testing.T) {
	r := webhooktest.Start(t)
	resp, err := http.Post(r.URL(), "application/json", strings.NewReader(`{"type":"session.ended"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("got status %d, want 400", resp.StatusCode)
	}
	got := r.Deliveries()
	if len(got) != 1 || got[0].Verified || !strings.Contains(got[0].Error, "headers") {
		t.Fatalf("got %+v, want one delivery refused for missing headers", got)
	}
}

// TestStopRestart: a stopped receiver refuses connections and keeps its
// record; restarted, it listens on the same URL and counts attempts on.
func TestStopRestart(t *testing.T) {
	r := webhooktest.Start(t)
	url := r.URL()
	if err := send(t, r, "msg_1"); err != nil {
		t.Fatal(err)
	}
	r.Stop()
	if err := send(t, r, "msg_1"); err == nil {
		t.Fatal("send to a stopped receiver: got nil, want an error")
	}
	if got := r.Deliveries(); len(got) != 1 {
		t.Fatalf("stopped: got %d deliveries, want 1", len(got))
	}
	r.Restart()
	if r.URL() != url {
		t.Fatalf("got URL %s after restart, want %s", r.URL(), url)
	}
	if err := send(t, r, "msg_1"); err != nil {
		t.Fatalf("send after restart: %v", err)
	}
	got := r.Deliveries()
	if len(got) != 2 || got[1].Attempt != 2 || !got[1].Verified {
		t.Fatalf("got %+v, want a second verified attempt of msg_1", got)
	}
}

// TestStoppedAtCleanup: the receiver of a test is gone when it ends.
func TestStoppedAtCleanup(t *testing.T) {
	var url string
	t.Run("receiver", func(t *testing.T) {
		url = webhooktest.Start(t).URL()
	})
	resp, err := http.Post(url, "application/json", strings.NewReader(`{}`))
	if err == nil {
		resp.Body.Close()
		t.Fatalf("the receiver still answers at %s after its test ended", url)
	}
}
