package sessiond_test

import (
	"context"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"

	"github.com/sessiond/sessiond"
)

// BenchmarkPasswordVerify is the cost of one sign-in's password check per hash
// format, beside sessiond's own argon2id: what a user with an imported hash
// costs (and how fast they are answered) until their first sign-in
// upgrades it. One run is enough:
// go test -run '^$' -bench PasswordVerify -benchtime 5x .
func BenchmarkPasswordVerify(b *testing.B) {
	const pw = "correct horse battery staple"
	ctx := context.Background()
	h := sessiond.NewPasswordHasher(sessiond.DefaultArgon2)
	own, err := h.Hash(ctx, pw)
	if err != nil {
		b.Fatal(err)
	}
	djangoPBKDF2 := func(iter int) string {
		key, err := pbkdf2.Key(sha256.New, pw, []byte("g9saEwuxFTYor0lt2Z2oKa"), iter, 32)
		if err != nil {
			b.Fatal(err)
		}
		return fmt.Sprintf("pbkdf2_sha256$%d$g9saEwuxFTYor0lt2Z2oKa$%s", iter, base64.StdEncoding.EncodeToString(key))
	}
	bcryptHash := func(pw string, cost int) string {
		hash, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
		if err != nil {
			b.Fatal(err)
		}
		return string(hash)
	}
	sum := sha256.Sum256([]byte(pw))
	salt := []byte("aFdJMllXZFNXQmlmYjhV")
	djangoArgon2 := fmt.Sprintf("argon2$argon2id$v=19$m=102400,t=2,p=8$%s$%s", base64.RawStdEncoding.EncodeToString(salt),
		base64.RawStdEncoding.EncodeToString(argon2.IDKey([]byte(pw), salt, 2, 102400, 8, 16)))
	for _, c := range []struct{ name, hash string }{
		{"argon2id sessiond default (m=19MiB t=2 p=1)", own},
		{"unknown user (dummy argon2id)", ""},
		{"django pbkdf2_sha256 260000 (Django 3.2)", djangoPBKDF2(260_000)},
		{"django pbkdf2_sha256 1000000 (Django 5.2)", djangoPBKDF2(1_000_000)},
		{"bcrypt cost 10", bcryptHash(pw, 10)},
		{"bcrypt cost 12", bcryptHash(pw, 12)},
		{"django bcrypt_sha256 cost 12", "bcrypt_sha256$" + bcryptHash(hex.EncodeToString(sum[:]), 12)},
		{"django argon2 (m=100MiB t=2 p=8)", djangoArgon2},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				ok, err := h.Verify(ctx, c.hash, pw)
				if err != nil || ok != (c.hash != "") {
					b.Fatalf("Verify: got (%t, %v)", ok, err)
				}
			}
		})
	}
}
