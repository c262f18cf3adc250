package http_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// errData is the data of an error answer.
type errData struct {
	Code  string `json:"code"`
	Field string `json:"field"`
}

// wantError fails t unless r is status with code and, when field is not
// "", that field.
func wantError(t *testing.T, what string, r *sessiondtest.Response, status int, code, field string) {
	t.Helper()
	var d errData
	if err := json.Unmarshal(r.Env.Data, &d); r.StatusCode != status || err != nil || d.Code != code || d.Field != field {
		t.Fatalf("%s: got %d %s, want %d %s field %q", what, r.StatusCode, r.Body, status, code, field)
	}
}

// htpasswd returns htpasswd's bcrypt hash of pw; a missing htpasswd fails
// the test with how to install it.
func htpasswd(t *testing.T, pw string) string {
	t.Helper()
	cmd := exec.Command("htpasswd", "-niB", "-C", "4", "user")
	cmd.Stdin = strings.NewReader(pw + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("htpasswd: %v; install Debian's apache2-utils (apt-get install apache2-utils), or run scripts/test.sh, which does", err)
	}
	_, h, _ := strings.Cut(strings.TrimSpace(string(out)), ":")
	return h
}

func TestAdminCreateUser(t *testing.T) {
	e := startAdmin(t, sessiondtest.Options{CheapHashing: true})
	e.Manager.SignupOpen = false // an administrator's act, not a sign-up
	ctx := context.Background()

	var created sessiondtest.User
	e.AC.Do("POST", "/admin/v1/users", e.Key, map[string]any{"username": "Alice", "email": "alice@example.com", "password": "alice's password"}).
		Expect(t, http.StatusCreated).Decode(t, &created)
	if created.Username != "Alice" || created.Email != "alice@example.com" || created.ID == "" || created.CreatedAt == "" {
		t.Fatalf("created user: got %+v", created)
	}
	e.PC.Attempt("alice", "alice's password").Expect(t, http.StatusOK)

	const bobPW = "bob's password from before"
	hash := htpasswd(t, bobPW)
	var bob sessiondtest.User
	e.AC.Do("POST", "/admin/v1/users", e.Key, map[string]any{"username": "bob", "email": "bob@example.com", "password_hash": hash}).
		Expect(t, http.StatusCreated).Decode(t, &bob)
	if u, err := e.Users.UserByID(ctx, bob.ID); err != nil || u.PasswordHash != hash {
		t.Fatalf("bob's stored hash: got %v, want the imported %q", err, hash)
	}
	e.PC.Attempt("bob", bobPW+"!").Expect(t, http.StatusUnauthorized)
	e.PC.Attempt("bob", bobPW).Expect(t, http.StatusOK)
	if u, err := e.Users.UserByID(ctx, bob.ID); err != nil || !strings.HasPrefix(u.PasswordHash, "$argon2id$") {
		t.Fatalf("bob's stored hash after the first sign-in: got %v, want argon2id", err)
	}
	e.PC.Attempt("bob", bobPW).Expect(t, http.StatusOK)
	if !strings.Contains(e.Logs.String(), `"action":"create_user","user_id":"`+bob.ID+`"`) {
		t.Errorf("audit line of create_user with bob's id: not in the logs:\n%s", e.Logs.String())
	}
	if strings.Contains(e.Logs.String(), hash) {
		t.Errorf("the logs hold the imported hash")
	}

	for _, c := range []struct {
		name        string
		body        map[string]any
		status      int
		code, field string
	}{
		{"username taken", map[string]any{"username": "ALICE", "email": "a2@example.com", "password": "a password 1"}, 409, "username_taken", ""},
		{"email taken", map[string]any{"username": "carol", "email": "Bob@Example.com", "password_hash": hash}, 409, "email_taken", ""},
		{"unknown hash format", map[string]any{"username": "carol", "email": "carol@example.com", "password_hash": "sha1$salt$0123456789abcdef"}, 400, "invalid_field", "password_hash"},
		{"pbkdf2 of 100 million iterations", map[string]any{"username": "carol", "email": "carol@example.com",
			"password_hash": "pbkdf2_sha256$100000000$salt$99ggbgKNtrAJVzDvzOq6QnDgJ/pPhc3yEqaigo5HKqk="}, 400, "invalid_field", "password_hash"},
		{"bcrypt cost 15", map[string]any{"username": "carol", "email": "carol@example.com", "password_hash": "$2y$15" + hash[6:]}, 400, "invalid_field", "password_hash"},
		{"truncated hash", map[string]any{"username": "carol", "email": "carol@example.com", "password_hash": hash[:40]}, 400, "invalid_field", "password_hash"},
		{"both password and hash", map[string]any{"username": "carol", "email": "carol@example.com", "password": "a password 1", "password_hash": hash}, 400, "invalid_field", "password_hash"},
		{"neither", map[string]any{"username": "carol", "email": "carol@example.com"}, 400, "invalid_field", "password"},
		{"short password", map[string]any{"username": "carol", "email": "carol@example.com", "password": "short"}, 400, "invalid_field", "password"},
		{"bad username", map[string]any{"username": "carol smith", "email": "carol@example.com", "password": "a password 1"}, 400, "invalid_field", "username"},
		{"bad email", map[string]any{"username": "carol", "email": "carol", "password": "a password 1"}, 400, "invalid_field", "email"},
		{"unknown member", map[string]any{"username": "carol", "email": "carol@example.com", "password": "a password 1", "is_admin": true}, 400, "invalid_field", "is_admin"},
	} {
		r := e.AC.Do("POST", "/admin/v1/users", e.Key, c.body)
		wantError(t, c.name, r, c.status, c.code, c.field)
		if strings.Contains(string(r.Body), hash[7:]) {
			t.Fatalf("%s: the answer quotes the hash: %s", c.name, r.Body)
		}
	}
	if _, err := e.Users.UserByLogin(ctx, "carol"); err == nil {
		t.Fatalf("carol exists after only refusals")
	}
	wantError(t, "no key", e.AC.Do("POST", "/admin/v1/users", "", map[string]any{"username": "dan", "email": "dan@example.com", "password": "a password 1"}),
		http.StatusUnauthorized, "admin_key_invalid", "")
}

func TestAdminCreateUserExternal(t *testing.T) {
	e := startAdmin(t, sessiondtest.Options{ExternalUsers: true})
	wantError(t, "POST /admin/v1/users with the app's own users",
		e.AC.Do("POST", "/admin/v1/users", e.Key, map[string]any{"username": "dan", "email": "dan@example.com", "password": "a password 1"}),
		http.StatusNotFound, "not_found", "")
}
