package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"
)

// logFlushInterval is the longest a request line waits in the buffer.
const logFlushInterval = 100 * time.Millisecond

// accessLogMessage is the message of the one line per request, the only
// line that is buffered.
const accessLogMessage = "request"

// bufferedLog is the server's log writer: request lines collect in a
// buffer written at least every logFlushInterval and on shutdown, so that
// the access log costs no write system call per request; every other line
// (WARN and ERROR, and every audit line: sessions created and ended,
// admin acts) is written at once, with whatever request lines came before
// it. A crash loses at most the request lines of the last interval (and
// never more than the buffer holds, 64 KiB); a clean shutdown loses none.
type bufferedLog struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func newBufferedLog(w io.Writer) *bufferedLog {
	return &bufferedLog{w: bufio.NewWriterSize(w, 64<<10)}
}

// Write adds one record to the buffer (slog handlers write a record in
// one call).
func (b *bufferedLog) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.Write(p)
}

// Flush writes what the buffer holds.
func (b *bufferedLog) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.w.Flush()
}

// run flushes every logFlushInterval until ctx ends, then once more.
func (b *bufferedLog) run(ctx context.Context) {
	t := time.NewTicker(logFlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			b.Flush()
			return
		case <-t.C:
			b.Flush()
		}
	}
}

// flushingHandler writes through a bufferedLog and flushes it after every
// record but the access log's. plain is set on the server's own handler
// (a JSON handler with no attributes or groups added): there it writes the
// access log's lines itself (appendAccessLine).
type flushingHandler struct {
	slog.Handler
	buf   *bufferedLog
	plain bool
}

func (h flushingHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.plain && r.Message == accessLogMessage && r.Level == slog.LevelInfo {
		bp := lineBuffers.Get().(*[]byte)
		b, ok := appendAccessLine((*bp)[:0], r)
		if ok {
			_, err := h.buf.Write(b)
			*bp = b[:0]
			lineBuffers.Put(bp)
			return err
		}
		lineBuffers.Put(bp)
	}
	err := h.Handler.Handle(ctx, r)
	if r.Level >= slog.LevelWarn || r.Message != accessLogMessage {
		if ferr := h.buf.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

func (h flushingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return flushingHandler{h.Handler.WithAttrs(attrs), h.buf, false}
}

func (h flushingHandler) WithGroup(name string) slog.Handler {
	return flushingHandler{h.Handler.WithGroup(name), h.buf, false}
}

var lineBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// appendAccessLine appends the JSON line slog.JSONHandler (no options but
// the level) writes for r, an access log record, and reports whether it
// could: only for the attributes' kinds the request line has (strings,
// integers, the duration's float) and strings that need no escaping;
// anything else is left to slog. A CPU profile of the binary under a /me
// load showed slog's handler, which encodes every float through
// encoding/json and every value through reflection-free but general code,
// as the largest cost of the request outside net/http and the session
// check; logbuf_test.go checks the bytes are the same.
func appendAccessLine(b []byte, r slog.Record) ([]byte, bool) {
	if y := r.Time.Year(); r.Time.IsZero() || y < 0 || y >= 10000 {
		return b, false
	}
	b = append(b, `{"time":"`...)
	b = r.Time.Round(0).AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"`...)
	b = append(b, accessLogMessage...)
	b = append(b, '"')
	ok := true
	r.Attrs(func(a slog.Attr) bool {
		if !plainJSON(a.Key) || a.Key == "" {
			ok = false
			return false
		}
		b = append(b, `,"`...)
		b = append(b, a.Key...)
		b = append(b, `":`...)
		switch v := a.Value; v.Kind() {
		case slog.KindString:
			s := v.String()
			if !plainJSON(s) {
				ok = false
				return false
			}
			b = append(b, '"')
			b = append(b, s...)
			b = append(b, '"')
		case slog.KindInt64:
			b = strconv.AppendInt(b, v.Int64(), 10)
		case slog.KindFloat64:
			// encoding/json's format for 1e-6 <= |f| < 1e21 and 0.
			f := v.Float64()
			if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) || math.IsNaN(f) {
				ok = false
				return false
			}
			b = strconv.AppendFloat(b, f, 'f', -1, 64)
		default:
			ok = false
			return false
		}
		return true
	})
	return append(b, "}\n"...), ok
}

// plainJSON reports whether s is written as it is inside a JSON string:
// printable ASCII without a quote or a backslash.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
