package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/internal/sessiondtest"
)

// joseDir is the Node.js project that verifies tokens with the jose package.
var joseDir = filepath.Join("..", "..", "interop", "jose")

// joseVerifier returns the node binary, after installing interop/jose's
// locked dependencies when node_modules is missing or stale.
func joseVerifier(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed: apt-get install -y nodejs npm")
	}
	var lock struct {
		Packages map[string]struct {
			Version string `json:"version"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(mustReadFile(t, filepath.Join(joseDir, "package-lock.json")), &lock); err != nil {
		t.Fatalf("interop/jose/package-lock.json: %v", err)
	}
	want := lock.Packages["node_modules/jose"].Version
	var installed struct {
		Version string `json:"version"`
	}
	if b, err := os.ReadFile(filepath.Join(joseDir, "node_modules", "jose", "package.json")); err == nil {
		json.Unmarshal(b, &installed)
	}
	if installed.Version == want && want != "" {
		return node
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatal("npm is not installed: apt-get install -y nodejs npm")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = joseDir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in interop/jose (needs the npm registry): %v\n%s", err, out)
	}
	return node
}

// joseVerify runs verify.mjs on token and returns its output, and whether
// the token verified.
func joseVerify(t *testing.T, node, jwksURL, token, issuer string) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "verify.mjs", jwksURL, token, issuer)
	cmd.Dir = joseDir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if _, exited := err.(*exec.ExitError); err != nil && (!exited || cmd.ProcessState.ExitCode() != 1) {
		t.Fatalf("node verify.mjs: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	if err != nil {
		return stderr.String(), false
	}
	return stdout.String(), true
}

// TestJoseVerifiesAccessTokens shows that an independent JWT implementation
// in another language (jose under Node.js) verifies sessiond's access tokens
// from /.well-known/jwks.json alone, and refuses tampered ones.
func TestJoseVerifiesAccessTokens(t *testing.T) {
	node := joseVerifier(t)
	ts := startServer(t, map[string]string{"SESSIOND_ISSUER": "https://auth.example.com"})
	c := sessiondtest.NewClient(t, ts.URL)
	u := c.Register("grace")
	g := c.Login("grace", nil)
	jwks := ts.URL + "/.well-known/jwks.json"

	out, ok := joseVerify(t, node, jwks, g.AccessToken, "https://auth.example.com")
	if !ok {
		t.Fatalf("jose refused a valid token: %s", out)
	}
	var got struct{ Sub, Sid, Kid string }
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("verify.mjs output %q: %v", out, err)
	}
	if got.Sub != u.ID || got.Sid != g.Session.ID || got.Kid == "" {
		t.Fatalf("jose payload: got %+v, want sub %s and sid %s", got, u.ID, g.Session.ID)
	}

	parts := strings.Split(g.AccessToken, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	forged := bytes.Replace(payload, []byte(`"sub":"`+u.ID+`"`), []byte(`"sub":"someone-else"`), 1)
	if bytes.Equal(forged, payload) {
		t.Fatalf("payload %s has no sub to change", payload)
	}
	sig := []byte(parts[2])
	if sig[0] == 'A' {
		sig[0] = 'B'
	} else {
		sig[0] = 'A'
	}
	tests := []struct {
		name, token, issuer, wantErr string
	}{
		{"changed payload", parts[0] + "." + base64.RawURLEncoding.EncodeToString(forged) + "." + parts[2], "https://auth.example.com", "ERR_JWS_SIGNATURE_VERIFICATION_FAILED"},
		{"changed signature", parts[0] + "." + parts[1] + "." + string(sig), "https://auth.example.com", "ERR_JWS_SIGNATURE_VERIFICATION_FAILED"},
		{"other issuer", g.AccessToken, "https://other.example.com", "ERR_JWT_CLAIM_VALIDATION_FAILED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, ok := joseVerify(t, node, jwks, tt.token, tt.issuer)
			if ok || !strings.Contains(out, tt.wantErr) {
				t.Fatalf("got verified=%v %q, want refused with %s", ok, out, tt.wantErr)
			}
		})
	}
}
