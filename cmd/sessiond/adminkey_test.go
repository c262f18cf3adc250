package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/adminkey"
)

var adminKeyShape = regexp.MustCompile(`^sdk_[A-Za-z0-9_-]{43}$`)

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// newAdminKey runs "sessiond admin-key new name" and returns the key it
// printed.
func newAdminKey(t *testing.T, env map[string]string, name string, flags ...string) string {
	t.Helper()
	out, errOut, err := runCLI(t, env, append([]string{"admin-key", "new", name}, flags...)...)
	if err != nil {
		t.Fatalf("admin-key new %s: %v\nstderr: %s", name, err, errOut)
	}
	key, ok := strings.CutSuffix(out, "\n")
	if !ok || !adminKeyShape.MatchString(key) {
		t.Fatalf("admin-key new %s: got stdout %q, want the key alone on one line", name, out)
	}
	if !strings.Contains(errOut, "not shown again") || strings.Contains(errOut, key) {
		t.Fatalf("admin-key new %s: got stderr %q, want a note without the key", name, errOut)
	}
	return key
}

// TestAdminKeyCommands: new, list and revoke work on the keys file in the
// data directory, without the stores, and the key is printed once and
// never kept.
func TestAdminKeyCommands(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	env := map[string]string{
		"SESSIOND_DATA_DIR": filepath.Join(dir, "data"), // not there yet
		// A Redis that is not there: a command that opened the stores
		// would fail.
		"SESSIOND_REDIS_URL": "redis://" + closed,
	}
	path := filepath.Join(dir, "data", "admin-keys")

	// A running server's set, following the file.
	keys, err := adminkey.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	keys.Interval = 5 * time.Millisecond
	watchDone := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { keys.Watch(ctx); close(watchDone) }()
	t.Cleanup(func() { cancel(); <-watchDone })

	app := newAdminKey(t, env, "app")
	ops := newAdminKey(t, env, "ops")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), "app "+sha256Hex(app)+"\nops "+sha256Hex(ops)+"\n"; got != want {
		t.Fatalf("keys file: got %q, want %q", got, want)
	}
	for _, k := range []string{app, ops} {
		if strings.Contains(string(b), strings.TrimPrefix(k, "sdk_")) {
			t.Fatal("the keys file holds a key")
		}
	}
	// Nothing but the keys file: no store was opened.
	ents, err := os.ReadDir(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		t.Fatalf("data directory holds %d files, want only admin-keys", len(ents))
	}
	waitFor(t, "the server accepts the new key", func() bool { name, ok := keys.Lookup(app); return ok && name == "app" })

	out, errOut, err := runCLI(t, env, "admin-key", "list")
	if err != nil {
		t.Fatalf("list: %v\n%s", err, errOut)
	}
	if want := "app  " + sha256Hex(app)[:12] + "\nops  " + sha256Hex(ops)[:12] + "\n"; out != want {
		t.Fatalf("list: got %q, want %q", out, want)
	}
	out, errOut, err = runCLI(t, env, "admin-key", "list", "--json")
	if err != nil {
		t.Fatalf("list --json: %v\n%s", err, errOut)
	}
	var list []map[string]string
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("list --json: %v in %q", err, out)
	}
	wantList := []map[string]string{{"name": "app", "hash_prefix": sha256Hex(app)[:12]}, {"name": "ops", "hash_prefix": sha256Hex(ops)[:12]}}
	if len(list) != 2 || len(list[0]) != 2 || list[0]["name"] != "app" || list[0]["hash_prefix"] != wantList[0]["hash_prefix"] || list[1]["name"] != "ops" || list[1]["hash_prefix"] != wantList[1]["hash_prefix"] {
		t.Fatalf("list --json: got %v, want %v", list, wantList)
	}

	// A name in use is refused, and the file keeps its keys.
	out, _, err = runCLI(t, env, "admin-key", "new", "app")
	if err == nil || errors.Is(err, errUsage) || out != "" || !strings.Contains(err.Error(), `"app"`) {
		t.Fatalf("new of a name in use: got %v, stdout %q; want an error naming it and no key", err, out)
	}

	out, errOut, err = runCLI(t, env, "admin-key", "revoke", "app")
	if err != nil || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke: got %v, %q (%s)", err, out, errOut)
	}
	waitFor(t, "the server refuses the revoked key", func() bool { _, ok := keys.Lookup(app); return !ok })
	if _, ok := keys.Lookup(ops); !ok {
		t.Fatal("the server refuses the key that was not revoked")
	}
	out, _, _ = runCLI(t, env, "admin-key", "list", "--json")
	if want := `[{"name":"ops","hash_prefix":"` + sha256Hex(ops)[:12] + `"}]` + "\n"; out != want {
		t.Fatalf("list --json after revoke: got %q, want %q", out, want)
	}
	if _, _, err := runCLI(t, env, "admin-key", "revoke", "app"); err == nil || errors.Is(err, errUsage) || !strings.Contains(err.Error(), `no key named "app"`) {
		t.Fatalf("second revoke: got %v, want an error saying there is no such key", err)
	}
	if _, _, err := runCLI(t, env, "admin-key", "revoke", "ops"); err != nil {
		t.Fatal(err)
	}
	out, errOut, err = runCLI(t, env, "admin-key", "list")
	if err != nil || out != "" || !strings.Contains(errOut, "no admin keys") {
		t.Fatalf("list of no keys: got %v, stdout %q, stderr %q", err, out, errOut)
	}
	if out, _, err := runCLI(t, env, "admin-key", "list", "--json"); err != nil || out != "[]\n" {
		t.Fatalf("list --json of no keys: got %v, %q; want []", err, out)
	}
}

// waitFor fails the test unless cond holds within 5 s, the time the
// server is given to notice a change to the keys file.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5 s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestAdminKeysFileSetting: SESSIOND_ADMIN_KEYS_FILE and its flag name the
// file, the flag winning.
func TestAdminKeysFileSetting(t *testing.T) {
	dir := t.TempDir()
	fromEnv, fromFlag := filepath.Join(dir, "env-keys"), filepath.Join(dir, "flag-keys")
	env := map[string]string{"SESSIOND_DATA_DIR": filepath.Join(dir, "data"), "SESSIOND_ADMIN_KEYS_FILE": fromEnv}
	a := newAdminKey(t, env, "a")
	// Flags may come before or after the name.
	b := newAdminKey(t, env, "b", "--admin-keys-file", fromFlag)
	for path, key := range map[string]string{fromEnv: a, fromFlag: b} {
		list, err := adminkey.List(path)
		if err != nil || len(list) != 1 || list[0].Hash != sha256Hex(key) {
			t.Fatalf("%s: got %v, %v; want the one key made for it", path, list, err)
		}
	}
	out, _, err := runCLI(t, env, "admin-key", "list", "--admin-keys-file", fromFlag)
	if err != nil || !strings.HasPrefix(out, "b  ") {
		t.Fatalf("list --admin-keys-file: got %v, %q; want key b", err, out)
	}
	if _, err := os.Stat(env["SESSIOND_DATA_DIR"]); !os.IsNotExist(err) {
		t.Fatalf("data directory with a keys file elsewhere: got %v, want none", err)
	}
}

// TestAdminKeyUsageErrors: a bad name or argument count is a usage error
// (exit status 1, usage on standard error) that leaves the file as it was.
func TestAdminKeyUsageErrors(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"SESSIOND_DATA_DIR": dir}
	newAdminKey(t, env, "app")
	path := filepath.Join(dir, "admin-keys")
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"admin-key", "new", "two words"},
		{"admin-key", "new", strings.Repeat("x", 65)},
		{"admin-key", "new", "a/b"},
		{"admin-key", "new", ""},
		{"admin-key", "revoke", "a:b"},
		{"admin-key", "new"},
		{"admin-key", "new", "a", "b"},
		{"admin-key", "revoke"},
		{"admin-key", "list", "app"},
		{"admin-key", "rotate", "app"},
		{"admin-key"},
		{"admin-key", "new", "--json", "app"}, // --json is list's alone
	} {
		out, errOut, err := runCLI(t, env, args...)
		if !errors.Is(err, errUsage) || out != "" || !strings.Contains(errOut, "Usage") {
			t.Errorf("%q: got %v, stdout %q, stderr %q; want a usage error on stderr", args, err, out, errOut)
		}
	}
	_, errOut, _ := runCLI(t, env, "admin-key", "new", "two words")
	if !strings.Contains(errOut, `invalid admin key name "two words"`) {
		t.Errorf("bad name: got stderr %q, want it to say why", errOut)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(before) {
		t.Fatal("a refused command changed the keys file")
	}
}
