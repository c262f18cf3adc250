// Command webhook-receiver is the app's side of sessiond's webhooks: it
// verifies each delivery with the Standard Webhooks library for Go and
// prints the event's type (docs/design.md, "Security activity").
//
//	WEBHOOK_SECRET=$(cat data/webhook-secret) go run ./examples/webhook-receiver -addr localhost:8082
//	msg_01JF8... session.created
//
// Point sessiond at it with SESSIOND_WEBHOOK_URL=http://localhost:8082/hooks.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

func main() {
	addr := flag.String("addr", "localhost:8082", "listen address")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, os.Getenv("WEBHOOK_SECRET"), os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, addr, secret string, out io.Writer) error {
	h, err := newHandler(secret, out)
	if err != nil {
		return err
	}
	hs := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// README: begin
// newHandler answers sessiond's webhooks: 204 for a delivery signed under
// secret within the last 5 minutes, 401 for anything else.
func newHandler(secret string, out io.Writer) (http.Handler, error) {
	wh, err := standardwebhooks.NewWebhook(secret) // "whsec_..."
	if err != nil {
		return nil, errors.New("WEBHOOK_SECRET: want the whsec_... secret sessiond signs with")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		// Verify checks the signature of webhook-id.webhook-timestamp.body
		// and that the timestamp is recent, so an old delivery cannot be
		// replayed.
		if err := wh.Verify(body, r.Header); err != nil {
			http.Error(w, "invalid signature", http.StatusUnauthorized)
			return
		}
		var event struct {
			Type      string          `json:"type"`
			Timestamp time.Time       `json:"timestamp"`
			Data      json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(body, &event); err != nil {
			http.Error(w, "not an event", http.StatusBadRequest)
			return
		}
		// Delivery is at least once: a retry carries the same webhook-id,
		// which is the key to act on each event once.
		fmt.Fprintf(out, "%s %s\n", r.Header.Get("webhook-id"), event.Type)
		w.WriteHeader(http.StatusNoContent)
	}), nil
}

// README: end
