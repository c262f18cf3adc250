package main

import (
	"bytes"
	"context"
	"io"
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

// TestAccessLineAsSlogWritesIt: the server's own request lines are the
// bytes slog's JSON handler writes for the same record, and the records it
// cannot write alike (strings that need escaping, floats outside the plain
// format, other kinds) go to slog.
func TestAccessLineAsSlogWritesIt(t *testing.T) {
	at := time.Date(2026, 12, 7, 19, 7, 35, 278023103, time.UTC)
	cases := []struct {
		name  string
		attrs []slog.Attr
		fast  bool
	}{
		{"plain", []slog.Attr{slog.String("request_id", "0123456789abcdef01234567"), slog.String("method", "GET"),
			slog.String("path", "/api/v1/me"), slog.Int("status", 200), slog.Float64("duration_ms", 0.123)}, true},
		{"zero duration", []slog.Attr{slog.String("path", "/x?<a>&b"), slog.Int("status", 404), slog.Float64("duration_ms", 0)}, true},
		{"long duration", []slog.Attr{slog.Int("status", 503), slog.Float64("duration_ms", 12345.678)}, true},
		{"tiny float", []slog.Attr{slog.Float64("duration_ms", 1e-7)}, false},
		{"huge float", []slog.Attr{slog.Float64("duration_ms", 1e22)}, false},
		{"quote in path", []slog.Attr{slog.String("path", `/a"b`)}, false},
		{"backslash in path", []slog.Attr{slog.String("path", `/a\b`)}, false},
		{"control in path", []slog.Attr{slog.String("path", "/a\nb")}, false},
		{"unicode in path", []slog.Attr{slog.String("path", "/é\u2028")}, false},
		{"bool", []slog.Attr{slog.Bool("x", true)}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := slog.NewRecord(at, slog.LevelInfo, accessLogMessage, 0)
			r.AddAttrs(tc.attrs...)
			var want bytes.Buffer
			if err := slog.NewJSONHandler(&want, nil).Handle(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			got, ok := appendAccessLine(nil, r)
			if ok != tc.fast {
				t.Fatalf("appendAccessLine ok = %v, want %v", ok, tc.fast)
			}
			if ok && string(got) != want.String() {
				t.Errorf("appendAccessLine:\n got %s\nwant %s", got, want.String())
			}
			// Through the server's handler, fast or not, the line is slog's.
			var out bytes.Buffer
			buf := newBufferedLog(&out)
			h := flushingHandler{slog.NewJSONHandler(buf, nil), buf, true}
			if err := h.Handle(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			buf.Flush()
			if out.String() != want.String() {
				t.Errorf("server handler:\n got %s\nwant %s", out.String(), want.String())
			}
		})
	}
}

// BenchmarkAccessLine: one request line through slog's JSON handler and
// through the server's handler, both into the buffer (io.Discard behind
// it), so that
//
//	go test ./cmd/sessiond -run '^$' -bench AccessLine -count 6 | benchstat -col /impl -
//
// shows what writing the line itself saves.
func BenchmarkAccessLine(b *testing.B) {
	buf := newBufferedLog(io.Discard)
	for _, impl := range []struct {
		name string
		h    slog.Handler
	}{
		{"slog", slog.NewJSONHandler(buf, nil)},
		{"server", flushingHandler{slog.NewJSONHandler(buf, nil), buf, true}},
	} {
		b.Run("impl="+impl.name, func(b *testing.B) {
			log := slog.New(impl.h)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				log.LogAttrs(ctx, slog.LevelInfo, accessLogMessage,
					slog.String("request_id", "0123456789abcdef01234567"), slog.String("method", "GET"),
					slog.String("path", "/api/v1/me"), slog.Int("status", 200), slog.Float64("duration_ms", 0.123))
			}
		})
	}
}
