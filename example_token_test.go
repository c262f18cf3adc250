package sessiond_test

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sessiond/sessiond"
)

// Access tokens: issue one for a session, verify it on a request, and keep
// verifying tokens of a rotated-out key until they expire.
func ExampleAccessTokens() {
	oldKey, err := sessiond.GenerateSigningKey()
	if err != nil {
		log.Fatal(err)
	}
	newKey, err := sessiond.GenerateSigningKey()
	if err != nil {
		log.Fatal(err)
	}
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

	before := sessiond.NewAccessTokens("sessiond", oldKey)
	token, err := before.Issue("user-42", "session-7", now, now.Add(15*time.Minute))
	if err != nil {
		log.Fatal(err)
	}

	// After rotation the new key signs; the old public key still verifies.
	after := sessiond.NewAccessTokens("sessiond", newKey, oldKey.Key.Public().(ed25519.PublicKey))
	claims, err := after.Verify(token, now.Add(time.Minute))
	fmt.Println(claims.Subject, claims.SessionID, err)

	_, err = after.Verify(token, now.Add(20*time.Minute))
	fmt.Println(errors.Is(err, sessiond.ErrInvalidToken), err)
	// Output:
	// user-42 session-7 <nil>
	// true invalid token: access token expired
}

// Refresh tokens: the store keeps only the generation; the token is
// authenticated by the refresh key.
func ExampleRefreshTokens() {
	key, err := sessiond.GenerateRefreshKey()
	if err != nil {
		log.Fatal(err)
	}
	tokens := sessiond.NewRefreshTokens(key)
	token := tokens.Mint(sessiond.RefreshClaims{UserID: "user-42", SessionID: "session-7", Generation: 1})

	c, err := tokens.Parse(token)
	fmt.Printf("%+v %v\n", c, err)

	// Raising the generation without the key breaks the MAC.
	_, err = tokens.Parse(strings.Replace(token, ".1.", ".2.", 1))
	fmt.Println(err)
	// Output:
	// {UserID:user-42 SessionID:session-7 Generation:1} <nil>
	// invalid token: refresh token: wrong MAC
}

// The keys of one deployment live in files that every instance shares; the
// first start creates them.
func ExampleLoadOrCreateSigningKey() {
	dir, err := os.MkdirTemp("", "sessiond-keys")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	signing, err := sessiond.LoadOrCreateSigningKey(filepath.Join(dir, "signing.pem"))
	if err != nil {
		log.Fatal(err)
	}
	refresh, err := sessiond.LoadOrCreateRefreshKey(filepath.Join(dir, "refresh.key"))
	if err != nil {
		log.Fatal(err)
	}
	again, err := sessiond.LoadOrCreateSigningKey(filepath.Join(dir, "signing.pem"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(again.ID == signing.ID, len(refresh.ID))
	// Output: true 8
}
