package sessiond

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

const testIssuer = "sessiond-test"

// t0 is the "now" of the token tests; times are passed in, never slept on.
var t0 = time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)

func newTestSigningKey(t testing.TB) *SigningKey {
	t.Helper()
	k, err := GenerateSigningKey()
	if err != nil {
		t.Fatalf("GenerateSigningKey: %v", err)
	}
	return k
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	return b
}

// signRawJSON builds a compact JWS from exact header and claims JSON,
// signed with priv, bypassing the jwt package so any header can be tested.
func signRawJSON(priv ed25519.PrivateKey, header, claims string) string {
	in := b64([]byte(header)) + "." + b64([]byte(claims))
	return in + "." + b64(ed25519.Sign(priv, []byte(in)))
}

func signRaw(t testing.TB, priv ed25519.PrivateKey, header, claims map[string]any) string {
	t.Helper()
	return signRawJSON(priv, string(mustJSON(t, header)), string(mustJSON(t, claims)))
}

func goodHeader(kid string) map[string]any {
	return map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": kid}
}

func goodClaims(now time.Time) map[string]any {
	return map[string]any{
		"iss": testIssuer,
		"aud": []string{testIssuer},
		"sub": "user-1",
		"sid": "session-1",
		"iat": now.Unix(),
		"exp": now.Add(15 * time.Minute).Unix(),
		"jti": "jti-1",
	}
}

// with returns a copy of m with the given keys set; a nil value deletes.
func with(m map[string]any, kv ...any) map[string]any {
	c := make(map[string]any, len(m))
	for k, v := range m {
		c[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
		} else {
			c[kv[i].(string)] = kv[i+1]
		}
	}
	return c
}

// nullValue marks a header or claim that must be present with JSON null.
type nullValue struct{}

func (nullValue) MarshalJSON() ([]byte, error) { return []byte("null"), nil }

func TestIssueVerify(t *testing.T) {
	key := newTestSigningKey(t)
	at := NewAccessTokens(testIssuer, key)
	exp := t0.Add(15 * time.Minute)
	tok, err := at.Issue("user-1", "session-1", t0, exp)
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}

	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts, want 3", len(parts))
	}
	var header map[string]any
	raw, _ := base64.RawURLEncoding.DecodeString(parts[0])
	if err := json.Unmarshal(raw, &header); err != nil {
		t.Fatalf("header: %v", err)
	}
	want := map[string]any{"alg": "EdDSA", "typ": "at+jwt", "kid": key.ID}
	if fmt.Sprint(header) != fmt.Sprint(want) {
		t.Errorf("header = %v, want %v", header, want)
	}

	for _, verify := range []struct {
		name string
		fn   func(string, time.Time) (*AccessClaims, error)
	}{{"Verify", at.Verify}, {"verifyUncached", at.verifyUncached}, {"Verify cached", at.Verify}} {
		c, err := verify.fn(tok, t0.Add(time.Minute))
		if err != nil {
			t.Fatalf("%s: %v", verify.name, err)
		}
		if c.Subject != "user-1" || c.SessionID != "session-1" || c.Issuer != testIssuer {
			t.Errorf("%s: sub, sid, iss = %q, %q, %q, want user-1, session-1, %s", verify.name, c.Subject, c.SessionID, c.Issuer, testIssuer)
		}
		if len(c.Audience) != 1 || c.Audience[0] != testIssuer {
			t.Errorf("%s: aud = %v, want [%s]", verify.name, c.Audience, testIssuer)
		}
		if !c.ExpiresAt.Equal(exp) || !c.IssuedAt.Equal(t0) {
			t.Errorf("%s: exp, iat = %v, %v, want %v, %v", verify.name, c.ExpiresAt, c.IssuedAt, exp, t0)
		}
		if c.ID == "" {
			t.Errorf("%s: jti is empty", verify.name)
		}
	}

	other, err := at.Issue("user-1", "session-1", t0, exp)
	if err != nil {
		t.Fatal(err)
	}
	if other == tok {
		t.Error("two tokens with the same claims are identical: jti is not random")
	}
}

func TestIssueRefusesBadInput(t *testing.T) {
	at := NewAccessTokens(testIssuer, newTestSigningKey(t))
	for _, tc := range []struct {
		name      string
		user, sid string
		exp       time.Time
	}{
		{"empty user", "", "s", t0.Add(time.Minute)},
		{"empty session", "u", "", t0.Add(time.Minute)},
		{"expiry at issue time", "u", "s", t0},
		{"expiry before issue time", "u", "s", t0.Add(-time.Minute)},
	} {
		if _, err := at.Issue(tc.user, tc.sid, t0, tc.exp); err == nil {
			t.Errorf("%s: Issue succeeded, want an error", tc.name)
		}
	}
}

// TestVerifyAccepts holds the edge cases that must pass; each sits next to
// a refused case of TestVerifyRefuses on the other side of the boundary.
func TestVerifyAccepts(t *testing.T) {
	key := newTestSigningKey(t)
	at := NewAccessTokens(testIssuer, key)
	h, c := goodHeader(key.ID), goodClaims(t0)
	// The largest padding that keeps the token within maxAccessTokenSize.
	pad := ""
	for n := 5000; len(signRaw(t, key.Key, h, with(c, "pad", strings.Repeat("x", n)))) <= maxAccessTokenSize; n++ {
		pad = strings.Repeat("x", n)
	}
	for _, tc := range []struct {
		name  string
		token string
		now   time.Time
	}{
		{"well-formed", signRaw(t, key.Key, h, c), t0},
		{"expired within the leeway", signRaw(t, key.Key, h, with(c, "exp", t0.Add(-59*time.Second).Unix())), t0},
		{"nbf in the future within the leeway", signRaw(t, key.Key, h, with(c, "nbf", t0.Add(59*time.Second).Unix())), t0},
		{"nbf in the past", signRaw(t, key.Key, h, with(c, "nbf", t0.Add(-time.Hour).Unix())), t0},
		{"iat in the future within the leeway", signRaw(t, key.Key, h, with(c, "iat", t0.Add(59*time.Second).Unix())), t0},
		{"no iat", signRaw(t, key.Key, h, with(c, "iat", nil)), t0},
		{"fractional exp", signRaw(t, key.Key, h, with(c, "exp", float64(t0.Add(time.Minute).Unix())+0.5)), t0},
		{"aud as a string", signRaw(t, key.Key, h, with(c, "aud", testIssuer)), t0},
		{"typ application/at+jwt", signRaw(t, key.Key, with(h, "typ", "application/at+jwt"), c), t0},
		{"typ in capitals", signRaw(t, key.Key, with(h, "typ", "AT+JWT"), c), t0},
		{"just under 8 KiB", signRaw(t, key.Key, h, with(c, "pad", pad)), t0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "just under 8 KiB" && (len(tc.token) > maxAccessTokenSize || len(tc.token) < maxAccessTokenSize-4) {
				t.Fatalf("test token is %d bytes, want just under %d", len(tc.token), maxAccessTokenSize)
			}
			if _, err := at.verifyUncached(tc.token, tc.now); err != nil {
				t.Errorf("verifyUncached: %v", err)
			}
			if _, err := at.Verify(tc.token, tc.now); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

func TestVerifyRefuses(t *testing.T) {
	key := newTestSigningKey(t)
	at := NewAccessTokens(testIssuer, key)
	h, c := goodHeader(key.ID), goodClaims(t0)
	good := signRaw(t, key.Key, h, c)
	pub := key.Key.Public().(ed25519.PublicKey)

	attacker := newTestSigningKey(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// signJWT signs with another algorithm through the jwt package.
	signJWT := func(m jwt.SigningMethod, k any) string {
		tok := jwt.NewWithClaims(m, jwt.MapClaims(c))
		tok.Header["kid"] = key.ID
		tok.Header["typ"] = "at+jwt"
		s, err := tok.SignedString(k)
		if err != nil {
			t.Fatalf("sign %s: %v", m.Alg(), err)
		}
		return s
	}
	ownJWK := map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64(pub)}
	attackerJWK := map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64(attacker.Key.Public().(ed25519.PublicKey))}
	headerB64, claimsB64, sig := func() (string, string, string) {
		p := strings.Split(good, ".")
		return p[0], p[1], p[2]
	}()
	tamperedClaims := b64(mustJSON(t, with(c, "sub", "admin")))
	// stdAlphabet is a correctly signed token rewritten in the standard
	// base64 alphabet. A random key leaves no '-' or '_' in about one token
	// in twenty, and then the rewrite would change nothing, so vary jti
	// until the token has one.
	stdAlphabet := ""
	for i := 0; stdAlphabet == ""; i++ {
		if tok := signRaw(t, key.Key, h, with(c, "jti", fmt.Sprintf("jti-%d", i))); strings.ContainsAny(tok, "-_") {
			stdAlphabet = strings.NewReplacer("-", "+", "_", "/").Replace(tok)
		}
	}
	refresh := NewRefreshTokens(mustRefreshKey(t)).Mint(RefreshClaims{UserID: "user-1", SessionID: "session-1", Generation: 1})
	big := signRaw(t, key.Key, h, with(c, "pad", strings.Repeat("x", maxAccessTokenSize)))

	for _, tc := range []struct {
		name  string
		token string
		now   time.Time // zero: t0
		is    error     // an extra error the refusal must match
	}{
		{name: "alg none", token: b64([]byte(`{"alg":"none","typ":"at+jwt","kid":"`+key.ID+`"}`)) + "." + claimsB64 + "."},
		{name: "alg none with the real signature", token: b64([]byte(`{"alg":"none","typ":"at+jwt","kid":"`+key.ID+`"}`)) + "." + claimsB64 + "." + sig},
		{name: "HS256 keyed with the public key", token: signJWT(jwt.SigningMethodHS256, []byte(pub))},
		{name: "HS256 keyed with the public key PEM-free base64", token: signJWT(jwt.SigningMethodHS256, []byte(b64(pub)))},
		{name: "RS256", token: signJWT(jwt.SigningMethodRS256, rsaKey)},
		{name: "ES256", token: signJWT(jwt.SigningMethodES256, ecKey)},
		{name: "alg in lower case", token: signRaw(t, key.Key, with(h, "alg", "eddsa"), c)},
		{name: "alg Ed25519", token: signRaw(t, key.Key, with(h, "alg", "Ed25519"), c)},
		{name: "missing alg", token: signRaw(t, key.Key, with(h, "alg", nil), c)},
		{name: "unknown kid", token: signRaw(t, key.Key, with(h, "kid", "no-such-key"), c)},
		{name: "missing kid", token: signRaw(t, key.Key, with(h, "kid", nil), c)},
		{name: "empty kid", token: signRaw(t, key.Key, with(h, "kid", ""), c)},
		{name: "null kid", token: signRaw(t, key.Key, with(h, "kid", nullValue{}), c)},
		{name: "numeric kid", token: signRaw(t, key.Key, with(h, "kid", 1), c)},
		{name: "kid as an array", token: signRaw(t, key.Key, with(h, "kid", []string{key.ID}), c)},
		{name: "path traversal kid", token: signRaw(t, key.Key, with(h, "kid", "../../../../etc/passwd"), c)},
		{name: "kid with a NUL", token: signRaw(t, key.Key, with(h, "kid", key.ID+"\x00"), c)},
		{name: "kid with a trailing space", token: signRaw(t, key.Key, with(h, "kid", key.ID+" "), c)},
		{name: "embedded jwk of the attacker", token: signRaw(t, attacker.Key, with(h, "jwk", attackerJWK, "kid", attacker.ID), c)},
		{name: "embedded jwk of the real key", token: signRaw(t, key.Key, with(h, "jwk", ownJWK), c)},
		{name: "jku", token: signRaw(t, key.Key, with(h, "jku", "https://attacker.example/jwks.json"), c)},
		{name: "x5u", token: signRaw(t, key.Key, with(h, "x5u", "https://attacker.example/cert.pem"), c)},
		{name: "x5c", token: signRaw(t, key.Key, with(h, "x5c", []string{"MIIB"}), c)},
		{name: "null x5c", token: signRaw(t, key.Key, with(h, "x5c", nullValue{}), c)},
		{name: "crit", token: signRaw(t, key.Key, with(h, "crit", []string{"exp"}), c)},
		{name: "empty crit", token: signRaw(t, key.Key, with(h, "crit", []string{}), c)},
		{name: "typ JWT", token: signRaw(t, key.Key, with(h, "typ", "JWT"), c)},
		{name: "missing typ", token: signRaw(t, key.Key, with(h, "typ", nil), c)},
		{name: "typ with a space", token: signRaw(t, key.Key, with(h, "typ", "at+jwt "), c)},
		{name: "typ as an array", token: signRaw(t, key.Key, with(h, "typ", []string{"at+jwt"}), c)},
		{name: "typ of another media type", token: signRaw(t, key.Key, with(h, "typ", "application/jwt"), c)},
		{name: "missing exp", token: signRaw(t, key.Key, h, with(c, "exp", nil)), is: jwt.ErrTokenRequiredClaimMissing},
		{name: "null exp", token: signRaw(t, key.Key, h, with(c, "exp", nullValue{})), is: jwt.ErrTokenMalformed},
		{name: "exp as a string of digits", token: signRaw(t, key.Key, h, with(c, "exp", "9999999999")), is: jwt.ErrTokenMalformed},
		{name: "exp as a string of a valid time", token: signRaw(t, key.Key, h, with(c, "exp", fmt.Sprint(t0.Add(time.Minute).Unix()))), is: jwt.ErrTokenMalformed},
		{name: "exp as a boolean", token: signRaw(t, key.Key, h, with(c, "exp", true)), is: jwt.ErrTokenMalformed},
		{name: "exp as an object", token: signRaw(t, key.Key, h, with(c, "exp", map[string]int{"n": 1})), is: jwt.ErrTokenMalformed},
		{name: "iat as a string", token: signRaw(t, key.Key, h, with(c, "iat", fmt.Sprint(t0.Unix()))), is: jwt.ErrTokenMalformed},
		{name: "null iat", token: signRaw(t, key.Key, h, with(c, "iat", nullValue{})), is: jwt.ErrTokenMalformed},
		{name: "nbf as a string", token: signRaw(t, key.Key, h, with(c, "nbf", fmt.Sprint(t0.Add(-time.Hour).Unix()))), is: jwt.ErrTokenMalformed},
		{name: "null nbf", token: signRaw(t, key.Key, h, with(c, "nbf", nullValue{})), is: jwt.ErrTokenMalformed},
		{name: "exp given twice, the last a string", token: signRawJSON(key.Key, string(mustJSON(t, h)), fmt.Sprintf(`{"iss":%q,"aud":[%q],"sub":"user-1","sid":"session-1","iat":%d,"exp":%d,"exp":"%d"}`, testIssuer, testIssuer, t0.Unix(), t0.Add(time.Minute).Unix(), t0.Add(time.Minute).Unix())), is: jwt.ErrTokenMalformed},
		{name: "EXP in capitals as a string", token: signRaw(t, key.Key, h, with(c, "exp", nil, "EXP", "9999999999")), is: jwt.ErrTokenMalformed},
		{name: "iat in the future beyond the leeway", token: signRaw(t, key.Key, h, with(c, "iat", t0.Add(61*time.Second).Unix())), is: jwt.ErrTokenUsedBeforeIssued},
		{name: "iat far in the future", token: signRaw(t, key.Key, h, with(c, "iat", t0.Add(24*time.Hour).Unix(), "exp", t0.Add(25*time.Hour).Unix())), is: jwt.ErrTokenUsedBeforeIssued},
		{name: "zero exp", token: signRaw(t, key.Key, h, with(c, "exp", 0)), is: jwt.ErrTokenExpired},
		{name: "expired beyond the leeway", token: signRaw(t, key.Key, h, with(c, "exp", t0.Add(-61*time.Second).Unix())), is: jwt.ErrTokenExpired},
		{name: "expired exactly at the leeway", token: signRaw(t, key.Key, h, with(c, "exp", t0.Add(-60*time.Second).Unix())), is: jwt.ErrTokenExpired},
		{name: "nbf beyond the leeway", token: signRaw(t, key.Key, h, with(c, "nbf", t0.Add(61*time.Second).Unix())), is: jwt.ErrTokenNotValidYet},
		{name: "wrong iss", token: signRaw(t, key.Key, h, with(c, "iss", "someone-else")), is: jwt.ErrTokenInvalidIssuer},
		{name: "missing iss", token: signRaw(t, key.Key, h, with(c, "iss", nil))},
		{name: "wrong aud", token: signRaw(t, key.Key, h, with(c, "aud", []string{"another-service"})), is: jwt.ErrTokenInvalidAudience},
		{name: "missing aud", token: signRaw(t, key.Key, h, with(c, "aud", nil))},
		{name: "empty aud", token: signRaw(t, key.Key, h, with(c, "aud", []string{})), is: jwt.ErrTokenRequiredClaimMissing},
		{name: "missing sub", token: signRaw(t, key.Key, h, with(c, "sub", nil))},
		{name: "empty sub", token: signRaw(t, key.Key, h, with(c, "sub", ""))},
		{name: "missing sid", token: signRaw(t, key.Key, h, with(c, "sid", nil))},
		{name: "empty sid", token: signRaw(t, key.Key, h, with(c, "sid", ""))},
		{name: "numeric sid", token: signRaw(t, key.Key, h, with(c, "sid", 7))},
		{name: "refresh token", token: refresh},
		{name: "over 8 KiB", token: big},
		{name: "empty", token: ""},
		{name: "garbage", token: "garbage"},
		{name: "two dots", token: ".."},
		{name: "three empty parts and a dot", token: "..."},
		{name: "two parts", token: headerB64 + "." + claimsB64},
		{name: "four parts", token: good + "." + sig},
		{name: "not JSON", token: b64([]byte("hello")) + "." + b64([]byte("world")) + "." + sig},
		{name: "unicode", token: "héllo.wörld.sig"},
		{name: "leading space", token: " " + good},
		{name: "trailing newline", token: good + "\n"},
		{name: "Bearer prefix", token: "Bearer " + good},
		{name: "newline inside the signature", token: headerB64 + "." + claimsB64 + "." + sig[:10] + "\n" + sig[10:]},
		{name: "padded signature", token: good + "=="},
		{name: "standard base64 alphabet", token: stdAlphabet},
		{name: "tampered payload", token: headerB64 + "." + tamperedClaims + "." + sig},
		{name: "tampered header", token: b64([]byte(`{"alg":"EdDSA","kid":"`+key.ID+`","typ":"at+jwt"} `)) + "." + claimsB64 + "." + sig},
		{name: "truncated signature", token: good[:len(good)-2]},
		{name: "flipped signature", token: good[:len(good)-5] + flip(good[len(good)-5:len(good)-4]) + good[len(good)-4:]},
		{name: "empty signature", token: headerB64 + "." + claimsB64 + "."},
		{name: "signed by another key with the same kid", token: signRaw(t, attacker.Key, h, c)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := tc.now
			if now.IsZero() {
				now = t0
			}
			for _, v := range []struct {
				name string
				fn   func(string, time.Time) (*AccessClaims, error)
			}{{"verifyUncached", at.verifyUncached}, {"Verify", at.Verify}} {
				claims, err := v.fn(tc.token, now)
				if err == nil {
					t.Fatalf("%s accepted the token: %+v", v.name, claims)
				}
				if claims != nil {
					t.Errorf("%s returned claims with an error", v.name)
				}
				if !errors.Is(err, ErrInvalidToken) {
					t.Errorf("%s: error %v does not match ErrInvalidToken", v.name, err)
				}
				if tc.is != nil && !errors.Is(err, tc.is) {
					t.Errorf("%s: error %v does not match %v", v.name, err, tc.is)
				}
				if len(tc.token) > 16 && strings.Contains(err.Error(), tc.token[:16]) {
					t.Errorf("%s: error %q quotes the token", v.name, err)
				}
			}
		})
	}

	// The refused tokens differ from an accepted one only in what each case
	// names: the good token verifies with the same verifier at the same time.
	if _, err := at.verifyUncached(good, t0); err != nil {
		t.Fatalf("the untampered token is refused: %v", err)
	}
}

// flip changes one base64url character into another.
func flip(s string) string {
	if s == "A" {
		return "B"
	}
	return "A"
}

func TestVerifyKeyRotation(t *testing.T) {
	oldKey, newKey := newTestSigningKey(t), newTestSigningKey(t)
	oldTok, err := NewAccessTokens(testIssuer, oldKey).Issue("u", "s", t0, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	oldPub := oldKey.Key.Public().(ed25519.PublicKey)

	rotated := NewAccessTokens(testIssuer, newKey, oldPub)
	if _, err := rotated.Verify(oldTok, t0); err != nil {
		t.Errorf("token of the previous key refused after rotation: %v", err)
	}
	newTok, err := rotated.Issue("u", "s", t0, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if kid := headerOf(t, newTok)["kid"]; kid != newKey.ID {
		t.Errorf("rotated issuer signs with kid %v, want the new key %s", kid, newKey.ID)
	}
	if _, err := rotated.Verify(newTok, t0); err != nil {
		t.Errorf("token of the new key refused: %v", err)
	}

	dropped := NewAccessTokens(testIssuer, newKey)
	if _, err := dropped.Verify(oldTok, t0); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("token of a key no longer configured: got %v, want ErrInvalidToken", err)
	}
	// The old issuer does not know the new key either.
	if _, err := NewAccessTokens(testIssuer, oldKey).Verify(newTok, t0); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("token of a newer key on an old verifier: got %v, want ErrInvalidToken", err)
	}
	// Another issuer name refuses tokens of the same key.
	if _, err := NewAccessTokens("other", newKey).Verify(newTok, t0); !errors.Is(err, jwt.ErrTokenInvalidIssuer) {
		t.Errorf("token for another issuer: got %v, want ErrTokenInvalidIssuer", err)
	}
}

func headerOf(t *testing.T, tok string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestVerifiedCache(t *testing.T) {
	key := newTestSigningKey(t)
	h, c := goodHeader(key.ID), goodClaims(t0)
	exp := t0.Add(15 * time.Minute)

	t.Run("cached token is refused once expired", func(t *testing.T) {
		at := NewAccessTokens(testIssuer, key)
		tok := signRaw(t, key.Key, h, c)
		if _, err := at.Verify(tok, t0); err != nil {
			t.Fatal(err)
		}
		if n := at.cache.len(); n != 1 {
			t.Fatalf("cache holds %d tokens, want 1", n)
		}
		if _, err := at.Verify(tok, exp.Add(59*time.Second)); err != nil {
			t.Errorf("within the leeway: %v", err)
		}
		for _, now := range []time.Time{exp.Add(60 * time.Second), exp.Add(time.Hour)} {
			if _, err := at.Verify(tok, now); !errors.Is(err, ErrInvalidToken) || !errors.Is(err, jwt.ErrTokenExpired) {
				t.Errorf("at exp+%s: got %v, want ErrInvalidToken and ErrTokenExpired", now.Sub(exp), err)
			}
		}
	})

	t.Run("cached token is refused before nbf", func(t *testing.T) {
		at := NewAccessTokens(testIssuer, key)
		nbf := t0.Add(time.Minute)
		tok := signRaw(t, key.Key, h, with(c, "nbf", nbf.Unix()))
		if _, err := at.Verify(tok, nbf); err != nil {
			t.Fatal(err)
		}
		if _, err := at.Verify(tok, nbf.Add(-61*time.Second)); !errors.Is(err, jwt.ErrTokenNotValidYet) {
			t.Errorf("before nbf-leeway: got %v, want ErrTokenNotValidYet", err)
		}
		if _, err := at.Verify(tok, nbf.Add(-59*time.Second)); err != nil {
			t.Errorf("within the leeway of nbf: %v", err)
		}
	})

	t.Run("a different token with the same claims is verified on its own", func(t *testing.T) {
		at := NewAccessTokens(testIssuer, key)
		genuine := signRaw(t, key.Key, h, c)
		if _, err := at.Verify(genuine, t0); err != nil {
			t.Fatal(err)
		}
		attacker := newTestSigningKey(t)
		forged := signRaw(t, attacker.Key, h, c) // same header and claims
		if _, err := at.Verify(forged, t0); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("forged token with cached claims: got %v, want ErrInvalidToken", err)
		}
		sigless := genuine[:strings.LastIndexByte(genuine, '.')+1]
		if _, err := at.Verify(sigless, t0); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("cached token without its signature: got %v, want ErrInvalidToken", err)
		}
		if _, err := at.Verify(genuine+"A", t0); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("cached token with a byte appended: got %v, want ErrInvalidToken", err)
		}
		// The same claims with the header keys in another order: another
		// valid token, verified and cached separately.
		reordered := signRawJSON(key.Key, `{"typ":"at+jwt","kid":"`+key.ID+`","alg":"EdDSA"}`, string(mustJSON(t, c)))
		if reordered == genuine {
			t.Fatal("reordered header produced the same token")
		}
		if _, err := at.Verify(reordered, t0); err != nil {
			t.Errorf("reordered header: %v", err)
		}
		if n := at.cache.len(); n != 2 {
			t.Errorf("cache holds %d tokens, want 2 (only the two genuine ones)", n)
		}
	})

	t.Run("returned claims are a copy", func(t *testing.T) {
		at := NewAccessTokens(testIssuer, key)
		tok := signRaw(t, key.Key, h, c)
		// The first call verifies, the next ones answer from the cache;
		// each caller scribbles on what it got.
		for i := range 3 {
			got, err := at.Verify(tok, t0)
			if err != nil {
				t.Fatal(err)
			}
			if got.Subject != "user-1" || got.Audience[0] != testIssuer || !got.ExpiresAt.Equal(exp) {
				t.Fatalf("call %d: claims changed by an earlier caller: sub %q, aud %v, exp %v", i, got.Subject, got.Audience, got.ExpiresAt)
			}
			got.Subject = "mallory"
			got.Audience[0] = "mallory"
			got.ExpiresAt.Time = t0.Add(100 * time.Hour)
		}
		if _, err := at.Verify(tok, exp.Add(2*time.Minute)); !errors.Is(err, jwt.ErrTokenExpired) {
			t.Errorf("after a caller moved exp: got %v, want ErrTokenExpired", err)
		}
	})

	t.Run("refused tokens are not cached", func(t *testing.T) {
		at := NewAccessTokens(testIssuer, key)
		if _, err := at.Verify(signRaw(t, key.Key, h, with(c, "iss", "x")), t0); err == nil {
			t.Fatal("wrong issuer accepted")
		}
		if n := at.cache.len(); n != 0 {
			t.Errorf("cache holds %d tokens after a refusal, want 0", n)
		}
	})

	t.Run("verifyUncached leaves the cache alone", func(t *testing.T) {
		at := NewAccessTokens(testIssuer, key)
		if _, err := at.verifyUncached(signRaw(t, key.Key, h, c), t0); err != nil {
			t.Fatal(err)
		}
		if n := at.cache.len(); n != 0 {
			t.Errorf("cache holds %d tokens, want 0", n)
		}
	})
}

func TestVerifiedCacheBound(t *testing.T) {
	entry := func(exp time.Time) cacheEntry {
		return cacheEntry{expiresBefore: exp, claims: &AccessClaims{}}
	}
	// sameShard returns n distinct keys that c puts in one shard.
	sameShard := func(c *verifiedCache, n int) []string {
		keys := []string{"token-0"}
		for i := 1; len(keys) < n; i++ {
			if k := fmt.Sprint("token-", i); c.shard(k) == c.shard(keys[0]) {
				keys = append(keys, k)
			}
		}
		return keys
	}
	t.Run("size is bounded", func(t *testing.T) {
		c := newVerifiedCache(2 * cacheShards)
		for i := range 10_000 {
			c.put(fmt.Sprint(i), entry(t0.Add(time.Hour)), t0)
		}
		if n := c.len(); n > 2*cacheShards {
			t.Errorf("cache holds %d entries, want at most %d", n, 2*cacheShards)
		}
	})
	t.Run("expired entries go first", func(t *testing.T) {
		c := newVerifiedCache(evictionSample * cacheShards) // a shard holds evictionSample entries
		keys := sameShard(c, evictionSample+1)
		live, expired, last := keys[0], keys[1:evictionSample], keys[evictionSample]
		c.put(live, entry(t0.Add(time.Hour)), t0)
		for _, k := range expired {
			c.put(k, entry(t0.Add(-time.Second)), t0)
		}
		c.put(last, entry(t0.Add(time.Hour)), t0)
		if _, ok := c.get(live); !ok {
			t.Error("a live entry was evicted while expired ones were there")
		}
		if _, ok := c.get(last); !ok {
			t.Error("the new entry is missing")
		}
		for _, k := range expired {
			if _, ok := c.get(k); ok {
				t.Errorf("expired entry %s is still cached", k)
			}
		}
	})
	t.Run("a full shard of live entries evicts one", func(t *testing.T) {
		c := newVerifiedCache(cacheShards) // one entry a shard
		keys := sameShard(c, 2)
		a, b := keys[0], keys[1]
		c.put(a, entry(t0.Add(time.Hour)), t0)
		c.put(b, entry(t0.Add(time.Hour)), t0)
		_, okA := c.get(a)
		_, okB := c.get(b)
		if okA || !okB {
			t.Errorf("after inserting into a full shard: old cached %v, new cached %v; want false, true", okA, okB)
		}
	})
	t.Run("keys never share the caller's string", func(t *testing.T) {
		// A cookie's value is a slice of the whole Cookie header, which
		// may be large: the cache must not keep it alive, neither on the
		// first put of a token nor when two requests put the same one.
		c := newVerifiedCache(100)
		header := strings.Repeat("x", 1<<16) + "header.claims.signature"
		token := header[1<<16:]
		for range 2 {
			c.put(token, entry(t0.Add(time.Hour)), t0)
			s := c.shard(token)
			for k := range s.m {
				if unsafe.StringData(k) == unsafe.StringData(token) {
					t.Fatal("the cache's key is the caller's string")
				}
			}
		}
	})
	t.Run("only the exact token finds an entry", func(t *testing.T) {
		c := newVerifiedCache(100)
		c.put("header.claims.signature", entry(t0.Add(time.Hour)), t0)
		for _, k := range []string{"header.claims.signatur", "header.claims.signature ", "Header.claims.signature", "HEADER.claims.signature"} {
			if _, ok := c.get(k); ok {
				t.Errorf("get(%q) found the entry of another token", k)
			}
		}
		if _, ok := c.get("header.claims.signature"); !ok {
			t.Error("the token itself is not found")
		}
	})
}

func TestVerifyConcurrent(t *testing.T) {
	key := newTestSigningKey(t)
	at := NewAccessTokens(testIssuer, key)
	at.cache = newVerifiedCache(cacheShards) // tiny, so eviction races too
	tokens := make([]string, 200)
	for i := range tokens {
		var err error
		tokens[i], err = at.Issue(fmt.Sprint("user-", i), fmt.Sprint("session-", i), t0, t0.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 400 {
				n := (i*7 + g) % len(tokens)
				c, err := at.Verify(tokens[n], t0)
				if err != nil {
					t.Errorf("Verify: %v", err)
					return
				}
				if want := fmt.Sprint("session-", n); c.SessionID != want {
					t.Errorf("got sid %q, want %q", c.SessionID, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestJWKS(t *testing.T) {
	cur, prev := newTestSigningKey(t), newTestSigningKey(t)
	prevPub := prev.Key.Public().(ed25519.PublicKey)
	at := NewAccessTokens(testIssuer, cur, prevPub, prevPub)
	raw := at.JWKS()

	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		t.Fatalf("go-jose cannot parse the JWKS: %v", err)
	}
	if len(set.Keys) != 2 {
		t.Fatalf("JWKS has %d keys, want 2 (current and previous, no duplicate)", len(set.Keys))
	}
	for i, want := range []*SigningKey{cur, prev} {
		k := set.Keys[i]
		pub, ok := k.Key.(ed25519.PublicKey)
		if !ok || !pub.Equal(want.Key.Public()) {
			t.Errorf("key %d is %T, not the expected Ed25519 public key", i, k.Key)
		}
		if !k.IsPublic() {
			t.Errorf("key %d is not public", i)
		}
		if k.KeyID != want.ID || k.KeyID != rfc7638(pub) {
			t.Errorf("key %d: kid %q, want the RFC 7638 thumbprint %q", i, k.KeyID, rfc7638(pub))
		}
		if k.Algorithm != "EdDSA" || k.Use != "sig" {
			t.Errorf("key %d: alg %q use %q, want EdDSA sig", i, k.Algorithm, k.Use)
		}
	}

	var generic struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	for i, k := range generic.Keys {
		if _, ok := k["d"]; ok {
			t.Errorf("key %d has a private part d", i)
		}
		if k["kty"] != "OKP" || k["crv"] != "Ed25519" {
			t.Errorf("key %d: kty %v crv %v, want OKP Ed25519", i, k["kty"], k["crv"])
		}
	}
	if strings.Contains(string(raw), b64(cur.Key.Seed())) {
		t.Error("JWKS contains the private seed")
	}

	raw[0] = 'X'
	if at.JWKS()[0] == 'X' {
		t.Error("JWKS returns its internal buffer")
	}
}

// rfc7638 computes the thumbprint by hand, independently of go-jose.
func rfc7638(pub ed25519.PublicKey) string {
	sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + b64(pub) + `"}`))
	return b64(sum[:])
}

func TestSigningKeyIDKnownAnswer(t *testing.T) {
	// RFC 8037, appendix A.3.
	pub, err := base64.RawURLEncoding.DecodeString("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	if err != nil {
		t.Fatal(err)
	}
	got, err := signingKeyID(pub)
	if err != nil {
		t.Fatal(err)
	}
	if want := "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"; got != want {
		t.Errorf("signingKeyID = %q, want %q", got, want)
	}
}

func TestNewAccessTokensPanics(t *testing.T) {
	key := newTestSigningKey(t)
	for _, tc := range []struct {
		name string
		fn   func()
	}{
		{"empty issuer", func() { NewAccessTokens("", key) }},
		{"nil key", func() { NewAccessTokens(testIssuer, nil) }},
		{"short key", func() { NewAccessTokens(testIssuer, &SigningKey{Key: key.Key[:10]}) }},
		{"ID of another key", func() { NewAccessTokens(testIssuer, &SigningKey{ID: "x", Key: key.Key}) }},
		{"short previous key", func() { NewAccessTokens(testIssuer, key, ed25519.PublicKey{1, 2}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			tc.fn()
		})
	}
}

func FuzzAccessVerify(f *testing.F) {
	key, err := GenerateSigningKey()
	if err != nil {
		f.Fatal(err)
	}
	at := NewAccessTokens(testIssuer, key)
	tok, err := at.Issue("user-1", "session-1", t0, t0.Add(15*time.Minute))
	if err != nil {
		f.Fatal(err)
	}
	h, c := goodHeader(key.ID), goodClaims(t0)
	f.Add(tok, int64(0))
	f.Add(tok, int64(16*60))
	f.Add(signRaw(f, key.Key, h, with(c, "nbf", t0.Add(time.Hour).Unix())), int64(0))
	f.Add(signRaw(f, key.Key, with(h, "crit", []string{"exp"}), c), int64(0))
	f.Add(signRaw(f, key.Key, h, with(c, "sid", nil)), int64(0))
	f.Add(tok[:len(tok)-3], int64(0))
	f.Add("e30.e30.", int64(0))
	f.Add("", int64(0))
	f.Fuzz(func(t *testing.T, token string, offset int64) {
		now := t0.Add(time.Duration(offset) * time.Second)
		uncached, errU := at.verifyUncached(token, now)
		cached, errC := at.Verify(token, now)
		again, errA := at.Verify(token, now) // from the cache when accepted
		if (errU == nil) != (errC == nil) || (errC == nil) != (errA == nil) {
			t.Fatalf("answers differ: uncached %v, first %v, cached %v", errU, errC, errA)
		}
		if errU != nil {
			for _, err := range []error{errU, errC, errA} {
				if !errors.Is(err, ErrInvalidToken) {
					t.Fatalf("error %v does not match ErrInvalidToken", err)
				}
			}
			return
		}
		if uncached.Subject == "" || uncached.SessionID == "" || uncached.ExpiresAt == nil {
			t.Fatalf("accepted claims without sub, sid or exp: %+v", uncached)
		}
		if fmt.Sprint(*uncached) != fmt.Sprint(*cached) || fmt.Sprint(*cached) != fmt.Sprint(*again) {
			t.Fatalf("claims differ: %+v, %+v, %+v", uncached, cached, again)
		}
	})
}

func BenchmarkIssue(b *testing.B) {
	at := NewAccessTokens(testIssuer, newTestSigningKey(b))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := at.Issue("user-1", "session-1", t0, t0.Add(15*time.Minute)); err != nil {
			b.Fatal(err)
		}
	}
}

func benchTokens(b *testing.B, n int) (*AccessTokens, []string) {
	b.Helper()
	at := NewAccessTokens(testIssuer, newTestSigningKey(b))
	tokens := make([]string, n)
	for i := range tokens {
		var err error
		tokens[i], err = at.Issue(fmt.Sprint("user-", i), fmt.Sprint("session-", i), t0, t0.Add(15*time.Minute))
		if err != nil {
			b.Fatal(err)
		}
	}
	return at, tokens
}

func BenchmarkVerifyUncached(b *testing.B) {
	at, tokens := benchTokens(b, 1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := at.verifyUncached(tokens[0], t0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyCached(b *testing.B) {
	at, tokens := benchTokens(b, 1)
	if _, err := at.Verify(tokens[0], t0); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := at.Verify(tokens[0], t0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCachedParallel verifies 1024 cached tokens from every
// core, as a busy instance with many signed-in users does.
func BenchmarkVerifyCachedParallel(b *testing.B) {
	at, tokens := benchTokens(b, 1024)
	for _, tok := range tokens {
		if _, err := at.Verify(tok, t0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := at.Verify(tokens[i%len(tokens)], t0); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkVerifyCachedParallelOneToken is the worst case for lock
// contention: every core verifies the same token.
func BenchmarkVerifyCachedParallelOneToken(b *testing.B) {
	at, tokens := benchTokens(b, 1)
	if _, err := at.Verify(tokens[0], t0); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := at.Verify(tokens[0], t0); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestVerifyCacheChecksIssuedAt: a token verified once is refused from the
// cache at a time before its iat (minus the leeway), as the full check
// refuses it.
func TestVerifyCacheChecksIssuedAt(t *testing.T) {
	key := newTestSigningKey(t)
	at := NewAccessTokens(testIssuer, key)
	tok := signRaw(t, key.Key, goodHeader(key.ID), with(goodClaims(t0), "iat", t0.Add(30*time.Second).Unix()))
	if _, err := at.Verify(tok, t0); err != nil {
		t.Fatalf("Verify at iat-30s: %v", err)
	}
	early := t0.Add(-31 * time.Second)
	for name, fn := range map[string]func(string, time.Time) (*AccessClaims, error){"Verify": at.Verify, "verifyUncached": at.verifyUncached} {
		if _, err := fn(tok, early); !errors.Is(err, jwt.ErrTokenUsedBeforeIssued) || !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s at iat-61s: got %v, want an invalid token used before issued", name, err)
		}
	}
}
