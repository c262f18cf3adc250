package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sessiond/sessiond"
)

// loginResult compares a whole login (HTTP, throttles, user lookup,
// argon2id, session insert, token signing) with its argon2id verification.
// The server measures both itself: each request's duration in its request
// log, and each password verification in
// sessiond_password_verify_duration_seconds, so what a login costs the
// server beyond the hash compares the same logins in the same process. The
// client's view adds the round trip and the wake-ups of an idle machine;
// the benchmark process also runs the hash alone, alternately, as a
// cross-process reference.
type loginResult struct {
	Store          string // where sessions and throttles live
	Logins         int
	Login, Verify  histogram
	LoginS, VerifS []float64 // seconds, per sample
	// ServerLogin is the mean duration of the measured logins in the
	// server's request log: from the request's arrival in the handler to
	// its answer written.
	ServerLogin time.Duration
	// ServerVerify is the mean time the server spent verifying the
	// passwords of the measured logins.
	ServerVerify time.Duration
	// Idle is what a round trip to another process costs on this machine
	// when both sides have just been busy, and when they have idled for
	// about one hash, as a login's round trips after the hash do.
	Idle idleCosts
}

// idleCosts are medians of round trips and of fsyncs, each timed back to
// back (Busy) and after a pause of one hash (Idle).
type idleCosts struct {
	Gap                  time.Duration // the pause
	HTTPBusy, HTTPIdle   time.Duration // GET /healthz on the server
	StoreBusy, StoreIdle time.Duration // PING to Redis; 0 without Redis
	FsyncBusy, FsyncIdle time.Duration // 4 KiB written and fdatasync'd in the data directory's file system
}

// medianOf times f n times, pausing gap before each, and returns the
// median.
func medianOf(n int, gap time.Duration, f func() error) (time.Duration, error) {
	ds := make([]float64, 0, n)
	for range n {
		if gap > 0 {
			time.Sleep(gap)
		}
		t := time.Now()
		if err := f(); err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(t).Seconds())
	}
	return time.Duration(median(ds) * float64(time.Second)), nil
}

// busyAndIdle times f back to back and after gap.
func busyAndIdle(n int, gap time.Duration, f func() error) (busy, idle time.Duration, err error) {
	if busy, err = medianOf(n, 0, f); err != nil {
		return 0, 0, err
	}
	idle, err = medianOf(n, gap, f)
	return busy, idle, err
}

// measureIdle fills r.Idle: HTTP round trips to base, PING round trips to
// the Redis at redisAddr ("" for none), and fsyncs of a file in dir.
func (r *loginResult) measureIdle(ctx context.Context, a *api, redisAddr, dir string) error {
	const n = 40
	gap := time.Duration(median(r.VerifS) * float64(time.Second))
	r.Idle.Gap = gap
	var err error
	health := func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/healthz", nil)
		if err != nil {
			return err
		}
		resp, err := a.c.Do(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil
	}
	if r.Idle.HTTPBusy, r.Idle.HTTPIdle, err = busyAndIdle(n, gap, health); err != nil {
		return fmt.Errorf("GET /healthz: %w", err)
	}
	if redisAddr != "" {
		conn, err := net.Dial("tcp", redisAddr)
		if err != nil {
			return err
		}
		defer conn.Close()
		br := bufio.NewReader(conn)
		ping := func() error {
			if _, err := conn.Write([]byte("PING\r\n")); err != nil {
				return err
			}
			line, err := br.ReadString('\n')
			if err == nil && line != "+PONG\r\n" {
				err = fmt.Errorf("PING: got %q", line)
			}
			return err
		}
		if r.Idle.StoreBusy, r.Idle.StoreIdle, err = busyAndIdle(n, gap, ping); err != nil {
			return fmt.Errorf("redis: %w", err)
		}
	}
	f, err := os.CreateTemp(dir, "fsync-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	block := make([]byte, 4096)
	fsync := func() error {
		if _, err := f.Write(block); err != nil {
			return err
		}
		return syscall.Fdatasync(int(f.Fd()))
	}
	if r.Idle.FsyncBusy, r.Idle.FsyncIdle, err = busyAndIdle(n, gap, fsync); err != nil {
		return fmt.Errorf("fsync: %w", err)
	}
	return nil
}

// LoginMean is the mean time of a login, as the client saw it.
func (r *loginResult) LoginMean() time.Duration {
	if len(r.LoginS) == 0 {
		return 0
	}
	sum := 0.0
	for _, x := range r.LoginS {
		sum += x
	}
	return time.Duration(sum / float64(len(r.LoginS)) * float64(time.Second))
}

// ServerBeyond is what a login costs the server beyond its password
// verification: mean login in the server - mean verification.
func (r *loginResult) ServerBeyond() time.Duration { return r.ServerLogin - r.ServerVerify }

// ServerShare is ServerBeyond's share of the server's login time.
func (r *loginResult) ServerShare() float64 {
	if r.ServerLogin == 0 {
		return 0
	}
	return float64(r.ServerBeyond()) / float64(r.ServerLogin)
}

// ClientShare is the share of a login, as the client saw it, not spent
// verifying its password: (mean login - mean verification in the server)
// / mean login, over the same logins.
func (r *loginResult) ClientShare() float64 {
	l := r.LoginMean()
	if l == 0 {
		return 0
	}
	return float64(l-r.ServerVerify) / float64(l)
}

// OverheadVsLocal compares medians of the logins and of the hash run
// alone in the benchmark process: a cross-process reference, which also
// counts how differently two processes' memory serves a 19 MiB hash.
func (r *loginResult) OverheadVsLocal() float64 {
	l := median(r.LoginS)
	if l == 0 {
		return 0
	}
	return (l - median(r.VerifS)) / l
}

// verifyTotals returns the sum (seconds) and count of the server's
// password verifications so far, from its metrics at url.
func (a *api) verifyTotals(ctx context.Context, url string) (sum float64, n int, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := a.c.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	const name = "sessiond_password_verify_duration_seconds"
	found := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		switch f[0] {
		case name + "_sum":
			sum, err = strconv.ParseFloat(f[1], 64)
			found++
		case name + "_count":
			var c float64
			c, err = strconv.ParseFloat(f[1], 64)
			n = int(c)
			found++
		}
		if err != nil {
			return 0, 0, fmt.Errorf("GET %s: %s: %w", url, f[0], err)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if found != 2 {
		return 0, 0, fmt.Errorf("GET %s: no %s (is -metrics-url the server's metrics?)", url, name)
	}
	return sum, n, nil
}

// loginLogLines returns the durations of the logins in the request log at
// path from byte offset on, and the offset of its end.
func loginLogLines(path string, offset int64) ([]time.Duration, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, 0, err
	}
	var ds []time.Duration
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		offset += int64(len(sc.Bytes())) + 1
		var l struct {
			Msg, Method, Path string
			Status            int
			DurationMS        float64 `json:"duration_ms"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "request" && l.Method == http.MethodPost && l.Path == "/api/v1/auth/login" {
			if l.Status != http.StatusOK {
				return nil, 0, fmt.Errorf("%s: a login answered %d", path, l.Status)
			}
			ds = append(ds, time.Duration(l.DurationMS*float64(time.Millisecond)))
		}
	}
	return ds, offset, sc.Err()
}

// runLogin times n logins on the instance in, reading its password
// verification times from metricsURL ("" for /metrics on its admin
// listener).
func runLogin(ctx context.Context, in *instance, metricsURL string, n int, redisAddr, dir string) (*loginResult, error) {
	if metricsURL == "" {
		metricsURL = in.AdminURL + "/metrics"
	}
	c := newHTTPClient(2)
	defer c.CloseIdleConnections()
	a := &api{base: in.URL, c: c}
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
	sum0, n0, err := a.verifyTotals(ctx, metricsURL)
	if err != nil {
		return nil, err
	}
	// The warm-up's log line is written before its answer is sent.
	_, logStart, err := loginLogLines(in.logPath, 0)
	if err != nil {
		return nil, err
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
	sum1, n1, err := a.verifyTotals(ctx, metricsURL)
	if err != nil {
		return nil, err
	}
	if n1-n0 != n {
		return nil, fmt.Errorf("the server verified %d passwords during %d logins", n1-n0, n)
	}
	res.ServerVerify = time.Duration((sum1 - sum0) / float64(n) * float64(time.Second))
	// The server writes its request lines at least every 100 ms: the
	// last login's may not be in the file yet.
	var ds []time.Duration
	for deadline := time.Now().Add(2 * time.Second); ; {
		if ds, _, err = loginLogLines(in.logPath, logStart); err != nil {
			return nil, err
		}
		if len(ds) >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(ds) != n {
		return nil, fmt.Errorf("%s: %d login lines for %d logins", in.logPath, len(ds), n)
	}
	var total time.Duration
	for _, d := range ds {
		total += d
	}
	res.ServerLogin = total / time.Duration(n)
	status("login: timing round trips and fsyncs, back to back and after a pause of one hash")
	if err := res.measureIdle(ctx, a, redisAddr, dir); err != nil {
		return nil, err
	}
	return res, nil
}
