package sessiond

import (
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// The bounds of an imported hash (docs/design.md, "Imported password
// hashes"): past them one sign-in would cost more than a second or two of
// a hashing slot, so an import refuses the hash.
const (
	MaxImportPBKDF2Iterations = 2_000_000
	MaxImportBcryptCost       = 14
	MaxImportArgon2Memory     = 256 * 1024 // KiB
	MaxImportArgon2Time       = 10
)

// Shape limits of an imported hash, beyond its cost.
const (
	maxHashLen      = 512 // characters of the whole string
	minArgon2Salt   = 8   // bytes, argon2's own minimum
	maxArgon2Salt   = 128
	minArgon2Key    = 16 // shorter is a truncated hash, or too weak to keep
	maxArgon2Key    = 128
	maxPBKDF2Salt   = 128
	bcryptLen       = 60 // "$2b$12$" and 53 characters of salt and hash
	bcryptMaxPWLen  = 72 // bcrypt ignores the bytes of a password past these
	pbkdf2KeyLen    = 32 // Django's: the size of a SHA-256 digest
	djangoPBKDF2    = "pbkdf2_sha256$"
	djangoArgon2    = "argon2$"
	djangoBcryptSHA = "bcrypt_sha256$"
)

// hashFormat is one of the accepted formats of a password hash.
type hashFormat int

const (
	formatArgon2id           hashFormat = iota // $argon2id$v=19$..., sessiond's own included
	formatDjangoArgon2                         // argon2$argon2id$v=19$...
	formatBcrypt                               // $2a$, $2b$, $2y$
	formatDjangoBcryptSHA256                   // bcrypt_sha256$$2b$...
	formatDjangoPBKDF2                         // pbkdf2_sha256$<iterations>$<salt>$<hash>
)

// parsedHash is a password hash taken apart.
type parsedHash struct {
	format hashFormat
	argon  Argon2Params // argon2 formats
	salt   []byte       // argon2 and PBKDF2
	key    []byte       // argon2 and PBKDF2: the derived key to compare
	iter   int          // PBKDF2
	bcrypt []byte       // bcrypt formats: the bcrypt string itself
	cost   int          // bcrypt formats
}

// acceptedFormats names the formats for a refusal.
const acceptedFormats = "argon2id ($argon2id$v=19$...), bcrypt ($2a$, $2b$, $2y$), " +
	"or Django's pbkdf2_sha256$, argon2$argon2id$ or bcrypt_sha256$"

// CheckImportedHash reports whether hash may be imported as a user's
// password hash: it is in one of the formats of docs/design.md, "Imported
// password hashes", whole, and its cost within the bounds (PBKDF2 at most
// MaxImportPBKDF2Iterations, bcrypt at most MaxImportBcryptCost, argon2 at
// most MaxImportArgon2Memory KiB and MaxImportArgon2Time passes). A refusal
// is an *InputError on the field password_hash that says why; it never
// quotes the hash.
func CheckImportedHash(hash string) error {
	ph, err := parseHash(hash)
	if err != nil {
		return err
	}
	return ph.checkBounds()
}

// badHash returns the *InputError of a refused hash.
func badHash(format string, args ...any) error { return invalid("password_hash", format, args...) }

// parseHash takes hash apart, checking its shape but not its cost.
func parseHash(s string) (*parsedHash, error) {
	switch {
	case s == "":
		return nil, badHash("is required")
	case len(s) > maxHashLen:
		return nil, badHash("is longer than %d characters: no accepted format is", maxHashLen)
	case !isPrintableASCII(s):
		// Every accepted format is printable ASCII; a NUL or a control
		// character would also be refused by PostgreSQL's text type,
		// failing a whole import batch.
		return nil, badHash("is not a password hash in an accepted format (%s: printable ASCII without spaces); plain text is never accepted", acceptedFormats)
	case strings.HasPrefix(s, "$argon2"):
		return parseArgon2(s, formatArgon2id, "argon2")
	case strings.HasPrefix(s, djangoArgon2):
		return parseArgon2(s[len(djangoArgon2)-1:], formatDjangoArgon2, "Django argon2")
	case strings.HasPrefix(s, "$2"):
		return parseBcrypt(s, formatBcrypt, "bcrypt")
	case strings.HasPrefix(s, djangoBcryptSHA):
		return parseBcrypt(s[len(djangoBcryptSHA):], formatDjangoBcryptSHA256, "Django bcrypt_sha256")
	case strings.HasPrefix(s, djangoPBKDF2):
		return parsePBKDF2(s)
	}
	return nil, unknownFormat(s)
}

// knownAlgorithms are the algorithm names a refusal may quote: those of
// common formats that are not accepted. Anything else is not named, since
// the text before the first "$" of a line may be a password pasted there.
var knownAlgorithms = map[string]bool{
	"$1$": true, "$5$": true, "$6$": true, "$y$": true, "$2x$": true, "$2$": true, "$apr1$": true,
	"$argon2i$": true, "$argon2d$": true, "$scrypt$": true, "$pbkdf2-sha256$": true, "$pbkdf2-sha512$": true,
	"sha1$": true, "md5$": true, "unsalted_md5$": true, "unsalted_sha1$": true, "crypt$": true,
	"pbkdf2_sha1$": true, "scrypt$": true, "bcrypt$": true, "argon2$": true,
}

// unknownFormat refuses a hash in no accepted format, naming its algorithm
// when it is a known one ("sha1$...", "$6$...").
func unknownFormat(s string) error {
	name := ""
	switch {
	case strings.HasPrefix(s, "$"):
		if i := strings.IndexByte(s[1:], '$'); i > 0 {
			name = "$" + s[1:1+i] + "$"
		}
	case strings.Contains(s, "$"):
		name = s[:strings.IndexByte(s, '$')] + "$"
	}
	if !knownAlgorithms[name] {
		return badHash("is not a password hash in an accepted format (%s); plain text is never accepted", acceptedFormats)
	}
	return badHash("is a %q hash, not an accepted format (%s)", name, acceptedFormats)
}

// parseArgon2 parses an argon2 PHC string:
// $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>, the salt and
// hash in base64 without padding. Django's argon2$ hashes are the same
// string after the prefix (argon2-cffi's encoding of the salt bytes it was
// given).
func parseArgon2(s string, f hashFormat, what string) (*parsedHash, error) {
	parts := strings.Split(s, "$")
	switch {
	case len(parts) < 2:
		return nil, badHash("is a truncated %s hash", what)
	case parts[1] == "argon2i" || parts[1] == "argon2d":
		return nil, badHash("is an %s hash: only argon2id is accepted", parts[1])
	case parts[1] != "argon2id":
		return nil, unknownFormat(s)
	case len(parts) == 5 && strings.HasPrefix(parts[2], "m="):
		return nil, badHash("is an argon2 1.0 hash (no v=19): only version 19 is accepted")
	case len(parts) < 6:
		return nil, badHash("is a truncated %s hash ($argon2id$v=19$m=...,t=...,p=...$salt$hash expected)", what)
	case len(parts) > 6:
		return nil, badHash("is a malformed %s hash: too many '$'-separated fields", what)
	case parts[2] != "v=19":
		return nil, badHash("is an argon2 hash of another version: only v=19 is accepted")
	}
	ph := &parsedHash{format: f}
	fields := strings.Split(parts[3], ",")
	if len(fields) != 3 {
		return nil, badHash("has malformed %s parameters: m=<KiB>,t=<passes>,p=<lanes> expected", what)
	}
	var vals [3]uint64
	for i, name := range []string{"m=", "t=", "p="} {
		v, ok := strings.CutPrefix(fields[i], name)
		n, err := strconv.ParseUint(v, 10, 32)
		if !ok || err != nil || !isDigits(v) {
			return nil, badHash("has malformed %s parameters: m=<KiB>,t=<passes>,p=<lanes> expected", what)
		}
		vals[i] = n
	}
	m, t, p := vals[0], vals[1], vals[2]
	switch {
	case t < 1:
		return nil, badHash("has argon2 passes t=0: at least 1 is needed")
	case p < 1 || p > 255:
		return nil, badHash("has argon2 parallelism p=%d: 1 to 255 is accepted", p)
	case m < 8*p:
		return nil, badHash("has argon2 memory m=%d KiB below 8 KiB per lane (p=%d)", m, p)
	}
	ph.argon = Argon2Params{Memory: uint32(m), Time: uint32(t), Threads: uint8(p)}
	b64 := base64.RawStdEncoding
	var err error
	if ph.salt, err = b64.DecodeString(parts[4]); err != nil || len(ph.salt) < minArgon2Salt || len(ph.salt) > maxArgon2Salt {
		return nil, badHash("has a malformed %s salt: %d to %d bytes in base64 without padding expected", what, minArgon2Salt, maxArgon2Salt)
	}
	if ph.key, err = b64.DecodeString(parts[5]); err != nil || len(ph.key) < minArgon2Key || len(ph.key) > maxArgon2Key {
		return nil, badHash("has a truncated or malformed %s hash part: %d to %d bytes in base64 without padding expected", what, minArgon2Key, maxArgon2Key)
	}
	return ph, nil
}

// parseBcrypt parses a bcrypt string: $2a$, $2b$ or $2y$, a two-digit
// cost, '$', and 53 characters of bcrypt's base64 (22 of salt, 31 of
// hash).
func parseBcrypt(s string, f hashFormat, what string) (*parsedHash, error) {
	switch {
	case len(s) < 4 || s[0] != '$' || s[1] != '2':
		return nil, badHash("is a truncated or malformed %s hash ($2b$<cost>$... expected)", what)
	case s[2] == '$':
		return nil, badHash("is a bcrypt hash of variant $2$: only $2a$, $2b$ and $2y$ are accepted")
	case s[3] != '$':
		return nil, badHash("is a truncated or malformed %s hash ($2b$<cost>$... expected)", what)
	case s[2] != 'a' && s[2] != 'b' && s[2] != 'y':
		return nil, badHash("is a bcrypt hash of variant $2%c$: only $2a$, $2b$ and $2y$ are accepted", s[2])
	}
	if len(s) != bcryptLen || s[6] != '$' || !isDigits(s[4:6]) {
		return nil, badHash("is a truncated or malformed %s hash (%d characters like $2b$12$... expected)", what, bcryptLen)
	}
	for i := 7; i < len(s); i++ {
		if c := s[i]; !(c == '.' || c == '/' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return nil, badHash("is a malformed %s hash: a character outside bcrypt's base64", what)
		}
	}
	cost, _ := strconv.Atoi(s[4:6])
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		return nil, badHash("has bcrypt cost %d: %d to %d is possible", cost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	return &parsedHash{format: f, bcrypt: []byte(s), cost: cost}, nil
}

// parsePBKDF2 parses Django's pbkdf2_sha256$<iterations>$<salt>$<hash>,
// the hash 32 bytes in padded standard base64; the salt is used as its
// UTF-8 bytes, as Django does.
func parsePBKDF2(s string) (*parsedHash, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 4 {
		return nil, badHash("is a truncated or malformed Django pbkdf2_sha256 hash (pbkdf2_sha256$<iterations>$<salt>$<hash> expected)")
	}
	if !isDigits(parts[1]) || len(parts[1]) > 10 {
		return nil, badHash("has PBKDF2 iterations that are not a whole number")
	}
	iter, _ := strconv.Atoi(parts[1])
	if iter < 1 {
		return nil, badHash("has PBKDF2 iterations %d: at least 1 is needed", iter)
	}
	if parts[2] == "" || len(parts[2]) > maxPBKDF2Salt {
		return nil, badHash("has a Django pbkdf2_sha256 salt of %d characters: 1 to %d expected", len(parts[2]), maxPBKDF2Salt)
	}
	key, err := base64.StdEncoding.DecodeString(parts[3])
	if err != nil || len(key) != pbkdf2KeyLen {
		return nil, badHash("has a truncated or malformed Django pbkdf2_sha256 hash part: %d bytes in padded base64 expected", pbkdf2KeyLen)
	}
	return &parsedHash{format: formatDjangoPBKDF2, iter: iter, salt: []byte(parts[2]), key: key}, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// checkBounds refuses a hash whose cost is past the import bounds.
func (ph *parsedHash) checkBounds() error {
	switch ph.format {
	case formatArgon2id, formatDjangoArgon2:
		if ph.argon.Memory > MaxImportArgon2Memory {
			return badHash("has argon2 memory m=%d KiB, above the limit of %d KiB (256 MiB)", ph.argon.Memory, MaxImportArgon2Memory)
		}
		if ph.argon.Time > MaxImportArgon2Time {
			return badHash("has argon2 passes t=%d, above the limit of %d", ph.argon.Time, MaxImportArgon2Time)
		}
	case formatBcrypt, formatDjangoBcryptSHA256:
		if ph.cost > MaxImportBcryptCost {
			return badHash("has bcrypt cost %d, above the limit of %d", ph.cost, MaxImportBcryptCost)
		}
	case formatDjangoPBKDF2:
		if ph.iter > MaxImportPBKDF2Iterations {
			return badHash("has %d PBKDF2 iterations, above the limit of %d", ph.iter, MaxImportPBKDF2Iterations)
		}
	}
	return nil
}

// verify reports whether pw matches the hash, comparing in constant time:
// derived keys with subtle.ConstantTimeCompare, bcrypt with its own
// comparison (which uses it too).
func (ph *parsedHash) verify(pw string) (bool, error) {
	switch ph.format {
	case formatArgon2id, formatDjangoArgon2:
		a := ph.argon
		got := argon2.IDKey([]byte(pw), ph.salt, a.Time, a.Memory, a.Threads, uint32(len(ph.key)))
		return subtle.ConstantTimeCompare(got, ph.key) == 1, nil
	case formatDjangoPBKDF2:
		got, err := pbkdf2.Key(sha256.New, pw, ph.salt, ph.iter, len(ph.key))
		if err != nil {
			return false, fmt.Errorf("pbkdf2: %w", err)
		}
		return subtle.ConstantTimeCompare(got, ph.key) == 1, nil
	case formatBcrypt:
		// bcrypt never saw the bytes of a password past 72, and the app
		// that made the hash accepted any password that begins with the
		// same 72 bytes: so does this check (docs/SECURITY.md).
		b := []byte(pw)
		if len(b) > bcryptMaxPWLen {
			b = b[:bcryptMaxPWLen]
		}
		return bcryptMatch(ph.bcrypt, b)
	case formatDjangoBcryptSHA256:
		// Django hashes the password first (SHA-256, as 64 lowercase hex
		// digits), so no byte of it is past bcrypt's 72.
		sum := sha256.Sum256([]byte(pw))
		return bcryptMatch(ph.bcrypt, []byte(hex.EncodeToString(sum[:])))
	}
	return false, errors.New("password hash: unknown format")
}

func bcryptMatch(hash, pw []byte) (bool, error) {
	err := bcrypt.CompareHashAndPassword(hash, pw)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
		return false, nil
	}
	return false, fmt.Errorf("bcrypt: %w", err)
}
