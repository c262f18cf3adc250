package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// microBenchmarks are the go test benchmarks the report runs: package and
// -bench pattern. Each runs -count times, and benchstat summarizes them
// with their spread.
var microBenchmarks = []struct{ pkg, pattern string }{
	// Token verification: cold (signature) and cached.
	{".", "^Benchmark(VerifyUncached|VerifyCached|VerifyCachedParallel|Issue|RefreshSession|Authenticate)$"},
	// Store validation (Get) and the Lua scripts on Redis.
	{"./redis", "^Benchmark(GetCached|GetCachedParallel|GetStrict|Create|Revoke|List1000|RevokeReplicaAcks)$"},
	// Store validation (Get) on SQLite.
	{"./sqlite", "^Benchmark(Get.*)$"},
	// The /me answer: encoding/json against appending; the handler chains
	// of /me and of the JWKS without a network.
	{"./http", "^Benchmark(WriteMe|Handler)$"},
}

// microComparisons are benchstat comparisons within the run: columns are
// the values of a sub-benchmark key, the first one the base.
var microComparisons = []struct{ title, name, col string }{
	{"Authenticate (cached token, session check) per store", "Authenticate", "/store"},
	{"RefreshSession per store", "RefreshSession", "/store"},
	{"Revoke without and with a replica's acknowledgement (SESSIOND_REDIS_REPLICA_ACKS)", "RevokeReplicaAcks", "/acks"},
	{"the /me answer, encoding/json against appending (http.writeMe)", "WriteMe", "/impl"},
	{"the server's handler chain (no network) of /me against the JWKS", "Handler", "/path"},
}

// runMicro runs the micro-benchmarks count times each and returns their
// raw output (the input of benchstat).
func runMicro(root string, count int, benchtime string) (string, error) {
	var all bytes.Buffer
	for _, m := range microBenchmarks {
		status("micro-benchmarks: go test %s -bench '%s' -count %d", m.pkg, m.pattern, count)
		cmd := exec.Command("go", "test", m.pkg, "-run", "^$", "-bench", m.pattern,
			"-benchmem", "-count", strconv.Itoa(count), "-benchtime", benchtime, "-timeout", "20m")
		cmd.Dir = root
		var out bytes.Buffer
		cmd.Stdout = &out
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("go test %s -bench: %w\n%s", m.pkg, err, out.String())
		}
		all.Write(benchLines(out.Bytes()))
	}
	return all.String(), nil
}

// benchLines keeps what benchstat reads: the configuration lines and the
// benchmark results.
func benchLines(out []byte) []byte {
	var b bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "Benchmark") || strings.HasPrefix(l, "goos:") || strings.HasPrefix(l, "goarch:") ||
			strings.HasPrefix(l, "pkg:") || strings.HasPrefix(l, "cpu:") {
			b.WriteString(l)
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// benchstatPath finds benchstat in PATH or in $(go env GOPATH)/bin.
func benchstatPath() string {
	if p, err := exec.LookPath("benchstat"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "benchstat")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// benchstat runs benchstat with args in dir; an error when it is not
// installed.
func benchstat(dir string, args ...string) (string, error) {
	p := benchstatPath()
	if p == "" {
		return "", fmt.Errorf("benchstat not found; install it with: go install golang.org/x/perf/cmd/benchstat@latest")
	}
	cmd := exec.Command(p, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("benchstat: %w: %s", err, out)
	}
	return string(out), nil
}

var memoryMetric = regexp.MustCompile(`([0-9.]+) bytes/session`)

// runMemory runs redis's BenchmarkMemory once: 100,000 sessions, 5 per
// user, with realistic fields, in a fresh redis-server, measured with
// INFO memory's used_memory.
func runMemory(root string) (float64, string, error) {
	status("memory: go test ./redis -bench '^BenchmarkMemory$' (100,000 sessions)")
	cmd := exec.Command("go", "test", "./redis", "-run", "^$", "-bench", "^BenchmarkMemory$", "-benchtime", "1x", "-v", "-timeout", "10m")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, "", fmt.Errorf("BenchmarkMemory: %w\n%s", err, out)
	}
	m := memoryMetric.FindSubmatch(out)
	if m == nil {
		return 0, "", fmt.Errorf("BenchmarkMemory reported no bytes/session:\n%s", out)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	var detail []string
	for _, l := range strings.Split(string(out), "\n") {
		if i := strings.Index(l, "MEMORY USAGE:"); i >= 0 {
			detail = append(detail, strings.TrimSpace(l[i:]))
		}
	}
	return v, strings.Join(detail, "; "), nil
}
