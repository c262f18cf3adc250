package webhook

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/sessiond/sessiond/internal/secretfile"
)

// The Standard Webhooks form of a secret: a prefix, then the standard
// base64 of 24 to 64 random bytes.
const (
	secretPrefix   = "whsec_"
	secretSize     = 32
	secretMinBytes = 24
	secretMaxBytes = 64
)

// NewSecret returns a new random secret: "whsec_" and the base64 of 32
// random bytes, the form the Standard Webhooks libraries of every language
// accept.
func NewSecret() string {
	key := make([]byte, secretSize)
	rand.Read(key) // never fails (crypto/rand)
	return secretPrefix + base64.StdEncoding.EncodeToString(key)
}

// parseSecret returns the key of a secret, or an error that says what is
// wrong with it without quoting it.
func parseSecret(secret string) ([]byte, error) {
	if secret == "" {
		return nil, errors.New("secret is empty, want whsec_ and base64 of random bytes")
	}
	if !strings.HasPrefix(secret, secretPrefix) {
		return nil, errors.New("secret does not start with whsec_, want whsec_ and base64 of random bytes")
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, secretPrefix))
	if err != nil {
		return nil, errors.New("secret is not whsec_ and standard base64")
	}
	if len(key) < secretMinBytes || len(key) > secretMaxBytes {
		return nil, fmt.Errorf("secret decodes to %d bytes, want %d to %d", len(key), secretMinBytes, secretMaxBytes)
	}
	return key, nil
}

// LoadOrCreateSecret reads the secret in the file at path (surrounding
// whitespace ignored), or, when the file does not exist, makes one with
// NewSecret and writes it there (mode 0600, parent directories created
// with mode 0700). The write is atomic and never replaces an existing
// file: when two processes create the secret at once, both end up with
// the one that reached the disk first. A file that does not hold a secret
// is an error naming the file, not quoting it.
func LoadOrCreateSecret(path string) (string, error) {
	secret, err := loadSecret(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return secret, err
	}
	secret = NewSecret()
	won, err := secretfile.Create(path, []byte(secret+"\n"))
	if err != nil {
		return "", fmt.Errorf("webhook secret: create %s: %w", path, err)
	}
	if !won {
		// Another process created the file first; use its secret.
		return loadSecret(path)
	}
	return secret, nil
}

func loadSecret(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("webhook secret: %w", err)
	}
	secret := string(bytes.TrimSpace(data))
	if _, err := parseSecret(secret); err != nil {
		return "", fmt.Errorf("webhook secret: %s: %w", path, err)
	}
	return secret, nil
}
