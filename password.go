package sessiond

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Password length limits, in Unicode code points.
const (
	minPasswordLen = 8
	maxPasswordLen = 1024
)

// Argon2Params are argon2id cost parameters.
type Argon2Params struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
}

// DefaultArgon2 is OWASP's minimum for argon2id: m=19 MiB, t=2, p=1.
var DefaultArgon2 = Argon2Params{Memory: 19 * 1024, Time: 2, Threads: 1}

// PasswordHasher hashes and verifies passwords with argon2id. It bounds how
// many hashes run at once, so a flood of logins queues instead of exhausting
// memory (each hash holds Memory KiB while it runs).
type PasswordHasher struct {
	params Argon2Params
	slots  chan struct{}
	dummy  string
}

// NewPasswordHasher returns a hasher with params, running at most
// 2*GOMAXPROCS hashes at once.
func NewPasswordHasher(params Argon2Params) *PasswordHasher {
	h := &PasswordHasher{params: params, slots: make(chan struct{}, 2*runtime.GOMAXPROCS(0))}
	salt := make([]byte, 16)
	rand.Read(salt)
	h.dummy = h.encode(salt, h.derive("not a password", salt, params))
	return h
}

// CheckPassword reports whether pw is an acceptable password.
func CheckPassword(field, pw string) error {
	if pw == "" {
		return invalid(field, "is required")
	}
	if !utf8.ValidString(pw) {
		return invalid(field, "must be valid UTF-8")
	}
	switch n := utf8.RuneCountInString(pw); {
	case n < minPasswordLen:
		return invalid(field, "must be at least %d characters", minPasswordLen)
	case n > maxPasswordLen:
		return invalid(field, "must be at most %d characters", maxPasswordLen)
	}
	return nil
}

// Hash returns an argon2id PHC string for pw.
func (h *PasswordHasher) Hash(ctx context.Context, pw string) (string, error) {
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	return h.encode(salt, h.derive(pw, salt, h.params)), nil
}

// Verify reports whether pw matches encoded. An encoded hash of "" verifies
// against a dummy hash, so an unknown user costs the same as a known one.
func (h *PasswordHasher) Verify(ctx context.Context, encoded, pw string) (bool, error) {
	if encoded == "" {
		encoded = h.dummy
		pw = "\x00" + pw // never matches
	}
	p, salt, want, err := decodeHash(encoded)
	if err != nil {
		return false, err
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	got := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1 && encoded != h.dummy, nil
}

func (h *PasswordHasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *PasswordHasher) release() { <-h.slots }

func (h *PasswordHasher) derive(pw string, salt []byte, p Argon2Params) []byte {
	return argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, 32)
}

func (h *PasswordHasher) encode(salt, key []byte) string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version,
		h.params.Memory, h.params.Time, h.params.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

var errBadHash = errors.New("password hash: malformed")

func decodeHash(s string) (p Argon2Params, salt, key []byte, err error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return p, nil, nil, errBadHash
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return p, nil, nil, errBadHash
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil || p.Time == 0 || p.Threads == 0 {
		return p, nil, nil, errBadHash
	}
	b64 := base64.RawStdEncoding
	if salt, err = b64.DecodeString(parts[4]); err != nil {
		return p, nil, nil, errBadHash
	}
	if key, err = b64.DecodeString(parts[5]); err != nil || len(key) == 0 {
		return p, nil, nil, errBadHash
	}
	return p, salt, key, nil
}
