package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/sessiondtest"
	"github.com/sessiond/sessiond/postgres/pgtest"
)

// toolHash runs a hashing tool with pw on standard input and returns the
// hash it printed; a missing tool fails the test with how to install it.
func toolHash(t *testing.T, pkg, pw string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(pw)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v; install Debian's %s (apt-get install %s), or run scripts/test.sh, which does", name, err, pkg, pkg)
	}
	s := strings.TrimSpace(string(out))
	if _, h, ok := strings.Cut(s, ":"); ok { // htpasswd: user:hash
		s = h
	}
	return s
}

// jsonLine is one line of an import file.
func jsonLine(t *testing.T, v map[string]any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestUserImport(t *testing.T) {
	testUserImport(t, nil)
}

func TestUserImportPostgres(t *testing.T) {
	testUserImport(t, map[string]string{"SESSIOND_DATABASE_URL": pgtest.URL(t)})
}

// testUserImport imports a file of good and bad lines through the command,
// checks its report and exit status, then signs the imported users in
// through the running server.
func testUserImport(t *testing.T, env map[string]string) {
	const pwAnn, pwBob = "ann's old password", "bob's old pässword"
	annHash := toolHash(t, "apache2-utils", pwAnn+"\n", "htpasswd", "-niB", "-C", "4", "user")
	bobHash := toolHash(t, "argon2", pwBob, "argon2", "saltsaltsalt", "-id", "-e", "-t", "1", "-k", "1024")
	const costly = "pbkdf2_sha256$100000000$saltysalt$99ggbgKNtrAJVzDvzOq6QnDgJ/pPhc3yEqaigo5HKqk="
	const shaped = "$2b$12$abcdefghijklmnopqrstuu7Pp5bq1pQfVdUtt6L4pNzXMHm4QwJZm"
	lines := []string{
		jsonLine(t, map[string]any{"username": "ann", "email": "ann@example.com", "password_hash": annHash, "created_at": "2019-01-02T03:04:05.678Z"}),
		"",
		jsonLine(t, map[string]any{"username": "bob", "email": "bob@example.com", "password_hash": bobHash}),
		jsonLine(t, map[string]any{"username": "ANN", "email": "ann2@example.com", "password_hash": shaped}),
		jsonLine(t, map[string]any{"username": "carl", "email": "Bob@Example.com", "password_hash": shaped}),
		jsonLine(t, map[string]any{"username": "dave", "email": "dave@example.com", "password_hash": "sha1$abc$0123456789abcdef"}),
		jsonLine(t, map[string]any{"username": "eve", "email": "eve@example.com", "password_hash": costly}),
		`{"username": "frank", "email": `,
		jsonLine(t, map[string]any{"username": "frank", "email": "frank@example.com"}),
		jsonLine(t, map[string]any{"username": "gus", "email": "gus@example.com", "password_hash": shaped, "is_staff": true}),
		jsonLine(t, map[string]any{"username": "bad name", "email": "bad@example.com", "password_hash": shaped}),
		jsonLine(t, map[string]any{"username": "hal", "email": "hal@example.com", "password_hash": shaped, "created_at": "yesterday"}),
		`{"username": "jim", "email": "jim\ud800@example.com", "password_hash": "` + shaped + `"}`,
		`{"username": "kim", "username": "kat", "email": "kim@example.com", "password_hash": "` + shaped + `"}`,
		`{"USERNAME": "lou", "email": "lou@example.com", "password_hash": "` + shaped + `"}`,
		"{\"username\": \"max\", \"email\": \"m\xffx@example.com\", \"password_hash\": \"" + shaped + "\"}",
		jsonLine(t, map[string]any{"username": "ivy", "email": "ivy@example.com", "password_hash": shaped}), // no line end
	}
	ts := startServer(t, env)
	runImport := func(stdin string, args ...string) adminResult {
		t.Helper()
		getenv := func(k string) string {
			if k == "SESSIOND_DATA_DIR" {
				return ts.DataDir
			}
			return env[k]
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var out, errb bytes.Buffer
		err := run(ctx, append([]string{"user", "import"}, args...), getenv, strings.NewReader(stdin), &out, &errb)
		return adminResult{out.String(), errb.String(), err}
	}
	r := runImport(strings.Join(lines, "\n"), "-")
	if r.Err == nil || !strings.Contains(r.Err.Error(), "11 lines refused") {
		t.Fatalf("import: got error %v, want 11 lines refused\nstdout: %s\nstderr: %s", r.Err, r.Stdout, r.Stderr)
	}
	want := []string{
		`line 4: skipped: username "ANN" is already taken`,
		`line 5: skipped: email "Bob@Example.com" is already registered`,
		`line 6: refused: password_hash: is a "sha1$" hash, not an accepted format`,
		`line 7: refused: password_hash: has 100000000 PBKDF2 iterations, above the limit of 2000000`,
		`line 8: refused: malformed JSON`,
		`line 9: refused: password_hash is missing`,
		`line 10: refused: unknown field "is_staff"`,
		`line 11: refused: username: may contain only`,
		`line 12: refused: created_at: must be an RFC 3339 time`,
		`line 13: refused: holds a lone UTF-16 surrogate escape`,
		`line 14: refused: username appears twice`,
		`line 15: refused: unknown field "USERNAME"`,
		`line 16: refused: is not valid UTF-8`,
		"imported 3, skipped 2, refused 11\n",
	}
	for _, w := range want {
		if !strings.Contains(r.Stdout, w) {
			t.Errorf("import report: want a line with %q, got:\n%s", w, r.Stdout)
		}
	}
	if !strings.HasSuffix(r.Stdout, want[len(want)-1]) {
		t.Errorf("import report: want the counts last, got:\n%s", r.Stdout)
	}
	for _, secret := range []string{costly, annHash, bobHash, "saltysalt"} {
		if strings.Contains(r.Stdout+r.Stderr, secret) {
			t.Errorf("import output holds a hash or its salt %q:\n%s\n%s", secret, r.Stdout, r.Stderr)
		}
	}

	c := sessiondtest.NewClient(t, ts.URL)
	for _, u := range []struct{ name, pw string }{{"ann", pwAnn}, {"bob@example.com", pwBob}} {
		loginStatus(c, u.name, u.pw+"x").Expect(t, http.StatusUnauthorized)
		loginStatus(c, u.name, u.pw).Expect(t, http.StatusOK)
		loginStatus(c, u.name, u.pw).Expect(t, http.StatusOK) // with the upgraded hash
	}
	var g sessiondtest.Grant
	loginStatus(c, "ann", pwAnn).Expect(t, http.StatusOK).Decode(t, &g)
	var me struct {
		User sessiondtest.User `json:"user"`
	}
	c.Do("GET", "/api/v1/me", g.AccessToken, nil).Expect(t, http.StatusOK).Decode(t, &me)
	if me.User.CreatedAt != "2019-01-02T03:04:05.678Z" || me.User.Email != "ann@example.com" {
		t.Errorf("ann after import: got %+v, want the imported email and created_at 2019-01-02T03:04:05.678Z", me.User)
	}

	// Again, from a file: everyone is there, and what was refused still is.
	path := filepath.Join(t.TempDir(), "users.jsonl")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runImport("", path)
	if r.Err == nil || !strings.Contains(r.Stdout, "imported 0, skipped 5, refused 11\n") {
		t.Fatalf("second import: got %v, want imported 0, skipped 5, refused 11:\n%s", r.Err, r.Stdout)
	}
	// A file of good lines only exits 0.
	good := jsonLine(t, map[string]any{"username": "jo", "email": "jo@example.com", "password_hash": shaped}) + "\n"
	if r := runImport(good, "-"); r.Err != nil || !strings.Contains(r.Stdout, "imported 1, skipped 0, refused 0") {
		t.Fatalf("import of good lines: got %v, want success:\n%s\n%s", r.Err, r.Stdout, r.Stderr)
	}
	if r := runImport("", filepath.Join(t.TempDir(), "missing.jsonl")); r.Err == nil {
		t.Fatalf("import of a missing file: got success, want an error")
	}
}

// TestUserImportLongLine: a line past the limit is refused by number, and
// the lines after it are read.
func TestUserImportLongLine(t *testing.T) {
	ts := startServer(t, nil)
	const shaped = "$2b$12$abcdefghijklmnopqrstuu7Pp5bq1pQfVdUtt6L4pNzXMHm4QwJZm"
	in := `{"username": "` + strings.Repeat("x", maxImportLine) + `"}` + "\n" +
		jsonLine(t, map[string]any{"username": "kim", "email": "kim@example.com", "password_hash": shaped}) + "\n"
	r := runAdmin(t, ts, in, "user", "import", "-")
	if r.Err == nil || !strings.Contains(r.Stdout, "line 1: refused: longer than 65536 bytes") || !strings.Contains(r.Stdout, "imported 1, skipped 0, refused 1") {
		t.Fatalf("import with a long line: got %v:\n%s", r.Err, r.Stdout)
	}
}

// writeImportFile writes n users, in a mix of the imported formats (shapes
// only: an import checks hashes, it does not run them), to a file.
func writeImportFile(tb testing.TB, n int) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "users.jsonl")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	w := bufio.NewWriter(f)
	hashes := []string{
		"pbkdf2_sha256$260000$g9saEwuxFTYor0lt2Z2oKa$99ggbgKNtrAJVzDvzOq6QnDgJ/pPhc3yEqaigo5HKqk=",
		"$2y$10$oyxbWe9OFz664L/4alXRm.p66UPF41ysyCq01XGx73yJgjny6wqgC",
		"argon2$argon2id$v=19$m=102400,t=2,p=8$aFdJMllXZFNXQmlmYjhVTE5nZHc0NQ$jZaT6fMJM4nyyu95LqZXqg",
		"bcrypt_sha256$$2b$12$BVded/IpR8NdnRkaOeHLKu0apIN5x3qM6YHAsGg.rNnygi8HlJWfG",
		"$argon2id$v=19$m=4096,t=2,p=2$c2FsdHNhbHRzYWx0$LN9ZSNc0diEeoVHw/NKkaAe3nqlj6kqbe0F7A+UsplE",
	}
	for i := range n {
		fmt.Fprintf(w, `{"username":"user%d","email":"user%d@example.com","password_hash":%q,"created_at":"2020-01-02T03:04:05Z"}`+"\n", i, i, hashes[i%len(hashes)])
	}
	if err := w.Flush(); err != nil {
		tb.Fatal(err)
	}
	f.Close()
	return path
}

// BenchmarkUserImport100k imports a generated file of 100,000 users into a
// fresh data directory per run and reports users per second:
// go test -run '^$' -bench UserImport100k -benchtime 1x ./cmd/sessiond
func BenchmarkUserImport100k(b *testing.B) { benchUserImport(b, false) }

// BenchmarkUserImport100kPostgres is the same into a fresh PostgreSQL
// database.
func BenchmarkUserImport100kPostgres(b *testing.B) { benchUserImport(b, true) }

func benchUserImport(b *testing.B, pg bool) {
	const n = 100_000
	path := writeImportFile(b, n)
	for b.Loop() {
		b.StopTimer()
		env := map[string]string{"SESSIOND_DATA_DIR": b.TempDir()}
		if pg {
			env["SESSIOND_DATABASE_URL"] = pgtest.URL(b)
		}
		getenv := func(k string) string { return env[k] }
		var out, errb bytes.Buffer
		b.StartTimer()
		start := time.Now()
		if err := run(context.Background(), []string{"user", "import", path}, getenv, strings.NewReader(""), &out, &errb); err != nil {
			b.Fatalf("import: %v\n%s\n%s", err, out.String(), errb.String())
		}
		d := time.Since(start)
		if !strings.Contains(out.String(), fmt.Sprintf("imported %d, skipped 0, refused 0", n)) {
			b.Fatalf("import: got %s", out.String())
		}
		b.ReportMetric(float64(n)/d.Seconds(), "users/s")
	}
}
