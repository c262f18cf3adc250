package http_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessiond/sessiond"
	sessiondhttp "github.com/sessiond/sessiond/http"
	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// countingBroker is the real broker it wraps, counting subscriptions.
type countingBroker struct {
	sessiond.Broker
	subscribes atomic.Int32
}

func (b *countingBroker) Subscribe(ctx context.Context, userID string) (<-chan sessiond.Event, func(), error) {
	b.subscribes.Add(1)
	return b.Broker.Subscribe(ctx, userID)
}

// streamServer serves a Manager with cheap hashing over real connections
// (each stream holds one, as in production), and returns the server and
// the broker, which counts subscriptions.
func streamServer(t *testing.T, maxStreams int) (*sessiondtest.Server, *countingBroker) {
	t.Helper()
	b := &countingBroker{Broker: sessiond.NewLocalBroker()}
	o := sessiondtest.Options{Issuer: "example", CheapHashing: true, Broker: b, Logger: slog.New(slog.DiscardHandler)}
	ts := sessiondtest.StartServer(t, o, func(s *sessiondtest.Server) { s.HTTP.MaxStreams = maxStreams })
	return ts, b
}

// streamResult is what openStream saw.
type streamResult struct {
	status     int
	retryAfter string
	// closed: the server said it closes the connection.
	closed bool
	data   errorData
	close  func()
}

// openStream opens an event stream with token. On 200 it reads the
// stream's first line and returns a function that closes the stream; on
// any other status it returns the status, the Retry-After header, whether
// the connection closes, and the error data.
func openStream(t *testing.T, client *http.Client, url, token string) streamResult {
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/api/v1/sessions/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		t.Errorf("open stream: %v", err)
		return streamResult{}
	}
	res := streamResult{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), closed: resp.Close}
	if resp.StatusCode != http.StatusOK {
		var env struct{ Data json.RawMessage }
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		json.Unmarshal(body, &env)
		res.data = checkErrorData(t, "stream", resp.StatusCode, resp.Header, env.Data)
		return res
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != ": connected\n" {
		t.Errorf("stream's first line: got %q (%v)", line, err)
	}
	res.close = func() { cancel(); resp.Body.Close() }
	return res
}

// loginN signs user in n times (n sessions) with a cheap hash.
func loginN(t *testing.T, m *sessiond.Manager, user string, n int) []*sessiond.Grant {
	t.Helper()
	ctx := context.Background()
	if _, err := m.Register(ctx, sessiond.RegisterRequest{Username: user, Email: user + "@example.com", Password: "correct horse battery staple"}); err != nil {
		t.Fatal(err)
	}
	var gs []*sessiond.Grant
	for range n {
		g, err := m.Login(ctx, sessiond.LoginRequest{Login: user, Password: "correct horse battery staple", UserAgent: "curl/8.5.0"})
		if err != nil {
			t.Fatal(err)
		}
		gs = append(gs, g)
	}
	return gs
}

// waitStreams waits until srv holds want open streams: a closed client
// connection ends its stream when the server notices, which takes a
// moment.
func waitStreams(t *testing.T, srv *sessiondhttp.Server, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for srv.OpenStreams() != want {
		if time.Now().After(deadline) {
			t.Fatalf("open streams: got %d, want %d", srv.OpenStreams(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestStreamFloodIsRefused: one access token firing many more streams
// than the caps at once gets 3 (the per-session cap) and 429
// too_many_streams for the rest, with Retry-After and the connection
// closed, before anything subscribes; another user's requests meanwhile
// succeed; closing the streams frees their slots.
func TestStreamFloodIsRefused(t *testing.T) {
	ts, broker := streamServer(t, 0)
	m, srv, url := ts.Manager, ts.HTTP, ts.URL
	attacker := loginN(t, m, "mallory", 1)[0]
	victim := loginN(t, m, "victor", 1)[0]
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	t.Cleanup(client.CloseIdleConnections)

	const flood = 200
	var wg sync.WaitGroup
	results := make([]streamResult, flood)
	for i := range results {
		wg.Go(func() { results[i] = openStream(t, client, url, attacker.AccessToken) })
	}
	// Meanwhile the other user is served.
	var served, others atomic.Int32
	for range 20 {
		wg.Go(func() {
			others.Add(1)
			req, _ := http.NewRequest("GET", url+"/api/v1/me", nil)
			req.Header.Set("Authorization", "Bearer "+victim.AccessToken)
			resp, err := client.Do(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					served.Add(1)
				}
			}
		})
	}
	wg.Wait()
	var open []streamResult
	refused := 0
	for _, r := range results {
		switch r.status {
		case http.StatusOK:
			open = append(open, r)
		case http.StatusTooManyRequests:
			refused++
			if r.data.Code != "too_many_streams" || r.retryAfter == "" || !r.closed {
				t.Fatalf("refused stream: code %q, Retry-After %q, connection closed %v; want too_many_streams, a Retry-After, closed", r.data.Code, r.retryAfter, r.closed)
			}
		default:
			t.Fatalf("stream: got status %d", r.status)
		}
	}
	if len(open) != sessiondhttp.MaxStreamsPerSession || refused != flood-len(open) {
		t.Fatalf("flood of %d streams: %d open, %d refused; want %d open", flood, len(open), refused, sessiondhttp.MaxStreamsPerSession)
	}
	if n := served.Load(); n != others.Load() {
		t.Fatalf("other user during the flood: %d of %d requests served", n, others.Load())
	}
	if n := broker.subscribes.Load(); n != int32(len(open)) {
		t.Fatalf("subscriptions: got %d, want %d (one per open stream, none for refused ones)", n, len(open))
	}
	// The victim can open a stream of its own.
	v := openStream(t, client, url, victim.AccessToken)
	if v.status != http.StatusOK {
		t.Fatalf("other user's stream: got %d", v.status)
	}
	v.close()

	// Closing the streams frees their slots.
	for _, r := range open {
		r.close()
	}
	waitStreams(t, srv, 0)
	for range sessiondhttp.MaxStreamsPerSession {
		r := openStream(t, client, url, attacker.AccessToken)
		if r.status != http.StatusOK {
			t.Fatalf("stream after the others closed: got %d", r.status)
		}
		defer r.close()
	}
	if r := openStream(t, client, url, attacker.AccessToken); r.status != http.StatusTooManyRequests {
		t.Fatalf("fourth stream of a session: got %d, want 429", r.status)
	}
}

// TestStreamCapsPerUserAndInstance: all sessions of one user together
// hold at most 20 streams, and the Server at most MaxStreams, whoever
// opened them; other requests are served meanwhile.
func TestStreamCapsPerUserAndInstance(t *testing.T) {
	ts, _ := streamServer(t, sessiondhttp.MaxStreamsPerUser+2)
	m, srv, url := ts.Manager, ts.HTTP, ts.URL
	sessions := loginN(t, m, "una", 7)
	other := loginN(t, m, "otto", 2)
	client := &http.Client{}
	t.Cleanup(client.CloseIdleConnections)

	for i, g := range sessions {
		for j := range sessiondhttp.MaxStreamsPerSession {
			r := openStream(t, client, url, g.AccessToken)
			n := i*sessiondhttp.MaxStreamsPerSession + j
			if n < sessiondhttp.MaxStreamsPerUser {
				if r.status != http.StatusOK {
					t.Fatalf("stream %d of the user: got %d, want 200", n+1, r.status)
				}
				defer r.close()
				continue
			}
			if r.status != http.StatusTooManyRequests || r.data.Code != "too_many_streams" {
				t.Fatalf("stream %d of the user: got %d %q, want 429 too_many_streams", n+1, r.status, r.data.Code)
			}
		}
	}
	// Another user takes the instance's last two slots, then is refused
	// by the instance cap although below its own caps.
	for i := range 3 {
		r := openStream(t, client, url, other[i%2].AccessToken)
		if i < 2 {
			if r.status != http.StatusOK {
				t.Fatalf("other user's stream %d: got %d, want 200", i+1, r.status)
			}
			defer r.close()
			continue
		}
		if r.status != http.StatusTooManyRequests || r.data.Code != "too_many_streams" {
			t.Fatalf("stream past the instance cap: got %d %q, want 429 too_many_streams", r.status, r.data.Code)
		}
	}
	if n := srv.OpenStreams(); n != sessiondhttp.MaxStreamsPerUser+2 {
		t.Fatalf("open streams: got %d, want %d", n, sessiondhttp.MaxStreamsPerUser+2)
	}
	req, _ := http.NewRequest("GET", url+"/api/v1/sessions", nil)
	req.Header.Set("Authorization", "Bearer "+other[0].AccessToken)
	resp, err := client.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("a request at the instance cap: %v %v", resp, err)
	}
	resp.Body.Close()
}
