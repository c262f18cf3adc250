package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// newHTTPClient returns a keep-alive client that holds enough idle
// connections per host for conns concurrent requests, so a closed loop
// never pays for a new connection.
func newHTTPClient(conns int) *http.Client {
	t := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        4 * conns,
		MaxIdleConnsPerHost: 2 * conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: t, Timeout: 30 * time.Second}
}

// bearer returns the Authorization header of an access token.
func bearer(token string) string { return "Bearer " + token }

// request is one prepared GET or DELETE; the load generator sends it many
// times.
type request struct {
	method string
	url    string
	auth   string // the Authorization header, "" for none: built once, as a client keeps it
	want   int    // expected status
}

// do sends r and reads the whole body, so the connection is reused.
func do(ctx context.Context, c *http.Client, r request) (int, error) {
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, nil)
	if err != nil {
		return 0, err
	}
	if r.auth != "" {
		req.Header["Authorization"] = []string{r.auth}
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

// loadResult is what one closed-loop run measured.
type loadResult struct {
	Requests uint64
	Errors   uint64
	Elapsed  time.Duration
	Latency  histogram
	// FirstError describes the first failure, if any.
	FirstError string
}

// RPS is the rate of successful requests.
func (r *loadResult) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// closedLoop runs workers goroutines for d; each sends reqFor(worker) as
// soon as its previous request answered (a closed loop: the offered load
// adapts to the server, so the rate measured is its capacity at this
// concurrency). label names the run on the progress line.
func closedLoop(ctx context.Context, c *http.Client, workers int, d time.Duration, label string, reqFor func(worker int) request) *loadResult {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		done     atomic.Uint64
		failed   atomic.Uint64
		mu       sync.Mutex
		res      = &loadResult{}
		wg       sync.WaitGroup
		firstErr atomic.Value
	)
	start := time.Now()
	stopProgress := progress(label, start, d, &done, &failed)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var h histogram
			r := reqFor(w)
			for ctx.Err() == nil {
				t := time.Now()
				status, err := do(ctx, c, r)
				if ctx.Err() != nil && err != nil {
					break // cut by the end of the run, not a failure
				}
				if err == nil && status != r.want {
					err = fmt.Errorf("%s %s: status %d, want %d", r.method, r.url, status, r.want)
				}
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				h.Record(time.Since(t))
				done.Add(1)
			}
			mu.Lock()
			res.Latency.Merge(&h)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	stopProgress()
	res.Requests = done.Load()
	res.Errors = failed.Load()
	if e, ok := firstErr.Load().(string); ok {
		res.FirstError = e
	}
	return res
}

// progress prints a status line to stderr twice a second until the
// returned function is called.
func progress(label string, start time.Time, d time.Duration, done, failed *atomic.Uint64) func() {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		var last uint64
		lastAt := start
		for {
			select {
			case <-stop:
				fmt.Fprint(os.Stderr, "\r\033[K")
				return
			case now := <-t.C:
				n := done.Load()
				rate := float64(n-last) / now.Sub(lastAt).Seconds()
				last, lastAt = n, now
				fmt.Fprintf(os.Stderr, "\r\033[K%s: %5.1fs/%v  %8.0f req/s  %d ok  %d errors",
					label, now.Sub(start).Seconds(), d, rate, n, failed.Load())
			}
		}
	}()
	return func() { close(stop); wg.Wait() }
}

// status prints a one-off progress note to stderr.
func status(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "\r\033[K"+format+"\n", args...)
}
