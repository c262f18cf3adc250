package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/redis"
)

// scaleResult is the per-user scale scenario on Redis: listing a user
// with many sessions and signing out every other device of a user with
// very many, each through the store (one script call) and through the
// HTTP API (which also logs and publishes one event per ended session).
type scaleResult struct {
	ListSessions, RevokeSessions int
	StoreList, HTTPList          histogram
	StoreRevokeAll, HTTPRevoke   histogram
	ListBytes                    int
}

// sessionMaker makes realistic sessions (the fields of docs/design.md, "Sessions and users").
type sessionMaker struct {
	mu  sync.Mutex
	rng *rand.Rand
}

var (
	benchDevices = []struct{ name, class string }{
		{"Chrome on Windows", sessiond.ClassDesktop}, {"Safari on iPhone", sessiond.ClassMobile},
		{"Firefox on Linux", sessiond.ClassDesktop}, {"Chrome on Android", sessiond.ClassMobile},
		{"Safari on iPad", sessiond.ClassTablet}, {"Edge on Windows", sessiond.ClassDesktop},
		{"Safari on macOS", sessiond.ClassDesktop}, {"curl", sessiond.ClassCLI},
	}
	benchLocations = []string{"Lagos, Nigeria", "São Paulo, Brazil", "Berlin, Germany", "Mumbai, India", "Austin, United States", ""}
)

func (m *sessionMaker) make(userID string, now time.Time) *sessiond.Session {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.rng
	d := benchDevices[r.IntN(len(benchDevices))]
	ip := fmt.Sprintf("%d.%d.%d.%d", 1+r.IntN(222), r.IntN(256), r.IntN(256), 1+r.IntN(254))
	if r.IntN(5) == 0 {
		ip = fmt.Sprintf("2001:db8:%x:%x::%x", r.IntN(65536), r.IntN(65536), 1+r.IntN(65535))
	}
	var id [16]byte
	for i := range id {
		id[i] = byte(r.Uint32())
	}
	created := now.Add(-time.Duration(r.Int64N(int64(24 * time.Hour))))
	s := &sessiond.Session{
		ID:          fmt.Sprintf("%x", id),
		UserID:      userID,
		DeviceID:    sessiond.DeviceHash(userID, fmt.Sprint("device-", r.Int())),
		Device:      d.name,
		DeviceClass: d.class,
		IPAddress:   ip,
		Location:    benchLocations[r.IntN(len(benchLocations))],
		CreatedAt:   created,
		LastActive:  created,
		ExpiresAt:   created.Add(14 * 24 * time.Hour),
		Generation:  1,
		RotatedAt:   created,
	}
	return s
}

// createMany creates n sessions of userID with no cap, 16 at a time.
// They have no device id (as sessions of clients that send none): with
// one, every create walks the user's index for a session of the same
// device to replace, which makes creating 10,000 quadratic.
func createMany(ctx context.Context, st *redis.Store, mk *sessionMaker, userID string, n int) ([]*sessiond.Session, error) {
	out := make([]*sessiond.Session, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	now := time.Now()
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || firstErr.Load() != nil {
					return
				}
				s := mk.make(userID, now)
				s.DeviceID = ""
				if _, err := st.Create(ctx, s, sessiond.SessionCap{}, now); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				out[i] = s
			}
		}()
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return nil, err
	}
	return out, nil
}

// issuer signs access tokens with the key of a data directory, as the
// instances that share it do.
func issuer(dataDir string) (*sessiond.AccessTokens, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "signing-key.pem"))
	if err != nil {
		return nil, err
	}
	sk, err := sessiond.ParseSigningKey(b)
	if err != nil {
		return nil, err
	}
	return sessiond.NewAccessTokens("sessiond", sk), nil
}

func runScale(ctx context.Context, srv *instance, redisURL string, listN, revokeN, reps int) (*scaleResult, error) {
	st, err := redis.New(ctx, redis.Options{URL: redisURL, Timeout: 10 * time.Second})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	at, err := issuer(srv.DataDir)
	if err != nil {
		return nil, err
	}
	c := newHTTPClient(2)
	defer c.CloseIdleConnections()
	a := &api{base: srv.URL, c: c}
	mk := &sessionMaker{rng: rand.New(rand.NewPCG(7, 8))}
	res := &scaleResult{ListSessions: listN, RevokeSessions: revokeN}

	listUser, err := a.registerID(ctx, "lister")
	if err != nil {
		return nil, err
	}
	sessions, err := createMany(ctx, st, mk, listUser, listN)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tok, err := at.Issue(listUser, sessions[0].ID, now, now.Add(15*time.Minute))
	if err != nil {
		return nil, err
	}
	for i := range 3 * reps {
		label := fmt.Sprintf("scale: list %d sessions %d/%d", listN, i+1, 3*reps)
		status("%s", label)
		t := time.Now()
		list, err := st.List(ctx, listUser, time.Now())
		if err != nil {
			return nil, err
		}
		res.StoreList.Record(time.Since(t))
		if len(list) != listN {
			return nil, fmt.Errorf("store list: %d sessions, want %d", len(list), listN)
		}
		var out []struct {
			ID string `json:"id"`
		}
		t = time.Now()
		if err := a.call(ctx, http.MethodGet, "/api/v1/sessions", tok, nil, &out, http.StatusOK); err != nil {
			return nil, err
		}
		res.HTTPList.Record(time.Since(t))
		if len(out) != listN {
			return nil, fmt.Errorf("GET /api/v1/sessions: %d sessions, want %d", len(out), listN)
		}
	}
	if n, err := bodySize(ctx, c, srv.URL+"/api/v1/sessions", tok); err == nil {
		res.ListBytes = n
	}

	for i := range reps {
		status("scale: revoke-all of %d sessions %d/%d (creating them)", revokeN, i+1, reps)
		user, err := a.registerID(ctx, fmt.Sprintf("revoker%d", i))
		if err != nil {
			return nil, err
		}
		// Through the store: RevokeAll, one script call.
		if _, err := createMany(ctx, st, mk, user, revokeN); err != nil {
			return nil, err
		}
		t := time.Now()
		ids, err := st.RevokeAll(ctx, user)
		if err != nil {
			return nil, err
		}
		res.StoreRevokeAll.Record(time.Since(t))
		if len(ids) != revokeN {
			return nil, fmt.Errorf("store revoke all: %d sessions, want %d", len(ids), revokeN)
		}
		// Through the API: DELETE /api/v1/sessions from one more session.
		ss, err := createMany(ctx, st, mk, user, revokeN+1)
		if err != nil {
			return nil, err
		}
		now := time.Now()
		tok, err := at.Issue(user, ss[0].ID, now, now.Add(15*time.Minute))
		if err != nil {
			return nil, err
		}
		var out struct {
			Revoked int `json:"revoked"`
		}
		status("scale: revoke-all of %d sessions %d/%d (DELETE /api/v1/sessions)", revokeN, i+1, reps)
		t = time.Now()
		if err := a.call(ctx, http.MethodDelete, "/api/v1/sessions", tok, nil, &out, http.StatusOK); err != nil {
			return nil, err
		}
		res.HTTPRevoke.Record(time.Since(t))
		if out.Revoked != revokeN {
			return nil, fmt.Errorf("DELETE /api/v1/sessions: revoked %d, want %d", out.Revoked, revokeN)
		}
	}
	status("scale: list %d: store p50 %v, HTTP p50 %v; revoke-all %d: store p50 %v, HTTP p50 %v",
		listN, res.StoreList.Quantile(.5), res.HTTPList.Quantile(.5), revokeN, res.StoreRevokeAll.Quantile(.5), res.HTTPRevoke.Quantile(.5))
	return res, nil
}

func bodySize(ctx context.Context, c *http.Client, url, token string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	return int(n), err
}
