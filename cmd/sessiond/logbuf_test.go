package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestRequestLinesAreBufferedOthersAreNot: request lines wait for the
// next flush (at most logFlushInterval), a WARN or audit line is written
// at once with the request lines before it, and stopping writes the rest.
func TestRequestLinesAreBufferedOthersAreNot(t *testing.T) {
	out := &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	log, wait := newServerLogger(ctx, &config{LogLevel: "info"}, out)

	log.Info(accessLogMessage, "path", "/api/v1/me")
	if strings.Contains(out.String(), "/api/v1/me") {
		t.Fatal("a request line was written at once: it should wait in the buffer")
	}
	deadline := time.Now().Add(10 * logFlushInterval)
	for !strings.Contains(out.String(), "/api/v1/me") {
		if time.Now().After(deadline) {
			t.Fatalf("a request line was not written within %s", 10*logFlushInterval)
		}
		time.Sleep(5 * time.Millisecond)
	}

	log.Info(accessLogMessage, "path", "/api/v1/sessions")
	log.LogAttrs(ctx, slog.LevelInfo, "session ended", slog.String("session_id", "s1"), slog.String("reason", "revoked"))
	got := out.String()
	if !strings.Contains(got, `"session_id":"s1"`) || !strings.Contains(got, "/api/v1/sessions") {
		t.Fatalf("an audit line was not written at once with the request line before it:\n%s", got)
	}
	log.Warn(accessLogMessage, "path", "/slow")
	if !strings.Contains(out.String(), "/slow") {
		t.Fatal("a WARN line was not written at once")
	}

	log.Info(accessLogMessage, "path", "/last")
	cancel()
	wait()
	if !strings.Contains(out.String(), "/last") {
		t.Fatal("stopping the logger lost a buffered request line")
	}
}
