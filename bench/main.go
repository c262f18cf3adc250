// Command bench is sessiond's load generator and benchmark suite. Run from
// the module root:
//
//	go run ./bench -out docs/benchmarks.md
//
// It builds the sessiond binary of the working tree, starts its own
// instances (SQLite, and Redis through redis-server processes it starts on
// random loopback ports), runs every scenario and writes the
// report and its chart. Against a server that is already running, it
// measures throughput only:
//
//	go run ./bench -url http://localhost:8080 -c 32 -slice 2s
//
// Every figure that is compared with another (me/jwks, login/hash) is
// measured in the same run, in alternating slices, because shared machines
// are noisy: absolute rates mean little, ratios travel.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// config is the suite's settings (the flags).
type config struct {
	// args are the command-line arguments the suite ran with, to say in
	// the report and the chart which command wrote them.
	args        []string
	out         string
	url         string
	metricsURL  string
	scenarios   map[string]bool
	concurrency int
	slice       time.Duration
	rounds      int
	trials      int
	strict      int
	hammers     int
	logins      int
	list        int
	revoke      int
	scaleReps   int
	microCount  int
	benchtime   string
	settle      time.Duration
	peerRounds  int
	profile     time.Duration
	// The outbox scenario's acts (outbox.go).
	outboxActs    int
	outboxRounds  int
	outboxSingle  int
	outboxClients int
	outboxUsers   int
}

var allScenarios = []string{"throughput", "peers", "revocation", "memory", "scale", "login", "outbox", "micro"}

func main() {
	var c config
	var scen string
	flag.StringVar(&c.out, "out", "", "write the Markdown report here (the chart goes next to it); default: standard output only")
	flag.StringVar(&c.url, "url", "", "measure a running server at this base URL (throughput only) instead of starting servers")
	flag.StringVar(&scen, "scenarios", strings.Join(allScenarios, ","), "comma-separated scenarios to run")
	flag.IntVar(&c.concurrency, "c", 16, "concurrent clients of the throughput scenario (closed loop)")
	flag.DurationVar(&c.slice, "slice", 500*time.Millisecond, "length of one throughput slice")
	flag.IntVar(&c.rounds, "rounds", 12, "throughput: slices of each endpoint, alternated")
	flag.IntVar(&c.trials, "trials", 1000, "revocation trials")
	flag.IntVar(&c.strict, "strict-trials", 200, "revocation trials in strict mode (0: skip)")
	flag.IntVar(&c.hammers, "hammers", 2, "revocation: concurrent clients asking B")
	flag.IntVar(&c.logins, "logins", 60, "login: logins (and as many bare hash verifications)")
	flag.StringVar(&c.metricsURL, "metrics-url", "", "login: the Prometheus metrics of the servers the benchmark starts, read for their password verification time; default: /metrics on each server's admin listener")
	flag.IntVar(&c.list, "list", 1000, "scale: sessions of the listed user")
	flag.IntVar(&c.revoke, "revoke", 10000, "scale: sessions of the user who signs out every other device")
	flag.IntVar(&c.scaleReps, "scale-reps", 3, "scale: repetitions of revoke-all (list runs 3x as many)")
	flag.IntVar(&c.microCount, "count", 6, "micro-benchmarks: -count")
	flag.StringVar(&c.benchtime, "benchtime", "500ms", "micro-benchmarks: -benchtime")
	flag.DurationVar(&c.settle, "settle", 0, "with -url: wait this long between the logins and the measurement (11s for a Redis-backed server, whose instance reads the sessions it just wrote from Redis for 5 to 10 s)")
	flag.IntVar(&c.peerRounds, "peer-rounds", 8, "peers: rounds; each runs one slice of every peer and of the binary, each between two slices of the bare handler")
	flag.DurationVar(&c.profile, "profile", 10*time.Second, "peers: after the rounds, a CPU profile of this length of the binary on SQLite and on Redis under a /me and /auth/check load (0: none)")
	flag.IntVar(&c.outboxActs, "outbox-acts", 2000, "outbox: acts of each burst (session starts and ends, half each)")
	flag.IntVar(&c.outboxRounds, "outbox-rounds", 2, "outbox: rounds; each runs one burst with webhooks on and one with them off")
	flag.IntVar(&c.outboxSingle, "outbox-single", 200, "outbox: acts made one at a time, each waiting for its webhook")
	flag.IntVar(&c.outboxClients, "outbox-c", 16, "outbox: concurrent clients of a burst")
	flag.IntVar(&c.outboxUsers, "outbox-users", 32, "outbox: users of a burst")
	// The peers run as this program started again (peers.go).
	peerKind := flag.String("serve-peer", "", "internal: serve one peer of the peers scenario")
	peerDir := flag.String("peer-dir", "", "internal: the peer's data directory")
	peerRedis := flag.String("peer-redis", "", "internal: the peer's Redis URL")
	flag.Parse()
	if *peerKind != "" {
		if err := servePeer(*peerKind, *peerDir, *peerRedis, c.concurrency); err != nil {
			fmt.Fprintln(os.Stderr, "bench peer:", err)
			os.Exit(1)
		}
		return
	}
	c.args = os.Args[1:]
	c.scenarios = map[string]bool{}
	for _, s := range strings.Split(scen, ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.scenarios[s] = true
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, &c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c *config) error {
	rep := &report{Started: time.Now(), Machine: machine(), Load: [2]string{loadAvg(), ""}, Config: c}
	if c.url != "" {
		if err := runRemote(ctx, c, rep); err != nil {
			return err
		}
		return rep.write(c)
	}
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "sessiond-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	status("building ./cmd/sessiond")
	bin, err := buildSessiond(root, tmp)
	if err != nil {
		return err
	}
	n := 0
	dir := func(name string) string {
		n++
		d := filepath.Join(tmp, fmt.Sprintf("%02d-%s", n, name))
		os.MkdirAll(d, 0o700)
		return d
	}
	redisVersion := ""
	startRedisFor := func(name string) (*redisServer, error) {
		r, err := startRedis(dir(name))
		if err == nil && redisVersion == "" {
			redisVersion, _ = r.info("server", "redis_version")
		}
		return r, err
	}

	if c.scenarios["throughput"] {
		t0 := time.Now()
		// SQLite: the default, nothing else to run.
		in, err := startSessiond(bin, map[string]string{"SESSIOND_DATA_DIR": dir("sqlite")})
		if err != nil {
			return err
		}
		tp, err := throughputOn(ctx, c, "SQLite", in.URL, false)
		in.Stop()
		if err != nil {
			return err
		}
		rep.Throughput = append(rep.Throughput, tp)

		r, err := startRedisFor("redis-throughput")
		if err != nil {
			return err
		}
		in, err = startSessiond(bin, map[string]string{"SESSIOND_DATA_DIR": dir("redis"), "SESSIOND_REDIS_URL": r.URL()})
		if err != nil {
			r.Stop()
			return err
		}
		tp, err = throughputOn(ctx, c, "Redis", in.URL, true)
		in.Stop()
		r.Stop()
		if err != nil {
			return err
		}
		rep.Throughput = append(rep.Throughput, tp)
		rep.Took = append(rep.Took, took{"throughput", time.Since(t0)})
	}

	if c.scenarios["peers"] {
		t0 := time.Now()
		v, err := runVersus(ctx, c, bin, dir, startRedisFor)
		if err != nil {
			return err
		}
		rep.Versus = v
		rep.Took = append(rep.Took, took{"peers", time.Since(t0)})
	}

	if c.scenarios["revocation"] {
		t0 := time.Now()
		for _, strict := range []bool{false, true} {
			trials := c.trials
			if strict {
				trials = c.strict
			}
			if trials <= 0 {
				continue
			}
			res, err := revocationOn(ctx, c, bin, dir, startRedisFor, trials, strict)
			if err != nil {
				return err
			}
			rep.Revocation = append(rep.Revocation, res)
		}
		rep.Took = append(rep.Took, took{"revocation", time.Since(t0)})
	}

	if c.scenarios["memory"] {
		t0 := time.Now()
		v, detail, err := runMemory(root)
		if err != nil {
			return err
		}
		rep.MemoryPerSession, rep.MemoryDetail = v, detail
		status("memory: %.0f bytes per session", v)
		rep.Took = append(rep.Took, took{"memory", time.Since(t0)})
	}

	if c.scenarios["scale"] {
		t0 := time.Now()
		r, err := startRedisFor("redis-scale")
		if err != nil {
			return err
		}
		in, err := startSessiond(bin, map[string]string{
			"SESSIOND_DATA_DIR": dir("scale"), "SESSIOND_REDIS_URL": r.URL(), "SESSIOND_MAX_SESSIONS": "10000",
		})
		if err != nil {
			r.Stop()
			return err
		}
		rep.Scale, err = runScale(ctx, in, r.URL(), c.list, c.revoke, c.scaleReps)
		in.Stop()
		r.Stop()
		if err != nil {
			return err
		}
		rep.Took = append(rep.Took, took{"scale", time.Since(t0)})
	}

	if c.scenarios["login"] {
		t0 := time.Now()
		for _, store := range []string{"SQLite", "Redis"} {
			data := dir("login")
			env := map[string]string{"SESSIOND_DATA_DIR": data}
			var r *redisServer
			redisAddr := ""
			if store == "Redis" {
				if r, err = startRedisFor("redis-login"); err != nil {
					return err
				}
				env["SESSIOND_REDIS_URL"] = r.URL()
				redisAddr = r.Addr
			}
			in, err := startSessiond(bin, env)
			if err != nil {
				if r != nil {
					r.Stop()
				}
				return err
			}
			l, err := runLogin(ctx, in, c.metricsURL, c.logins, redisAddr, data)
			in.Stop()
			if r != nil {
				r.Stop()
			}
			if err != nil {
				return err
			}
			l.Store = store
			rep.Login = append(rep.Login, l)
		}
		rep.Took = append(rep.Took, took{"login", time.Since(t0)})
	}

	if c.scenarios["outbox"] {
		t0 := time.Now()
		for _, store := range []string{"SQLite", "Redis"} {
			var r *redisServer
			if store == "Redis" {
				if r, err = startRedisFor("redis-outbox"); err != nil {
					return err
				}
			}
			o, err := outboxOn(ctx, c, store, bin, dir, r)
			if err == nil {
				o.ActivityIn = "SQLite"
				if r != nil {
					o.ActivityIn, err = activityStoreOf(r)
				}
			}
			if r != nil {
				r.Stop()
			}
			if err != nil {
				return err
			}
			rep.Outbox = append(rep.Outbox, o)
		}
		rep.Took = append(rep.Took, took{"outbox", time.Since(t0)})
	}

	if c.scenarios["micro"] {
		t0 := time.Now()
		raw, err := runMicro(root, c.microCount, c.benchtime)
		if err != nil {
			return err
		}
		rep.MicroRaw = raw
		// benchstat names its columns after the file.
		if err := os.WriteFile(filepath.Join(tmp, "this-run"), []byte(raw), 0o644); err != nil {
			return err
		}
		rep.Benchstat, err = benchstat(tmp, "this-run")
		if err != nil {
			status("%v", err)
			rep.Benchstat = "(" + err.Error() + ")\n\n" + raw
		} else {
			for _, c := range microComparisons {
				out, err := benchstat(tmp, "-filter", ".name:"+c.name, "-col", c.col, "this-run")
				if err != nil {
					return err
				}
				rep.Comparisons = append(rep.Comparisons, comparison{c.title, out})
			}
		}
		rep.Took = append(rep.Took, took{"micro", time.Since(t0)})
	}
	rep.RedisVersion = redisVersion
	return rep.write(c)
}

// throughputOn signs in the clients' devices on base and runs the
// throughput scenario.
func throughputOn(ctx context.Context, c *config, store, base string, redis bool) (*throughputResult, error) {
	a := &api{base: base, c: newHTTPClient(4)}
	prefix := fmt.Sprintf("bench%x-", rand.Uint32())
	status("throughput %s: signing in %d devices", store, c.concurrency)
	tokens, err := prepareTokens(ctx, a, prefix, c.concurrency)
	if err != nil {
		return nil, err
	}
	if c.url != "" && c.settle > 0 {
		status("throughput %s: waiting %v after the logins (-settle)", store, c.settle)
		select {
		case <-time.After(c.settle):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if redis {
		// The instance that wrote a session reads it from Redis, not its
		// cache, until the invalidation of its own write has surely
		// arrived (5 to 10 s): measure the steady state after that.
		status("throughput %s: waiting 11 s for the login writes to age out of the store's recent-write record", store)
		select {
		case <-time.After(11 * time.Second):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return runThroughput(ctx, store, base, tokens, c.concurrency, c.rounds, c.slice)
}

// revocationOn starts Redis and two instances sharing it and runs the
// revocation scenario.
func revocationOn(ctx context.Context, c *config, bin string, dir func(string) string, startRedisFor func(string) (*redisServer, error), trials int, strict bool) (*revocationResult, error) {
	r, err := startRedisFor("redis-revocation")
	if err != nil {
		return nil, err
	}
	defer r.Stop()
	env := map[string]string{"SESSIOND_DATA_DIR": dir("revocation"), "SESSIOND_REDIS_URL": r.URL()}
	if strict {
		env["SESSIOND_REDIS_STRICT"] = "true"
	}
	a, err := startSessiond(bin, env)
	if err != nil {
		return nil, err
	}
	defer a.Stop()
	b, err := startSessiond(bin, env)
	if err != nil {
		return nil, err
	}
	defer b.Stop()
	return runRevocation(ctx, a, b, trials, c.hammers, strict)
}

// runRemote measures throughput on a server that is already running.
func runRemote(ctx context.Context, c *config, rep *report) error {
	base := strings.TrimRight(c.url, "/")
	tp, err := throughputOn(ctx, c, "remote", base, false)
	if err != nil {
		return err
	}
	rep.Throughput = append(rep.Throughput, tp)
	rep.Remote = base
	return nil
}

// machine describes the CPU and cores.
func machine() string {
	model := runtime.GOARCH
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d cores (%s/%s)", model, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
}

// loadAvg is the 1, 5 and 15 minute load average, a hint of how busy the
// shared machine was.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
