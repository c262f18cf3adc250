package main

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// report is everything one run measured.
type report struct {
	Started      time.Time
	Machine      string
	RedisVersion string
	Load         [2]string
	Config       *config
	Remote       string

	Throughput       []*throughputResult
	Versus           *versusResult
	Revocation       []*revocationResult
	MemoryPerSession float64
	MemoryDetail     string
	Scale            *scaleResult
	Login            []*loginResult
	Outbox           []*outboxResult
	MicroRaw         string
	Benchstat        string
	Comparisons      []comparison
	// Took is how long each scenario ran, in run order.
	Took []took
}

type took struct {
	scenario string
	d        time.Duration
}

// comparison is one benchstat comparison within the run.
type comparison struct{ title, out string }

// Performance targets the report checks.
const (
	targetRatio      = 0.85
	targetVisibleP99 = 2 * time.Millisecond
	targetMemory     = 350
)

const notesStart, notesEnd = "<!-- notes: kept when the report is regenerated -->", "<!-- /notes -->"

// write writes the report (and its chart) to c.out, keeping the notes
// section of the file it replaces, or prints it.
func (r *report) write(c *config) error {
	r.Load[1] = loadAvg()
	if c.out == "" {
		fmt.Print(r.markdown("", ""))
		return nil
	}
	notes := ""
	if old, err := os.ReadFile(c.out); err == nil {
		if i := bytes.Index(old, []byte(notesStart)); i >= 0 {
			if j := bytes.Index(old[i:], []byte(notesEnd)); j >= 0 {
				notes = strings.TrimSpace(string(old[i+len(notesStart) : i+j]))
			}
		}
	}
	chart, err := r.chartSVG()
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	svgName := strings.TrimSuffix(filepath.Base(c.out), filepath.Ext(c.out)) + ".svg"
	svgPath := filepath.Join(filepath.Dir(c.out), svgName)
	if chart == nil {
		// Nothing this run measured is charted: a chart left by an earlier
		// run would describe figures the report no longer shows.
		svgName = ""
		if err := os.Remove(svgPath); err == nil {
			status("removed %s: this run measured nothing it charts", svgPath)
		} else if !os.IsNotExist(err) {
			return err
		}
	} else if err := os.WriteFile(svgPath, chart, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(c.out, []byte(r.markdown(svgName, notes)), 0o644); err != nil {
		return err
	}
	if svgName == "" {
		status("wrote %s", c.out)
	} else {
		status("wrote %s and %s", c.out, svgPath)
	}
	return nil
}

// command is the command line that ran the suite, as it would be typed
// from the module root.
func (r *report) command() string {
	s := "go run ./bench"
	for _, a := range r.Config.args {
		s += " " + shellQuote(a)
	}
	return s
}

// shellQuote quotes a for a POSIX shell when it needs quoting.
func shellQuote(a string) string {
	if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,@%+") == "" {
		return a
	}
	return "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
}

// metricsSource says where the login scenario read the servers' metrics.
func (r *report) metricsSource() string {
	if u := r.Config.metricsURL; u != "" {
		return "`" + u + "`"
	}
	return "`/metrics` on each server's own address"
}

// subset names the scenarios of the suite the run left out, "" when it
// ran them all.
func (r *report) subset() string {
	if r.Remote != "" {
		return ""
	}
	var left []string
	for _, s := range allScenarios {
		if !r.Config.scenarios[s] {
			left = append(left, s)
		}
	}
	return strings.Join(left, ", ")
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

func goVersion() string {
	if out, err := exec.Command("go", "env", "GOVERSION").Output(); err == nil {
		return strings.TrimSpace(string(out))
	}
	return runtime.Version()
}

func (r *report) markdown(svgName, notes string) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	c := r.Config
	p("# sessiond benchmarks\n\n")
	p("Written by `%s` (see the README) on %s; the run took %s.",
		r.command(), r.Started.UTC().Format("2006-01-02 15:04 MST"), time.Since(r.Started).Round(time.Second))
	if left := r.subset(); left != "" {
		p(" A subset of the suite: it did not run %s.", left)
	}
	p("\n\n")
	p("| | |\n|---|---|\n")
	p("| machine | %s |\n", r.Machine)
	p("| Go | %s |\n", goVersion())
	if r.RedisVersion != "" {
		p("| Redis | %s (redis-server started by the benchmark: no persistence, loopback) |\n", r.RedisVersion)
	}
	if r.Remote != "" {
		p("| server | %s |\n", r.Remote)
	}
	p("| load average (1, 5, 15 min) at start, at end | %s; %s |\n", r.Load[0], r.Load[1])
	if len(r.Took) > 0 {
		var parts []string
		for _, t := range r.Took {
			parts = append(parts, fmt.Sprintf("%s %s", t.scenario, t.d.Round(time.Second)))
		}
		p("| time per scenario | %s |\n", strings.Join(parts, ", "))
	}
	p("\n")
	p("The machine is shared with other work (builds, tests, browsers), so absolute rates and latencies move a lot\n")
	p("from one run to the next. Every comparison below is measured **within one run**, in alternating slices,\n")
	p("and the targets are about those ratios. The client, the servers and Redis share the same cores.\n\n")

	p("## Summary\n\n| figure | measured | target | |\n|---|---|---|---|\n")
	for _, t := range r.Throughput {
		p("| `GET /api/v1/me` ÷ `GET /.well-known/jwks.json` throughput, %s | %.3f | ≥ %.2f | %s |\n",
			t.Store, floor3(t.Ratio()), targetRatio, verdict(t.Ratio() >= targetRatio))
	}
	if v := r.Versus; v != nil {
		hs := v.row(peerHS256)
		for _, key := range binaryTargets {
			row := v.row(key)
			if row == nil {
				continue
			}
			goal := fmt.Sprintf("≥ %.2f", targetBinary)
			need := targetBinary
			if hs != nil {
				goal += fmt.Sprintf(" and ≥ HS256 peer (%.3f)", floor3(hs.Ratio()))
				need = max(need, hs.Ratio())
			}
			p("| %s ÷ bare handler | %.3f | %s | %s |\n", row.Name, floor3(row.Ratio()), goal, missedBy(row.Ratio(), need))
		}
		for _, key := range libraryTargets {
			if row := v.row(key); row != nil {
				p("| %s ÷ bare handler | %.3f | ≥ %.2f | %s |\n", row.Name, floor3(row.Ratio()), targetLibrary, missedBy(row.Ratio(), targetLibrary))
			}
		}
	}
	for _, v := range r.Revocation {
		if v.Strict {
			p("| revocation seen by the other instance, strict mode: p99 (%d trials) | %s | ≤ %s | %s |\n",
				v.Trials, fmtDur(v.Visible.Quantile(.99)), fmtDur(targetVisibleP99), verdict(v.Visible.Quantile(.99) <= targetVisibleP99))
			continue
		}
		p("| revocation seen by the other instance: p99 (%d trials) | %s | ≤ %s | %s |\n",
			v.Trials, fmtDur(v.Visible.Quantile(.99)), fmtDur(targetVisibleP99), verdict(v.Visible.Quantile(.99) <= targetVisibleP99))
		p("| requests accepted by the revoking instance after its DELETE returned | %d | 0 | %s |\n", v.StaleA, verdict(v.StaleA == 0))
		p("| requests accepted by the other instance after the DELETE returned | %d in %d of %d trials | (reported) | |\n",
			v.StaleB, v.StaleTrials, v.Trials)
	}
	if r.MemoryPerSession > 0 {
		p("| Redis memory per session (100,000 sessions, 5 per user) | %.0f bytes | ≤ %d bytes | %s |\n",
			r.MemoryPerSession, targetMemory, verdict(r.MemoryPerSession <= targetMemory))
	}
	if s := r.Scale; s != nil {
		p("| list %s sessions of one user, Redis: store / HTTP p50 | %s / %s | (reported) | |\n",
			thousands(s.ListSessions), fmtDur(s.StoreList.Quantile(.5)), fmtDur(s.HTTPList.Quantile(.5)))
		p("| revoke all %s sessions of one user, Redis: store / HTTP p50 | %s / %s | (reported) | |\n",
			thousands(s.RevokeSessions), fmtDur(s.StoreRevokeAll.Quantile(.5)), fmtDur(s.HTTPRevoke.Quantile(.5)))
	}
	for _, l := range r.Login {
		p("| login: server time beyond the argon2id hash, sessions in %s (share of the login in the server / as the client saw it) | %s (%.1f%% / %.1f%%) | (reported) | |\n",
			l.Store, fmtDur(l.ServerBeyond()), 100*l.ServerShare(), 100*l.ClientShare())
	}
	for _, o := range r.Outbox {
		p("| webhook received after the act's answer, one act at a time, %s: p50 / p99 (session.created) | %s / %s | (reported) | |\n",
			o.Store, fmtDur(o.Created.Answer.Quantile(.5)), fmtDur(o.Created.Answer.Quantile(.99)))
		p("| webhook outbox, %s: events delivered per second in a burst; acts per second with webhooks on ÷ off | %.0f; %.3f | (reported) | |\n",
			o.Store, median(eventRates(o.On)), floor3(o.Ratio()))
	}
	p("\n")
	if svgName != "" {
		p("![%s](%s)\n\n", r.chartAlt(), svgName)
		p("*The chart was written by the same command, `%s`.*\n\n", r.command())
	}

	if len(r.Throughput) > 0 {
		t0 := r.Throughput[0]
		p("## Throughput: `/me` against the JWKS\n\n")
		p("A closed loop of %d keep-alive clients alternates %s slices of `GET /api/v1/me` (a valid Bearer token: the\n", t0.Concurrency, t0.Slice)
		p("cached signature check, the session looked up in the store on every request, the user, the JSON answer) and of\n")
		p("the public `GET /.well-known/jwks.json` on the same server, %d slices of each in the order me, jwks, jwks, me, ...,\n", len(t0.MeRPS))
		p("after one unmeasured slice of each. The ratio is median(me slices) ÷ median(jwks slices). Each client signs in its\n")
		p("own device and builds its `Authorization` header once, as a real client keeps it. On Redis the measurement\n")
		p("starts 11 s after the logins, once the instance that wrote the sessions serves them from its client-side cache.\n\n")
		p("| store | /me req/s (median slice) | JWKS req/s | ratio | /me p50 / p99 | JWKS p50 / p99 | errors |\n|---|---|---|---|---|---|---|\n")
		for _, t := range r.Throughput {
			p("| %s | %.0f | %.0f | **%.3f** | %s / %s | %s / %s | %d |\n", t.Store, median(t.MeRPS), median(t.JWKSRPS), floor3(t.Ratio()),
				fmtDur(t.Me.Quantile(.5)), fmtDur(t.Me.Quantile(.99)), fmtDur(t.JWKS.Quantile(.5)), fmtDur(t.JWKS.Quantile(.99)), t.Errors)
		}
		p("\nRates of every slice, in run order (me | jwks):\n\n")
		for _, t := range r.Throughput {
			p("- %s: %s | %s\n", t.Store, rates(t.MeRPS), rates(t.JWKSRPS))
		}
		p("\n")
	}

	if v := r.Versus; v != nil {
		r.versusMarkdown(p, v)
	}

	if len(r.Revocation) > 0 {
		p("## Revocation visibility across instances\n\n")
		p("Two instances, A and B, share one Redis (sessions) and one data directory (users, keys). In each trial a new\n")
		p("session is used 3 times on each instance (so both hold it in their client-side cache), then %d clients ask B\n", c.hammers)
		p("and one asks A with its token in a loop, over kept-alive connections, while another session of the same user\n")
		p("revokes it with `DELETE /api/v1/sessions/{id}` on A. The time is measured from the moment the DELETE's answer was\n")
		p("read to the moment the first 401 from B was read (0 when B refused before the DELETE returned); it includes one\n")
		p("request's round trip to B, so it is an upper bound of the window.\n\n")
		p("| mode | trials | p50 | p90 | p99 | max | B accepted after the DELETE returned | A accepted after its DELETE returned |\n|---|---|---|---|---|---|---|---|\n")
		for _, v := range r.Revocation {
			mode := "client-side cache (default)"
			if v.Strict {
				mode = "strict (`SESSIOND_REDIS_STRICT=true`)"
			}
			p("| %s | %d | %s | %s | %s | %s | %d requests (of %d sent after it) in %d trials | %d |\n", mode, v.Trials,
				fmtDur(v.Visible.Quantile(.5)), fmtDur(v.Visible.Quantile(.9)), fmtDur(v.Visible.Quantile(.99)), fmtDur(v.Visible.Max()),
				v.StaleB, v.RequestsB, v.StaleTrials, v.StaleA)
		}
		p("\n")
	}

	if r.MemoryPerSession > 0 {
		p("## Redis memory\n\n")
		p("`go test ./redis -bench '^BenchmarkMemory$'` creates 100,000 sessions, 5 per user, with the fields docs/design.md lists under\n")
		p("\"Sessions and users\" ")
		p("(device id hash, device, class, mostly IPv4 addresses, usually a location, seldom a name; no raw User-Agent) in a\n")
		p("fresh redis-server, and divides the growth of `INFO memory` `used_memory` by the sessions: session hashes, the\n")
		p("per-user indexes and the keyspace's own overhead.\n\n")
		p("**%.0f bytes per session.**", r.MemoryPerSession)
		if r.MemoryDetail != "" {
			p(" %s.", r.MemoryDetail)
		}
		p("\n\n")
	}

	if s := r.Scale; s != nil {
		p("## Scale per user (Redis)\n\n")
		p("Sessions are written straight into Redis through the store (realistic fields, no device id), then read and ended through\n")
		p("the store (one script call per 1,000 sessions) and through the API of an instance with `SESSIOND_MAX_SESSIONS=10000`, with an access\n")
		p("token signed by the instance's key. The API's revoke-all also logs and publishes one event per ended session.\n\n")
		p("| operation | runs | store p50 | store max | HTTP p50 | HTTP max |\n|---|---|---|---|---|---|\n")
		p("| list %s sessions (`GET /api/v1/sessions`, %s of JSON) | %d | %s | %s | %s | %s |\n", thousands(s.ListSessions), bytesize(s.ListBytes),
			s.StoreList.Count(), fmtDur(s.StoreList.Quantile(.5)), fmtDur(s.StoreList.Max()), fmtDur(s.HTTPList.Quantile(.5)), fmtDur(s.HTTPList.Max()))
		p("| revoke all %s sessions (`DELETE /api/v1/sessions`) | %d | %s | %s | %s | %s |\n\n", thousands(s.RevokeSessions),
			s.StoreRevokeAll.Count(), fmtDur(s.StoreRevokeAll.Quantile(.5)), fmtDur(s.StoreRevokeAll.Max()), fmtDur(s.HTTPRevoke.Quantile(.5)), fmtDur(s.HTTPRevoke.Max()))
	}

	if len(r.Login) > 0 {
		p("## Login\n\n")
		p("%d logins over HTTP (JSON body, a new device each; users in SQLite, sessions and throttles in the store named),\n", r.Login[0].Logins)
		p("one at a time. The server measures both sides of each login itself: the request's duration in its request log\n")
		p("(from the request reaching the handlers to the answer written) and its password verification (argon2id m=19 MiB,\n")
		p("t=2, p=1; the `sessiond_password_verify_duration_seconds` histogram, read before and after the logins from\n")
		p("%s). What a login costs the server beyond the hash is mean login − mean verification, over\n", r.metricsSource())
		p("the same logins in the same process. The client's view adds the round trip and the wake-ups of a machine that\n")
		p("idled through the hash (measured in the second table): its share is (mean login as the client saw it − mean\n")
		p("verification) ÷ mean login. As a cross-process reference the benchmark also runs `sessiond.PasswordHasher.Verify`\n")
		p("alone, alternating with the logins, while the server idles: (median login − median hash alone) ÷ median login,\n")
		p("which also counts how differently two processes serve a fresh 19 MiB allocation. No target: the figures are reported.\n\n")
		p("| sessions in | login in the server, mean | verification in the server, mean | **server beyond the hash** | share of the server's login | login at the client p50 / mean / max | share at the client | hash alone p50 | beyond the hash alone |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, l := range r.Login {
			p("| %s | %s | %s | **%s** | %.1f%% | %s / %s / %s | %.1f%% | %s | %.1f%% |\n", l.Store, fmtDur(l.ServerLogin), fmtDur(l.ServerVerify),
				fmtDur(l.ServerBeyond()), 100*l.ServerShare(), fmtDur(l.Login.Quantile(.5)), fmtDur(l.LoginMean()), fmtDur(l.Login.Max()),
				100*l.ClientShare(), fmtDur(l.Verify.Quantile(.5)), 100*l.OverheadVsLocal())
		}
		p("\n")
		p("What a login waits for besides the hash, timed on this machine right after the logins: a round trip from the\n")
		p("benchmark to the server (`GET /healthz`) and to Redis (`PING`), and a 4 KiB write with `fdatasync` in the data\n")
		p("directory's file system (what a durable SQLite commit waits for), each back to back and after a pause as long as one\n")
		p("hash, as a login's calls after the hash are (medians of 40). A login makes one round trip from the client; with\n")
		p("Redis, one to Redis before the hash and three after it (the throttle recount, the session script, the event); on\n")
		p("SQLite the session insert waits for one fsync.\n\n")
		p("| sessions in | pause | HTTP round trip, back to back / after the pause | Redis round trip | fsync |\n|---|---|---|---|---|\n")
		for _, l := range r.Login {
			store := "—"
			if l.Idle.StoreBusy > 0 {
				store = fmtDur(l.Idle.StoreBusy) + " / " + fmtDur(l.Idle.StoreIdle)
			}
			p("| %s | %s | %s / %s | %s | %s / %s |\n", l.Store, fmtDur(l.Idle.Gap), fmtDur(l.Idle.HTTPBusy), fmtDur(l.Idle.HTTPIdle),
				store, fmtDur(l.Idle.FsyncBusy), fmtDur(l.Idle.FsyncIdle))
		}
		p("\n")
	}

	if len(r.Outbox) > 0 {
		r.outboxMarkdown(p, r.Outbox)
	}

	if r.Benchstat != "" {
		p("## Micro-benchmarks\n\n")
		p("`go test -bench` with `-count %d -benchtime %s`, summarized by `benchstat` (install it with\n", c.microCount, c.benchtime)
		p("`go install golang.org/x/perf/cmd/benchstat@latest`). Token verification cold (`VerifyUncached`) and cached;\n")
		p("`Authenticate` is the whole per-request check (cached token, session lookup) per store; `RefreshSession` includes\n")
		p("its throttles; `Create`, `Revoke` and `List1000` are the Lua scripts. SQLite writes wait for fsync\n")
		p("(`synchronous=FULL`).\n\n")
		p("```\n%s```\n\n", r.Benchstat)
		for _, c := range r.Comparisons {
			p("Compared within the run: %s.\n\n```\n%s```\n\n", c.title, c.out)
		}
	}

	p("## Notes\n\n%s\n", notesStart)
	if notes != "" {
		p("%s\n", notes)
	}
	p("%s\n", notesEnd)
	return b.String()
}

func rates(xs []float64) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprintf("%.0f", x)
	}
	return strings.Join(s, " ")
}

func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func bytesize(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
}

// floor3 rounds a ratio down to three decimals, so that a figure printed
// next to a "≥" target never reads as meeting it when it does not.
func floor3(x float64) float64 { return math.Floor(x*1000) / 1000 }

// missedBy is verdict with, for a missed target, how far the figure is
// from it.
func missedBy(x, need float64) string {
	if x >= need {
		return "met"
	}
	return fmt.Sprintf("**missed** by %.3f (%.0f%% short)", need-x, 100*(need-x)/need)
}

// versusMarkdown writes the peers scenario's section.
func (r *report) versusMarkdown(p func(string, ...any), v *versusResult) {
	p("## Throughput against a bare handler: peers, the library, the binary\n\n")
	p("Every row is a server of its own on loopback answering one protected request for a valid Bearer token, loaded by a\n")
	p("closed loop of %d keep-alive clients in %s slices. The peers are small handlers in `bench/peers.go`, each its own\n", v.Concurrency, v.Slice)
	p("process like the binary: a bare `net/http` handler that reads no token (the base of every ratio), golang-jwt\n")
	p("verifiers of an HS256 and of an EdDSA token that check no revocation, and HS256 plus a Redis `EXISTS` of the\n")
	p("token's session on every request (rueidis without client-side cache, on a redis-server of its own), the usual\n")
	p("design of revocable JWTs. sessiond's Go middleware (`http.Middleware`) guards the same bare handler, sessions in\n")
	p("SQLite or Redis. The binary runs with default settings (access log at INFO, metrics, request ids). Each of %d\n", v.Rounds)
	p("rounds runs every row once, in a new random order, with a slice of the bare handler before and after each:\n")
	p("a slice's ratio is its rate ÷ the mean of those two bare slices, and a row's ratio the median of its rounds.\n")
	p("The bare handler's own rate was %s req/s (median slice).\n\n", fmt.Sprintf("%.0f", median(v.Bare.RPS)))
	rows := append([]*versusRow{}, v.Rows...)
	slices.SortStableFunc(rows, func(a, b *versusRow) int { return cmp.Compare(b.Ratio(), a.Ratio()) })
	p("| what answers one protected request | **ratio to bare** (median) | lowest – highest round | req/s (median slice) | p50 / p99 | errors |\n|---|---|---|---|---|---|\n")
	p("| %s | **1.00** | | %.0f | %s / %s | %d |\n", v.Bare.Name, median(v.Bare.RPS), fmtDur(v.Bare.Latency.Quantile(.5)), fmtDur(v.Bare.Latency.Quantile(.99)), v.Bare.Errors)
	for _, row := range rows {
		lo, hi := slices.Min(row.Ratios), slices.Max(row.Ratios)
		p("| %s | **%.2f** | %.2f – %.2f | %.0f | %s / %s | %d |\n", row.Name, row.Ratio(), lo, hi, median(row.RPS),
			fmtDur(row.Latency.Quantile(.5)), fmtDur(row.Latency.Quantile(.99)), row.Errors)
	}
	p("\n")
	if info, warn := v.row("sqlite-me"), v.row("sqlite-warn-me"); info != nil && warn != nil {
		p("**The access log's cost.** The same `GET /api/v1/me` on SQLite with the default `SESSIOND_LOG_LEVEL=info` (one\n")
		p("buffered JSON line per request, written at least every 100 ms) and with `warn` (no request lines): %.3f against\n", info.Ratio())
		if info.Ratio() < warn.Ratio() {
			p("%.3f × bare, so the request lines cost %.1f%% of the throughput of `/me`.\n\n", warn.Ratio(), 100*(1-info.Ratio()/warn.Ratio()))
		} else {
			p("%.3f × bare: no cost of the request lines above this run's noise.\n\n", warn.Ratio())
		}
	}
	for _, pr := range v.Profiles {
		p("### CPU profile of the binary on %s\n\n", pr.Store)
		p("%d s of `go tool pprof -top` while the clients ask `GET /api/v1/me` and `GET /api/v1/auth/check` (half each),\n", pr.Seconds)
		p("taken from the admin listener (`SESSIOND_PPROF=true`) after the rounds. The load generator and the bare\n")
		p("handler share the cores, so the process's total is under 200%%. First the functions by their own time (the\n")
		p("system calls are the sockets' reads and writes), then by cumulative time the samples within sessiond's handler\n")
		p("chain, as shares of the whole process (`-cum -focus '%s' -hide '%s'`): what the\n", profileFocus, profileHide)
		p("chain costs beyond net/http's own reading, writing and scheduling.\n\n```\n%s\n```\n\n```\n%s\n```\n\n", pr.Top, pr.Cum)
	}
	for _, row := range append([]*versusRow{v.Bare}, v.Rows...) {
		if row.Errors > 0 {
			p("%s: %d errors, the first: `%s`.\n\n", row.Name, row.Errors, row.First)
		}
	}
}

// slowDelivery is the latency above which an event made one at a time
// is counted as having waited: the loop's wake-up delivers in about a
// millisecond, its poll once a second.
const slowDelivery = 50 * time.Millisecond

// outboxMarkdown writes the outbox scenario's section.
func (r *report) outboxMarkdown(p func(string, ...any), results []*outboxResult) {
	o0 := results[0]
	p("## Security events: the webhook outbox\n\n")
	p("Each act records its security events in the store's outbox before it is answered, and a loop in the instance\n")
	p("delivers them as signed webhooks (docs/design.md, \"Security activity\" and \"Delivering events\"). Per store the\n")
	p("benchmark starts two instances with `SESSIOND_USERS=external`, one with `SESSIOND_WEBHOOK_URL` and one without,\n")
	p("and makes acts through the admin API: `POST /admin/v1/sessions` (every rule of a login but the password hash,\n")
	p("which would otherwise set the pace) and `DELETE /admin/v1/users/{user}/sessions/{id}`. Each act records a history\n")
	p("entry on both instances and, with webhooks on, a `session.created` or `session.ended` message in the same write.\n")
	p("The receiver is a Go `net/http` server in the benchmark process on loopback: it verifies every delivery with the\n")
	p("Standard Webhooks Go library and answers 204. An event's time of receipt is taken once its body is read, before\n")
	p("the verification, whose cost is the receiver's: it delays only the answer, and so the next message of that user.\n")
	p("Events are matched with their acts by type and session id. The client, the receiver, the servers and Redis\n")
	p("share the cores.\n\n")
	p("**Latency.** %d acts one at a time on the instance with webhooks, each waiting for its event: a session started\n", o0.Created.Answer.Count()+o0.Ended.Answer.Count())
	p("for one of %d users in turn (the user's last event was delivered a while before), then the same session ended\n", o0.Users)
	p("as soon as its `session.created` arrived. The latency is the receipt minus the moment the client had the act's\n")
	p("answer; an event can arrive first (the loop wakes when the act is recorded, before the answer is written), and\n")
	p("counts as 0. The event's own `timestamp` is the time the server took for the act, in whole milliseconds, so\n")
	p("receipt − timestamp also covers the act's writes. The loop wakes at once for an act of its own instance, but\n")
	p("skips a user whose previous delivery is still under way (its removal, the next read of the queue, the lease's\n")
	p("release) and finds them again at its next poll, once a second: an event recorded in that moment waits up to a\n")
	p("second, which is what the `session.ended` made right after its `session.created` arrived shows. The bursts' row\n")
	p("is every event of the bursts below, which wait behind each other.\n\n")
	p("| store | outbox in | events | after the answer: p50 / p90 / p99 / max | after the event's timestamp: p50 / p99 | arrived before the answer | over %d ms |\n|---|---|---|---|---|---|---|\n", slowDelivery.Milliseconds())
	for _, o := range results {
		for _, row := range []struct {
			name string
			l    *outboxLatency
		}{{"one at a time, `session.created`", &o.Created}, {"one at a time, `session.ended` right after", &o.Ended}, {"bursts", &o.Burst}} {
			l := &row.l.Answer
			p("| %s | %s | %s: %d | %s / %s / %s / %s | %s / %s | %d | %d |\n", o.Store, o.ActivityIn, row.name, l.Count(),
				fmtDur(l.Quantile(.5)), fmtDur(l.Quantile(.9)), fmtDur(l.Quantile(.99)), fmtDur(l.Max()),
				fmtDur(row.l.Stamp.Quantile(.5)), fmtDur(row.l.Stamp.Quantile(.99)), row.l.Early, l.CountOver(slowDelivery))
		}
	}
	p("\n")
	p("**Throughput.** Bursts of %s acts (start and end of %s sessions) made as fast as %d clients can, over %d users\n",
		thousands(2*(r.Config.outboxActs/2)), thousands(r.Config.outboxActs/2), o0.Concurrency, o0.Users)
	p("(each client keeps to its own users), on the instance with webhooks and on the one without, alternated in\n")
	p("%d rounds (%s). With webhooks on, the burst ends when its last event is received, and the next starts only\n", len(o0.Order), strings.Join(o0.Order, ", "))
	p("then. Acts per second are from the first act sent to the last answered; events per second from the first act\n")
	p("sent to the last event received; the ratio is the median act rate with webhooks on ÷ the median with them off,\n")
	p("which is what recording the messages and delivering them alongside costs the acts. On SQLite every write is a\n")
	p("transaction of the file's one write connection, committed with an fsync (`synchronous=FULL`): a start writes the\n")
	p("session, the seen device and the record; an end the removal and the record; and each message delivered adds the\n")
	p("deliverer's lease and the message's removal (and a lease and its release per user and pass).\n\n")
	p("| store | outbox in | acts/s, webhooks on (median burst) | acts/s, off | **on ÷ off** | **events delivered/s** | last event after the last act (median) | connections the sender opened / deliveries | duplicates | refused | failed acts |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, o := range results {
		p("| %s | %s | %.0f | %.0f | **%.3f** | **%.0f** | %s | %d / %d | %d | %d | %d |\n", o.Store, o.ActivityIn,
			median(actRates(o.On)), median(actRates(o.Off)), floor3(o.Ratio()), median(eventRates(o.On)), fmtDur(o.Lag()),
			o.Conns, o.Deliveries, o.Dups, o.Refused, o.Failed)
	}
	p("\nWhere the time went: the CPU time of each process over the bursts (read from `/proc/<pid>/stat` before and\n")
	p("after each; with webhooks on until the last event arrived, which includes the deliveries), per act, and as cores\n")
	p("kept busy over the bursts' span. The machine has %d.\n\n", runtime.NumCPU())
	p("| store | webhooks | sessiond CPU per act | sessiond, cores busy | benchmark (clients, receiver) CPU per act | redis-server CPU per act | all, cores busy |\n|---|---|---|---|---|---|---|\n")
	for _, o := range results {
		for _, row := range []struct {
			name   string
			bursts []outboxBurst
		}{{"on", o.On}, {"off", o.Off}} {
			all := func(b outboxBurst) time.Duration { return b.Server + b.Bench + b.Redis }
			redis := "—"
			if o.Store == "Redis" {
				redis = fmtDur(cpuPer(row.bursts, func(b outboxBurst) time.Duration { return b.Redis }))
			}
			p("| %s | %s | %s | %.2f | %s | %s | %.2f |\n", o.Store, row.name,
				fmtDur(cpuPer(row.bursts, func(b outboxBurst) time.Duration { return b.Server })),
				busy(row.bursts, func(b outboxBurst) time.Duration { return b.Server }),
				fmtDur(cpuPer(row.bursts, func(b outboxBurst) time.Duration { return b.Bench })),
				redis, busy(row.bursts, all))
		}
	}
	p("\nRates of every burst, in run order (acts/s on | events/s on | acts/s off):\n\n")
	for _, o := range results {
		p("- %s: %s | %s | %s\n", o.Store, rates(actRates(o.On)), rates(eventRates(o.On)), rates(actRates(o.Off)))
	}
	p("\n")
	for _, o := range results {
		if o.Failed > 0 {
			p("%s: %d acts of the bursts failed (counted in no rate's acts, and expecting no event), the first: `%s`.\n\n", o.Store, o.Failed, o.FirstFailed)
		}
		if o.Refused > 0 {
			p("%s: %d deliveries refused, the first: `%s`.\n\n", o.Store, o.Refused, o.FirstRefused)
		}
	}
}
