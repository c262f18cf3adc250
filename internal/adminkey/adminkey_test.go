package adminkey_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/internal/adminkey"
)

// keysFile returns the path of a keys file, not yet created, in a fresh
// directory.
func keysFile(t *testing.T) string {
	t.Helper()
	return filepath.Join(t.TempDir(), "admin-keys")
}

func newKey(t *testing.T, path, name string) string {
	t.Helper()
	key, err := adminkey.New(path, name)
	if err != nil {
		t.Fatalf("New(%q): %v", name, err)
	}
	return key
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func hashOf(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

var keyShape = regexp.MustCompile(`^sdk_[A-Za-z0-9_-]{43}$`)

func TestNewKeyShape(t *testing.T) {
	path := keysFile(t)
	a, b := newKey(t, path, "a"), newKey(t, path, "b")
	for _, k := range []string{a, b} {
		if !keyShape.MatchString(k) {
			t.Fatalf("got key %q, want sdk_ and 43 base64url characters", k)
		}
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(k, "sdk_"))
		if err != nil || len(raw) != 32 {
			t.Fatalf("key %q: got %d bytes (%v), want 32", k, len(raw), err)
		}
	}
	if a == b {
		t.Fatal("two keys are equal")
	}
}

// TestFileHoldsOnlyHashes: the file has one NAME SHA256-HEX line per key
// and never the key itself.
func TestFileHoldsOnlyHashes(t *testing.T) {
	path := keysFile(t)
	app, ops := newKey(t, path, "app"), newKey(t, path, "ops.backup-2")
	got := readFile(t, path)
	want := "app " + hashOf(app) + "\nops.backup-2 " + hashOf(ops) + "\n"
	if got != want {
		t.Fatalf("got file %q, want %q", got, want)
	}
	for _, k := range []string{app, ops} {
		if strings.Contains(got, k) || strings.Contains(got, strings.TrimPrefix(k, "sdk_")) {
			t.Fatalf("file holds the key %q", k)
		}
	}
	list, err := adminkey.List(path)
	if err != nil {
		t.Fatal(err)
	}
	wantList := []adminkey.Entry{{Name: "app", Hash: hashOf(app)}, {Name: "ops.backup-2", Hash: hashOf(ops)}}
	if len(list) != 2 || list[0] != wantList[0] || list[1] != wantList[1] {
		t.Fatalf("List: got %+v, want %+v", list, wantList)
	}
	// Rewrites leave no temporary file behind.
	if err := adminkey.Revoke(path, "app"); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		t.Fatalf("directory holds %d files after a rewrite, want only the keys file", len(ents))
	}
}

func TestNames(t *testing.T) {
	path := keysFile(t)
	for _, name := range []string{"a", "A.b_c-9", "-leading-dash", strings.Repeat("x", 64)} {
		newKey(t, path, name)
	}
	before := readFile(t, path)
	for _, name := range []string{"", strings.Repeat("x", 65), "two words", "a/b", "a:b", "#comment", "café", "tab\there", "line\nbreak", "a\x00"} {
		_, err := adminkey.New(path, name)
		if !errors.Is(err, adminkey.ErrInvalidName) {
			t.Errorf("New(%q): got %v, want ErrInvalidName", name, err)
		}
	}
	_, err := adminkey.New(path, "a")
	if !errors.Is(err, adminkey.ErrNameTaken) || !strings.Contains(err.Error(), `"a"`) {
		t.Errorf("New of a name in use: got %v, want ErrNameTaken naming it", err)
	}
	if got := readFile(t, path); got != before {
		t.Fatalf("refused names changed the file:\n%s\nwant:\n%s", got, before)
	}
}

func TestRevoke(t *testing.T) {
	path := keysFile(t)
	if err := adminkey.Revoke(path, "app"); !errors.Is(err, adminkey.ErrNotFound) {
		t.Fatalf("Revoke in a missing file: got %v, want ErrNotFound", err)
	}
	app, ops := newKey(t, path, "app"), newKey(t, path, "ops")
	if err := adminkey.Revoke(path, "app"); err != nil {
		t.Fatal(err)
	}
	if got, want := readFile(t, path), "ops "+hashOf(ops)+"\n"; got != want {
		t.Fatalf("after revoke: got file %q, want %q", got, want)
	}
	if err := adminkey.Revoke(path, "app"); !errors.Is(err, adminkey.ErrNotFound) || !strings.Contains(err.Error(), `"app"`) {
		t.Fatalf("second revoke: got %v, want ErrNotFound naming app", err)
	}
	s, err := adminkey.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if name, ok := s.Lookup(app); ok {
		t.Fatalf("revoked key: got %q, want refused", name)
	}
	if name, ok := s.Lookup(ops); !ok || name != "ops" {
		t.Fatalf("kept key: got %q, %v; want ops", name, ok)
	}
	// The name is free again, for a new key.
	app2 := newKey(t, path, "app")
	if app2 == app {
		t.Fatal("a new key under a revoked name is the old key")
	}
}

func TestLookup(t *testing.T) {
	path := keysFile(t)
	app, ops := newKey(t, path, "app"), newKey(t, path, "ops")
	s, err := adminkey.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 2 {
		t.Fatalf("Len: got %d, want 2", s.Len())
	}
	for key, want := range map[string]string{app: "app", ops: "ops"} {
		if name, ok := s.Lookup(key); !ok || name != want {
			t.Errorf("Lookup of %s's key: got %q, %v; want %s", want, name, ok, want)
		}
	}
	// One character changed, keeping the shape.
	last := app[len(app)-1]
	flip := byte('A')
	if last == 'A' {
		flip = 'B'
	}
	other, err := adminkey.New(keysFile(t), "elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{
		other,                           // a well-formed key of another file
		app[:len(app)-1] + string(flip), // one character off
		app + "\n", " " + app, strings.ToUpper(app), strings.TrimPrefix(app, "sdk_"),
		app[:len(app)-1],     // one character short
		"", "sdk_", "Bearer", // other shapes
		hashOf(app), // the stored hash is not a key
		strings.Repeat("x", 10_000),
	} {
		if name, ok := s.Lookup(key); ok {
			t.Errorf("Lookup(%.60q): got %q, want refused", key, name)
		}
	}
}

func TestMissingFile(t *testing.T) {
	path := keysFile(t)
	s, err := adminkey.Open(path, nil)
	if err != nil {
		t.Fatalf("Open of a missing file: got %v, want no keys and no error", err)
	}
	if s.Len() != 0 {
		t.Fatalf("Len: got %d, want 0", s.Len())
	}
	if _, ok := s.Lookup(""); ok {
		t.Fatal("the empty key is accepted by an empty set")
	}
	list, err := adminkey.List(path)
	if err != nil || len(list) != 0 {
		t.Fatalf("List of a missing file: got %v, %v; want none", list, err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("reading created the file: %v", err)
	}
	// A directory that does not exist is an error for New, not a guess.
	if _, err := adminkey.New(filepath.Join(path, "sub", "keys"), "app"); err == nil {
		t.Fatal("New in a missing directory: got success")
	}
}

// TestUnreadableFileAtOpen: a keys file that exists but cannot be read is
// an error at start, naming the path, not an empty set.
func TestUnreadableFileAtOpen(t *testing.T) {
	dir := t.TempDir() // a directory cannot be read as a file, even by root
	_, err := adminkey.Open(dir, nil)
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Open of a directory: got %v, want an error naming it", err)
	}
	if _, err := adminkey.List(dir); err == nil {
		t.Fatal("List of a directory: got success")
	}
}

// TestMalformedLines: comments, blank lines and CRLF line ends are fine;
// a line that is not NAME SHA256-HEX is never a key, is logged by line
// number only, and the other lines still work. The commands refuse to
// rewrite such a file.
func TestMalformedLines(t *testing.T) {
	path := keysFile(t)
	app := newKey(t, path, "app")
	ops := newKey(t, keysFile(t), "ops")
	pasted := newKey(t, keysFile(t), "pasted")
	content := "# admin keys of the staging deployment\n" +
		"\n" +
		"app " + hashOf(app) + "\r\n" + // line 3: fine
		"pasted " + pasted + "\n" + // line 4: the key where its hash belongs
		"three fields " + hashOf(pasted) + "\n" + // line 5
		"bad/name " + hashOf(pasted) + "\n" + // line 6
		"app " + hashOf(pasted) + "\n" + // line 7: a name again
		"again " + hashOf(app) + "\n" + // line 8: a hash again
		"short " + hashOf(pasted)[:63] + "\n" + // line 9
		"   ops   " + strings.ToUpper(hashOf(ops)) + "   \n" // line 10: fine
	writeFile(t, path, content)
	logs := &logBuffer{}
	s, err := adminkey.Open(path, logs.logger())
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 2 {
		t.Fatalf("Len: got %d, want 2 (lines 3 and 10)", s.Len())
	}
	for key, want := range map[string]string{app: "app", ops: "ops"} {
		if name, ok := s.Lookup(key); !ok || name != want {
			t.Errorf("Lookup of %s's key: got %q, %v; want %s", want, name, ok, want)
		}
	}
	for _, key := range []string{pasted, hashOf(pasted), strings.TrimPrefix(pasted, "sdk_")} {
		if name, ok := s.Lookup(key); ok {
			t.Errorf("Lookup(%q) after a malformed line: got %q, want refused", key, name)
		}
	}
	got := logs.String()
	for line := 4; line <= 9; line++ {
		if !regexp.MustCompile(`"level":"WARN".*"line":` + string(rune('0'+line)) + `\b`).MatchString(got) {
			t.Errorf("no warning for line %d in the log:\n%s", line, got)
		}
	}
	for _, secret := range []string{pasted, strings.TrimPrefix(pasted, "sdk_"), hashOf(pasted), "three", "bad/name"} {
		if strings.Contains(got, secret) {
			t.Errorf("the log shows %q from a malformed line:\n%s", secret, got)
		}
	}

	if _, err := adminkey.List(path); err == nil || !strings.Contains(err.Error(), "line 4") || strings.Contains(err.Error(), pasted) {
		t.Fatalf("List: got %v, want an error naming line 4 without its content", err)
	}
	if _, err := adminkey.New(path, "new"); err == nil {
		t.Fatal("New over a malformed file: got success")
	}
	if err := adminkey.Revoke(path, "app"); err == nil {
		t.Fatal("Revoke over a malformed file: got success")
	}
	if readFile(t, path) != content {
		t.Fatal("a refused command changed the file")
	}
}
