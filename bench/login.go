package main

import (
	"context"
	"fmt"
	"time"

	"github.com/sessiond/sessiond"
)

// loginResult compares a whole login (HTTP, throttles, user lookup,
// argon2id, session insert, token signing) with the argon2id verification
// alone, measured alternately in one run.
type loginResult struct {
	Store          string // where sessions and throttles live
	Logins         int
	Login, Verify  histogram
	LoginS, VerifS []float64 // seconds, per sample
}

// Overhead is the share of a login (medians) not spent in the hash.
func (r *loginResult) Overhead() float64 {
	l := median(r.LoginS)
	if l == 0 {
		return 0
	}
	return (l - median(r.VerifS)) / l
}

func runLogin(ctx context.Context, base string, n int) (*loginResult, error) {
	c := newHTTPClient(2)
	defer c.CloseIdleConnections()
	a := &api{base: base, c: c}
	if err := a.register(ctx, "login0"); err != nil {
		return nil, err
	}
	h := sessiond.NewPasswordHasher(sessiond.DefaultArgon2)
	enc, err := h.Hash(ctx, benchPassword)
	if err != nil {
		return nil, err
	}
	// One of each first, to warm both up.
	if _, err := a.login(ctx, "login0", "warm"); err != nil {
		return nil, err
	}
	if ok, err := h.Verify(ctx, enc, benchPassword); err != nil || !ok {
		return nil, fmt.Errorf("verify: %v %v", ok, err)
	}
	res := &loginResult{Logins: n}
	for i := range n {
		// Alternate the order, so neither always runs on a machine that
		// the other just warmed.
		for k := range 2 {
			if (i+k)%2 == 0 {
				t := time.Now()
				if _, err := a.login(ctx, "login0", fmt.Sprint("device-", i)); err != nil {
					return nil, err
				}
				d := time.Since(t)
				res.Login.Record(d)
				res.LoginS = append(res.LoginS, d.Seconds())
			} else {
				t := time.Now()
				if ok, err := h.Verify(ctx, enc, benchPassword); err != nil || !ok {
					return nil, fmt.Errorf("verify: %v %v", ok, err)
				}
				d := time.Since(t)
				res.Verify.Record(d)
				res.VerifS = append(res.VerifS, d.Seconds())
			}
		}
		status("login: %d/%d, login p50 %v, verify p50 %v", i+1, n, res.Login.Quantile(.5), res.Verify.Quantile(.5))
	}
	return res, nil
}
