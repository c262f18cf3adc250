package main

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"
)

// throughputResult compares GET /api/v1/me (token verified, session
// looked up, user read) with the public GET /.well-known/jwks.json of the
// same server, measured in alternating slices of one run.
type throughputResult struct {
	Store       string
	Concurrency int
	Slice       time.Duration
	// MeRPS and JWKSRPS are the rates of each slice, in run order.
	MeRPS, JWKSRPS []float64
	Me, JWKS       histogram
	Errors         uint64
	FirstError     string
}

// Ratio is median(me slices) / median(jwks slices).
func (r *throughputResult) Ratio() float64 {
	j := median(r.JWKSRPS)
	if j == 0 {
		return 0
	}
	return median(r.MeRPS) / j
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// prepareTokens registers a few users on base and signs in n devices,
// spread over them, returning one access token per device.
func prepareTokens(ctx context.Context, a *api, prefix string, n int) ([]string, error) {
	const users = 4
	for u := range users {
		if err := a.register(ctx, fmt.Sprintf("%s%d", prefix, u)); err != nil {
			return nil, err
		}
	}
	tokens := make([]string, n)
	for i := range tokens {
		g, err := a.login(ctx, fmt.Sprintf("%s%d", prefix, i%users), fmt.Sprintf("device-%d", i))
		if err != nil {
			return nil, err
		}
		tokens[i] = g.AccessToken
	}
	return tokens, nil
}

// runThroughput alternates slices of /me and /jwks: rounds pairs, in the
// order me, jwks, jwks, me, me, ... so that a drift of the machine's speed
// during the run weighs on both alike. One warm-up slice of each comes
// first and is not counted.
func runThroughput(ctx context.Context, store, base string, tokens []string, workers, rounds int, slice time.Duration) (*throughputResult, error) {
	c := newHTTPClient(workers)
	defer c.CloseIdleConnections()
	me := func(w int) request {
		return request{method: http.MethodGet, url: base + "/api/v1/me", auth: bearer(tokens[w%len(tokens)]), want: http.StatusOK}
	}
	jwks := func(int) request {
		return request{method: http.MethodGet, url: base + "/.well-known/jwks.json", want: http.StatusOK}
	}
	res := &throughputResult{Store: store, Concurrency: workers, Slice: slice}
	for _, warm := range []func(int) request{me, jwks} {
		r := closedLoop(ctx, c, workers, slice, "throughput "+store+" warm-up", warm)
		if r.Errors > 0 {
			return nil, fmt.Errorf("throughput %s warm-up: %d errors, first: %s", store, r.Errors, r.FirstError)
		}
	}
	for i := range 2 * rounds {
		isMe := (i/2+i)%2 == 0 // me, jwks, jwks, me, me, jwks, ...
		name, fn := "jwks", jwks
		if isMe {
			name, fn = "me", me
		}
		label := fmt.Sprintf("throughput %s %d/%d %s", store, i+1, 2*rounds, name)
		r := closedLoop(ctx, c, workers, slice, label, fn)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		res.Errors += r.Errors
		if res.FirstError == "" {
			res.FirstError = r.FirstError
		}
		if isMe {
			res.MeRPS = append(res.MeRPS, r.RPS())
			res.Me.Merge(&r.Latency)
		} else {
			res.JWKSRPS = append(res.JWKSRPS, r.RPS())
			res.JWKS.Merge(&r.Latency)
		}
	}
	status("throughput %s: me %.0f req/s, jwks %.0f req/s, ratio %.2f (%d errors)",
		store, median(res.MeRPS), median(res.JWKSRPS), res.Ratio(), res.Errors)
	return res, nil
}
