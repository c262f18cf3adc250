package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHelloNeedsASignedInUser(t *testing.T) {
	a, err := newApp(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	ts := httptest.NewServer(a.Handler())
	t.Cleanup(ts.Close)
	checkHello(t, ts.URL)
}

// TestRunServes starts the program's run on a free port, the way main does.
func TestRunServes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, addr, filepath.Join(t.TempDir(), "data")) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: got %v, want nil after cancel", err)
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/hello")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run did not listen on %s within 10 s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	checkHello(t, base)
}

// checkHello registers, logs in, and checks that /hello refuses without a
// token, greets with one, and refuses again after logout.
func checkHello(t *testing.T, base string) {
	t.Helper()
	do := func(method, path, token, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		req.Header.Set("User-Agent", "curl/8.5.0")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := do("POST", "/api/v1/auth/register", "", `{"username":"alice","email":"alice@example.com","password":"correct horse battery staple"}`); code != 201 {
		t.Fatalf("register: got %d, want 201: %s", code, body)
	}
	code, body := do("POST", "/api/v1/auth/login", "", `{"username":"alice","password":"correct horse battery staple"}`)
	if code != 200 {
		t.Fatalf("login: got %d, want 200: %s", code, body)
	}
	var login struct {
		Data struct {
			AccessToken string `json:"access_token"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &login); err != nil || login.Data.AccessToken == "" {
		t.Fatalf("login body: %v: %s", err, body)
	}
	token := login.Data.AccessToken

	if code, body := do("GET", "/hello", "", ""); code != 401 || !strings.Contains(body, `"status_code":401`) {
		t.Fatalf("hello without a token: got %d %s, want 401 in the envelope", code, body)
	}
	if code, body := do("GET", "/hello", token, ""); code != 200 || body != "hello, alice (signed in on curl)\n" {
		t.Fatalf("hello with a token: got %d %q, want 200 %q", code, body, "hello, alice (signed in on curl)\n")
	}
	if code, body := do("POST", "/api/v1/auth/logout", token, ""); code != 200 {
		t.Fatalf("logout: got %d, want 200: %s", code, body)
	}
	if code, _ := do("GET", "/hello", token, ""); code != 401 {
		t.Fatalf("hello after logout: got %d, want 401", code)
	}
	if code, _ := do("GET", "/.well-known/jwks.json", "", ""); code != 200 {
		t.Fatalf("jwks: got %d, want 200", code)
	}
}

// TestREADMEShowsThisCode keeps the README's library snippet compiled and
// tested: it must be the marked part of newApp, word for word.
func TestREADMEShowsThisCode(t *testing.T) {
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok1 := strings.Cut(string(src), "\t// README: begin\n")
	region, _, ok2 := strings.Cut(rest, "\t// README: end\n")
	if !ok1 || !ok2 {
		t.Fatal("main.go has no README: begin/end markers")
	}
	var want strings.Builder
	for _, line := range strings.SplitAfter(region, "\n") {
		want.WriteString(strings.TrimPrefix(line, "\t"))
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```go\n"+want.String()+"```\n") {
		t.Fatalf("README.md has no go block equal to the marked part of main.go:\n%s", want.String())
	}
}

// TestSafeByDefault checks what the snippet gives without asking: login
// throttles and the JWKS.
func TestSafeByDefault(t *testing.T) {
	a, err := newApp(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	ts := httptest.NewServer(a.Handler())
	t.Cleanup(ts.Close)

	resp, err := http.Get(ts.URL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	var jwks struct {
		Keys []struct{ Kty, Crv, Kid string } `json:"keys"`
	}
	err = json.NewDecoder(resp.Body).Decode(&jwks)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || len(jwks.Keys) != 1 || jwks.Keys[0].Crv != "Ed25519" {
		t.Fatalf("JWKS: got %d %+v (%v), want one Ed25519 key", resp.StatusCode, jwks, err)
	}

	status := func(body string) int {
		resp, err := http.Post(ts.URL+"/api/v1/auth/login", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i := range 10 {
		if got := status(`{"username":"nobody","password":"wrong password"}`); got != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: got %d, want 401", i+1, got)
		}
	}
	if got := status(`{"username":"nobody","password":"wrong password"}`); got != http.StatusTooManyRequests {
		t.Fatalf("wrong password 11 from one address: got %d, want 429 (throttled by default)", got)
	}
}
