package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/sessiond/sessiond/internal/freeport"
)

// The peers scenario measures, in one run, what each way of answering a
// protected request costs against a bare net/http handler: the peers
// (peers.go), sessiond's Go middleware, and the sessiond binary on SQLite,
// Redis and strict Redis. Each round runs a slice of the bare handler
// between every two slices of the others, in a new random order: bare, X1,
// bare, X2, ..., bare. A slice's ratio is its rate ÷ the mean of the bare
// slices before and after it, and a row's ratio the median of its rounds.

// versusTarget is one row: where to send what.
type versusTarget struct {
	key, name string
	url       string
	tokens    []string
}

// versusRow is what one row measured.
type versusRow struct {
	Key, Name string
	RPS       []float64 // each slice, in run order
	Ratios    []float64 // each slice's rate ÷ its neighbouring bare slices
	Latency   histogram
	Errors    uint64
	First     string
}

// Ratio is the median of the row's ratios to bare.
func (r *versusRow) Ratio() float64 { return median(r.Ratios) }

// versusResult is the peers scenario's result.
type versusResult struct {
	Concurrency int
	Slice       time.Duration
	Rounds      int
	Bare        *versusRow
	Rows        []*versusRow
	// Profiles are CPU profiles of the binary under a /me and
	// /auth/check load, as go tool pprof -top prints them.
	Profiles []versusProfile
}

type versusProfile struct {
	// Top is the flat listing; Cum the cumulative one of the request's
	// path and sessiond's own work (profileShow).
	Store, Top, Cum string
	Seconds         int
}

// row returns the row of key, nil when it was not measured.
func (v *versusResult) row(key string) *versusRow {
	for _, r := range v.Rows {
		if r.Key == key {
			return r
		}
	}
	return nil
}

// Targets of the peers scenario: the binary's /me and /auth/check at
// least targetBinary × bare and at least the stateless HS256 verifier, the
// library middleware at least targetLibrary × bare.
const targetBinary, targetLibrary = 0.80, 0.85

// binaryTargets and libraryTargets are the rows those targets apply to.
var (
	binaryTargets  = []string{"sqlite-me", "sqlite-check", "redis-me", "redis-check"}
	libraryTargets = []string{"lib-sqlite", "lib-redis"}
)

// runVersus starts the peers, the library middleware and the binaries,
// and measures them.
func runVersus(ctx context.Context, c *config, bin string, dir func(string) string, startRedisFor func(string) (*redisServer, error)) (*versusResult, error) {
	var cleanup []func()
	defer func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}()
	redisFor := func(name string) (*redisServer, error) {
		r, err := startRedisFor(name)
		if err == nil {
			cleanup = append(cleanup, r.Stop)
		}
		return r, err
	}
	rPeers, err := redisFor("redis-peers")
	if err != nil {
		return nil, err
	}
	var targets []versusTarget
	var bare versusTarget
	for _, p := range []struct{ kind, name string }{
		{peerBare, "bare Go net/http handler, no auth"},
		{peerHS256, "golang-jwt HS256 verify, no revocation (stateless)"},
		{peerEdDSA, "golang-jwt EdDSA verify, no revocation"},
		{peerJWTRedis, "golang-jwt HS256 + Redis `EXISTS` per request (rueidis, no client cache)"},
		{peerLibSQLite, "sessiond Go middleware (library), SQLite"},
		{peerLibRedis, "sessiond Go middleware (library), Redis"},
	} {
		status("peers: starting %s", p.kind)
		pp, err := startPeer(p.kind, dir("peer-"+p.kind), rPeers.URL(), c.concurrency)
		if err != nil {
			return nil, err
		}
		cleanup = append(cleanup, pp.Stop)
		t := versusTarget{key: p.kind, name: p.name, url: pp.URL + "/", tokens: pp.Tokens}
		if p.kind == peerBare {
			bare = t
			continue
		}
		targets = append(targets, t)
	}

	// The binaries, default settings but for the admin listener's
	// profiles when -profile asks for them.
	type binary struct {
		key, store string
		env        map[string]string
		paths      []string
	}
	rBin, err := redisFor("redis-binary")
	if err != nil {
		return nil, err
	}
	rStrict, err := redisFor("redis-strict")
	if err != nil {
		return nil, err
	}
	binaries := []binary{
		{"sqlite", "SQLite", nil, []string{"me", "check", "jwks"}},
		{"sqlite-warn", "SQLite, `SESSIOND_LOG_LEVEL=warn`", map[string]string{"SESSIOND_LOG_LEVEL": "warn"}, []string{"me"}},
		{"redis", "Redis", map[string]string{"SESSIOND_REDIS_URL": rBin.URL()}, []string{"me", "check"}},
		{"strict", "strict Redis", map[string]string{"SESSIOND_REDIS_URL": rStrict.URL(), "SESSIOND_REDIS_STRICT": "true"}, []string{"me", "check"}},
	}
	paths := map[string]string{"me": "/api/v1/me", "check": "/api/v1/auth/check", "jwks": "/.well-known/jwks.json"}
	instances := map[string]*instance{}
	tokensOf := map[string][]string{}
	var signedIn time.Time
	for _, b := range binaries {
		env := map[string]string{"SESSIOND_DATA_DIR": dir("binary-" + b.key)}
		for k, v := range b.env {
			env[k] = v
		}
		if c.profile > 0 {
			env["SESSIOND_PPROF"] = "true"
		}
		if env["SESSIOND_LOG_LEVEL"] == "warn" {
			// No "listening" line to read the addresses from.
			for _, k := range []string{"SESSIOND_ADDR", "SESSIOND_ADMIN_ADDR"} {
				port, err := freeport.Port()
				if err != nil {
					return nil, err
				}
				env[k] = fmt.Sprintf("127.0.0.1:%d", port)
			}
		}
		status("peers: starting the binary, %s", b.store)
		in, err := startSessiond(bin, env)
		if err != nil {
			return nil, err
		}
		cleanup = append(cleanup, in.Stop)
		instances[b.key] = in
		a := &api{base: in.URL, c: newHTTPClient(4)}
		tokens, err := prepareTokens(ctx, a, fmt.Sprintf("peers%x-", rand.Uint32()), c.concurrency)
		if err != nil {
			return nil, err
		}
		tokensOf[b.key] = tokens
		signedIn = time.Now()
		for _, p := range b.paths {
			t := versusTarget{key: b.key + "-" + p, name: fmt.Sprintf("sessiond binary, %s, `GET %s`", b.store, paths[p]), url: in.URL + paths[p], tokens: tokens}
			if p == "jwks" {
				t.name += " (public, static)"
				t.tokens = nil
			}
			targets = append(targets, t)
		}
	}
	// On Redis an instance reads the sessions it wrote itself from Redis,
	// not its cache, for 5 to 10 s (the record of its own writes), and
	// the library's store the same: measure the steady state after that.
	if wait := 11*time.Second - time.Since(signedIn); wait > 0 {
		status("peers: waiting %v for the login writes to age out of the Redis stores' recent-write record", wait.Round(time.Second))
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}

	res := &versusResult{Concurrency: c.concurrency, Slice: c.slice, Rounds: c.peerRounds,
		Bare: &versusRow{Key: bare.key, Name: bare.name}}
	rows := map[string]*versusRow{}
	for _, t := range targets {
		r := &versusRow{Key: t.key, Name: t.name}
		rows[t.key] = r
		res.Rows = append(res.Rows, r)
	}
	hc := newHTTPClient(c.concurrency)
	defer hc.CloseIdleConnections()
	reqFor := func(t versusTarget) func(int) request {
		return func(w int) request {
			rq := request{method: http.MethodGet, url: t.url, want: http.StatusOK}
			if len(t.tokens) > 0 {
				rq.auth = bearer(t.tokens[w%len(t.tokens)])
			}
			return rq
		}
	}
	slice := func(t versusTarget, label string) (*loadResult, error) {
		r := closedLoop(ctx, hc, c.concurrency, c.slice, label, reqFor(t))
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return r, nil
	}
	// One unmeasured slice of each warms connections, caches and the
	// runtimes; a failure there is a broken set-up.
	for _, t := range append([]versusTarget{bare}, targets...) {
		r, err := slice(t, "peers warm-up "+t.key)
		if err != nil {
			return nil, err
		}
		if r.Errors > 0 {
			return nil, fmt.Errorf("peers warm-up %s: %d errors, first: %s", t.key, r.Errors, r.FirstError)
		}
	}
	record := func(row *versusRow, r *loadResult) {
		row.RPS = append(row.RPS, r.RPS())
		row.Latency.Merge(&r.Latency)
		row.Errors += r.Errors
		if row.First == "" {
			row.First = r.FirstError
		}
	}
	for round := range c.peerRounds {
		order := append([]versusTarget(nil), targets...)
		rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		b, err := slice(bare, fmt.Sprintf("peers %d/%d bare", round+1, c.peerRounds))
		if err != nil {
			return nil, err
		}
		record(res.Bare, b)
		before := b.RPS()
		for i, t := range order {
			r, err := slice(t, fmt.Sprintf("peers %d/%d %s (%d/%d)", round+1, c.peerRounds, t.key, i+1, len(order)))
			if err != nil {
				return nil, err
			}
			b, err := slice(bare, fmt.Sprintf("peers %d/%d bare", round+1, c.peerRounds))
			if err != nil {
				return nil, err
			}
			record(rows[t.key], r)
			record(res.Bare, b)
			if m := (before + b.RPS()) / 2; m > 0 {
				rows[t.key].Ratios = append(rows[t.key].Ratios, r.RPS()/m)
			}
			before = b.RPS()
		}
	}
	for _, r := range res.Rows {
		status("peers: %-14s %.3f × bare (median of %d), %d errors", r.Key, r.Ratio(), len(r.Ratios), r.Errors)
	}

	if c.profile > 0 {
		for _, b := range []struct{ key, store string }{{"sqlite", "SQLite"}, {"redis", "Redis"}} {
			p, err := profileBinary(ctx, c, hc, bin, instances[b.key], tokensOf[b.key], dir("profile-"+b.key))
			if err != nil {
				return nil, err
			}
			p.Store = b.store
			res.Profiles = append(res.Profiles, p)
		}
	}
	return res, nil
}

// profileBinary takes a CPU profile of in (served on its admin listener,
// SESSIOND_PPROF=true) while half the clients ask /api/v1/me and half
// /api/v1/auth/check, and returns go tool pprof -top of it.
func profileBinary(ctx context.Context, c *config, hc *http.Client, bin string, in *instance, tokens []string, dir string) (versusProfile, error) {
	secs := int(c.profile / time.Second)
	if secs < 1 {
		secs = 1
	}
	prof := filepath.Join(dir, "cpu.pprof")
	got := make(chan error, 1)
	go func() {
		resp, err := http.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", in.AdminURL, secs))
		if err != nil {
			got <- err
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			got <- fmt.Errorf("profile: %s", resp.Status)
			return
		}
		f, err := os.Create(prof)
		if err != nil {
			got <- err
			return
		}
		_, err = io.Copy(f, resp.Body)
		f.Close()
		got <- err
	}()
	// The load outlasts the profile a little on both ends.
	closedLoop(ctx, hc, c.concurrency, time.Duration(secs)*time.Second+time.Second, "profile "+in.URL, func(w int) request {
		path := "/api/v1/me"
		if w%2 == 1 {
			path = "/api/v1/auth/check"
		}
		return request{method: http.MethodGet, url: in.URL + path, auth: bearer(tokens[w%len(tokens)]), want: http.StatusOK}
	})
	if err := <-got; err != nil {
		return versusProfile{}, err
	}
	top, err := pprofTop(bin, prof, "-nodecount=25")
	if err != nil {
		return versusProfile{}, err
	}
	cum, err := pprofTop(bin, prof, "-cum", "-nodecount=40", "-focus="+profileFocus, "-hide="+profileHide)
	if err != nil {
		return versusProfile{}, err
	}
	return versusProfile{Top: top, Cum: cum, Seconds: secs}, nil
}

// The cumulative listing is of the samples in sessiond's handler chain
// (its percentages are of the whole process), without the runtime's own
// frames (allocation, scheduling) that would push the chain's parts out of
// the listing.
const (
	profileFocus = `sessiond/http\.\(\*Server\)\.Handler`
	profileHide  = `^runtime\.|^internal/|^syscall\.|^sync`
)

// pprofTop runs go tool pprof -top with args and drops the header lines
// that name temporary files.
func pprofTop(bin, prof string, args ...string) (string, error) {
	out, err := exec.Command("go", append(append([]string{"tool", "pprof", "-top"}, args...), bin, prof)...).Output()
	if err != nil {
		return "", fmt.Errorf("go tool pprof: %w", err)
	}
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "File:") || strings.HasPrefix(l, "Build ID:") || strings.HasPrefix(l, "Time:") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.TrimSpace(strings.Join(keep, "\n")), nil
}
