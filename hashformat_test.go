package sessiond_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/sessiond/sessiond"
)

func TestVerifyImportedHashesFromTools(t *testing.T) {
	ctx := context.Background()
	h := sessiond.NewPasswordHasher(sessiond.DefaultArgon2)
	for _, v := range toolVectors(t) {
		if err := sessiond.CheckImportedHash(v.hash); err != nil {
			t.Errorf("%s: CheckImportedHash(%q): got %v, want nil", v.name, v.hash, err)
			continue
		}
		if !h.NeedsRehash(v.hash) {
			t.Errorf("%s: NeedsRehash(%q): got false, want true (not sessiond's own parameters)", v.name, v.hash)
		}
		for _, c := range []struct {
			pw   string
			want bool
		}{
			{v.password, true},
			{v.password[:len(v.password)-1], false},
			{strings.ToUpper(v.password), false},
		} {
			got, err := h.Verify(ctx, v.hash, c.pw)
			if err != nil || got != c.want {
				t.Errorf("%s: Verify(%q, %q): got (%t, %v), want %t", v.name, v.hash, c.pw, got, err, c.want)
			}
		}
	}
}

func TestNeedsRehash(t *testing.T) {
	ctx := context.Background()
	h := sessiond.NewPasswordHasher(sessiond.Argon2Params{Memory: 64, Time: 1, Threads: 1})
	own, err := h.Hash(ctx, "password123")
	if err != nil {
		t.Fatal(err)
	}
	if h.NeedsRehash(own) {
		t.Fatalf("NeedsRehash(own hash %q): got true, want false", own)
	}
	other := sessiond.NewPasswordHasher(sessiond.Argon2Params{Memory: 128, Time: 1, Threads: 1})
	if !other.NeedsRehash(own) {
		t.Fatalf("NeedsRehash(hash of other parameters) after a parameter change: got false, want true")
	}
	// Django's argon2 is argon2id inside, but another format: it moves to
	// sessiond's own even with the same parameters.
	if !h.NeedsRehash("argon2" + own) {
		t.Fatalf("NeedsRehash(argon2$ + own hash): got false, want true")
	}
	if ok, err := h.Verify(ctx, "argon2"+own, "password123"); !ok || err != nil {
		t.Fatalf("Verify(argon2$ + own hash): got (%t, %v), want true", ok, err)
	}
}

// TestOwnParametersPastImportBounds: an operator may set parameters past
// the import bounds; the hashes made with them verify, while the same
// parameters in any other hash are refused.
func TestOwnParametersPastImportBounds(t *testing.T) {
	ctx := context.Background()
	h := sessiond.NewPasswordHasher(sessiond.Argon2Params{Memory: 64, Time: 11, Threads: 1})
	own, err := h.Hash(ctx, "password123")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := h.Verify(ctx, own, "password123"); !ok || err != nil {
		t.Fatalf("Verify(own hash, t=11): got (%t, %v), want true", ok, err)
	}
	if err := sessiond.CheckImportedHash(own); err == nil || !strings.Contains(err.Error(), "t=11") {
		t.Fatalf("CheckImportedHash(t=11): got %v, want a refusal naming t=11", err)
	}
	if _, err := sessiond.NewPasswordHasher(sessiond.DefaultArgon2).Verify(ctx, own, "password123"); err == nil {
		t.Fatalf("Verify(t=11 hash) by a hasher of other parameters: got nil error, want a refusal")
	}
}

// bcryptBody is 53 characters of bcrypt's base64: a shape-valid salt and
// hash, for hashes refused before any bcrypt runs.
const bcryptBody = "abcdefghijklmnopqrstuu7Pp5bq1pQfVdUtt6L4pNzXMHm4QwJZm"

// pbkdf2Key is 32 bytes in padded base64.
const pbkdf2Key = "99ggbgKNtrAJVzDvzOq6QnDgJ/pPhc3yEqaigo5HKqk="

func TestCheckImportedHashRefuses(t *testing.T) {
	argon := func(variant, params string) string {
		return "$" + variant + "$v=19$" + params + "$c2FsdHNhbHRzYWx0$LN9ZSNc0diEeoVHw/NKkaAe3nqlj6kqbe0F7A+UsplE"
	}
	for _, c := range []struct{ name, hash, why string }{
		{"empty", "", "is required"},
		{"plain text", "hunter2hunter2", "not a password hash"},
		{"plain text with a space", "correct horse battery staple", "not a password hash"},
		{"django sha1", "sha1$a1b2c3$0123456789abcdef0123456789abcdef01234567", `"sha1$" hash`},
		{"django md5", "md5$a1b2c3$0123456789abcdef0123456789abcdef", `"md5$" hash`},
		{"django unsalted md5", "md5$$0123456789abcdef0123456789abcdef", `"md5$" hash`},
		{"django pbkdf2_sha1", "pbkdf2_sha1$260000$salt$" + pbkdf2Key, `"pbkdf2_sha1$" hash`},
		{"django plain bcrypt", "bcrypt$$2b$12$" + bcryptBody, `"bcrypt$" hash`},
		{"md5-crypt", "$1$saltsalt$qjXMvbEw8oaL.CzflDugX/", `"$1$" hash`},
		{"sha512-crypt", "$6$rounds=5000$saltsalt$" + strings.Repeat("x", 86), `"$6$" hash`},
		{"scrypt", "$scrypt$ln=16,r=8,p=1$c2FsdA$aGFzaA", `"$scrypt$" hash`},
		{"too long", "pbkdf2_sha256$1000$" + strings.Repeat("s", 600) + "$" + pbkdf2Key, "longer than"},

		{"pbkdf2 0 iterations", "pbkdf2_sha256$0$salt$" + pbkdf2Key, "iterations 0"},
		{"pbkdf2 100 million iterations", "pbkdf2_sha256$100000000$salt$" + pbkdf2Key, "above the limit of 2000000"},
		{"pbkdf2 2000001 iterations", "pbkdf2_sha256$2000001$salt$" + pbkdf2Key, "above the limit of 2000000"},
		{"pbkdf2 negative iterations", "pbkdf2_sha256$-5$salt$" + pbkdf2Key, "whole number"},
		{"pbkdf2 huge iterations", "pbkdf2_sha256$99999999999999999999$salt$" + pbkdf2Key, "whole number"},
		{"pbkdf2 truncated hash", "pbkdf2_sha256$260000$salt$" + pbkdf2Key[:30], "truncated or malformed"},
		{"pbkdf2 no hash", "pbkdf2_sha256$260000$salt", "truncated or malformed"},
		{"pbkdf2 empty salt", "pbkdf2_sha256$260000$$" + pbkdf2Key, "salt"},

		{"bcrypt cost 15", "$2y$15$" + bcryptBody, "cost 15, above the limit of 14"},
		{"bcrypt cost 31", "$2b$31$" + bcryptBody, "cost 31, above the limit of 14"},
		{"bcrypt cost 3", "$2b$03$" + bcryptBody, "cost 3"},
		{"bcrypt truncated", "$2b$10$" + bcryptBody[:52], "truncated or malformed"},
		{"bcrypt prefix only", "$2b$", "truncated or malformed"},
		{"bcrypt bad character", "$2b$10$" + bcryptBody[:52] + "!", "outside bcrypt's base64"},
		{"bcrypt $2x$", "$2x$10$" + bcryptBody, "variant $2x$"},
		{"bcrypt $2$", "$2$10$" + bcryptBody, "variant $2$"},
		{"bcrypt_sha256 cost 15", "bcrypt_sha256$$2b$15$" + bcryptBody, "cost 15, above the limit of 14"},
		{"bcrypt_sha256 without its empty field", "bcrypt_sha256$2b$12$" + bcryptBody, "truncated or malformed"},

		{"argon2 memory over 256 MiB", argon("argon2id", "m=262145,t=2,p=1"), "m=262145 KiB, above the limit of 262144 KiB"},
		{"argon2 4 GiB", argon("argon2id", "m=4194304,t=1,p=4"), "above the limit"},
		{"argon2 11 passes", argon("argon2id", "m=65536,t=11,p=1"), "t=11, above the limit of 10"},
		{"django argon2 memory over 256 MiB", "argon2" + argon("argon2id", "m=524288,t=2,p=8"), "above the limit of 262144"},
		{"argon2i", argon("argon2i", "m=4096,t=3,p=1"), "only argon2id"},
		{"argon2d", argon("argon2d", "m=4096,t=3,p=1"), "only argon2id"},
		{"django argon2i", "argon2" + argon("argon2i", "m=512,t=2,p=2"), "only argon2id"},
		{"argon2 1.0", "$argon2id$m=4096,t=3,p=1$c2FsdHNhbHRzYWx0$LN9ZSNc0diEeoVHw/NKkaAe3nqlj6kqbe0F7A+UsplE", "argon2 1.0"},
		{"argon2 v=16", strings.Replace(argon("argon2id", "m=4096,t=3,p=1"), "v=19", "v=16", 1), "another version"},
		{"a NUL in a Django salt", "pbkdf2_sha256$1000$sa\x00lt$" + strings.Repeat("A", 43) + "=", "printable ASCII"},
		{"a password before the first $ is not quoted", "Summer2024secret$", "not a password hash"},
		{"an argon2 version field is not quoted", "$argon2id$v=MyOldPlainPassword!$m=4096,t=3,p=1$c2FsdHNhbHRzYWx0$LN9ZSNc0diEeoVHw/NKkaAe3nqlj6kqbe0F7A+UsplE", "another version"},
		{"argon2 truncated after the salt", "$argon2id$v=19$m=4096,t=3,p=1$c2FsdHNhbHRzYWx0", "truncated"},
		{"argon2 truncated hash part", argon("argon2id", "m=4096,t=3,p=1")[:60], "truncated or malformed"},
		{"argon2 malformed parameters", argon("argon2id", "m=4096,t=3"), "malformed"},
		{"argon2 parameters with junk", argon("argon2id", "m=4096,t=3,p=1x"), "malformed"},
		{"argon2 p=0", argon("argon2id", "m=4096,t=3,p=0"), "parallelism p=0"},
		{"argon2 t=0", argon("argon2id", "m=4096,t=0,p=1"), "t=0"},
		{"argon2 memory below 8 KiB a lane", argon("argon2id", "m=16,t=1,p=4"), "below 8 KiB"},
		{"argon2 extra field", argon("argon2id", "m=4096,t=3,p=1") + "$more", "too many"},
		{"argon2 salt not base64", "$argon2id$v=19$m=4096,t=3,p=1$c2F*c2Fs$LN9ZSNc0diEeoVHw/NKkaAe3nqlj6kqbe0F7A+UsplE", "salt"},
	} {
		h := sessiond.NewPasswordHasher(sessiond.Argon2Params{Memory: 64, Time: 1, Threads: 1})
		t.Run(c.name, func(t *testing.T) {
			err := sessiond.CheckImportedHash(c.hash)
			var ie *sessiond.InputError
			if !errors.As(err, &ie) || ie.Field != "password_hash" {
				t.Fatalf("CheckImportedHash(%q): got %v, want an *InputError on password_hash", c.hash, err)
			}
			if !strings.Contains(ie.Message, c.why) {
				t.Fatalf("CheckImportedHash(%q): got %q, want it to say %q", c.hash, ie.Message, c.why)
			}
			if len(c.hash) > 30 && strings.Contains(ie.Message, c.hash[len(c.hash)-20:]) {
				t.Fatalf("CheckImportedHash: message %q quotes the hash", ie.Message)
			}
			// Verify refuses it too, before running it: a stored hash
			// past the bounds never costs a sign-in its price.
			ok, err := h.Verify(context.Background(), c.hash, "password123")
			if c.hash != "" && (ok || err == nil) {
				t.Fatalf("Verify(%q): got (%t, %v), want an error", c.hash, ok, err)
			}
		})
	}
}

// TestBcrypt72Bytes: bcrypt ignores the bytes of a password past 72. An
// imported bcrypt hash accepts what the app that made it accepted: any
// password whose first 72 bytes match (docs/SECURITY.md).
func TestBcrypt72Bytes(t *testing.T) {
	ctx := context.Background()
	long := strings.Repeat("0123456789", 7) + "ab-and-then-some" // 86 bytes
	hash, err := htpasswdHash(long, 4)
	if err != nil {
		t.Fatal(err)
	}
	h := sessiond.NewPasswordHasher(sessiond.DefaultArgon2)
	for _, c := range []struct {
		pw   string
		want bool
	}{
		{long, true},
		{long[:72], true},
		{long[:72] + "a different tail", true},
		{long[:71], false},
		{long[:71] + "X" + long[72:], false},
	} {
		got, err := h.Verify(ctx, hash, c.pw)
		if err != nil || got != c.want {
			t.Errorf("Verify(htpasswd hash of %d bytes, password of %d bytes %q): got (%t, %v), want %t", len(long), len(c.pw), c.pw, got, err, c.want)
		}
	}
}

// TestUnknownUserCostsTheDummyHash: an empty hash (an unknown user) still
// verifies against the dummy argon2id hash, and never matches.
func TestUnknownUserCostsTheDummyHash(t *testing.T) {
	h := sessiond.NewPasswordHasher(sessiond.Argon2Params{Memory: 64, Time: 1, Threads: 1})
	if ok, err := h.Verify(context.Background(), "", "not a password"); ok || err != nil {
		t.Fatalf("Verify(\"\"): got (%t, %v), want (false, nil)", ok, err)
	}
}
