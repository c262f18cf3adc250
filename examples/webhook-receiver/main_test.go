package main

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/internal/freeport"
	"github.com/sessiond/sessiond/webhook"
)

// output is what the program prints, read while it runs.
type output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// startRun starts the program's run on a free port, the way main does, and
// returns the URL to deliver to.
func startRun(t *testing.T, secret string, out *output) string {
	t.Helper()
	port, err := freeport.Port()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, addr, secret, out) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: got %v, want nil after cancel", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run did not listen on %s within 10 s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "http://" + addr + "/hooks"
}

func event(id string) sessiond.OutboxMessage {
	return sessiond.OutboxMessage{
		ID:   id,
		Body: []byte(`{"type":"session.created","timestamp":"2026-12-07T20:00:00Z","data":{"user_id":"u1","new_device":true}}`),
	}
}

// TestVerifiesEndpointDeliveries delivers with sessiond's webhook.Endpoint:
// a delivery under the shared secret is accepted and printed; one under
// another secret, or signed too long ago, is refused and not printed.
func TestVerifiesEndpointDeliveries(t *testing.T) {
	secret := webhook.NewSecret()
	var out output
	url := startRun(t, secret, &out)

	e, err := webhook.New(url, secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Send(context.Background(), "u1", event("msg_1")); err != nil {
		t.Fatalf("Send: got %v, want nil", err)
	}
	if got, want := out.String(), "msg_1 session.created\n"; got != want {
		t.Fatalf("printed %q, want %q", got, want)
	}

	other, err := webhook.New(url, webhook.NewSecret())
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Send(context.Background(), "u1", event("msg_2")); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("another secret: got %v, want status 401", err)
	}
	e.Now = func() time.Time { return time.Now().Add(-10 * time.Minute) }
	if err := e.Send(context.Background(), "u1", event("msg_3")); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("signed 10 minutes ago: got %v, want status 401", err)
	}
	if got := out.String(); got != "msg_1 session.created\n" {
		t.Errorf("printed %q, want only msg_1", got)
	}
}

func TestRefusesMissingSecret(t *testing.T) {
	for _, secret := range []string{"", "whsec_not*base64"} {
		err := run(context.Background(), "127.0.0.1:0", secret, &output{})
		if err == nil || !strings.Contains(err.Error(), "WEBHOOK_SECRET") {
			t.Errorf("secret %q: got %v, want an error naming WEBHOOK_SECRET", secret, err)
		}
	}
}
