package sessiond

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// The salt and key lengths of sessiond's own argon2id hashes, in bytes.
const (
	saltLen = 16
	keyLen  = 32
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

// PasswordHasher hashes passwords with argon2id and verifies them against
// its own hashes and the imported formats (see Verify). It bounds how many
// hashes run at once, so a flood of logins queues instead of exhausting
// memory (each hash holds its memory while it runs).
type PasswordHasher struct {
	params Argon2Params
	slots  chan struct{}
	// legacy are the slots of imported hashes that are not the hasher's
	// own argon2id: they may cost up to a hundred times more (see
	// CheckImportedHash), so they run apart, one per two cores, and never
	// hold up the argon2id sign-ins (and unknown users) of everyone else.
	legacy chan struct{}
	dummy  string
}

// legacyWait bounds how long a sign-in waits for a slot of the imported
// hashes before it is answered as unavailable (503, Retry-After): a burst
// of sign-ins to accounts with costly imported hashes gets a quick answer
// rather than a queue that outlives the request.
const legacyWait = 5 * time.Second

// NewPasswordHasher returns a hasher with params, running at most
// 2*GOMAXPROCS hashes at once, and besides them at most GOMAXPROCS/2 (at
// least one) verifications of imported hashes.
func NewPasswordHasher(params Argon2Params) *PasswordHasher {
	h := &PasswordHasher{
		params: params,
		slots:  make(chan struct{}, 2*runtime.GOMAXPROCS(0)),
		legacy: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2)),
	}
	salt := make([]byte, saltLen)
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
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	return h.encode(salt, h.derive(pw, salt, h.params)), nil
}

// Verify reports whether pw matches encoded, a hash in any of the formats
// of docs/design.md, "Imported password hashes": sessiond's own argon2id,
// or one brought in by an import (argon2id with other parameters, bcrypt,
// Django's pbkdf2_sha256, argon2 and bcrypt_sha256). Each is checked with
// its own algorithm in constant time, in one of the same slots as argon2id.
// An encoded hash of "" verifies against a dummy hash, so an unknown user
// costs the same as a known one with sessiond's own hash. A hash that
// CheckImportedHash would refuse is an error, never a match.
func (h *PasswordHasher) Verify(ctx context.Context, encoded, pw string) (bool, error) {
	if encoded == "" {
		encoded = h.dummy
		pw = "\x00" + pw // never matches
	}
	ph, err := h.parse(encoded)
	if err != nil {
		// A stored hash that no import would take is the server's
		// problem, not the client's input.
		return false, fmt.Errorf("stored password hash: %s", err)
	}
	slots := h.slots
	if ph.format != formatArgon2id || ph.argon != h.params {
		slots = h.legacy
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, legacyWait)
		defer cancel()
	}
	select {
	case slots <- struct{}{}:
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return false, fmt.Errorf("%w: imported password hashes are being verified at capacity", ErrUnavailable)
		}
		return false, ctx.Err()
	}
	defer func() { <-slots }()
	ok, err := ph.verify(pw)
	return ok && encoded != h.dummy, err
}

// NeedsRehash reports whether encoded is anything but sessiond's own
// argon2id hash with the hasher's current parameters: an imported hash, or
// one made with parameters since changed. A sign-in that verifies such a
// hash replaces it with Hash of the password.
func (h *PasswordHasher) NeedsRehash(encoded string) bool {
	ph, err := parseHash(encoded)
	return err != nil || ph.format != formatArgon2id || ph.argon != h.params ||
		len(ph.salt) != saltLen || len(ph.key) != keyLen
}

// parse parses encoded, within the import bounds unless it carries the
// hasher's own parameters (which an operator may set above them).
func (h *PasswordHasher) parse(encoded string) (*parsedHash, error) {
	ph, err := parseHash(encoded)
	if err != nil {
		return nil, err
	}
	if ph.format == formatArgon2id && ph.argon == h.params {
		return ph, nil
	}
	if err := ph.checkBounds(); err != nil {
		return nil, err
	}
	return ph, nil
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
	return argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, keyLen)
}

func (h *PasswordHasher) encode(salt, key []byte) string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version,
		h.params.Memory, h.params.Time, h.params.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}
