package webhook_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/internal/webhooktest"
	"github.com/sessiond/sessiond/webhook"
)

func message(id string) sessiond.OutboxMessage {
	return sessiond.OutboxMessage{
		ID:    id,
		Queue: sessiond.QueueWebhook,
		Body:  []byte(`{"type":"session.created","timestamp":"2026-12-07T20:00:00Z","data":{"user_id":"u1","new_device":true,"device":"Safari on iPhone — café ✓"}}`),
	}
}

func newEndpoint(t *testing.T, url, secret string) *webhook.Endpoint {
	t.Helper()
	e, err := webhook.New(url, secret)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

func TestDeliveryVerifiedByTheReferenceLibrary(t *testing.T) {
	r := webhooktest.Start(t)
	e := newEndpoint(t, r.URL(), r.Secret())
	msg := message("msg_2f1d")
	before := time.Now().Unix()
	if err := e.Send(context.Background(), "u1", msg); err != nil {
		t.Fatalf("Send: got %v, want nil", err)
	}
	got := r.Deliveries()
	if len(got) != 1 {
		t.Fatalf("got %d deliveries, want 1: %+v", len(got), got)
	}
	d := got[0]
	if !d.Verified {
		t.Fatalf("verifier refused the delivery: %s", d.Error)
	}
	if d.ID != msg.ID || d.Attempt != 1 || d.Status != http.StatusNoContent {
		t.Errorf("got id %q attempt %d status %d, want %q 1 204", d.ID, d.Attempt, d.Status, msg.ID)
	}
	if d.Body != string(msg.Body) {
		t.Errorf("got body %s, want %s", d.Body, msg.Body)
	}
	if d.ContentType != "application/json" || d.UserAgent != "sessiond" {
		t.Errorf("got Content-Type %q User-Agent %q, want application/json and sessiond", d.ContentType, d.UserAgent)
	}
	ts, err := strconv.ParseInt(d.Timestamp, 10, 64)
	if err != nil || ts < before || ts > time.Now().Unix() {
		t.Errorf("got webhook-timestamp %q, want unix seconds of the attempt", d.Timestamp)
	}
}

// TestWrongSecretRefused proves the verifier checks: a delivery signed
// under another secret is refused, and Send reports the refusal.
func TestWrongSecretRefused(t *testing.T) {
	r := webhooktest.Start(t)
	e := newEndpoint(t, r.URL(), webhook.NewSecret())
	err := e.Send(context.Background(), "u1", message("msg_wrong"))
	if err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("Send: got %v, want an error saying status 400", err)
	}
	got := r.Deliveries()
	if len(got) != 1 || got[0].Verified {
		t.Fatalf("got %+v, want one delivery the verifier refused", got)
	}
	if !strings.Contains(got[0].Error, "signature") {
		t.Errorf("verifier said %q, want a signature mismatch", got[0].Error)
	}
}

// TestRetryKeepsTheID sends a message the receiver first fails with 500:
// the error says so, and the retry carries the same webhook-id with its own
// timestamp, both signed.
func TestRetryKeepsTheID(t *testing.T) {
	r := webhooktest.Start(t)
	r.Fail(1)
	e := newEndpoint(t, r.URL(), r.Secret())
	first := time.Now().Add(-time.Minute).Truncate(time.Second)
	e.Now = func() time.Time { return first }
	msg := message("msg_retry")
	err := e.Send(context.Background(), "u1", msg)
	if err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("first Send: got %v, want an error saying status 500", err)
	}
	e.Now = time.Now
	if err := e.Send(context.Background(), "u1", msg); err != nil {
		t.Fatalf("second Send: got %v, want nil", err)
	}
	got := r.Deliveries()
	if len(got) != 2 {
		t.Fatalf("got %d deliveries, want 2: %+v", len(got), got)
	}
	for i, d := range got {
		if d.ID != msg.ID || d.Attempt != i+1 || !d.Verified {
			t.Errorf("delivery %d: got id %q attempt %d verified %v (%s), want %q %d true", i, d.ID, d.Attempt, d.Verified, d.Error, msg.ID, i+1)
		}
	}
	if got[0].Timestamp != strconv.FormatInt(first.Unix(), 10) || got[1].Timestamp == got[0].Timestamp {
		t.Errorf("got timestamps %s and %s, want %d then the second attempt's", got[0].Timestamp, got[1].Timestamp, first.Unix())
	}
	if got[0].Status != 500 || got[1].Status != 204 {
		t.Errorf("got statuses %d %d, want 500 204", got[0].Status, got[1].Status)
	}
}

func TestStatuses(t *testing.T) {
	for _, tc := range []struct {
		status    int
		delivered bool
	}{
		{200, true}, {201, true}, {202, true}, {204, true},
		{299, true},
		{304, false}, {400, false}, {401, false}, {404, false}, {410, false},
		{429, false}, {500, false}, {502, false}, {503, false},
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
			}))
			t.Cleanup(srv.Close)
			err := newEndpoint(t, srv.URL, webhook.NewSecret()).Send(context.Background(), "u1", message("msg_status"))
			if tc.delivered {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), strconv.Itoa(tc.status)) {
				t.Fatalf("got %v, want an error saying status %d", err, tc.status)
			}
		})
	}
}

// TestRedirectNotFollowed: the body goes to the configured URL only.
func TestRedirectNotFollowed(t *testing.T) {
	var reached atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(target.Close)
	for _, status := range []int{301, 302, 303, 307, 308} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			srv := httptest.NewServer(http.RedirectHandler(target.URL+"/elsewhere", status))
			t.Cleanup(srv.Close)
			err := newEndpoint(t, srv.URL, webhook.NewSecret()).Send(context.Background(), "u1", message("msg_redirect"))
			if err == nil || !strings.Contains(err.Error(), strconv.Itoa(status)) {
				t.Fatalf("got %v, want an error saying status %d", err, status)
			}
		})
	}
	if n := reached.Load(); n != 0 {
		t.Fatalf("the redirect target got %d requests, want 0", n)
	}
}

// TestUnreachable: nothing listens at the URL; Send fails at once, and its
// error names the host but not the URL's query, which may hold a token.
func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	e := newEndpoint(t, "http://"+addr+"/hooks?token=query-secret", webhook.NewSecret())
	start := time.Now()
	err = e.Send(context.Background(), "u1", message("msg_down"))
	if err == nil {
		t.Fatal("got nil, want an error")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Send took %s, want a quick failure", took)
	}
	if !strings.Contains(err.Error(), addr) || strings.Contains(err.Error(), "query-secret") {
		t.Errorf("got %q, want the address %s and not the query", err, addr)
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })

	t.Run("Timeout", func(t *testing.T) {
		e := newEndpoint(t, srv.URL, webhook.NewSecret())
		e.Timeout = 300 * time.Millisecond
		start := time.Now()
		err := e.Send(context.Background(), "u1", message("msg_slow"))
		took := time.Since(start)
		if err == nil || !strings.Contains(err.Error(), "timeout 300ms") {
			t.Fatalf("got %v, want an error saying the 300ms timeout passed", err)
		}
		if took < 300*time.Millisecond || took > 5*time.Second {
			t.Errorf("Send took %s, want about 300ms", took)
		}
	})
	t.Run("ContextDeadline", func(t *testing.T) {
		e := newEndpoint(t, srv.URL, webhook.NewSecret())
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		if err := e.Send(ctx, "u1", message("msg_slow")); err == nil {
			t.Fatal("got nil, want an error")
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("Send took %s, want about 300ms (the context's deadline, before the default 10s)", took)
		}
	})
}

// TestLargeAnswerDiscarded: an endpoint that answers with a long body does
// not hold Send.
func TestLargeAnswerDiscarded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	e := newEndpoint(t, srv.URL, webhook.NewSecret())
	e.Timeout = 5 * time.Second
	start := time.Now()
	if err := e.Send(context.Background(), "u1", message("msg_chatty")); err != nil {
		t.Fatalf("got %v, want nil", err)
	}
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("Send took %s, want it not to read the endless answer", took)
	}
}

func TestNewRefuses(t *testing.T) {
	good := webhook.NewSecret()
	short := "whsec_" + base64.StdEncoding.EncodeToString(make([]byte, 16))
	for _, tc := range []struct{ name, url, secret, want string }{
		{"NoScheme", "example.com/hooks", good, "scheme"},
		{"FTP", "ftp://example.com/hooks", good, "scheme"},
		{"NoHost", "https:///hooks", good, "no host"},
		{"BadURL", "https://exa mple.com/", good, "URL"},
		{"EmptySecret", "https://example.com/", "", "empty"},
		{"NoPrefix", "https://example.com/", strings.TrimPrefix(good, "whsec_"), "whsec_"},
		{"NotBase64", "https://example.com/", "whsec_not*base64!", "base64"},
		{"ShortSecret", "https://example.com/", short, "16 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := webhook.New(tc.url, tc.secret)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			}
			if tc.secret != "" && strings.Contains(err.Error(), strings.TrimPrefix(tc.secret, "whsec_")) {
				t.Errorf("the error %q quotes the secret", err)
			}
		})
	}
}

func TestSendRefusesMessageWithoutBodyOrID(t *testing.T) {
	e := newEndpoint(t, "http://127.0.0.1:9/", webhook.NewSecret())
	if err := e.Send(context.Background(), "u1", sessiond.OutboxMessage{ID: "m"}); err == nil {
		t.Error("no body: got nil, want an error")
	}
	if err := e.Send(context.Background(), "u1", sessiond.OutboxMessage{Body: []byte(`{}`)}); err == nil {
		t.Error("no id: got nil, want an error")
	}
}

// TestStringHidesSecret: printing or logging an Endpoint shows its URL
// without credentials or query, and never the secret.
func TestStringHidesSecret(t *testing.T) {
	secret := webhook.NewSecret()
	e := newEndpoint(t, "https://user:pass@example.com/hooks?token=query-secret", secret)
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("endpoint", "endpoint", e)
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("endpoint", "endpoint", e)
	outputs := []string{
		fmt.Sprint(e), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e), fmt.Sprintf("%v", *e), fmt.Sprintf("%#v", *e),
		logged.String(),
	}
	key := strings.TrimPrefix(secret, "whsec_")
	for _, out := range outputs {
		for _, hidden := range []string{key, "pass", "query-secret"} {
			if strings.Contains(out, hidden) {
				t.Errorf("%q shows %q", out, hidden)
			}
		}
		if !strings.Contains(out, "https://example.com/hooks") {
			t.Errorf("%q does not name the URL", out)
		}
	}
}
