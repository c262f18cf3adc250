package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// revocationResult is the revocation visibility scenario: two instances,
// A and B, share Redis; a session cached on both is revoked on A, and B
// is asked with its token until it refuses.
type revocationResult struct {
	Trials int
	// Visible is, per trial, the time from the moment A's DELETE returned
	// to the client until the client had B's first 401 in hand (0 when B
	// had already refused before the DELETE returned). It includes one
	// request's round trip to B, so it is an upper bound.
	Visible histogram
	// StaleTrials is how many trials saw B accept the token after the
	// DELETE had returned; StaleB is how many such requests B accepted.
	StaleTrials int
	StaleB      int
	// StaleA is how many requests A accepted after its own DELETE had
	// returned: the design requires 0.
	StaleA int
	// RequestsB is how many requests were sent to B after the DELETE had
	// returned, over all trials (the denominator of StaleB).
	RequestsB int
	// Strict says whether the instances ran with SESSIOND_REDIS_STRICT.
	Strict bool
}

// hit is one request of a hammering goroutine.
type hit struct {
	sent, got time.Time
	status    int
}

// hammer sends GET /api/v1/me with token to base in a loop until stop is
// closed or, when untilRefused, until it gets a 401. It appends each
// request to out. started is closed after its first answer; when after is
// not nil, it is closed after the first answer to a request sent once t0
// (unix ns) was set.
func hammer(c *http.Client, base, token string, untilRefused bool, stop <-chan struct{}, started chan<- struct{}, t0 *atomic.Int64, after chan<- struct{}, out *[]hit) error {
	r := request{method: http.MethodGet, url: base + "/api/v1/me", auth: bearer(token)}
	first := true
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		h := hit{sent: time.Now()}
		st, err := do(context.Background(), c, r)
		h.got, h.status = time.Now(), st
		if err != nil {
			return err
		}
		*out = append(*out, h)
		if first {
			close(started)
			first = false
		}
		if after != nil {
			if t := t0.Load(); t != 0 && h.sent.UnixNano() >= t {
				close(after)
				after = nil
			}
		}
		if st != http.StatusOK && st != http.StatusUnauthorized {
			return fmt.Errorf("GET %s/api/v1/me: status %d", base, st)
		}
		if untilRefused && st == http.StatusUnauthorized {
			return nil
		}
	}
}

// runRevocation runs trials on instances a and b (sharing Redis and the
// data directory). Sessions are signed in in batches that stay below the
// per-user cap, so that the revoking session is never evicted, and never
// while a trial runs.
func runRevocation(ctx context.Context, a, b *instance, trials, hammersB int, strict bool) (*revocationResult, error) {
	client := newHTTPClient(8)
	defer client.CloseIdleConnections()
	apiA := &api{base: a.URL, c: client}
	user := "revoker"
	if err := apiA.register(ctx, user); err != nil {
		return nil, err
	}
	admin, err := apiA.login(ctx, user, "admin-device")
	if err != nil {
		return nil, err
	}
	res := &revocationResult{Strict: strict}
	const batch = 40 // the default cap is 50 sessions per user
	start := time.Now()
	for done := 0; done < trials; {
		n := min(batch, trials-done)
		grants := make([]*grant, n)
		var wg sync.WaitGroup
		var loginErr atomic.Value
		sem := make(chan struct{}, 2)
		for i := range grants {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				g, err := apiA.login(ctx, user, fmt.Sprintf("trial-%d", done+i))
				if err != nil {
					loginErr.CompareAndSwap(nil, err)
					return
				}
				grants[i] = g
			}()
		}
		wg.Wait()
		if err, ok := loginErr.Load().(error); ok {
			return nil, err
		}
		for _, g := range grants {
			if err := revocationTrial(ctx, client, a, b, admin.AccessToken, g, hammersB, res); err != nil {
				return nil, fmt.Errorf("trial %d: %w", res.Trials+1, err)
			}
		}
		done += n
		status("revocation: %d/%d trials, %.0fs, p50 %v, p99 %v, max %v, B stale %d, A stale %d",
			done, trials, time.Since(start).Seconds(), res.Visible.Quantile(.5), res.Visible.Quantile(.99),
			res.Visible.Max(), res.StaleB, res.StaleA)
	}
	return res, nil
}

func revocationTrial(ctx context.Context, c *http.Client, a, b *instance, adminToken string, g *grant, hammersB int, res *revocationResult) error {
	me := func(base string) error {
		st, err := do(ctx, c, request{method: http.MethodGet, url: base + "/api/v1/me", auth: bearer(g.AccessToken)})
		if err == nil && st != http.StatusOK {
			err = fmt.Errorf("warm-up GET %s/api/v1/me: %d", base, st)
		}
		return err
	}
	// Cache the session on both instances (and the admin's on A).
	for range 3 {
		if err := me(a.URL); err != nil {
			return err
		}
		if err := me(b.URL); err != nil {
			return err
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	hitsB := make([][]hit, hammersB)
	var hitsA []hit
	errs := make(chan error, hammersB+1)
	var started []chan struct{}
	for i := range hammersB {
		s := make(chan struct{})
		started = append(started, s)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := hammer(c, b.URL, g.AccessToken, true, stop, s, nil, nil, &hitsB[i]); err != nil {
				errs <- err
			}
		}()
	}
	sA := make(chan struct{})
	started = append(started, sA)
	var wgA sync.WaitGroup
	var t0A atomic.Int64
	afterA := make(chan struct{})
	wgA.Add(1)
	go func() {
		defer wgA.Done()
		if err := hammer(c, a.URL, g.AccessToken, false, stop, sA, &t0A, afterA, &hitsA); err != nil {
			errs <- err
		}
	}()
	for _, s := range started {
		select {
		case <-s:
		case err := <-errs:
			close(stop)
			return err
		}
	}
	st, err := do(ctx, c, request{method: http.MethodDelete, url: a.URL + "/api/v1/sessions/" + g.Session.ID, auth: bearer(adminToken)})
	t0 := time.Now()
	t0A.Store(t0.UnixNano())
	if err == nil && st != http.StatusOK {
		err = fmt.Errorf("DELETE on A: status %d", st)
	}
	if err != nil {
		close(stop)
		wg.Wait()
		wgA.Wait()
		return err
	}
	bDone := make(chan struct{})
	go func() { wg.Wait(); close(bDone) }()
	select {
	case <-bDone:
	case <-time.After(5 * time.Second):
		close(stop)
		<-bDone
		wgA.Wait()
		return fmt.Errorf("B still accepts the token 5 s after the revoke")
	}
	// Let A answer at least one request sent after t0 too.
	select {
	case <-afterA:
	case err := <-errs:
		close(stop)
		wgA.Wait()
		return err
	case <-time.After(5 * time.Second):
	}
	close(stop)
	wgA.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}

	first := time.Time{}
	stale := 0
	for _, hs := range hitsB {
		for _, h := range hs {
			if !h.sent.Before(t0) {
				res.RequestsB++
			}
			if h.status == http.StatusUnauthorized && (first.IsZero() || h.got.Before(first)) {
				first = h.got
			}
			if h.status == http.StatusOK && !h.sent.Before(t0) {
				stale++
			}
		}
	}
	for _, h := range hitsA {
		if h.status == http.StatusOK && !h.sent.Before(t0) {
			res.StaleA++
		}
	}
	res.Trials++
	res.Visible.Record(first.Sub(t0))
	if stale > 0 {
		res.StaleTrials++
		res.StaleB += stale
	}
	return nil
}
