package main

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/sessiond/sessiond"
	"github.com/sessiond/sessiond/internal/sessiondtest"
)

func writeSigningKeys(t *testing.T, path string, keys ...*sessiond.SigningKey) {
	t.Helper()
	var all []byte
	for _, k := range keys {
		b, err := k.MarshalPEM()
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	if err := os.WriteFile(path, all, 0o600); err != nil {
		t.Fatal(err)
	}
}

func writeRefreshKeys(t *testing.T, path string, keys ...*sessiond.RefreshKey) {
	t.Helper()
	var all []byte
	for _, k := range keys {
		all = append(all, base64.StdEncoding.EncodeToString(k.Secret)+"\n"...)
	}
	if err := os.WriteFile(path, all, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestKeyRotation: a new signing key listed before the old one signs new
// tokens while the old key's tokens stay valid; a new refresh key likewise
// keeps old refresh tokens working. Dropping the old keys ends them.
func TestKeyRotation(t *testing.T) {
	dir := t.TempDir()
	sign, refresh := filepath.Join(dir, "signing.pem"), filepath.Join(dir, "refresh.keys")
	oldSK, _ := sessiond.GenerateSigningKey()
	newSK, _ := sessiond.GenerateSigningKey()
	oldRK, _ := sessiond.GenerateRefreshKey()
	newRK, _ := sessiond.GenerateRefreshKey()
	env := map[string]string{"SESSIOND_DATA_DIR": filepath.Join(dir, "data"), "SESSIOND_SIGNING_KEY_FILE": sign, "SESSIOND_REFRESH_KEY_FILE": refresh}

	writeSigningKeys(t, sign, oldSK)
	writeRefreshKeys(t, refresh, oldRK)
	ts := startServer(t, env)
	c := sessiondtest.NewClient(t, ts.URL)
	c.Register("vic")
	before := c.Login("vic", nil)
	keep := c.Login("vic", nil)
	ts.stop()

	writeSigningKeys(t, sign, newSK, oldSK)
	writeRefreshKeys(t, refresh, newRK, oldRK)
	ts = startServer(t, env)
	c = sessiondtest.NewClient(t, ts.URL)
	c.Do("GET", "/api/v1/me", before.AccessToken, nil).Expect(t, 200)
	var jwks struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	json.Unmarshal(c.Do("GET", "/.well-known/jwks.json", "", nil).Expect(t, 200).Body, &jwks)
	if len(jwks.Keys) != 2 {
		t.Fatalf("jwks during rotation: got %d keys, want 2", len(jwks.Keys))
	}
	var after sessiondtest.Grant
	c.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": before.RefreshToken}).Expect(t, 200).Decode(t, &after)
	ts.stop()

	writeSigningKeys(t, sign, newSK)
	writeRefreshKeys(t, refresh, newRK)
	ts = startServer(t, env)
	c = sessiondtest.NewClient(t, ts.URL)
	c.Do("GET", "/api/v1/me", after.AccessToken, nil).Expect(t, 200)
	c.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": after.RefreshToken}).Expect(t, 200)
	// Tokens made only under the retired keys end with them.
	c.Do("GET", "/api/v1/me", keep.AccessToken, nil).Expect(t, 401)
	c.Do("POST", "/api/v1/auth/refresh", "", map[string]string{"refresh_token": keep.RefreshToken}).Expect(t, 401)
}
