// Package webhook delivers sessiond's events to the app's webhook endpoint,
// signed by the Standard Webhooks scheme (docs/design.md, "Security
// activity"; https://www.standardwebhooks.com): every POST carries the
// headers webhook-id (the message's id, the same on every retry),
// webhook-timestamp (unix seconds of the attempt) and webhook-signature
// ("v1," and the base64 HMAC-SHA256 of "id.timestamp.body" under the
// secret).
package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/sessiond/sessiond"
)

// DefaultTimeout is how long one delivery attempt may take when
// Endpoint.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// drainLimit is how much of an answer's body is read (and discarded) so
// the connection can be reused; an endpoint that sends more costs a new
// connection, not memory or time.
const drainLimit = 4 << 10

// Endpoint is the app's webhook endpoint: a sessiond.Sender of the webhook
// queue. It is safe for concurrent use. Its String form names the URL
// without its query or credentials and never the secret.
type Endpoint struct {
	// Timeout bounds one delivery attempt, from connecting to reading
	// the answer. Zero means DefaultTimeout. A shorter deadline of Send's
	// context wins.
	Timeout time.Duration
	// Now is the clock of the webhook-timestamp header. Nil means
	// time.Now.
	Now func() time.Time

	url    string
	shown  string // url without userinfo and query, for errors and String
	signer *standardwebhooks.Webhook
	client *http.Client
}

var _ sessiond.Sender = (*Endpoint)(nil)

// New returns the endpoint at rawURL (http or https, with a host) whose
// deliveries are signed under secret ("whsec_" and the base64 of 24 to 64
// random bytes, as NewSecret makes). Errors never include the secret.
func New(rawURL, secret string) (*Endpoint, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error quotes the URL, which may hold credentials.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("webhook: URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("webhook: URL scheme is %q, want http or https", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("webhook: URL has no host")
	}
	key, err := parseSecret(secret)
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	signer, err := standardwebhooks.NewWebhookRaw(key)
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	shown := &url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	// Every send goes to one host, up to 16 at once (one per user the
	// Manager delivers to): keep that many connections for reuse rather
	// than net/http's default of 2, which opened a new connection for
	// most deliveries of a burst.
	transport.MaxIdleConnsPerHost = 32
	return &Endpoint{
		url:    u.String(),
		shown:  shown.String(),
		signer: signer,
		client: &http.Client{
			Transport: transport,
			// The body goes to the configured URL only: a redirect is an
			// answer that is not 2xx, and the message is retried there.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// String names the endpoint by its URL without query or credentials.
func (e Endpoint) String() string { return "webhook endpoint " + e.shown }

// GoString is String, so that %#v does not print the fields.
func (e Endpoint) GoString() string { return e.String() }

// LogValue is String, so that slog's handlers, the JSON one included, log
// the endpoint as its URL.
func (e Endpoint) LogValue() slog.Value { return slog.StringValue(e.String()) }

// Send POSTs msg.Body to the endpoint, signed, with msg.ID as webhook-id
// and the current time as webhook-timestamp. It returns nil when the
// endpoint answers 2xx; any other answer (a redirect included, which is
// not followed), no answer within Timeout or a transport error is an error
// that says which, and the message is to be retried. userID is not sent:
// the events name their user in their body.
func (e *Endpoint) Send(ctx context.Context, userID string, msg sessiond.OutboxMessage) error {
	if len(msg.Body) == 0 {
		return fmt.Errorf("webhook: message %s has no body", msg.ID)
	}
	if msg.ID == "" {
		return errors.New("webhook: message has no id")
	}
	timeout := e.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	// The signature covers the timestamp in whole seconds, as sent.
	at := time.Unix(now().Unix(), 0)
	signature, err := e.signer.Sign(msg.ID, at, msg.Body)
	if err != nil {
		return fmt.Errorf("webhook: sign %s: %w", msg.ID, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(msg.Body))
	if err != nil {
		return fmt.Errorf("webhook: %s: %w", e.shown, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "sessiond")
	req.Header.Set(standardwebhooks.HeaderWebhookID, msg.ID)
	req.Header.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(at.Unix(), 10))
	req.Header.Set(standardwebhooks.HeaderWebhookSignature, signature)

	resp, err := e.client.Do(req)
	if err != nil {
		// url.Error repeats the full URL, query included: say it our way.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("webhook: deliver %s to %s: no answer in time (timeout %s)", msg.ID, e.shown, timeout)
		}
		return fmt.Errorf("webhook: deliver %s to %s: %w", msg.ID, e.shown, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook: deliver %s to %s: got status %s, want 2xx", msg.ID, e.shown, resp.Status)
	}
	return nil
}
