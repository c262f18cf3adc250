package pgtest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

// connect opens a connection to url, closed when the test ends.
func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// databaseExists asks the server of url whether database name exists.
func databaseExists(t *testing.T, url, name string) bool {
	t.Helper()
	var n int
	if err := connect(t, url).QueryRow(context.Background(), `SELECT count(*) FROM pg_database WHERE datname = $1`, name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func TestURLGivesEachTestAnEmptyDatabaseDroppedAtCleanup(t *testing.T) {
	ctx := context.Background()
	var names []string
	for i := range 2 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			url := URL(t)
			conn := connect(t, url)
			var name string
			var tables int
			if err := conn.QueryRow(ctx, `SELECT current_database(), (SELECT count(*) FROM pg_tables WHERE schemaname = 'public')`).Scan(&name, &tables); err != nil {
				t.Fatal(err)
			}
			if tables != 0 {
				t.Fatalf("new database %s: got %d tables, want 0", name, tables)
			}
			// Left behind on purpose: the next database must not see it,
			// and the drop must end this open connection.
			if _, err := conn.Exec(ctx, `CREATE TABLE leftover (x int)`); err != nil {
				t.Fatal(err)
			}
			names = append(names, name)
		})
	}
	if names[0] == names[1] {
		t.Fatalf("both tests got database %s", names[0])
	}
	admin := os.Getenv(EnvURL)
	if admin == "" {
		admin = current.url("postgres")
	}
	for _, name := range names {
		if databaseExists(t, admin, name) {
			t.Fatalf("database %s still exists after its test ended", name)
		}
	}
}

func TestWithDatabase(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"postgres://u:p@db:5432/admin?sslmode=disable", "postgres://u:p@db:5432/x?sslmode=disable"},
		{"postgresql://db", "postgresql://db/x"},
		{"postgres://db/admin?dbname=admin", "postgres://db/x?dbname=x"},
		{"host=db user=u dbname=admin", "host=db user=u dbname=admin dbname=x"},
	} {
		got, err := withDatabase(tt.in, "x")
		if err != nil || got != tt.want {
			t.Errorf("withDatabase(%q): got (%q, %v), want %q", tt.in, got, err, tt.want)
		}
	}
}

// TestServerDiesWithTheTestBinary starts a test binary that starts a
// server, kills the binary with SIGKILL (no cleanup runs), and checks that
// the server stops and its directory goes away anyway.
func TestServerDiesWithTheTestBinary(t *testing.T) {
	if os.Getenv("PGTEST_CHILD") == "1" {
		url := URL(t)
		fmt.Printf("child: %s %s\n", url, current.dir)
		time.Sleep(time.Minute)
		return
	}
	if os.Getenv(EnvURL) != "" {
		t.Skipf("%s is set: no throwaway server to check", EnvURL)
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestServerDiesWithTheTestBinary$", "-test.v")
	cmd.Env = append(os.Environ(), "PGTEST_CHILD=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var url, dir string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "child:" {
			url, dir = f[1], f[2]
			break
		}
	}
	if url == "" {
		cmd.Process.Kill()
		t.Fatalf("child test binary printed no URL (%v)", cmd.Wait())
	}
	connect(t, url) // the server answers
	cmd.Process.Kill()
	cmd.Wait()

	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, url)
		cancel()
		_, statErr := os.Stat(dir)
		if err != nil && os.IsNotExist(statErr) {
			return
		}
		if conn != nil {
			conn.Close(context.Background())
		}
		if time.Now().After(deadline) {
			t.Fatalf("20 s after the test binary died: connect error %v, directory %s stat error %v; want a refused connection and no directory", err, dir, statErr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
