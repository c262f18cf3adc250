// Package pgtest gives tests a fresh, empty PostgreSQL database each.
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		url := pgtest.URL(t) // postgres://...; dropped when t ends
//		...
//	}
//
// When SESSIOND_TEST_DATABASE_URL is set, each database is created on that
// server (its user needs CREATEDB). Otherwise the first call starts a
// throwaway server for the test binary: initdb and postgres from
// /usr/lib/postgresql/*/bin (or PATH), on a random loopback port, with its
// data and socket in a temporary directory, run as the unprivileged
// postgres user when the tests run as root (PostgreSQL refuses root).
//
// The server never outlives the test binary: a small watchdog shell owns
// it and waits on a pipe that only the test binary holds. When the binary
// exits, however it exits, the pipe closes and the watchdog stops the
// server (fast shutdown) and deletes its directory. Main stops it before
// the binary exits and waits for that; without Main the watchdog finishes
// the same work just after the exit.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sessiond/sessiond/internal/freeport"
)

// EnvURL names the variable that points the tests at an existing server.
const EnvURL = "SESSIOND_TEST_DATABASE_URL"

const installHint = "apt-get install -y postgresql (the README's test command installs it)"

// URL returns the URL of a new, empty database, dropped when t ends (after
// the cleanups t registers later, so stores opened on it close first).
func URL(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(EnvURL)
	if admin == "" {
		s, err := shared()
		if err != nil {
			t.Fatalf("pgtest: %v", err)
		}
		admin = s.url("postgres")
	}
	name := "sessiond_test_" + randomHex(8)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := adminExec(ctx, admin, `CREATE DATABASE `+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// FORCE ends connections a test left open.
		if err := adminExec(ctx, admin, `DROP DATABASE IF EXISTS `+name+` WITH (FORCE)`); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	u, err := withDatabase(admin, name)
	if err != nil {
		t.Fatalf("pgtest: %s: %v", EnvURL, err)
	}
	return u
}

// Main runs the tests and then stops the server that URL started, if any,
// before the binary exits. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if err := stop(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// adminExec runs one statement on the server of connURL.
func adminExec(ctx context.Context, connURL, sql string) error {
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// adminQueryRow runs a query of one value on the server of connURL.
func adminQueryRow(ctx context.Context, connURL, sql string, dst any) error {
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.QueryRow(ctx, sql).Scan(dst)
}

// withDatabase returns connURL with its database replaced by name. It
// takes URLs and keyword/value strings ("host=... dbname=...").
func withDatabase(connURL, name string) (string, error) {
	if strings.HasPrefix(connURL, "postgres://") || strings.HasPrefix(connURL, "postgresql://") {
		u, err := url.Parse(connURL)
		if err != nil {
			return "", fmt.Errorf("not a URL (%v)", err.(*url.Error).Err)
		}
		u.Path = "/" + name
		q := u.Query()
		if q.Has("dbname") {
			q.Set("dbname", name)
			u.RawQuery = q.Encode()
		}
		return u.String(), nil
	}
	// In a keyword/value string a later setting wins.
	return connURL + " dbname=" + name, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// server is the throwaway server of this test binary.
type server struct {
	port     int
	dir      string
	watchdog *exec.Cmd
	hold     *os.File // the write end of the watchdog's stdin
	exited   chan struct{}
}

var (
	mu      sync.Mutex
	current *server
	failure error
)

// shared starts the throwaway server on first use and returns it; a
// failure to start is reported to every later caller too.
func shared() (*server, error) {
	mu.Lock()
	defer mu.Unlock()
	if current == nil && failure == nil {
		current, failure = start()
	}
	return current, failure
}

// stop stops the throwaway server, if one runs, and waits until its
// directory is gone.
func stop() error {
	mu.Lock()
	defer mu.Unlock()
	if current == nil {
		return nil
	}
	s := current
	current = nil
	failure = fmt.Errorf("server stopped (pgtest.Main has returned)")
	return s.stop()
}

func (s *server) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// binDir finds the directory of initdb and postgres: the newest
// /usr/lib/postgresql/<version>/bin (Debian), else the PATH.
func binDir() (string, error) {
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(found, func(i, j int) bool { return pgVersion(found[i]) > pgVersion(found[j]) })
	for _, f := range found {
		if _, err := os.Stat(filepath.Join(filepath.Dir(f), "postgres")); err == nil {
			return filepath.Dir(f), nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	return "", fmt.Errorf("PostgreSQL server binaries (initdb, postgres) not found in /usr/lib/postgresql/*/bin or PATH: %s, or set %s", installHint, EnvURL)
}

// pgVersion reads the version directory of a Debian binary path.
func pgVersion(path string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(filepath.Dir(path))), 64)
	return v
}

// watchdogScript initializes and runs the server in the background, then
// waits for its standard input to close: that happens when the test binary
// stops the server or exits. It then stops the postmaster (fast shutdown:
// SIGINT; SIGKILL 20 s later), after letting it start if it was still
// starting, and deletes the directory. Arguments: the directory, the
// binaries' directory, the port, then the command prefix that runs a
// program as the server's user (empty when not root).
const watchdogScript = `
dir=$1 bin=$2 port=$3
shift 3
(
	"$@" "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 --no-sync --no-instructions >"$dir/initdb.log" 2>&1 &&
	"$@" "$bin/postgres" -D "$dir/data" -p "$port" -k "$dir" \
		-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
		-c max_connections=200 -c shared_buffers=32MB -c log_min_messages=warning >"$dir/postgres.log" 2>&1
	echo $? >"$dir/exited"
) </dev/null &
read -r _ || :
pidfile=$dir/data/postmaster.pid
n=0 i=0
until [ -e "$dir/exited" ] || [ "$i" -ge 2400 ]; do
	i=$((i + 1))
	if [ -s "$pidfile" ]; then
		n=$((n + 1))
		case $n in
		1) kill -INT "$(head -n 1 "$pidfile")" 2>/dev/null ;;
		400) kill -KILL "$(head -n 1 "$pidfile")" 2>/dev/null ;;
		esac
	fi
	sleep 0.05
done
wait
rm -rf "$dir"
`

// start starts a server, trying a few ports should one be taken meanwhile.
func start() (*server, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	var prefix []string
	var uid, gid = -1, -1
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, and there is no postgres user to run the server as: %s", installHint)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		runuser, err := exec.LookPath("runuser")
		if err != nil {
			return nil, fmt.Errorf("running as root needs runuser (util-linux) to start PostgreSQL as the postgres user: %v", err)
		}
		prefix = []string{runuser, "-u", "postgres", "--"}
	}
	for attempt := 1; ; attempt++ {
		s, err := startOnce(bin, prefix, uid, gid)
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "could not") {
			return s, err
		}
	}
}

func startOnce(bin string, prefix []string, uid, gid int) (*server, error) {
	dir, err := os.MkdirTemp("", "sessiond-pgtest-")
	if err != nil {
		return nil, err
	}
	if uid >= 0 {
		if err := os.Chown(dir, uid, gid); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	port, err := freeport.Port()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	args := append([]string{"-c", watchdogScript, "pgtest-watchdog", dir, bin, strconv.Itoa(port)}, prefix...)
	cmd := exec.Command("/bin/sh", args...)
	// Its own process group: a Ctrl-C aimed at go test reaches the test
	// binary, whose exit then tells the watchdog to stop the server.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r, w, err := os.Pipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cmd.Stdin = r
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start watchdog: %v", err)
	}
	r.Close()
	s := &server{port: port, dir: dir, watchdog: cmd, hold: w, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(s.exited) }()
	if err := s.waitReady(60 * time.Second); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// waitReady waits until the server accepts a connection, and fails early
// when it has exited.
func (s *server) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		if _, err := os.Stat(filepath.Join(s.dir, "exited")); err == nil {
			return fmt.Errorf("PostgreSQL did not start:\n%s%s", tail(filepath.Join(s.dir, "initdb.log")), tail(filepath.Join(s.dir, "postgres.log")))
		}
		select {
		case <-s.exited:
			return fmt.Errorf("the pgtest watchdog exited early")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		var dataDir string
		last = adminQueryRow(ctx, s.url("postgres"), "SHOW data_directory", &dataDir)
		cancel()
		// Another server may have taken the port first; ours then fails
		// to bind and exits.
		if last == nil && dataDir == filepath.Join(s.dir, "data") {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("PostgreSQL did not accept connections within %s: %v\n%s%s", limit, last,
		tail(filepath.Join(s.dir, "initdb.log")), tail(filepath.Join(s.dir, "postgres.log")))
}

// stop closes the watchdog's pipe and waits for it to stop the server and
// delete the directory.
func (s *server) stop() error {
	s.hold.Close()
	select {
	case <-s.exited:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("PostgreSQL in %s did not stop within 30 s", s.dir)
	}
}

// tail returns the end of a log file, for failure messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return filepath.Base(path) + ":\n" + string(b)
}
