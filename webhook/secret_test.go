package webhook_test

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sessiond/sessiond/webhook"
)

func TestNewSecret(t *testing.T) {
	a, b := webhook.NewSecret(), webhook.NewSecret()
	if a == b {
		t.Fatal("two secrets are equal")
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(a, "whsec_"))
	if !strings.HasPrefix(a, "whsec_") || err != nil || len(key) != 32 {
		t.Fatalf("got %d bytes (%v), want whsec_ and base64 of 32 bytes", len(key), err)
	}
	if _, err := webhook.New("https://example.com/", a); err != nil {
		t.Fatalf("New refuses NewSecret's secret: %v", err)
	}
}

func TestLoadOrCreateSecret(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "webhook-secret")
	secret, err := webhook.LoadOrCreateSecret(path)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if _, err := webhook.New("https://example.com/", secret); err != nil {
		t.Fatalf("New refuses the created secret: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("got file mode %o, want 600", mode)
	}
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("got directory mode %v (%v), want 700", fi.Mode().Perm(), err)
	}
	again, err := webhook.LoadOrCreateSecret(path)
	if err != nil || again != secret {
		t.Fatalf("reload: got a different secret (%v), want the same", err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("got %d files in the directory, want only the secret (no temporary file left)", len(entries))
	}
}

// TestLoadOrCreateSecretReadsWrittenSecret: a secret an operator wrote,
// with a trailing newline, is read as is.
func TestLoadOrCreateSecretReadsWrittenSecret(t *testing.T) {
	path := filepath.Join(t.TempDir(), "webhook-secret")
	want := webhook.NewSecret()
	if err := os.WriteFile(path, []byte("  "+want+"\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := webhook.LoadOrCreateSecret(path)
	if err != nil || got != want {
		t.Fatalf("got a different secret (%v), want the file's", err)
	}
}

func TestLoadOrCreateSecretConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "webhook-secret")
	const n = 8
	got := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := webhook.LoadOrCreateSecret(path)
			if err != nil {
				t.Error(err)
			}
			got[i] = s
		})
	}
	wg.Wait()
	for i := range got {
		if got[i] != got[0] {
			t.Fatalf("callers got different secrets, want the one that reached the disk first")
		}
	}
}

func TestLoadOrCreateSecretRefusesGarbage(t *testing.T) {
	for _, tc := range []struct{ name, content, want string }{
		{"Empty", "\n", "empty"},
		{"Text", "my webhook password", "whsec_"},
		{"NotBase64", "whsec_***garbage***", "base64"},
		{"Short", "whsec_" + base64.StdEncoding.EncodeToString([]byte("eight by")), "8 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "webhook-secret")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := webhook.LoadOrCreateSecret(path)
			if err == nil {
				t.Fatal("got nil, want an error")
			}
			msg := err.Error()
			if !strings.Contains(msg, path) || !strings.Contains(msg, tc.want) {
				t.Errorf("got %q, want it to name %s and say %q", msg, path, tc.want)
			}
			if c := strings.TrimSpace(tc.content); c != "" && strings.Contains(msg, c) {
				t.Errorf("got %q, which quotes the file's content", msg)
			}
			b, _ := os.ReadFile(path)
			if string(b) != tc.content {
				t.Error("the file was replaced, want it left as it was")
			}
		})
	}
}

func TestLoadOrCreateSecretUnreadable(t *testing.T) {
	dir := t.TempDir()
	// A directory where the file should be: not "does not exist", so
	// nothing is created, and the error says why.
	path := filepath.Join(dir, "webhook-secret")
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := webhook.LoadOrCreateSecret(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("got %v, want an error naming %s", err, path)
	}
}
