package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
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
// record but the access log's.
type flushingHandler struct {
	slog.Handler
	buf *bufferedLog
}

func (h flushingHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level >= slog.LevelWarn || r.Message != accessLogMessage {
		if ferr := h.buf.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

func (h flushingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return flushingHandler{h.Handler.WithAttrs(attrs), h.buf}
}

func (h flushingHandler) WithGroup(name string) slog.Handler {
	return flushingHandler{h.Handler.WithGroup(name), h.buf}
}
