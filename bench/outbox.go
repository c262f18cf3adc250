package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/sessiond/sessiond/internal/adminkey"
	"github.com/sessiond/sessiond/webhook"
)

// outboxResult is the outbox scenario on one store: security events
// recorded in the store's outbox before each act is answered, and
// delivered as webhooks by the instance's background loop to a receiver
// in this process (docs/design.md, "Delivering events").
type outboxResult struct {
	Store string
	// ActivityIn names the store that held the history and the outbox.
	ActivityIn  string
	Concurrency int
	Users       int

	// Created and Ended are the acts made one at a time, each waiting for
	// its event before the next: a session started for a user whose
	// previous event was delivered a while before (the users take turns),
	// and the same session ended right after its session.created arrived.
	Created, Ended outboxLatency

	// On and Off are the bursts with webhooks on and off, in run order
	// within each kind.
	On, Off []outboxBurst
	// Order says which kind ran first in each round ("on off", "off on").
	Order []string
	// Burst is the latency of the events of every burst with webhooks on.
	Burst outboxLatency

	// Deliveries is how many POSTs the receiver answered; Conns how many
	// TCP connections the sender opened to it.
	Deliveries int
	Conns      int64
	// Dups counts deliveries of a webhook-id received before; Refused
	// deliveries whose signature did not verify (answered 400).
	Dups, Refused int
	FirstRefused  string
	// Failed counts the acts of the bursts that were not answered as
	// they should be (each expects no event); FirstFailed says why the
	// first failed, and what the server logged first.
	Failed      int
	FirstFailed string
}

// outboxLatency is the delivery latency of a set of events.
type outboxLatency struct {
	// Answer is, per event, its receipt minus the moment the client had
	// the act's answer (0 when the event came first); Stamp its receipt
	// minus the event's own timestamp, the time the server took for the
	// act (whole milliseconds).
	Answer, Stamp histogram
	// Early counts events received before the client had the act's
	// answer.
	Early int
}

// add matches the acts of answered with their events in got (see
// matchLatencies) and returns how many events are missing.
func (l *outboxLatency) add(answered map[string]time.Time, got map[string]receipt) (missing int) {
	early, missing := matchLatencies(answered, got, &l.Answer, &l.Stamp)
	l.Early += early
	return missing
}

// outboxBurst is one burst of acts made as fast as the clients can.
type outboxBurst struct {
	Acts int
	// ActsTook is from the first act sent to the last act answered.
	ActsTook time.Duration
	// Delivered is from the first act sent to the last event received
	// (webhooks on only).
	Delivered time.Duration
	// CPU is the processor time, over the same span, of the instance
	// (Server), of this process (Bench: the clients and the receiver)
	// and of redis-server (Redis, 0 without).
	Server, Bench, Redis time.Duration
}

// cpuPer returns the mean CPU time per act of bursts, of the processes
// that cpu picks.
func cpuPer(bursts []outboxBurst, cpu func(outboxBurst) time.Duration) time.Duration {
	var sum time.Duration
	acts := 0
	for _, b := range bursts {
		sum += cpu(b)
		acts += b.Acts
	}
	if acts == 0 {
		return 0
	}
	return sum / time.Duration(acts)
}

// busy returns the CPU time of bursts that cpu picks ÷ their span (acts
// until the last event for webhooks on, acts only for off): 1 is one core
// busy throughout.
func busy(bursts []outboxBurst, cpu func(outboxBurst) time.Duration) float64 {
	var sum, span time.Duration
	for _, b := range bursts {
		sum += cpu(b)
		span += max(b.ActsTook, b.Delivered)
	}
	if span <= 0 {
		return 0
	}
	return float64(sum) / float64(span)
}

// clockTick is the unit of the CPU times of /proc/<pid>/stat (USER_HZ),
// 100 on every Linux architecture Go runs on.
const clockTick = 10 * time.Millisecond

// procCPU returns the user and system CPU time process pid has used.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

// parseStatCPU returns utime + stime of a /proc/<pid>/stat line: the 14th
// and 15th fields, counted after the command name in parentheses, which
// may hold spaces and parentheses itself.
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc stat without a command name: %.80q", stat)
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is the 3rd field (state), so utime and stime are f[11], f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat with %d fields after the command name", len(f))
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc stat: %w", err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick, nil
}

// cpuMeter reads the CPU time of a few processes at once.
type cpuMeter []int

// read returns the CPU time of each process (0 for a pid of 0).
func (m cpuMeter) read() ([]time.Duration, error) {
	out := make([]time.Duration, len(m))
	for i, pid := range m {
		if pid == 0 {
			continue
		}
		d, err := procCPU(pid)
		if err != nil {
			return nil, err
		}
		out[i] = d
	}
	return out, nil
}

// ActRate is the acts answered per second.
func (b outboxBurst) ActRate() float64 { return perSecond(b.Acts, b.ActsTook) }

// EventRate is the events delivered per second, from the first act to
// the last delivery.
func (b outboxBurst) EventRate() float64 { return perSecond(b.Acts, b.Delivered) }

func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// actRates returns the act rates of bursts.
func actRates(bursts []outboxBurst) []float64 {
	out := make([]float64, len(bursts))
	for i, b := range bursts {
		out[i] = b.ActRate()
	}
	return out
}

// eventRates returns the delivery rates of bursts.
func eventRates(bursts []outboxBurst) []float64 {
	out := make([]float64, len(bursts))
	for i, b := range bursts {
		out[i] = b.EventRate()
	}
	return out
}

// Ratio is the median act rate with webhooks on ÷ the median with them
// off: what queueing and delivering the events costs the acts.
func (r *outboxResult) Ratio() float64 {
	off := median(actRates(r.Off))
	if off == 0 {
		return 0
	}
	return median(actRates(r.On)) / off
}

// Lag is the median time from the last act answered to the last event
// received, over the bursts with webhooks on.
func (r *outboxResult) Lag() time.Duration {
	lags := make([]float64, len(r.On))
	for i, b := range r.On {
		lags[i] = float64(b.Delivered - b.ActsTook)
	}
	return time.Duration(median(lags))
}

// eventKey names an event by its type and session, which is how the
// benchmark matches an act with its webhook.
func eventKey(typ, sessionID string) string { return typ + " " + sessionID }

// parseEvent returns the key and the timestamp of a webhook body:
// {"type", "timestamp", "data": {"session": {"id"}, ...}}.
func parseEvent(body []byte) (key string, stamp time.Time, err error) {
	var e struct {
		Type      string `json:"type"`
		Timestamp string `json:"timestamp"`
		Data      struct {
			Session struct {
				ID string `json:"id"`
			} `json:"session"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		return "", time.Time{}, fmt.Errorf("webhook body: %w", err)
	}
	if e.Type == "" || e.Data.Session.ID == "" {
		return "", time.Time{}, fmt.Errorf("webhook body without a type or a session id: %.200s", body)
	}
	stamp, err = time.Parse(time.RFC3339Nano, e.Timestamp)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("webhook timestamp: %w", err)
	}
	return eventKey(e.Type, e.Data.Session.ID), stamp, nil
}

// receipt is when the receiver had an event's body in hand, and the
// event's own timestamp.
type receipt struct{ at, stamp time.Time }

// matchLatencies pairs each act the client had answered (by event key,
// at the moment it had the answer) with its event's receipt: fromAnswer
// records receipt − answer (0 for an event that came first, which early
// counts), fromStamp receipt − the event's timestamp. missing counts acts
// whose event never came.
func matchLatencies(answered map[string]time.Time, got map[string]receipt, fromAnswer, fromStamp *histogram) (early, missing int) {
	for key, at := range answered {
		r, ok := got[key]
		if !ok {
			missing++
			continue
		}
		d := r.at.Sub(at)
		if d < 0 {
			early++
		}
		fromAnswer.Record(d)
		fromStamp.Record(r.at.Sub(r.stamp))
	}
	return early, missing
}

// hookReceiver is the app's webhook endpoint: it verifies each delivery
// with the Standard Webhooks library, as a receiver should, and answers
// 204. The time of receipt is taken once the body is read, before the
// verification, whose cost is the receiver's and delays only the answer.
type hookReceiver struct {
	URL string
	srv *http.Server
	wh  *standardwebhooks.Webhook

	conns  atomic.Int64
	notify chan struct{}

	mu           sync.Mutex
	got          map[string]receipt
	ids          map[string]bool
	deliveries   int
	dups         int
	refused      int
	firstRefused string
}

func startReceiver(secret string) (*hookReceiver, error) {
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &hookReceiver{
		URL: "http://" + ln.Addr().String() + "/hooks", wh: wh,
		notify: make(chan struct{}, 1), got: map[string]receipt{}, ids: map[string]bool{},
	}
	r.srv = &http.Server{
		Handler: r, ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				r.conns.Add(1)
			}
		},
	}
	go r.srv.Serve(ln)
	return r, nil
}

func (r *hookReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	at := time.Now()
	if err == nil {
		err = r.wh.Verify(body, req.Header)
	}
	key, stamp := "", time.Time{}
	if err == nil {
		key, stamp, err = parseEvent(body)
	}
	r.mu.Lock()
	r.deliveries++
	if err != nil {
		r.refused++
		if r.firstRefused == "" {
			r.firstRefused = err.Error()
		}
		r.mu.Unlock()
		http.Error(w, "refused", http.StatusBadRequest)
		return
	}
	id := req.Header.Get(standardwebhooks.HeaderWebhookID)
	if r.ids[id] {
		r.dups++
	}
	r.ids[id] = true
	if _, ok := r.got[key]; !ok {
		r.got[key] = receipt{at, stamp}
	}
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
	w.WriteHeader(http.StatusNoContent)
}

// wait returns once done (called under the lock) reports true, or fails
// after timeout.
func (r *hookReceiver) wait(timeout time.Duration, what string, done func() bool) error {
	deadline := time.After(timeout)
	for {
		r.mu.Lock()
		ok := done()
		r.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-r.notify:
		case <-deadline:
			return fmt.Errorf("outbox: %s not delivered within %v", what, timeout)
		}
	}
}

// take returns the receipts so far and forgets them.
func (r *hookReceiver) take() map[string]receipt {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got = map[string]receipt{}
	return got
}

func (r *hookReceiver) Stop() { r.srv.Close() }

// outboxClient makes the acts: sessions started and ended through the
// admin API, which applies every rule of a login but the password hash,
// so that the store's writes, not argon2id, set the pace.
type outboxClient struct {
	a   *api
	key string
}

const outboxUserAgent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"

// start starts a session of user and returns its id and the moment the
// client had the answer.
func (o *outboxClient) start(ctx context.Context, user string) (string, time.Time, error) {
	var g grant
	err := o.a.call(ctx, http.MethodPost, "/admin/v1/sessions", o.key, map[string]string{
		"user_id": user, "user_agent": outboxUserAgent, "ip_address": "203.0.113.7",
	}, &g, http.StatusCreated)
	return g.Session.ID, time.Now(), err
}

// end ends a session of user and returns the moment the client had the
// answer.
func (o *outboxClient) end(ctx context.Context, user, id string) (time.Time, error) {
	err := o.a.call(ctx, http.MethodDelete, "/admin/v1/users/"+user+"/sessions/"+id, o.key, nil, nil, http.StatusOK)
	return time.Now(), err
}

// pair starts and ends one session of user, and adds the moments the
// client had each answer to answered, by the key of its event.
func (o *outboxClient) pair(ctx context.Context, user string, answered map[string]time.Time) error {
	id, at, err := o.start(ctx, user)
	if err != nil {
		return err
	}
	answered[eventKey("session.created", id)] = at
	at, err = o.end(ctx, user, id)
	if err != nil {
		return err
	}
	answered[eventKey("session.ended", id)] = at
	return nil
}

// burst makes pairs start-and-end pairs with workers concurrent clients
// over users (each client keeps to its own users, in turn). It returns the
// moments the client had each answer, by event key, when the first act
// was sent and the last answered, and the acts that failed: a failed act
// is counted and expects no event, and its client goes on with its next
// pair.
func (o *outboxClient) burst(ctx context.Context, users []string, pairs, workers int) (answered map[string]time.Time, first, last time.Time, failed int, firstErr error) {
	var (
		next atomic.Int64
		mu   sync.Mutex
		wg   sync.WaitGroup
	)
	answered = make(map[string]time.Time, 2*pairs)
	first = time.Now()
	for w := range workers {
		wg.Go(func() {
			mine := map[string]time.Time{}
			var errs []error
			for k := 0; ctx.Err() == nil; k++ {
				i := int(next.Add(1)) - 1
				if i >= pairs {
					break
				}
				u := users[(w+k*workers)%len(users)]
				if err := o.pair(ctx, u, mine); err != nil {
					errs = append(errs, err)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			for k, v := range mine {
				answered[k] = v
			}
			failed += len(errs)
			if len(errs) > 0 && firstErr == nil {
				firstErr = errs[0]
			}
		})
	}
	wg.Wait()
	last = first
	for _, at := range answered {
		if at.After(last) {
			last = at
		}
	}
	if ctx.Err() != nil {
		return nil, first, last, failed, ctx.Err()
	}
	return answered, first, last, failed, firstErr
}

// received returns a condition for hookReceiver.wait: every event of
// keys has been received. It resumes where its last call stopped.
func (r *hookReceiver) received(keys []string) func() bool {
	i := 0
	return func() bool {
		for ; i < len(keys); i++ {
			if _, ok := r.got[keys[i]]; !ok {
				return false
			}
		}
		return true
	}
}

// outboxOn starts, on one store, an instance that delivers its webhooks
// to a receiver in this process and one without webhooks, and measures
// the delivery latency of acts made one at a time, then alternates bursts
// of acts on the two.
func outboxOn(ctx context.Context, c *config, store, bin string, dir func(string) string, r *redisServer) (*outboxResult, error) {
	env := func(name string) (map[string]string, string, error) {
		data := dir(name)
		key, err := adminkey.New(filepath.Join(data, "admin-keys"), "bench")
		if err != nil {
			return nil, "", err
		}
		e := map[string]string{"SESSIOND_DATA_DIR": data, "SESSIOND_USERS": "external"}
		if r != nil {
			e["SESSIOND_REDIS_URL"] = r.URL()
		}
		return e, key, nil
	}
	onEnv, onKey, err := env("outbox-on")
	if err != nil {
		return nil, err
	}
	// The secret is made where the server reads it by default, so that
	// the receiver knows it too.
	secret, err := webhook.LoadOrCreateSecret(filepath.Join(onEnv["SESSIOND_DATA_DIR"], "webhook-secret"))
	if err != nil {
		return nil, err
	}
	recv, err := startReceiver(secret)
	if err != nil {
		return nil, err
	}
	defer recv.Stop()
	onEnv["SESSIOND_WEBHOOK_URL"] = recv.URL
	on, err := startSessiond(bin, onEnv)
	if err != nil {
		return nil, err
	}
	defer on.Stop()
	offEnv, offKey, err := env("outbox-off")
	if err != nil {
		return nil, err
	}
	off, err := startSessiond(bin, offEnv)
	if err != nil {
		return nil, err
	}
	defer off.Stop()

	client := newHTTPClient(c.outboxClients)
	defer client.CloseIdleConnections()
	onC := &outboxClient{a: &api{base: on.AdminURL, c: client}, key: onKey}
	offC := &outboxClient{a: &api{base: off.AdminURL, c: client}, key: offKey}
	res := &outboxResult{Store: store, Concurrency: c.outboxClients, Users: c.outboxUsers}
	fail := func(in *instance, err error) error {
		return fmt.Errorf("outbox %s: %w\n%s", store, err, in.logTail())
	}

	// Warm-up: connections, prepared statements, the sender's connection
	// to the receiver; not counted.
	warm := map[string]time.Time{}
	for i := range 10 {
		if err := onC.pair(ctx, fmt.Sprintf("warm-%d", i), warm); err != nil {
			return nil, fail(on, err)
		}
		if err := offC.pair(ctx, fmt.Sprintf("warm-%d", i), map[string]time.Time{}); err != nil {
			return nil, fail(off, err)
		}
	}
	if err := recv.wait(30*time.Second, "the warm-up's events", func() bool { return len(recv.got) >= len(warm) }); err != nil {
		return nil, fail(on, err)
	}
	recv.take()

	// One act at a time: each waits for its event.
	status("outbox %s: %d acts one at a time", store, c.outboxSingle)
	created, ended := map[string]time.Time{}, map[string]time.Time{}
	act := func(to map[string]time.Time, key string, at time.Time, err error) error {
		if err != nil {
			return fail(on, err)
		}
		to[key] = at
		if err := recv.wait(30*time.Second, key, func() bool { _, ok := recv.got[key]; return ok }); err != nil {
			return fail(on, err)
		}
		return nil
	}
	for i := range c.outboxSingle / 2 {
		user := fmt.Sprintf("single-%d", i%c.outboxUsers)
		id, at, err := onC.start(ctx, user)
		if err := act(created, eventKey("session.created", id), at, err); err != nil {
			return nil, err
		}
		at, err = onC.end(ctx, user, id)
		if err := act(ended, eventKey("session.ended", id), at, err); err != nil {
			return nil, err
		}
	}
	got := recv.take()
	res.Created.add(created, got)
	res.Ended.add(ended, got)
	status("outbox %s: one at a time: p50 %v / %v, p99 %v / %v, max %v / %v after the answer (created / ended)", store,
		res.Created.Answer.Quantile(.5), res.Ended.Answer.Quantile(.5), res.Created.Answer.Quantile(.99),
		res.Ended.Answer.Quantile(.99), res.Created.Answer.Max(), res.Ended.Answer.Max())

	// Bursts, on and off alternated (on off, off on, ...) so that a drift
	// of the machine's speed weighs on both alike.
	users := func(kind string, round int) []string {
		us := make([]string, c.outboxUsers)
		for i := range us {
			us[i] = "b" + strconv.Itoa(round) + "-" + kind + "-" + strconv.Itoa(i)
		}
		return us
	}
	pairs := c.outboxActs / 2
	for round := range c.outboxRounds {
		kinds := []string{"on", "off"}
		if round%2 == 1 {
			kinds = []string{"off", "on"}
		}
		res.Order = append(res.Order, kinds[0]+" "+kinds[1])
		for _, kind := range kinds {
			oc := onC
			if kind == "off" {
				oc = offC
			}
			in := on
			if kind == "off" {
				in = off
			}
			redisPID := 0
			if r != nil {
				redisPID = r.cmd.Process.Pid
			}
			meter := cpuMeter{in.cmd.Process.Pid, os.Getpid(), redisPID}
			cpu0, err := meter.read()
			if err != nil {
				return nil, err
			}
			answered, first, last, failed, err := oc.burst(ctx, users(kind, round), pairs, c.outboxClients)
			if err != nil && failed == 0 {
				return nil, err // the run was interrupted
			}
			if err != nil {
				res.Failed += failed
				if res.FirstFailed == "" {
					res.FirstFailed = err.Error()
					res.FirstFailed += "; the server's first complaint: " + firstComplaint(in)
				}
				status("outbox %s: %d acts failed, the first: %v", store, failed, err)
			}
			b := outboxBurst{Acts: len(answered), ActsTook: last.Sub(first)}
			cpuTaken := func() error {
				cpu1, err := meter.read()
				if err != nil {
					return err
				}
				b.Server, b.Bench, b.Redis = cpu1[0]-cpu0[0], cpu1[1]-cpu0[1], cpu1[2]-cpu0[2]
				return nil
			}
			if kind == "off" {
				if err := cpuTaken(); err != nil {
					return nil, err
				}
				res.Off = append(res.Off, b)
				status("outbox %s: round %d, webhooks off: %d acts, %.0f acts/s", store, round+1, b.Acts, b.ActRate())
				continue
			}
			keys := slices.Collect(maps.Keys(answered))
			if err := recv.wait(2*time.Minute, fmt.Sprintf("%d events of a burst", len(keys)), recv.received(keys)); err != nil {
				return nil, fail(on, err)
			}
			if err := cpuTaken(); err != nil {
				return nil, err
			}
			got := recv.take()
			lastRecv := first
			for _, k := range keys {
				if at := got[k].at; at.After(lastRecv) {
					lastRecv = at
				}
			}
			res.Burst.add(answered, got)
			b.Delivered = lastRecv.Sub(first)
			res.On = append(res.On, b)
			status("outbox %s: round %d, webhooks on: %d acts, %.0f acts/s, %.0f events/s delivered", store, round+1, b.Acts, b.ActRate(), b.EventRate())
		}
	}
	recv.mu.Lock()
	res.Deliveries, res.Dups, res.Refused, res.FirstRefused = recv.deliveries, recv.dups, recv.refused, recv.firstRefused
	recv.mu.Unlock()
	res.Conns = recv.conns.Load()
	return res, nil
}

// firstComplaint returns the first WARN or ERROR line of an instance's
// log, or "none".
func firstComplaint(in *instance) string {
	f, err := os.Open(in.logPath)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if l := sc.Text(); strings.Contains(l, `"level":"ERROR"`) || strings.Contains(l, `"level":"WARN"`) {
			return l
		}
	}
	return "none"
}

// activityStoreOf says which store held the security activity of an
// instance on Redis: Redis once it has history keys (docs/design.md,
// "Redis keys"), else the data directory's SQLite file.
func activityStoreOf(r *redisServer) (string, error) {
	n, err := r.Do("EVAL", "return #redis.call('KEYS', ARGV[1])", "0", "sd:{u:*}:act")
	if err != nil {
		return "", err
	}
	if v, err := strconv.Atoi(n); err == nil && v > 0 {
		return "Redis", nil
	}
	return "SQLite (the data directory's file)", nil
}
